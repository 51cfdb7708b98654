package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testPassword = "test-pass-1"

// processInstance prepares an instance directory with a redis.conf and
// returns its spec and address. As root it runs the instance as the redis
// user, the way production does, to exercise the credential switch.
func processInstance(t *testing.T, id string, extra ...string) (UnitSpec, string) {
	t.Helper()
	if _, err := os.Stat(redisServer); err != nil {
		t.Fatalf("%s is missing: apt-get install -y redis-server", redisServer)
	}
	base := t.TempDir()
	dir := filepath.Join(base, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := writeRedisConf(t, dir, port, testPassword, extra...)
	spec := UnitSpec{
		Name:      UnitPrefix + id + ".service",
		ExecStart: []string{redisServer, conf},
		Dir:       dir,
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("redis"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			for _, p := range []string{dir, conf} {
				if err := os.Chown(p, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			// t.TempDir's directories are 0700: let redis through.
			for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
				if err := os.Chmod(d, 0o711); err != nil {
					t.Fatal(err)
				}
			}
			spec.User, spec.Group = "redis", "redis"
		}
	}
	// Whatever happens, no redis-server of this test outlives it.
	t.Cleanup(func() {
		for _, pid := range procsInDir(dir) {
			t.Logf("killing leftover process %d in %s", pid, dir)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return spec, fmt.Sprintf("127.0.0.1:%d", port)
}

// withTimings shortens the process supervisor's timings for one test.
func withTimings(t *testing.T, mutate func(*processTimings)) {
	old := defaultProcessTimings
	mutate(&defaultProcessTimings)
	t.Cleanup(func() { defaultProcessTimings = old })
}

func newProcess(t *testing.T, stateDir string) *Process {
	t.Helper()
	p, err := NewProcess(stateDir, testLogger(t))
	if err != nil {
		t.Fatalf("NewProcess: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func mustState(t *testing.T, s Supervisor, name string) UnitState {
	t.Helper()
	st, err := s.State(context.Background(), name)
	if err != nil {
		t.Fatalf("State(%s): %v", name, err)
	}
	return st
}

// waitActiveNewPID waits until the unit is active with a main PID other
// than old.
func waitActiveNewPID(t *testing.T, s Supervisor, name string, old int, bound time.Duration) UnitState {
	t.Helper()
	var st UnitState
	waitFor(t, bound, name+" active again with a new PID", func() error {
		var err error
		st, err = s.State(context.Background(), name)
		if err != nil {
			return err
		}
		if st.ActiveState != "active" || st.MainPID == 0 || st.MainPID == old {
			return fmt.Errorf("state %+v", st)
		}
		return nil
	})
	return st
}

func startsLogged(t *testing.T, p *Process, spec UnitSpec) int {
	t.Helper()
	data, err := os.ReadFile(p.LogPath(spec.Name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "-- redis-appliance: starting ")
}

// TestProcessLifecycle drives one real redis-server through everything the
// reconciler does with the process supervisor: install, start (ready only
// after READY=1), repair after kill -9, restart, stop, reattach after the
// agent goes away, and remove.
func TestProcessLifecycle(t *testing.T) {
	ctx := context.Background()
	spec, addr := processInstance(t, "life")
	stateDir := filepath.Join(t.TempDir(), "state")
	p := newProcess(t, stateDir)
	name := spec.Name

	changed, err := p.Install(ctx, spec)
	if err != nil || !changed {
		t.Fatalf("first Install = %v, %v; want changed", changed, err)
	}
	if changed, err := p.Install(ctx, spec); err != nil || changed {
		t.Fatalf("second Install = %v, %v; want unchanged", changed, err)
	}
	if fi, err := os.Stat(filepath.Join(stateDir, name+".json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spec file: %v %v; want mode 0600", fi, err)
	}
	if names, _ := p.List(ctx); !slices.Equal(names, []string{name}) {
		t.Fatalf("List = %v", names)
	}
	if st := mustState(t, p, name); st.ActiveState != "inactive" {
		t.Fatalf("installed unit state %+v, want inactive", st)
	}

	// Start returns only once redis answers.
	if err := p.Start(ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING right after Start: %v", err)
	}
	st := mustState(t, p, name)
	if st.ActiveState != "active" || st.SubState != "running" || st.MainPID == 0 {
		t.Fatalf("state after Start: %+v", st)
	}
	if pid, err := readPidfile(filepath.Join(stateDir, name+".pid")); err != nil || pid != st.MainPID {
		t.Fatalf("pidfile holds %d (%v), want %d", pid, err, st.MainPID)
	}
	if spec.User != "" {
		u, _ := user.Lookup(spec.User)
		if uid, err := procUID(st.MainPID); err != nil || strconv.Itoa(uid) != u.Uid {
			t.Fatalf("redis-server runs as uid %d (%v), want %s (%s)", uid, err, u.Uid, spec.User)
		}
	}
	if !drain(p.Changes(), name) {
		t.Errorf("no change notification for %s after Start", name)
	}

	// kill -9: the supervisor notices and starts a new process.
	if err := syscall.Kill(st.MainPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st2 := waitActiveNewPID(t, p, name, st.MainPID, 20*time.Second)
	if st2.Restarts != 1 {
		t.Errorf("Restarts = %d after one crash, want 1", st2.Restarts)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING after repair: %v", err)
	}

	// Restart: new process, counter reset as systemctl restart does.
	if err := p.Restart(ctx, name); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	st3 := mustState(t, p, name)
	if st3.ActiveState != "active" || st3.MainPID == st2.MainPID || st3.Restarts != 0 {
		t.Fatalf("state after Restart: %+v (previous PID %d)", st3, st2.MainPID)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}

	// Stop: inactive, process gone, pidfile gone.
	if err := p.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := mustState(t, p, name); st.ActiveState != "inactive" || st.MainPID != 0 {
		t.Fatalf("state after Stop: %+v", st)
	}
	if pids := procsInDir(spec.Dir); len(pids) != 0 {
		t.Fatalf("processes still running after Stop: %v", pids)
	}
	if _, err := os.Stat(filepath.Join(stateDir, name+".pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile after Stop: %v", err)
	}
	if err := ping(addr, testPassword); err == nil {
		t.Fatal("PING answered after Stop")
	}

	// Reattach: the agent goes away (Close), redis keeps running, a new
	// agent on the same state directory adopts it instead of starting a
	// second one.
	if err := p.Start(ctx, name); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	running := mustState(t, p, name)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("redis-server did not survive Close: %v", err)
	}
	starts := startsLogged(t, p, spec)
	p2 := newProcess(t, stateDir)
	st4 := mustState(t, p2, name)
	if st4.ActiveState != "active" || st4.MainPID != running.MainPID {
		t.Fatalf("after reattach: %+v, want active with PID %d", st4, running.MainPID)
	}
	if err := p2.Start(ctx, name); err != nil {
		t.Fatalf("Start of a reattached unit: %v", err)
	}
	if pids := procsInDir(spec.Dir); !slices.Equal(pids, []int{running.MainPID}) {
		t.Fatalf("processes of the instance after reattach: %v, want only %d", pids, running.MainPID)
	}
	if n := startsLogged(t, p2, spec); n != starts {
		t.Fatalf("the new supervisor started redis-server %d more time(s)", n-starts)
	}
	if v, err := infoField(addr, testPassword, "server", "process_id"); err != nil || v != strconv.Itoa(running.MainPID) {
		t.Fatalf("redis answers from process %q (%v), want %d", v, err, running.MainPID)
	}

	// A reattached process is not our child; its death is seen by polling.
	if err := syscall.Kill(running.MainPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st5 := waitActiveNewPID(t, p2, name, running.MainPID, 20*time.Second)
	if st5.Restarts != 1 {
		t.Errorf("Restarts = %d after the reattached process died, want 1", st5.Restarts)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING after repairing a reattached unit: %v", err)
	}

	// Remove: process stopped, spec and pidfile deleted, unit unknown.
	if err := p2.Remove(ctx, name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := p2.State(ctx, name); !errors.Is(err, ErrUnitNotFound) {
		t.Fatalf("State after Remove: %v, want ErrUnitNotFound", err)
	}
	if names, _ := p2.List(ctx); len(names) != 0 {
		t.Fatalf("List after Remove: %v", names)
	}
	for _, f := range []string{name + ".json", name + ".pid", name + ".proc.json"} {
		if _, err := os.Stat(filepath.Join(stateDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Remove: %v", f, err)
		}
	}
	if pids := procsInDir(spec.Dir); len(pids) != 0 {
		t.Fatalf("processes still running after Remove: %v", pids)
	}
	if err := p2.Remove(ctx, name); err != nil {
		t.Fatalf("second Remove should be a no-op: %v", err)
	}
}

// TestProcessReattachRefusesReusedPID proves a pidfile whose PID now
// belongs to another program is not adopted: the unit is started afresh.
func TestProcessReattachRefusesReusedPID(t *testing.T) {
	ctx := context.Background()
	spec, addr := processInstance(t, "reuse")
	stateDir := filepath.Join(t.TempDir(), "state")
	p := newProcess(t, stateDir)
	if _, err := p.Install(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Pretend the unit was running as this very test process.
	self := os.Getpid()
	st, err := readProcStat(self)
	if err != nil {
		t.Fatal(err)
	}
	q := &Process{stateDir: stateDir}
	if err := q.writeRunFiles(spec.Name, &proc{pid: self, startTicks: st.startTicks}); err != nil {
		t.Fatal(err)
	}

	p2 := newProcess(t, stateDir)
	got := waitActiveNewPID(t, p2, spec.Name, self, 20*time.Second)
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if got.Restarts != 1 {
		t.Errorf("Restarts = %d, want 1 (restarted because the recorded process was gone)", got.Restarts)
	}
	if err := p2.Remove(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
}

// TestProcessStartErrors proves Start says why an instance cannot run.
func TestProcessStartErrors(t *testing.T) {
	ctx := context.Background()
	withTimings(t, func(pt *processTimings) {
		pt.readyTimeout = 3 * time.Second
		pt.restartDelay = 100 * time.Millisecond
		pt.startLimit = 3
	})
	cases := []struct {
		id     string
		mutate func(*UnitSpec)
		extra  []string
		want   []string
	}{
		{
			id:     "nobinary",
			mutate: func(s *UnitSpec) { s.ExecStart[0] = "/nonexistent/redis-server" },
			want:   []string{"/nonexistent/redis-server", "no such file or directory"},
		},
		{
			id:    "badconf",
			extra: []string{"no-such-directive yes"},
			want:  []string{"exited with status 1", "Bad directive", "no-such-directive"},
		},
		{
			// Without "supervised systemd" redis never says READY=1.
			id:     "notnotify",
			mutate: func(s *UnitSpec) { s.ExecStart = append(s.ExecStart, "--supervised", "no") },
			want:   []string{"no READY=1 within 3s", "supervised systemd"},
		},
		{
			id:     "nodir",
			mutate: func(s *UnitSpec) { s.Dir = filepath.Join(s.Dir, "missing") },
			want:   []string{"missing", "create it"},
		},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			spec, _ := processInstance(t, c.id, c.extra...)
			if c.mutate != nil {
				c.mutate(&spec)
			}
			p := newProcess(t, filepath.Join(t.TempDir(), "state"))
			if _, err := p.Install(ctx, spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Remove(ctx, spec.Name) })
			err := p.Start(ctx, spec.Name)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			t.Logf("Start error: %v", err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start error lacks %q:\n%v", w, err)
				}
			}
			// It keeps retrying like Restart=always, then gives up.
			waitFor(t, 30*time.Second, "unit failed after the start limit", func() error {
				if st := mustState(t, p, spec.Name); st.ActiveState != "failed" {
					return fmt.Errorf("state %+v", st)
				}
				return nil
			})
			if st := mustState(t, p, spec.Name); st.Restarts != 2 {
				t.Errorf("Restarts = %d, want 2 (3 attempts)", st.Restarts)
			}
		})
	}
}

// TestProcessUnknownUnit proves operations on a unit that was never
// installed report ErrUnitNotFound.
func TestProcessUnknownUnit(t *testing.T) {
	ctx := context.Background()
	p := newProcess(t, t.TempDir())
	name := UnitPrefix + "ghost.service"
	if err := p.Start(ctx, name); !errors.Is(err, ErrUnitNotFound) {
		t.Errorf("Start: %v", err)
	}
	if err := p.Stop(ctx, name); !errors.Is(err, ErrUnitNotFound) {
		t.Errorf("Stop: %v", err)
	}
	if _, err := p.State(ctx, name); !errors.Is(err, ErrUnitNotFound) {
		t.Errorf("State: %v", err)
	}
	if _, err := p.Install(ctx, UnitSpec{Name: "ssh.service"}); err == nil {
		t.Error("Install accepted a unit outside the prefix")
	}
}
