package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"
)

// Paths inside a host, as the agent's embedded single-node default puts
// them.
const (
	unitDir      = "/etc/systemd/system"
	dataDir      = "/var/lib/redis-appliance"
	instancesDir = dataDir + "/instances"
	raftDir      = dataDir + "/raft"
	configPath   = "/etc/redis-appliance/config.yaml"
	agentName    = "redis-appliance.service"
	// stagedUnit is where the agent's unit file is bound; it is copied
	// into unitDir the way a package's postinst would install it.
	stagedUnit = "/usr/lib/redis-appliance-lab/redis-appliance.service"
)

// Bounds of the waits below. Generous: 2 cores may run several hosts.
const (
	agentReadyTimeout = 90 * time.Second
	instanceTimeout   = 60 * time.Second
)

// node is a lab host running the redis-appliance agent as a unit.
type node struct {
	*lab.Host
	t testing.TB
}

// bootNode boots a host with the binary under test at
// /usr/bin/redis-appliance, installs the agent's unit, enables and starts it
// and waits until its API answers.
func bootNode(t testing.TB, persistent bool) *node {
	t.Helper()
	return bootAgent(t, lab.Options{Persistent: persistent}, "")
}

// bootAgent is bootNode for any host: opts says how to boot it (the
// binary and the unit are bound in on top of opts.Binds), and config, when
// not empty, is written to /etc/redis-appliance/config.yaml before the
// agent first starts, as an operator would before enabling the unit.
func bootAgent(t testing.TB, opts lab.Options, config string) *node {
	t.Helper()
	opts.Binds = append(append([]lab.Bind(nil), opts.Binds...),
		lab.Bind{Host: binary, Container: "/usr/bin/redis-appliance"},
		lab.Bind{Host: agentUnit, Container: stagedUnit},
	)
	n := &node{Host: lab.Boot(t, opts), t: t}
	n.startAgent(config, stagedUnit)
	return n
}

// startAgent writes the agent's config (if any), installs its unit from
// unit (a path inside the host), enables and starts it, and waits until
// its API answers; if the test fails, the agent's journal is logged.
func (n *node) startAgent(config, unit string) {
	t := n.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), agentReadyTimeout)
	defer cancel()
	if config != "" {
		n.writeFile(ctx, configPath, "0644", config)
	}
	n.MustExec(ctx, "install", "-m", "0644", unit, unitDir+"/"+agentName)
	n.MustExec(ctx, "systemctl", "daemon-reload")
	// Type=notify: this returns once the agent has said READY=1.
	n.MustExec(ctx, "systemctl", "enable", "--now", agentName)
	t.Cleanup(func() {
		if t.Failed() && n.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, _, _ := n.Exec(ctx, "journalctl", "-u", agentName, "-u", "redis-appliance-db-*", "--no-pager", "-n", "120", "-o", "short-monotonic")
			t.Logf("journal of the agent and instances on %s:\n%s", n.Name(), out)
		}
	})
	n.waitAgent(ctx)
}

// steps runs named steps of a lab test in order as subtests, each with the
// lab reporting to it; a step that stops (t.Fatal) stops the test, one
// that only reports errors leaves the hosts for the next steps.
func steps(t *testing.T, all *clusterLab) func(name string, f func(t *testing.T, l *clusterLab)) {
	return func(name string, f func(t *testing.T, l *clusterLab)) {
		t.Helper()
		completed := false
		t.Run(name, func(t *testing.T) {
			f(t, all.in(t))
			completed = true
		})
		if !completed {
			t.FailNow()
		}
	}
}

// writeFile writes content to path inside the host (parents created) with
// the given octal mode, through stdin so that it never appears in argv.
func (n *node) writeFile(ctx context.Context, path, mode, content string) {
	n.t.Helper()
	cmd := n.Command(ctx, "install", "-D", "-m", mode, "/dev/stdin", path)
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("writing %s in %s: %v %s", path, n.Name(), err, out)
	}
}

// waitAgent polls until the agent unit is active and its API answers.
func (n *node) waitAgent(ctx context.Context) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, agentReadyTimeout)
	defer cancel()
	waitFor(n.t, ctx, "the agent to be active and answer `node show`", func() (bool, string) {
		state, _, _ := n.Exec(ctx, "systemctl", "is-active", agentName)
		if strings.TrimSpace(state) != "active" {
			return false, "agent unit is " + strings.TrimSpace(state)
		}
		_, stderr, err := n.cli(ctx, "node", "show", "-o", "json")
		if err != nil {
			return false, fmt.Sprintf("node show: %v %s", err, stderr)
		}
		return true, ""
	})
}

// in returns n reporting failures to t, a subtest of the test that booted
// it (see lab.Host.ReportTo for the host's own methods).
func (n *node) in(t testing.TB) *node { return &node{Host: n.Host, t: t} }

// refuse runs redis-appliance args inside the host and fails the test
// unless the command is refused as a user expects: a non-zero exit, a
// message on stderr that mentions one of mention (case-insensitive), and no
// panic. It returns the message.
func (n *node) refuse(ctx context.Context, mention []string, args ...string) string {
	n.t.Helper()
	shown := slices.Clone(args)
	for i, a := range shown {
		// Join tokens are secrets, even spent ones: keep them out of logs.
		if strings.HasPrefix(a, "ratok1.") && len(a) > 24 {
			shown[i] = a[:12] + "…"
		}
	}
	cmdline := "redis-appliance " + strings.Join(shown, " ")
	stdout, stderr, err := n.cli(ctx, args...)
	var ee *lab.ExecError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		n.t.Fatalf("%s on %s: got %v, want a non-zero exit (stdout %q)", cmdline, n.Name(), err, stdout)
	}
	msg := strings.TrimSpace(stderr)
	if msg == "" {
		n.t.Fatalf("%s on %s: exit %d with nothing on stderr", cmdline, n.Name(), ee.ExitCode())
	}
	if strings.Contains(msg, "panic:") || strings.Contains(msg, "goroutine ") {
		n.t.Fatalf("%s on %s panicked:\n%s", cmdline, n.Name(), msg)
	}
	low := strings.ToLower(msg)
	if !slices.ContainsFunc(mention, func(w string) bool { return strings.Contains(low, strings.ToLower(w)) }) {
		n.t.Errorf("%s on %s: message %q mentions none of %q", cmdline, n.Name(), msg, mention)
	}
	n.t.Logf("%s: exit %d: %s", cmdline, ee.ExitCode(), msg)
	return msg
}

// cli runs redis-appliance inside the host.
func (n *node) cli(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return n.Exec(ctx, append([]string{"redis-appliance"}, args...)...)
}

// mustCLI runs redis-appliance inside the host and fails the test on a
// non-zero exit.
func (n *node) mustCLI(ctx context.Context, args ...string) string {
	n.t.Helper()
	out, _, err := n.cli(ctx, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// database is `db show -o json`, as the CLI contract gives it.
type database struct {
	Name            string     `json:"name"`
	Version         string     `json:"version"`
	Flavor          string     `json:"flavor"`
	MemoryBytes     int64      `json:"memory_bytes"`
	Port            int        `json:"port"`
	Unit            string     `json:"unit"`
	State           string     `json:"state"`
	MemoryUsedBytes int64      `json:"memory_used_bytes"`
	Instances       []instance `json:"instances"`
}

type instance struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	Host  string `json:"host"`
	Port  int    `json:"port"`
	Role  string `json:"role"`
	Unit  string `json:"unit"`
	State string `json:"state"`
}

// createDB creates a database through the CLI, which returns once it runs;
// extra are more flags of db create (e.g. --node lab2).
func (n *node) createDB(ctx context.Context, name, flavor, memory string, extra ...string) database {
	n.t.Helper()
	n.mustCLI(ctx, append([]string{"db", "create", name, "--memory", memory, "--flavor", flavor}, extra...)...)
	db := n.show(ctx, name)
	if db.State != "running" {
		n.t.Fatalf("db create %s returned but db show says state %q", name, db.State)
	}
	return db
}

func (n *node) show(ctx context.Context, name string) database {
	n.t.Helper()
	out := n.mustCLI(ctx, "db", "show", name, "-o", "json")
	var db database
	if err := json.Unmarshal([]byte(out), &db); err != nil {
		n.t.Fatalf("db show %s -o json: %v\n%s", name, err, out)
	}
	return db
}

// list returns the names `db list -o json` shows.
func (n *node) list(ctx context.Context) []string {
	n.t.Helper()
	out := n.mustCLI(ctx, "db", "list", "-o", "json")
	var dbs []database
	if err := json.Unmarshal([]byte(out), &dbs); err != nil {
		// Also accept an object that wraps the list.
		var wrapped struct {
			Databases []database `json:"databases"`
		}
		if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil {
			n.t.Fatalf("db list -o json: %v\n%s", err, out)
		}
		dbs = wrapped.Databases
	}
	names := make([]string, 0, len(dbs))
	for _, db := range dbs {
		names = append(names, db.Name)
	}
	sort.Strings(names)
	return names
}

// endpoint is what `db url` gives: where a database listens and its
// password.
type endpoint struct {
	URL      string
	Host     string
	Port     int
	Password string
}

func (n *node) url(ctx context.Context, name string) endpoint {
	n.t.Helper()
	raw := strings.TrimSpace(n.mustCLI(ctx, "db", "url", name))
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" || u.User == nil {
		n.t.Fatalf("db url %s: %v: want redis://:PASSWORD@HOST:PORT/0", name, err)
	}
	pw, ok := u.User.Password()
	port, perr := strconv.Atoi(u.Port())
	if !ok || pw == "" || perr != nil || u.Path != "/0" {
		n.t.Fatalf("db url %s has no password, port or /0 database (want redis://:PASSWORD@HOST:PORT/0)", name)
	}
	return endpoint{URL: raw, Host: u.Hostname(), Port: port, Password: pw}
}

// redis runs redis-cli against e inside the host; the password travels in
// REDISCLI_AUTH, never in argv. redis-cli exits 0 on error replies, so
// callers look at the reply text.
func (n *node) redis(ctx context.Context, e endpoint, args ...string) (string, error) {
	argv := append([]string{"redis-cli", "-h", e.Host, "-p", strconv.Itoa(e.Port)}, args...)
	var env []string
	if e.Password != "" {
		env = []string{"REDISCLI_AUTH=" + e.Password}
	}
	out, _, err := n.ExecEnv(ctx, env, argv...)
	return strings.TrimSpace(out), err
}

func (n *node) mustRedis(ctx context.Context, e endpoint, args ...string) string {
	n.t.Helper()
	out, err := n.redis(ctx, e, args...)
	if err != nil {
		n.t.Fatalf("redis-cli %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// waitPong polls until the database answers PING.
func (n *node) waitPong(ctx context.Context, e endpoint) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, instanceTimeout)
	defer cancel()
	waitFor(n.t, ctx, fmt.Sprintf("PONG from port %d", e.Port), func() (bool, string) {
		out, err := n.redis(ctx, e, "ping")
		return out == "PONG", fmt.Sprintf("%q %v", out, err)
	})
}

// fill writes count keys k1..kcount with their number as value, in one
// script so that it is one command.
func (n *node) fill(ctx context.Context, e endpoint, count int) {
	n.t.Helper()
	out := n.mustRedis(ctx, e, "eval", "for i=1,tonumber(ARGV[1]) do redis.call('set','k'..i,i) end return 'filled'", "0", strconv.Itoa(count))
	if out != "filled" {
		n.t.Fatalf("filling %d keys: %q", count, out)
	}
}

// checkFilled asserts the keys fill wrote are all there.
func (n *node) checkFilled(ctx context.Context, e endpoint, count int) {
	n.t.Helper()
	if got := n.mustRedis(ctx, e, "dbsize"); got != strconv.Itoa(count+1) { // +1: the greeting key
		n.t.Errorf("DBSIZE = %s, want %d: keys were lost", got, count+1)
	}
	for _, i := range []int{1, count / 2, count} {
		k := "k" + strconv.Itoa(i)
		if got := n.mustRedis(ctx, e, "get", k); got != strconv.Itoa(i) {
			n.t.Errorf("GET %s = %q, want %d", k, got, i)
		}
	}
	if got := n.mustRedis(ctx, e, "get", "greeting"); got != "hello" {
		n.t.Errorf("GET greeting = %q, want hello", got)
	}
}

// waitAOFDurable waits until what was written before it was called is on
// disk. With appendfsync everysec redis write()s the AOF buffer before it
// replies (or, when the disk is slow, up to 2 s later), so a kill -9 of
// redis-server alone loses nothing once aof_buffer_length is 0: the page
// cache survives the process. Power loss needs the fsync too, which
// everysec does once a second in the background; waiting 2.1 s (its
// documented worst case) and for no pending background fsync covers it.
func (n *node) waitAOFDurable(ctx context.Context, e endpoint) {
	n.t.Helper()
	written := time.Now()
	waitFor(n.t, ctx, "the AOF to be written and fsynced", func() (bool, string) {
		info := n.mustRedis(ctx, e, "info", "persistence")
		fields := infoFields(info)
		if fields["aof_enabled"] != "1" {
			n.t.Fatalf("aof flavor database has aof_enabled:%s", fields["aof_enabled"])
		}
		if fields["aof_buffer_length"] != "0" || fields["aof_pending_bio_fsync"] != "0" {
			return false, fmt.Sprintf("aof_buffer_length:%s aof_pending_bio_fsync:%s", fields["aof_buffer_length"], fields["aof_pending_bio_fsync"])
		}
		if d := time.Since(written); d < 2100*time.Millisecond {
			return false, fmt.Sprintf("only %s since the write", d)
		}
		return true, ""
	})
}

// checkCanPersist asserts redis-server can still write its files: every
// file of the instance belongs to redis, and a save succeeds (db save: a
// BGSAVE as the agent's user, which applications may not run). A running
// server keeps its open files; losing write access shows only at the next
// save, AOF rewrite or restart, when it is too late.
func (n *node) checkCanPersist(ctx context.Context, e endpoint, db string) {
	n.t.Helper()
	if out, _, _ := n.Exec(ctx, "find", instanceDir(db), "!", "-user", "redis"); strings.TrimSpace(out) != "" {
		n.t.Errorf("files of %s no longer belong to redis:\n%s", db, out)
	}
	if out, err := n.redis(ctx, e, "bgsave"); err != nil || !strings.Contains(out, "NOPERM") {
		n.t.Errorf("BGSAVE with the database's password on %s: %q %v, want NOPERM", db, out, err)
	}
	var res struct {
		Status string `json:"status"`
	}
	out, errs, err := n.cli(ctx, "db", "save", db, "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || res.Status != "ok" {
		n.t.Errorf("db save %s: %s %s %v: redis-server can no longer write its directory", db, out, errs, err)
	}
}

func infoFields(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// prop returns one property of a unit (`systemctl show -p P --value`).
func (n *node) prop(ctx context.Context, unit, p string) string {
	n.t.Helper()
	return strings.TrimSpace(n.MustExec(ctx, "systemctl", "show", "-p", p, "--value", unit))
}

// mainPID returns the unit's main process, 0 when it has none.
func (n *node) mainPID(ctx context.Context, unit string) int {
	n.t.Helper()
	pid, err := strconv.Atoi(n.prop(ctx, unit, "MainPID"))
	if err != nil {
		n.t.Fatalf("MainPID of %s: %v", unit, err)
	}
	return pid
}

// waitActive polls until unit is active with a main PID other than notPID.
func (n *node) waitActive(ctx context.Context, unit string, notPID int) int {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, instanceTimeout)
	defer cancel()
	var pid int
	waitFor(n.t, ctx, unit+" to be active with a new main PID", func() (bool, string) {
		out, _, err := n.Exec(ctx, "systemctl", "show", "-p", "ActiveState,SubState,MainPID,NRestarts", unit)
		if err != nil {
			return false, err.Error()
		}
		props := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, _ := strings.Cut(line, "=")
			props[k] = v
		}
		pid, _ = strconv.Atoi(props["MainPID"])
		return props["ActiveState"] == "active" && pid != 0 && pid != notPID, strings.ReplaceAll(strings.TrimSpace(out), "\n", " ")
	})
	return pid
}

// redisServers lists the redis-server processes running in the host.
func (n *node) redisServers(ctx context.Context) []string {
	n.t.Helper()
	out, _, err := n.Exec(ctx, "pgrep", "-a", "-x", "redis-server")
	var ee *lab.ExecError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) { // 1: none
		n.t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// footprint lists what the appliance leaves on a host for its databases:
// instance unit files (and their enablement links), instance directories
// and loaded instance units. Bad input must leave it unchanged.
func (n *node) footprint(ctx context.Context) string {
	n.t.Helper()
	var parts []string
	files, _, _ := n.Exec(ctx, "sh", "-c", "find "+unitDir+" -name 'redis-appliance-db-*' | sort; ls -1A "+instancesDir+" 2>/dev/null | sort")
	parts = append(parts, strings.TrimSpace(files))
	units, _, _ := n.Exec(ctx, "systemctl", "list-units", "--all", "--plain", "--no-legend", "redis-appliance-db-*")
	parts = append(parts, strings.TrimSpace(units))
	return strings.Join(parts, "\n")
}

// exists reports whether path exists inside the host.
func (n *node) exists(ctx context.Context, path string) bool {
	_, _, err := n.Exec(ctx, "test", "-e", path)
	return err == nil
}

// instanceDir is where the first instance of database db keeps its data
// and redis.conf.
func instanceDir(db string) string { return instancesDir + "/" + db + "-0" }

// unitName is the unit of the first instance of database db.
func unitName(db string) string { return "redis-appliance-db-" + db + "-0.service" }

// waitFor polls cond every 100ms until it holds, failing the test when ctx
// ends first with the last reason cond gave.
func waitFor(t testing.TB, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	var last string
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		select {
		case <-ctx.Done():
			t.Fatalf("gave up after %s waiting for %s: %s", time.Since(start).Round(time.Millisecond), what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func timeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// secretIn reports the files under dir (on the machine) that hold secret.
func secretIn(dir, secret string) ([]string, error) {
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			hits = append(hits, p)
		}
		return nil
	})
	return hits, err
}
