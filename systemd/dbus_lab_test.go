package systemd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The D-Bus supervisor needs systemd as PID 1, which this machine does not
// have (see /work/shared/LAB.md). TestDBusLab boots a throw-away container
// with systemd-nspawn from a read-only view of / and runs this same test
// binary inside it, where the test takes the labInnerEnv branch and drives
// the real systemd.

const (
	labInnerEnv = "REDIS_APPLIANCE_SYSTEMD_LAB_INNER"
	labHostRO   = "/srv/hostro"
	labTestBin  = "/usr/local/bin/redis-appliance-systemd.test"
	labLockFile = "/run/lock/redis-appliance-hostro.lock"
)

// TestDBusLab proves the systemd supervisor against a real systemd 252:
// install writes and enables a hardened unit, start waits for READY=1,
// systemd repairs a kill -9, a lost bus connection is re-established, and
// stop and remove leave nothing behind. It prints the unit's
// systemd-analyze security exposure score.
func TestDBusLab(t *testing.T) {
	if os.Getenv(labInnerEnv) == "1" {
		testDBusInsideSystemd(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("TestDBusLab boots a systemd-nspawn container and must run as root (sudo go test ./systemd/); see /work/shared/LAB.md")
	}
	for bin, pkg := range map[string]string{"systemd-nspawn": "systemd-container", "nsenter": "util-linux", redisServer: "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: apt-get install -y %s (TestDBusLab needs it; see /work/shared/LAB.md)", bin, pkg)
		}
	}
	ensureHostRO(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}

	machine := fmt.Sprintf("ra-sd-%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	logPath := filepath.Join(t.TempDir(), "nspawn.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	nspawn := exec.Command("systemd-nspawn",
		"--register=no", "--keep-unit", // no host systemd to register with
		"--directory="+labHostRO, "--volatile=overlay", "--boot",
		"--machine="+machine, "--private-network",
		"--bind-ro="+exe+":"+labTestBin)
	nspawn.Stdout, nspawn.Stderr = logf, logf
	// Its own process group: a Ctrl-C of go test must not skip the
	// orderly shutdown below.
	nspawn.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := nspawn.Start(); err != nil {
		t.Fatalf("start systemd-nspawn: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = nspawn.Wait(); close(exited) }()
	t.Cleanup(func() {
		// kill -TERM the nspawn PID powers the container off.
		_ = nspawn.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			t.Errorf("container %s did not power off within 90s; killing systemd-nspawn %d", machine, nspawn.Process.Pid)
			_ = nspawn.Process.Kill()
			<-exited
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("systemd-nspawn output:\n%s", tail(string(data), 60))
		}
	})

	// The container's PID 1 is systemd-nspawn's child once it has exec'd
	// systemd.
	var leader int
	waitFor(t, 30*time.Second, "container PID 1 running systemd", func() error {
		select {
		case <-exited:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("systemd-nspawn exited early:\n%s", data)
		default:
		}
		for _, pid := range childrenOf(nspawn.Process.Pid) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "systemd" {
				leader = pid
				return nil
			}
		}
		return errors.New("not yet")
	})
	inside := func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(leader), "-a"}, args...)...)
	}
	var state string
	waitFor(t, 120*time.Second, "systemctl is-system-running says running or degraded", func() error {
		out, _ := inside(context.Background(), "systemctl", "is-system-running").Output()
		state = strings.TrimSpace(string(out))
		if state == "running" || state == "degraded" {
			return nil
		}
		return fmt.Errorf("state %q", state)
	})
	if state == "degraded" {
		out, _ := inside(context.Background(), "systemctl", "--failed", "--no-legend", "--no-pager").Output()
		t.Logf("container is degraded (host units that cannot run in a container); failed units:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	run := inside(ctx, labTestBin, "-test.run", "^TestDBusLab$", "-test.v", "-test.count=1", "-test.timeout=7m")
	run.Env = []string{labInnerEnv + "=1", servicePath, "HOME=/root"}
	out, err := run.CombinedOutput()
	t.Logf("test inside the container:\n%s", out)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Overall exposure level") {
			t.Logf("systemd-analyze security: %s", strings.TrimSpace(line))
		}
	}
	if err != nil {
		t.Fatalf("test inside the container failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestDBusLab") {
		t.Fatal("the test inside the container did not report PASS")
	}
}

// ensureHostRO mounts a read-only bind of / at /srv/hostro, as LAB.md says.
// It is idempotent, and a lock file keeps concurrent test binaries from
// stacking mounts.
func ensureHostRO(t *testing.T) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(labLockFile), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(labLockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open %s: %v", labLockFile, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", labLockFile, err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	if err := os.MkdirAll(labHostRO, 0o755); err != nil {
		t.Fatal(err)
	}
	mounted, ro := mountState(t, labHostRO)
	if !mounted {
		if err := unix.Mount("/", labHostRO, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("mount --bind / %s: %v", labHostRO, err)
		}
	}
	if !ro {
		if err := unix.Mount("", labHostRO, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			t.Fatalf("mount -o remount,bind,ro %s: %v", labHostRO, err)
		}
	}
	if mounted, ro := mountState(t, labHostRO); !mounted || !ro {
		t.Fatalf("%s is not a read-only mount (mounted=%v ro=%v); never boot systemd on a writable host root", labHostRO, mounted, ro)
	}
}

// mountState reads /proc/self/mountinfo: is path a mount point, and is its
// top mount read-only?
func mountState(t *testing.T, path string) (mounted, ro bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 5 && fields[4] == path {
			mounted = true
			ro = slices.Contains(strings.Split(fields[5], ","), "ro")
		}
	}
	return mounted, ro
}

// childrenOf lists the PIDs whose parent is ppid.
func childrenOf(ppid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// labInstance prepares an instance directory owned by redis outside /tmp
// (the unit's PrivateTmp would hide /tmp) and returns its spec and address.
func labInstance(t *testing.T, id string, extra ...string) (UnitSpec, string) {
	t.Helper()
	u, err := user.Lookup("redis")
	if err != nil {
		t.Fatalf("user redis: %v (installed by the redis-server package)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The parent must be traversable by redis; the instance directory
	// itself is private to it.
	parent := "/var/lib/redis-appliance-lab"
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := writeRedisConf(t, dir, port, testPassword, extra...)
	for _, p := range []string{dir, conf} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return UnitSpec{
		Name:        UnitPrefix + id + ".service",
		Description: "redis-appliance lab instance " + id,
		ExecStart:   []string{redisServer, conf},
		User:        "redis",
		Group:       "redis",
		Dir:         dir,
	}, fmt.Sprintf("127.0.0.1:%d", port)
}

func systemctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command("systemctl", append([]string{"--no-pager"}, args...)...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("systemctl %v: %v", args, err)
	}
	return strings.TrimSpace(string(out)), code
}

// testDBusInsideSystemd is the half of TestDBusLab that runs inside the
// container, with systemd as PID 1.
func testDBusInsideSystemd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if !Booted() {
		t.Fatal("inner half of TestDBusLab runs where systemd is not PID 1")
	}
	log := testLogger(t)

	auto, err := New(ctx, KindAuto, "", t.TempDir(), log)
	if err != nil {
		t.Fatalf("New(auto) under systemd: %v", err)
	}
	if auto.Kind() != KindSystemd {
		t.Fatalf("New(auto) under systemd picked %q", auto.Kind())
	}
	auto.Close()

	d, err := NewDBus(ctx, "", log)
	if err != nil {
		t.Fatalf("NewDBus: %v", err)
	}
	t.Cleanup(func() { d.Close() })

	ghost := UnitPrefix + "ghost.service"
	if err := d.Start(ctx, ghost); !errors.Is(err, ErrUnitNotFound) {
		t.Errorf("Start of a unit never installed: %v, want ErrUnitNotFound", err)
	}
	if _, err := d.State(ctx, ghost); !errors.Is(err, ErrUnitNotFound) {
		t.Errorf("State of a unit never installed: %v, want ErrUnitNotFound", err)
	}

	spec, addr := labInstance(t, "lab", "appendonly yes", "save 900 1")
	name := spec.Name
	unitFile := filepath.Join(DefaultUnitDir, name)

	// Install: file written 0644 with the rendered content, enabled,
	// idempotent.
	changed, err := d.Install(ctx, spec)
	if err != nil || !changed {
		t.Fatalf("first Install = %v, %v; want changed", changed, err)
	}
	fi, err := os.Stat(unitFile)
	if err != nil || fi.Mode().Perm() != UnitFileMode {
		t.Fatalf("unit file %s: %v, %v; want mode 0644", unitFile, fi, err)
	}
	if data, _ := os.ReadFile(unitFile); string(data) != string(RenderUnit(spec)) {
		t.Fatalf("unit file differs from RenderUnit:\n%s", data)
	}
	if changed, err := d.Install(ctx, spec); err != nil || changed {
		t.Fatalf("second Install = %v, %v; want unchanged", changed, err)
	}
	if out, _ := systemctl(t, "is-enabled", name); out != "enabled" {
		t.Fatalf("systemctl is-enabled %s = %q", name, out)
	}
	if names, err := d.List(ctx); err != nil || !slices.Contains(names, name) {
		t.Fatalf("List = %v, %v; want it to contain %s", names, err, name)
	}
	if st, err := d.State(ctx, name); err != nil || st.ActiveState != "inactive" {
		t.Fatalf("State before Start = %+v, %v", st, err)
	}

	// Start returns once redis-server has sent READY=1.
	if err := d.Start(ctx, name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING right after Start: %v", err)
	}
	st := mustState(t, d, name)
	if st.ActiveState != "active" || st.SubState != "running" || st.MainPID == 0 {
		t.Fatalf("state after Start: %+v", st)
	}
	redisUser, _ := user.Lookup("redis")
	if uid, err := procUID(st.MainPID); err != nil || strconv.Itoa(uid) != redisUser.Uid {
		t.Fatalf("redis-server runs as uid %d (%v), want redis (%s)", uid, err, redisUser.Uid)
	}

	// The hardening is what systemd actually applies, not just what the
	// file says.
	wantProps := map[string]string{
		"Type": "notify", "Restart": "always", "User": "redis", "Group": "redis",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "PrivateUsers": "yes", "PrivateIPC": "yes",
		"ProtectKernelModules": "yes", "ProtectKernelTunables": "yes", "ProtectKernelLogs": "yes",
		"ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
		"RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
		"LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RemoveIPC": "yes",
		"KeyringMode": "private", "ProtectProc": "invisible", "ProcSubset": "pid",
		"UMask": "0077", "LimitNOFILE": "65535", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "SystemCallArchitectures": "native",
		"ReadWritePaths": spec.Dir, "WorkingDirectory": spec.Dir, "NoExecPaths": "/",
		"KillMode": "mixed", "UnitFileState": "enabled",
	}
	keys := make([]string, 0, len(wantProps)+1)
	for k := range wantProps {
		keys = append(keys, k)
	}
	keys = append(keys, "SystemCallFilter")
	out, _ := systemctl(t, "show", name, "-p", strings.Join(keys, ","))
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, v := range wantProps {
		if got[k] != v {
			t.Errorf("systemctl show %s: %s=%q, want %q", name, k, got[k], v)
		}
	}
	filter := strings.Fields(got["SystemCallFilter"])
	for _, sc := range []string{"clone", "fork", "execve"} {
		if !slices.Contains(filter, sc) {
			t.Errorf("SystemCallFilter lacks %s, which BGSAVE/BGREWRITEAOF need", sc)
		}
	}
	for _, sc := range []string{"setuid", "mount", "reboot", "setrlimit", "init_module"} {
		if slices.Contains(filter, sc) {
			t.Errorf("SystemCallFilter allows %s", sc)
		}
	}

	// BGSAVE and BGREWRITEAOF fork: they must work under the syscall
	// filter, MemoryDenyWriteExecute and the read-only file system.
	if _, err := redisDo(addr, testPassword, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	for _, c := range []struct{ cmd, inProgress, status string }{
		{"BGSAVE", "rdb_bgsave_in_progress", "rdb_last_bgsave_status"},
		{"BGREWRITEAOF", "aof_rewrite_in_progress", "aof_last_bgrewrite_status"},
	} {
		forks, err := infoField(addr, testPassword, "stats", "total_forks")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := redisDo(addr, testPassword, c.cmd); err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		waitFor(t, 30*time.Second, c.cmd+" finished", func() error {
			now, err := infoField(addr, testPassword, "stats", "total_forks")
			if err != nil {
				return err
			}
			if now == forks {
				return errors.New("no fork yet")
			}
			if v, err := infoField(addr, testPassword, "persistence", c.inProgress); err != nil || v != "0" {
				return fmt.Errorf("%s=%s %v", c.inProgress, v, err)
			}
			return nil
		})
		if v, err := infoField(addr, testPassword, "persistence", c.status); err != nil || v != "ok" {
			t.Fatalf("%s: %s=%q (%v); see journalctl -u %s", c.cmd, c.status, v, err, name)
		}
	}
	if _, err := os.Stat(filepath.Join(spec.Dir, "dump.rdb")); err != nil {
		t.Fatalf("BGSAVE left no dump.rdb: %v", err)
	}
	if _, err := redisDo(addr, testPassword, "CONFIG", "REWRITE"); err != nil {
		t.Fatalf("CONFIG REWRITE in the writable instance directory: %v", err)
	}

	score, err := exec.Command("systemd-analyze", "security", "--no-pager", name).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security %s: %v\n%s", name, err, score)
	}
	for _, line := range strings.Split(string(score), "\n") {
		if strings.Contains(line, "Overall exposure level") {
			t.Logf("systemd-analyze security %s: %s", name, strings.TrimSpace(line))
		}
	}

	// Closed bus connections (as when dbus-daemon restarts): the next call
	// reconnects, and the change subscription comes back by itself.
	d.mu.Lock()
	oldSigs := d.sigs
	d.conn.Close()
	d.sigs.conn.Close()
	d.mu.Unlock()
	if st, err := d.State(ctx, name); err != nil || st.ActiveState != "active" {
		t.Fatalf("State after the bus connection closed = %+v, %v; want a reconnect", st, err)
	}
	waitFor(t, 10*time.Second, "watcher resubscribed after its connection closed", func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.sigs == oldSigs || d.sigs == nil || !d.sigs.conn.Connected() {
			return errors.New("not yet")
		}
		return nil
	})

	// Restart: a new process, and a change notification for it.
	drain(d.Changes(), name)
	if err := d.Restart(ctx, name); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	st2 := mustState(t, d, name)
	if st2.ActiveState != "active" || st2.MainPID == st.MainPID {
		t.Fatalf("state after Restart: %+v (previous PID %d)", st2, st.MainPID)
	}
	waitChange(t, d.Changes(), name, 10*time.Second)

	// kill -9: systemd restarts it (RestartSec=2s) and we hear of it.
	drain(d.Changes(), name)
	if err := syscall.Kill(st2.MainPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st3 := waitActiveNewPID(t, d, name, st2.MainPID, 30*time.Second)
	if st3.Restarts < 1 {
		t.Errorf("NRestarts = %d after kill -9, want >= 1", st3.Restarts)
	}
	waitChange(t, d.Changes(), name, 10*time.Second)
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING after systemd restarted the instance: %v", err)
	}
	// One batched read: the same facts, and no entry for a unit that
	// does not exist.
	missing := UnitPrefix + "never-installed.service"
	states, err := d.States(ctx, []string{name, missing})
	if err != nil {
		t.Fatalf("States: %v", err)
	}
	if got := states[name]; got.MainPID != st3.MainPID || got.Restarts != st3.Restarts || got.ActiveState != "active" {
		t.Errorf("States[%s] = %+v, want the state State gave: %+v", name, got, st3)
	}
	if got, ok := states[missing]; ok {
		t.Errorf("States reports a unit that was never installed: %+v", got)
	}

	// Stop.
	if err := d.Stop(ctx, name); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := mustState(t, d, name); st.ActiveState != "inactive" || st.MainPID != 0 {
		t.Fatalf("state after Stop: %+v", st)
	}
	if err := ping(addr, testPassword); err == nil {
		t.Fatal("PING answered after Stop")
	}

	// A broken config: Start fails fast and says what systemd saw.
	bad, _ := labInstance(t, "labbad", "no-such-directive yes")
	if _, err := d.Install(ctx, bad); err != nil {
		t.Fatalf("Install bad: %v", err)
	}
	err = d.Start(ctx, bad.Name)
	if err == nil {
		t.Fatal("Start of an instance with a broken config succeeded")
	}
	t.Logf("Start error for a broken config: %v", err)
	for _, w := range []string{"failed", "exit-code", "status 1", "journalctl -u " + bad.Name} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Start error lacks %q: %v", w, err)
		}
	}
	if err := d.Remove(ctx, bad.Name); err != nil {
		t.Fatalf("Remove bad: %v", err)
	}

	// Remove: file and enablement gone, systemd no longer knows the unit.
	if err := d.Remove(ctx, name); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(unitFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("unit file after Remove: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(DefaultUnitDir, "multi-user.target.wants", name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("enablement symlink after Remove: %v", err)
	}
	if _, err := d.State(ctx, name); !errors.Is(err, ErrUnitNotFound) {
		t.Fatalf("State after Remove: %v, want ErrUnitNotFound", err)
	}
	if names, _ := d.List(ctx); slices.Contains(names, name) || slices.Contains(names, bad.Name) {
		t.Fatalf("List after Remove: %v", names)
	}
	out, code := systemctl(t, "status", name)
	if code != 4 || !strings.Contains(out, "could not be found") {
		t.Fatalf("systemctl status %s after Remove: exit %d, %q; want 4 and not found", name, code, out)
	}
	if err := d.Remove(ctx, name); err != nil {
		t.Fatalf("second Remove should be a no-op: %v", err)
	}
}
