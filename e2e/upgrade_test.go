package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/lab"
)

// A rolling upgrade (issue 15) on the three-host lab: a cluster formed by
// the previous release of the agent, built from upBaseline, is upgraded one
// host at a time to the agent built from the working tree while a client
// writes, the way an operator upgrades a package on each machine in turn.

const (
	// upBaseline is the previous release: the last commit before the
	// agents learned their version and feature level (issue 15).
	upBaseline = "3786b0277b24b8d62c99f8c45eb24dce30a5379f"
	// upNewVersion is the version string the working tree's agent is
	// built with here, so that the cluster's view of every node's agent
	// version tells the new build from the old one (and from TestMain's
	// "dev").
	upNewVersion = "upgrade-test-new"
	// The upgrade lab's network (unique on the machine).
	upBridge = "labup"
	upPrefix = "10.213.9"
	// upReleaseDir is where each host sees its own directory of the
	// machine holding the agent's binary and unit file. /usr/bin's
	// redis-appliance is a symlink into it, so that a release is swapped
	// from the machine by renaming a file in that directory (a bind of the
	// file itself would pin the old inode).
	upReleaseDir = "/usr/lib/redis-appliance-lab/release"
	// upDB is the HA database that lives through the upgrade.
	upDB = "ledger"
	// upFilled is how many keys are written to it before the upgrade.
	upFilled = 1000
)

// upRelease is one build of the agent on the machine: its binary, the
// unit file of the same source, the version string it was built with and
// the binary's SHA-256 (to recognise it as the running agent).
type upRelease struct {
	binary, unit, version, sum string
}

// buildUpgradeAgent builds ./cmd/redis-appliance of the source tree src
// into dir, statically and with paths trimmed, with main.version set to
// version.
func buildUpgradeAgent(ctx context.Context, src, dir, version string) (upRelease, error) {
	out := filepath.Join(dir, "redis-appliance")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out,
		"-ldflags", "-X main.version="+version, "./cmd/redis-appliance")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return upRelease{}, fmt.Errorf("go build ./cmd/redis-appliance in %s (version %s): %v\n%s", src, version, err, b)
	}
	sum, err := fileSHA256(out)
	if err != nil {
		return upRelease{}, err
	}
	return upRelease{binary: out, unit: filepath.Join(src, "packaging", "redis-appliance.service"), version: version, sum: sum}, nil
}

// buildBaselineAgent extracts commit of the repository at root into a
// temporary directory (git archive: no worktree to clean up, nothing of
// the working tree's state touched) and builds its agent, with the
// commit's short hash as its version. A repository without the commit (a
// shallow clone) fails the test, saying how to fetch it.
func buildBaselineAgent(t testing.TB, ctx context.Context, root, commit string) upRelease {
	t.Helper()
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", root}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := git("cat-file", "-e", commit+"^{commit}"); err != nil {
		fetch := fmt.Sprintf("git -C %s fetch origin %s", root, commit)
		if shallow, _ := git("rev-parse", "--is-shallow-repository"); shallow == "true" {
			fetch = fmt.Sprintf("git -C %s fetch --unshallow", root)
		}
		t.Fatalf("the upgrade test builds the previous release from commit %s, which the repository at %s does not have: %v\n"+
			"fetch the history (%s) and run the test again", commit, root, err, fetch)
	}
	short, err := git("rev-parse", "--short", commit)
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "baseline.tar")
	if _, err := git("archive", "--format=tar", "-o", tarball, commit); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if out, err := exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("extracting %s of %s: %v %s", short, root, err, out)
	}
	rel, err := buildUpgradeAgent(ctx, src, t.TempDir(), short)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// upHost is a lab host whose agent's release can be swapped from the
// machine: dir (on the machine) is seen inside as upReleaseDir.
type upHost struct {
	clusterHost
	dir string
}

// installRelease puts rel's binary and unit file in dir the way a package
// manager replaces files: each written beside under a temporary name and
// renamed over the old one, so that the host never sees half a file and a
// running agent keeps its old binary until it is restarted.
func installRelease(dir string, rel upRelease) error {
	for _, f := range []struct {
		from, name string
		mode       os.FileMode
	}{{rel.binary, "redis-appliance", 0o755}, {rel.unit, "redis-appliance.service", 0o644}} {
		tmp := filepath.Join(dir, "."+f.name+".new")
		if err := copyFile(f.from, tmp, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copying %s to %s: %w", from, to, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// bootUpgradableAgent is bootAgent for a host whose release can be
// swapped: rel is installed in a directory of its own bound read-only at
// upReleaseDir, /usr/bin/redis-appliance is made a symlink to the binary
// there, and the unit is installed from there, enabled and started.
func bootUpgradableAgent(t testing.TB, opts lab.Options, config string, rel upRelease) (*node, string) {
	t.Helper()
	dir := t.TempDir()
	if err := installRelease(dir, rel); err != nil {
		t.Fatalf("installing release %s for %s: %v", rel.version, opts.Name, err)
	}
	opts.Binds = append(append([]lab.Bind(nil), opts.Binds...), lab.Bind{Host: dir, Container: upReleaseDir})
	n := &node{Host: lab.Boot(t, opts), t: t}
	ctx, cancel := context.WithTimeout(context.Background(), agentReadyTimeout)
	defer cancel()
	n.MustExec(ctx, "ln", "-sfn", upReleaseDir+"/redis-appliance", "/usr/bin/redis-appliance")
	n.startAgent(config, upReleaseDir+"/redis-appliance.service")
	return n, dir
}

// bootUpgradeLab boots hosts lab1-lab3 on the upgrade bridge, with its
// gateway address on the machine for the test's clients, each running
// rel's agent configured for a cluster (not formed yet).
func bootUpgradeLab(t testing.TB, rel upRelease) (*clusterLab, map[string]*upHost, string) {
	t.Helper()
	br := lab.NewBridge(t, upBridge, upPrefix)
	gw := br.Gateway()
	l := &clusterLab{}
	hosts := map[string]*upHost{}
	for i := 1; i <= 3; i++ {
		network := br.Attach(i)
		name := fmt.Sprintf("lab%d", i)
		n, dir := bootUpgradableAgent(t, lab.Options{Name: upBridge + "-" + name, Network: network}, clusterConfig(name, network.Address), rel)
		ch := clusterHost{node: n, name: name}
		l.hosts = append(l.hosts, ch)
		hosts[name] = &upHost{clusterHost: ch, dir: dir}
	}
	return l, hosts, gw
}

// runningRelease checks that h's agent unit runs rel's binary (its main
// process's executable has rel's SHA-256) and that the CLI on the host is
// rel's too.
func (h clusterHost) runningRelease(ctx context.Context, rel upRelease) error {
	pid, _, err := h.Exec(ctx, "systemctl", "show", "-p", "MainPID", "--value", agentName)
	if err != nil {
		return err
	}
	p := strings.TrimSpace(pid)
	if p == "" || p == "0" {
		return fmt.Errorf("%s has no main process on %s", agentName, h.name)
	}
	out, _, err := h.Exec(ctx, "sha256sum", "/proc/"+p+"/exe")
	if err != nil {
		return err
	}
	if f := strings.Fields(out); len(f) == 0 || f[0] != rel.sum {
		return fmt.Errorf("the agent on %s (pid %s) does not run the binary of release %s", h.name, p, rel.version)
	}
	out, _, err = h.cli(ctx, "--version")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "version "+rel.version) {
		return fmt.Errorf("redis-appliance --version on %s printed %q, want version %s", h.name, strings.TrimSpace(out), rel.version)
	}
	return nil
}

// upgradeTo swaps h's release for rel and restarts its agent, as a
// package upgrade does (files replaced, daemon-reload, restart), then
// waits until the agent answers again and checks that it runs rel. It
// returns how long the restart took (systemctl restart returns once the
// new agent has said READY=1) and how long until the API answered.
func (u *upHost) upgradeTo(ctx context.Context, rel upRelease) (restart, ready time.Duration) {
	t := u.t
	t.Helper()
	if err := installRelease(u.dir, rel); err != nil {
		t.Fatalf("swapping the release of %s to %s: %v", u.name, rel.version, err)
	}
	start := time.Now()
	u.MustExec(ctx, "install", "-m", "0644", upReleaseDir+"/redis-appliance.service", unitDir+"/"+agentName)
	u.MustExec(ctx, "systemctl", "daemon-reload")
	u.MustExec(ctx, "systemctl", "restart", agentName)
	restart = time.Since(start)
	u.waitAgent(ctx)
	ready = time.Since(start)
	if err := u.runningRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	return restart, ready
}

// upStatus is what the upgrade test reads of `cluster status -o json`
// beyond clusterStatus: every member's agent version, and the log
// entries the node could not apply.
type upStatus struct {
	Leader  string `json:"leader"`
	Voters  int    `json:"voters"`
	Members []struct {
		Name         string `json:"name"`
		AgentVersion string `json:"agent_version"`
	} `json:"members"`
	ApplyErrors      []json.RawMessage `json:"apply_errors"`
	UndecodableTotal uint64            `json:"undecodable_total"`
}

func (h clusterHost) upStatus(ctx context.Context) (upStatus, error) {
	out, stderr, err := h.cli(ctx, "cluster", "status", "-o", "json")
	if err != nil {
		return upStatus{}, fmt.Errorf("cluster status on %s: %v %s", h.name, err, stderr)
	}
	var s upStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return upStatus{}, fmt.Errorf("cluster status -o json on %s: %v\n%s", h.name, err, out)
	}
	return s, nil
}

// versions is the members' agent versions as "name=version" ("name=?"
// for none), sorted by name.
func (s upStatus) versions() string {
	var parts []string
	for _, m := range s.Members {
		v := m.AgentVersion
		if v == "" {
			v = "?"
		}
		parts = append(parts, m.Name+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// upWrite makes one write through the database's current primary (asked
// of db show on h) and waits for a replica to acknowledge it (WAIT 1),
// retrying until ctx ends; it returns the primary it went through.
func upWrite(t testing.TB, ctx context.Context, h clusterHost, password, key string) replInstance {
	t.Helper()
	var p replInstance
	waitFor(t, ctx, "a write to "+upDB+" acknowledged by a replica (WAIT 1)", func() (bool, string) {
		d, err := h.tryShow(ctx, upDB)
		if err != nil {
			return false, err.Error()
		}
		var ok bool
		if p, ok = d.primary(); !ok {
			return false, d.summary()
		}
		c := redis.NewClient(&redis.Options{Addr: p.addr(), Password: password, DialTimeout: time.Second,
			ReadTimeout: 3 * time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		var set *redis.StatusCmd
		var wait *redis.Cmd
		_, _ = c.Pipelined(ctx, func(pl redis.Pipeliner) error {
			set = pl.Set(ctx, key, key, 0)
			wait = pl.Do(ctx, "WAIT", 1, 2000)
			return nil
		})
		n, werr := wait.Int64()
		if set.Err() != nil || werr != nil || n < 1 {
			return false, fmt.Sprintf("on %s (%s): SET %v, WAIT %d %v", p.addr(), p.Node, set.Err(), n, werr)
		}
		return true, ""
	})
	return p
}

// upStep is what one host's upgrade took.
type upStep struct {
	host, role      string // role: Raft leader or follower when upgraded
	leaderAfter     string // the Raft leader once the cluster formed again
	primaryOn       string // the host of upDB's primary when upgraded
	restart, ready  time.Duration
	formed, write   time.Duration
	createDelete    time.Duration
	switchover      time.Duration
	writePauseMs    float64
	acked, waited   int // writer's acknowledged writes during the step
	failed          int
	failKinds       string
	from, to        string // the switchover
	versionsAfter   string
	writesFollowing time.Duration // until the writer wrote to the new primary
}

// TestUpgrade_RollingThreeHostsFromThePreviousReleaseLosesNoAcknowledgedWrite
// upgrades a three-host cluster formed by the previous release (built
// from upBaseline) to the working tree's agent one host at a time, while a
// client in the test process writes through Sentinel discovery, the way
// an operator upgrades: followers first, the Raft leader last (checked
// before each step: the next host is one not yet upgraded that does not
// lead, the leader only once none is left). The HA database (two replicas,
// with data) has its primary moved to each host just before that host is
// upgraded, so each agent restart after the first happens beside the
// primary.
//
// After each host's agent is restarted on the new build: the host runs
// the new binary; the cluster has one leader and three voters with every
// heartbeat fresh; the database takes a write a replica acknowledged; a db
// create (and delete) works; a planned switchover works and the writer
// follows it. At the end no write acknowledged by WAIT 1 is lost, the
// data written before the upgrade is all there, no node has a log entry
// it could not apply, and cluster status shows every member's agent
// version as the new build's.
func TestUpgrade_RollingThreeHostsFromThePreviousReleaseLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	top := t // the writer and its client outlive the steps (subtests)
	ctx := timeout(t, 14*time.Minute)
	root := filepath.Dir(filepath.Dir(agentUnit))

	began := time.Now()
	old := buildBaselineAgent(t, ctx, root, upBaseline)
	t.Logf("built the previous release %s (commit %s) in %s", old.version, upBaseline, time.Since(began).Round(time.Millisecond))
	// The new build runs beside the boot of the lab.
	type built struct {
		rel upRelease
		err error
	}
	newBuild := make(chan built, 1)
	newDir := t.TempDir()
	go func() {
		rel, err := buildUpgradeAgent(ctx, root, newDir, upNewVersion)
		newBuild <- built{rel, err}
	}()
	waitNew := func() upRelease {
		t.Helper()
		select {
		case b := <-newBuild:
			newBuild <- b
			if b.err != nil {
				t.Fatal(b.err)
			}
			return b.rel
		case <-ctx.Done():
			t.Fatalf("building the working tree's agent: %v", ctx.Err())
		}
		return upRelease{}
	}

	all, hosts, gw := bootUpgradeLab(t, old)
	t.Logf("the test process reaches the lab through the gateway address %s", gw)
	step := steps(t, all)
	var (
		password string
		fc       *redis.Client
		w        *foWriter
		upgraded = map[string]bool{}
		steps    []upStep
	)
	// nextHost is the next host to upgrade: one not upgraded yet that does
	// not lead, or the leader once no other is left; "" when all are done.
	nextHost := func(t testing.TB, l *clusterLab) string {
		t.Helper()
		leader := l.leaderOf(ctx, l.hosts[0])
		last := ""
		for _, h := range l.hosts {
			if upgraded[h.name] {
				continue
			}
			if h.name != leader.name {
				return h.name
			}
			last = h.name
		}
		return last
	}

	step("FormOnThePreviousReleaseWithAnHADatabaseAndAWriter", func(t *testing.T, l *clusterLab) {
		for _, h := range l.hosts {
			if err := h.runningRelease(ctx, old); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		l.form(ctx, 3)
		leader := l.leaderOf(ctx, l.hosts[0])
		first := nextHost(t, l)
		// The primary starts on the first host to be upgraded.
		others(l.hosts, l.host(first))[0].mustCLI(ctx, "db", "create", upDB, "--memory", "64mb", "--replicas", "2", "--node", first)
		d := l.hosts[0].waitReplicated(ctx, upDB, 3)
		password = l.hosts[1].url(ctx, upDB).Password
		waitReplicasLinked(t, ctx, d, password)
		p, _ := d.primary()
		if p.Node != first {
			t.Fatalf("%s was created with --node %s but its primary is on %s: %s", upDB, first, p.Node, d.summary())
		}
		pc := directClient(t, p.addr(), password)
		if err := pc.Eval(ctx, "for i=1,tonumber(ARGV[1]) do redis.call('set','k'..i,i) end return 'filled'", nil, upFilled).Err(); err != nil {
			t.Fatalf("filling %s with %d keys: %v", upDB, upFilled, err)
		}
		if n, err := pc.Do(ctx, "WAIT", 2, 5000).Int64(); err != nil || n < 2 {
			t.Fatalf("WAIT 2 after filling %s: %d %v, want both replicas", upDB, n, err)
		}
		s, err := l.hosts[0].upStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("formed on %s in %s: leader %s; %s: %s; %d keys written; agent versions in cluster status: %s",
			old.version, time.Since(start).Round(time.Millisecond), leader.name, upDB, d.summary(), upFilled, s.versions())

		fc = failoverClient(top, l.hosts, upDB, password)
		waitFor(t, timeout(t, 30*time.Second), "go-redis's failover client to reach the primary of "+upDB, func() (bool, string) {
			err := fc.Ping(ctx).Err()
			return err == nil, fmt.Sprint(err)
		})
		w = startFoWriter(ctx, fc, upDB+":w:", 0, 5*time.Millisecond, 2_000_000, 14*time.Minute)
		top.Cleanup(func() { _, _, _ = w.finish() })
		waitFor(t, timeout(t, 30*time.Second), "200 writes acknowledged, 50 of them by WAIT", func() (bool, string) {
			acked, waited := w.counts()
			return acked >= 200 && waited >= 50, fmt.Sprintf("%d acknowledged, %d by WAIT", acked, waited)
		})
	})

	for i := 1; i <= len(all.hosts); i++ {
		step(fmt.Sprintf("Upgrade%d", i), func(t *testing.T, l *clusterLab) {
			rel := waitNew()
			name := nextHost(t, l)
			leader := l.leaderOf(ctx, l.hosts[0])
			u := &upHost{clusterHost: l.host(name), dir: hosts[name].dir}
			d := u.showRepl(ctx, upDB)
			p, _ := d.primary()
			st := upStep{host: name, role: "follower", primaryOn: p.Node}
			if name == leader.name {
				st.role = "leader"
			}
			_, failsBefore, _ := w.snapshotFails()
			ackedBefore, waitedBefore := w.counts()
			stepStart := time.Now()

			st.restart, st.ready = u.upgradeTo(ctx, rel)
			upgraded[name] = true
			t.Logf("%s (Raft %s, %s's primary here: %v) restarted on %s: systemctl restart %s, API answering %s",
				name, st.role, upDB, p.Node == name, rel.version, st.restart.Round(time.Millisecond), st.ready.Round(time.Millisecond))

			mark := time.Now()
			leader = l.waitFormed(ctx, l.hosts)
			st.formed = time.Since(mark)

			mark = time.Now()
			wp := upWrite(t, timeout(t, 30*time.Second), u.clusterHost, password, fmt.Sprintf("upgrade:%d:%s", i, name))
			st.write = time.Since(mark)
			// The writer goes on through the restart.
			waitFor(t, timeout(t, 60*time.Second), "100 more writes acknowledged by the writer", func() (bool, string) {
				n := w.since(mark)
				_, fails, last := w.snapshotFails()
				return n >= 100, fmt.Sprintf("%d since; failures %s (last: %v)", n, foKinds(fails), last)
			})

			// A create from the upgraded host, a delete from another.
			mark = time.Now()
			extra := fmt.Sprintf("up-%d", i)
			created := u.createDB(ctx, extra, "nordb", "32mb")
			other := others(l.hosts, u.clusterHost)[0]
			other.mustCLI(ctx, "db", "delete", extra)
			waitFor(t, timeout(t, clusterWait), extra+" to leave db list and its host", func() (bool, string) {
				if names := u.list(ctx); slices.Contains(names, extra) {
					return false, fmt.Sprintf("db list: %v", names)
				}
				return l.host(created.Instances[0].Node).unitGone(ctx, extra)
			})
			st.createDelete = time.Since(mark)

			// A planned switchover, to the next host to upgrade (it then
			// restarts beside the primary); after the last, to the most
			// up-to-date replica, as `db failover NAME` picks it.
			next := nextHost(t, l)
			d = l.hosts[0].waitReplicated(ctx, upDB, 3)
			waitReplicasLinked(t, ctx, d, password)
			mark = time.Now()
			var res failoverResult
			if next != "" {
				res = u.failover(ctx, upDB, next, d)
			} else {
				out, stderr, err := u.cli(ctx, "db", "failover", upDB, "-o", "json")
				if err != nil {
					t.Fatalf("db failover %s on %s: %v %s", upDB, name, err, stderr)
				}
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					t.Fatalf("db failover %s -o json: %v\n%s", upDB, err, out)
				}
				checkFailover(t, res, upDB, res.To, d)
				if res.To == res.From {
					t.Errorf("db failover %s moved the primary from %s to %s", upDB, res.From, res.To)
				}
			}
			st.switchover = time.Since(mark)
			st.from, st.to, st.writePauseMs = res.From, res.To, res.WritePauseMs
			np, _ := res.Database.primary()
			waitSentinels(t, ctx, l.hosts, upDB, password, np.addr())
			npc := directClient(t, np.addr(), password)
			wantID, err := infoField(ctx, npc, "server", "run_id")
			if err != nil || wantID == "" {
				t.Fatalf("INFO server on the new primary %s: %v", np.addr(), err)
			}
			waitFor(t, timeout(t, 30*time.Second), "the writer to write to the new primary on "+np.Node, func() (bool, string) {
				if !w.running() {
					t.Fatal("the writer stopped")
				}
				id, err := infoField(ctx, fc, "server", "run_id")
				n := w.since(mark)
				return err == nil && id == wantID && n >= 100, fmt.Sprintf("run_id %s (want %s) %v; %d writes acknowledged since", id, wantID, err, n)
			})
			st.writesFollowing = time.Since(mark)

			ackedAfter, waitedAfter := w.counts()
			_, fails, lastErr := w.snapshotFails()
			st.acked, st.waited = ackedAfter-ackedBefore, waitedAfter-waitedBefore
			for k, v := range fails {
				fails[k] = v - failsBefore[k]
				if fails[k] == 0 {
					delete(fails, k)
				}
			}
			st.failed, st.failKinds = foCount(fails), foKinds(fails)
			if s, err := leader.upStatus(ctx); err == nil {
				st.versionsAfter = s.versions()
			} else {
				st.versionsAfter = err.Error()
			}
			st.leaderAfter = leader.name
			steps = append(steps, st)
			t.Logf("step %d (%s, %s) took %s: formed under leader %s %s after the restart, a WAIT-acknowledged write via %s on %s in %s, db create+delete %s, switchover %s→%s %s (writes paused %.1f ms, the writer on the new primary %s after asking); writer: %d acknowledged (%d by WAIT), %d failed (%s; last: %v); agent versions: %s",
				i, name, st.role, time.Since(stepStart).Round(time.Millisecond), st.leaderAfter, st.formed.Round(time.Millisecond), wp.ID, wp.Node, st.write.Round(time.Millisecond),
				st.createDelete.Round(time.Millisecond), st.from, st.to, st.switchover.Round(time.Millisecond), st.writePauseMs, st.writesFollowing.Round(time.Millisecond),
				st.acked, st.waited, st.failed, st.failKinds, lastErr, st.versionsAfter)
		})
	}

	step("NoAcknowledgedWriteLostAndEveryNodeOnTheNewRelease", func(t *testing.T, l *clusterLab) {
		rel := waitNew()
		for _, h := range l.hosts {
			if !upgraded[h.name] {
				t.Fatalf("%s was never upgraded (upgraded: %v)", h.name, upgraded)
			}
		}
		acks, fails, lastErr := w.finish()
		final := l.hosts[0].waitReplicated(ctx, upDB, 3)
		p, _ := final.primary()
		pc := directClient(t, p.addr(), password)
		lostWaited, lostPlain, err := foMissing(ctx, pc, acks, 0)
		if err != nil {
			t.Fatalf("reading the acknowledged writes on the final primary %s: %v", p.addr(), err)
		}
		acked, waited := len(acks), 0
		for _, a := range acks {
			if a.waited {
				waited++
			}
		}
		var gap time.Duration
		if len(acks) > 1 {
			gap = foGap(acks, acks[0].at, acks[len(acks)-1].at)
		}
		t.Logf("writer over the whole upgrade: %d writes acknowledged (%d by WAIT 1, %d plain), %d failed (%s; last: %v); longest gap between acknowledged writes %s",
			acked, waited, acked-waited, foCount(fails), foKinds(fails), lastErr, gap.Round(time.Millisecond))
		t.Logf("on the final primary %s on %s: %d WAIT-acknowledged writes lost, %d plain writes lost", p.ID, p.Node, len(lostWaited), len(lostPlain))
		if len(lostWaited) > 0 {
			t.Errorf("%d writes acknowledged by WAIT 1 during the rolling upgrade are not on the final primary %s, e.g. %v",
				len(lostWaited), p.ID, lostWaited[:min(len(lostWaited), 10)])
		}
		keys := make([]string, upFilled)
		for i := range keys {
			keys[i] = "k" + strconv.Itoa(i+1)
		}
		vals, err := readKeys(ctx, pc, keys)
		if err != nil {
			t.Fatal(err)
		}
		var missing []string
		for i, v := range vals {
			if s, ok := v.(string); !ok || s != strconv.Itoa(i+1) {
				missing = append(missing, keys[i])
			}
		}
		if len(missing) > 0 {
			t.Errorf("%d of the %d keys written before the upgrade are missing or changed on the final primary, e.g. %v", len(missing), upFilled, missing[:min(len(missing), 10)])
		}

		var rows []string
		for i, s := range steps {
			rows = append(rows, fmt.Sprintf("  %d %-4s %-8s leader after %-4s primary %-4s restart %6s ready %6s formed %6s write %6s create+delete %6s switchover %s→%s %6s (pause %5.1f ms)  writer %5d acked %5d waited %3d failed (%s)",
				i+1, s.host, s.role, s.leaderAfter, s.primaryOn, s.restart.Round(time.Millisecond), s.ready.Round(time.Millisecond), s.formed.Round(time.Millisecond),
				s.write.Round(time.Millisecond), s.createDelete.Round(time.Millisecond), s.from, s.to, s.switchover.Round(time.Millisecond), s.writePauseMs,
				s.acked, s.waited, s.failed, s.failKinds))
		}
		t.Logf("the rolling upgrade from %s to %s, step by step:\n%s", old.version, rel.version, strings.Join(rows, "\n"))

		// Every node reports every member on the new release (the
		// versions are recorded from what each agent says of itself, so
		// give the last restarted one a few heartbeats), and none holds a
		// log entry it could not apply.
		var (
			views    map[string]string
			statuses map[string]upStatus
			onNew    bool
		)
		deadline := time.Now().Add(20 * time.Second)
		for {
			views, statuses, onNew = map[string]string{}, map[string]upStatus{}, true
			for _, h := range l.hosts {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				s, err := h.upStatus(cctx)
				cancel()
				if err != nil {
					views[h.name], onNew = err.Error(), false
					continue
				}
				statuses[h.name] = s
				views[h.name] = fmt.Sprintf("%d members: %s", len(s.Members), s.versions())
				if len(s.Members) != len(l.hosts) {
					onNew = false
				}
				for _, m := range s.Members {
					if m.AgentVersion != rel.version {
						onNew = false
					}
				}
			}
			if onNew || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for cluster status to show the new release: %v", ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
		var lines []string
		for _, h := range l.hosts {
			lines = append(lines, fmt.Sprintf("  on %s: %s", h.name, views[h.name]))
			if s := statuses[h.name]; len(s.ApplyErrors) > 0 || s.UndecodableTotal > 0 {
				t.Errorf("cluster status on %s after the upgrade: %d log entries it could not apply (undecodable_total %d): %s",
					h.name, len(s.ApplyErrors), s.UndecodableTotal, s.ApplyErrors)
			}
		}
		want := fmt.Sprintf("every member with agent_version %q", rel.version)
		if !onNew {
			t.Errorf("cluster status -o json after the rolling upgrade does not show %s (members[].agent_version; ? is none):\n%s", want, strings.Join(lines, "\n"))
		} else {
			t.Logf("cluster status shows %s:\n%s", want, strings.Join(lines, "\n"))
		}
	})

	// Once every voter is at feature level 3 the leader gives the
	// database its agent and replication users (issue 16): the password
	// the applications have keeps working, CONFIG is refused to it, the
	// replicas stay linked (now as the replication user) and users can be
	// made.
	step("TheDefaultPasswordKeepsWorkingAndLosesAdminOnceEveryNodeIsUpgraded", func(t *testing.T, l *clusterLab) {
		h := l.hosts[0].in(t)
		deadline := time.Now().Add(clusterWait)
		for {
			var v struct {
				AccessControl bool `json:"access_control"`
			}
			out, _, err := h.cli(ctx, "db", "show", upDB, "-o", "json")
			if err == nil && json.Unmarshal([]byte(out), &v) == nil && v.AccessControl {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s has no access control %s after every node was upgraded: %s", upDB, clusterWait, out)
			}
			time.Sleep(500 * time.Millisecond)
		}
		d := h.waitReplicated(ctx, upDB, 3)
		p, _ := d.primary()
		pc := directClient(t, p.addr(), password)
		deadline = time.Now().Add(clusterWait)
		for {
			err := pc.ConfigGet(ctx, "maxmemory").Err()
			if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CONFIG GET with the database's password on the primary %s still answers %v %s after access control", p.addr(), err, clusterWait)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err := pc.Set(ctx, "after-access-control", "1", 0).Err(); err != nil {
			t.Errorf("SET with the password from before the upgrade: %v", err)
		}
		waitReplicasLinked(t, ctx, d, password)
		out := h.mustCLI(ctx, "db", "user", "create", upDB, "reader", "--role", "read", "-o", "json")
		if !strings.Contains(out, `"password"`) {
			t.Errorf("db user create after the upgrade: %s", out)
		}
	})
}
