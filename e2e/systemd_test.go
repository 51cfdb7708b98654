package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The agent, running as its own unit, creates a database that serves
// clients who give its password and refuses those who do not; the URL it
// prints works as is with a standard client library.
func TestSystemd_AgentCreatesDatabaseThatOnlyAnswersWithItsPassword(t *testing.T) {
	t.Parallel()
	n := bootNode(t, false)
	ctx := timeout(t, 3*time.Minute)

	if got := n.prop(ctx, agentName, "ActiveState"); got != "active" {
		t.Fatalf("agent unit is %s, want active", got)
	}
	db := n.createDB(ctx, "cache", "aof", "256mb")
	if db.Name != "cache" || db.Flavor != "aof" || db.MemoryBytes != 256<<20 {
		t.Errorf("db show: name %q flavor %q memory_bytes %d, want cache aof %d", db.Name, db.Flavor, db.MemoryBytes, 256<<20)
	}
	if db.Unit != unitName("cache") || db.Port < 6400 {
		t.Errorf("db show: unit %q port %d, want %s on a port from 6400", db.Unit, db.Port, unitName("cache"))
	}
	if len(db.Instances) != 1 || db.Instances[0].ID != "cache-0" || db.Instances[0].Role != "primary" {
		t.Errorf("db show: instances %+v, want one primary cache-0", db.Instances)
	}

	e := n.url(ctx, "cache")
	if e.Host != "127.0.0.1" || e.Port != db.Port {
		t.Errorf("db url points at %s:%d, want 127.0.0.1:%d", e.Host, e.Port, db.Port)
	}
	if len(e.Password) < 32 {
		t.Errorf("password has %d characters, want at least 32", len(e.Password))
	}
	if got := n.mustRedis(ctx, e, "set", "greeting", "hello"); got != "OK" {
		t.Fatalf("SET with the password: %q", got)
	}
	if got := n.mustRedis(ctx, e, "get", "greeting"); got != "hello" {
		t.Fatalf("GET with the password: %q", got)
	}

	anon := endpoint{Host: e.Host, Port: e.Port}
	if got, _ := n.redis(ctx, anon, "get", "greeting"); !strings.Contains(got, "NOAUTH") {
		t.Errorf("GET without a password answered %q, want NOAUTH", got)
	}
	wrong := endpoint{Host: e.Host, Port: e.Port, Password: strings.Repeat("x", 40)}
	if got, _ := n.redis(ctx, wrong, "get", "greeting"); got == "hello" {
		t.Error("GET with a wrong password was served")
	}

	// The URL as printed, given to redis-py (python3-redis), with the URL in
	// the environment rather than in argv.
	out, _, err := n.ExecEnv(ctx, []string{"DB_URL=" + e.URL}, "/usr/bin/python3", "-c",
		"import os, redis; print(redis.Redis.from_url(os.environ['DB_URL']).get('greeting').decode())")
	if err != nil || strings.TrimSpace(out) != "hello" {
		t.Errorf("redis-py with the printed URL: %q %v", out, err)
	}

	if got := n.list(ctx); !slices.Equal(got, []string{"cache"}) {
		t.Errorf("db list shows %v, want [cache]", got)
	}
	if table := n.mustCLI(ctx, "db", "list"); !strings.Contains(table, "cache") {
		t.Errorf("db list table does not show cache:\n%s", table)
	}
}

// The instance is an enabled systemd unit with at least the hardening of
// Debian's redis-server.service; redis-server runs unprivileged; and the
// password is nowhere in the clear: the 0600 redis.conf holds its SHA-256
// digest, and it is not in any process's argv, the journal, the Raft state
// or the unit files.
func TestSystemd_InstanceUnitIsHardenedAndThePasswordNeverLeaks(t *testing.T) {
	t.Parallel()
	n := bootNode(t, false)
	ctx := timeout(t, 3*time.Minute)
	db := n.createDB(ctx, "cache", "aof", "256mb")
	e := n.url(ctx, "cache")
	unit := unitName("cache")

	if got := n.prop(ctx, unit, "ActiveState"); got != "active" {
		t.Errorf("%s is %s, want active", unit, got)
	}
	if got, _, _ := n.Exec(ctx, "systemctl", "is-enabled", unit); strings.TrimSpace(got) != "enabled" {
		t.Errorf("%s is-enabled: %q, want enabled (or it would not come back after a reboot)", unit, strings.TrimSpace(got))
	}

	out := n.MustExec(ctx, "systemctl", "show", unit, "-p",
		"Type,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,PrivateDevices,ReadWritePaths,CapabilityBoundingSet,RestrictAddressFamilies,MemoryDenyWriteExecute,User,ExecStart")
	props := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		props[k] = v
	}
	t.Logf("%s:\n%s", unit, out)
	for k, want := range map[string]string{
		"Type":                   "notify",
		"NoNewPrivileges":        "yes",
		"ProtectSystem":          "strict",
		"ProtectHome":            "yes",
		"PrivateTmp":             "yes",
		"PrivateDevices":         "yes",
		"MemoryDenyWriteExecute": "yes",
		"User":                   "redis",
		// Empty: no capability at all, as Debian's unit.
		"CapabilityBoundingSet": "",
	} {
		if got, ok := props[k]; !ok || got != want {
			t.Errorf("%s: %s=%q, want %q", unit, k, got, want)
		}
	}
	rw := strings.Fields(props["ReadWritePaths"])
	if len(rw) == 0 {
		t.Errorf("%s: no ReadWritePaths: the instance could not write its data under ProtectSystem=strict", unit)
	}
	for _, p := range rw {
		p = strings.TrimPrefix(p, "-")
		if p != instanceDir("cache") && !strings.HasPrefix(p, instanceDir("cache")+"/") {
			t.Errorf("%s: ReadWritePaths has %s, want only the instance's directory %s", unit, p, instanceDir("cache"))
		}
	}
	families := strings.Fields(props["RestrictAddressFamilies"])
	if !slices.Contains(families, "AF_INET") || !slices.Contains(families, "AF_UNIX") {
		t.Errorf("%s: RestrictAddressFamilies=%q, want an allow-list with AF_INET and AF_UNIX", unit, props["RestrictAddressFamilies"])
	}
	for _, f := range families {
		if strings.HasPrefix(f, "~") || f == "AF_NETLINK" || f == "AF_PACKET" {
			t.Errorf("%s: RestrictAddressFamilies allows or deny-lists %s; want only AF_INET, AF_INET6, AF_UNIX", unit, f)
		}
	}
	if strings.Contains(props["ExecStart"], e.Password) {
		t.Errorf("%s: the password is in ExecStart", unit)
	}

	pid := n.mainPID(ctx, unit)
	if got := strings.TrimSpace(n.MustExec(ctx, "ps", "-o", "user=", "-p", strconv.Itoa(pid))); got != "redis" {
		t.Errorf("redis-server (pid %d) runs as %q, want redis", pid, got)
	}
	conf := instanceDir("cache") + "/redis.conf"
	if got := strings.TrimSpace(n.MustExec(ctx, "stat", "-c", "%a %U", conf)); got != "600 redis" {
		t.Errorf("%s: mode and owner %q, want 600 redis", conf, got)
	}
	sum := sha256.Sum256([]byte(e.Password))
	if !strings.Contains(n.MustExec(ctx, "cat", conf), "user default reset on #"+hex.EncodeToString(sum[:])) {
		t.Errorf("%s does not hold the digest of the password db url gives", conf)
	}

	// Every process on the machine (the hosts' included), not only inside.
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), e.Password) {
			t.Errorf("the password is in the argv of %s: %q", f, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	// All fields of every journal entry since boot, the agent's and the
	// instance's included.
	journal := n.MustExec(ctx, "journalctl", "-b", "--no-pager", "-o", "json")
	if !strings.Contains(journal, "redis-appliance") {
		t.Errorf("the journal has no entry of the agent; is it logging to journald?")
	}
	if strings.Contains(journal, e.Password) {
		t.Error("the password is in the journal")
	}
	agentJournal := n.MustExec(ctx, "journalctl", "-u", agentName, "--no-pager", "-o", "cat")
	if strings.Contains(agentJournal, e.Password) {
		t.Error("the password is in the agent's journal")
	}
	for _, dir := range []string{dataDir, unitDir, "/etc/redis-appliance", "/run/redis-appliance"} {
		hits, err := secretIn(n.Path(dir), e.Password)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("searching %s: %v", dir, err)
		}
		for _, h := range hits {
			t.Errorf("the password is in the clear in %s", strings.TrimPrefix(h, n.Path("/")))
		}
	}
	if db.Port == 0 {
		t.Error("db show gives no port")
	}
}

// kill -9 of redis-server is repaired by systemd (a new main process that
// answers PING), and keys written to an aof database before the kill are
// all there afterwards.
func TestSystemd_KillNineOfRedisIsRepairedBySystemdAndAOFDataSurvives(t *testing.T) {
	t.Parallel()
	n := bootNode(t, false)
	ctx := timeout(t, 3*time.Minute)
	n.createDB(ctx, "cache", "aof", "256mb")
	e := n.url(ctx, "cache")
	unit := unitName("cache")
	n.mustRedis(ctx, e, "set", "greeting", "hello")
	n.fill(ctx, e, 1000)
	n.waitAOFDurable(ctx, e)

	pid := n.mainPID(ctx, unit)
	restarts, _ := strconv.Atoi(n.prop(ctx, unit, "NRestarts"))
	n.MustExec(ctx, "kill", "-9", strconv.Itoa(pid))
	start := time.Now()
	newPID := n.waitActive(ctx, unit, pid)
	n.waitPong(ctx, e)
	t.Logf("redis-server pid %d killed; systemd restarted it as pid %d, answering PING after %s", pid, newPID, time.Since(start).Round(time.Millisecond))
	if got, _ := strconv.Atoi(n.prop(ctx, unit, "NRestarts")); got <= restarts {
		t.Errorf("NRestarts %d after the kill, was %d: not restarted by systemd's Restart=", got, restarts)
	}
	n.checkFilled(ctx, e, 1000)
	if got := n.redisServers(ctx); len(got) != 1 {
		t.Errorf("redis-server processes after the repair: %q, want exactly one", got)
	}
	waitFor(t, ctx, "db show to report running again", func() (bool, string) {
		s := n.show(ctx, "cache").State
		return s == "running", "state " + s
	})
}

// Restarting the agent, cleanly or with kill -9, leaves databases alone:
// still listed, still served on the same port by the same redis-server
// (the agent is not in the data path), data intact, no second server.
func TestSystemd_AgentRestartAndKillNineLeaveTheDatabaseServedAndUntouched(t *testing.T) {
	t.Parallel()
	n := bootNode(t, false)
	ctx := timeout(t, 4*time.Minute)
	db := n.createDB(ctx, "cache", "aof", "256mb")
	e := n.url(ctx, "cache")
	unit := unitName("cache")
	n.mustRedis(ctx, e, "set", "greeting", "hello")
	n.fill(ctx, e, 500)
	serverPID := n.mainPID(ctx, unit)

	check := func(after string) {
		t.Helper()
		if got := n.list(ctx); !slices.Equal(got, []string{"cache"}) {
			t.Errorf("after %s db list shows %v, want [cache]", after, got)
		}
		got := n.show(ctx, "cache")
		if got.Port != db.Port {
			t.Errorf("after %s the port is %d, was %d", after, got.Port, db.Port)
		}
		if e2 := n.url(ctx, "cache"); e2.Password != e.Password || e2.Port != e.Port {
			t.Errorf("after %s db url changed", after)
		}
		if pid := n.mainPID(ctx, unit); pid != serverPID {
			t.Errorf("after %s redis-server is pid %d, was %d: the agent restarted the database", after, pid, serverPID)
		}
		if servers := n.redisServers(ctx); len(servers) != 1 {
			t.Errorf("after %s redis-server processes: %q, want exactly one", after, servers)
		}
		n.checkFilled(ctx, e, 500)
		n.checkCanPersist(ctx, e, "cache")
		waitFor(t, ctx, "db show to report running after "+after, func() (bool, string) {
			s := n.show(ctx, "cache").State
			return s == "running", "state " + s
		})
	}

	n.MustExec(ctx, "systemctl", "restart", agentName)
	n.waitAgent(ctx)
	check("systemctl restart redis-appliance")

	agentPID := n.mainPID(ctx, agentName)
	n.MustExec(ctx, "kill", "-9", strconv.Itoa(agentPID))
	// While the agent is down, clients are still served.
	if got := n.mustRedis(ctx, e, "get", "greeting"); got != "hello" {
		t.Errorf("with the agent killed, GET greeting = %q, want hello", got)
	}
	newAgent := n.waitActive(ctx, agentName, agentPID)
	n.waitAgent(ctx)
	t.Logf("agent pid %d killed; systemd restarted it as pid %d", agentPID, newAgent)
	check("kill -9 of the agent")
}

// After a power loss (every process of the host killed at once) and a boot
// on the same disk, the agent and the instance come back by themselves and
// the database answers with its data on the same port.
func TestSystemd_PowerLossAndBootBringTheDatabaseBackWithItsData(t *testing.T) {
	t.Parallel()
	n := bootNode(t, true)
	ctx := timeout(t, 4*time.Minute)
	db := n.createDB(ctx, "cache", "aof", "256mb")
	e := n.url(ctx, "cache")
	unit := unitName("cache")
	n.mustRedis(ctx, e, "set", "greeting", "hello")
	n.fill(ctx, e, 1000)
	n.waitAOFDurable(ctx, e)

	n.PowerLoss()
	n.Boot()
	start := time.Now()
	// Nothing is started by hand: both units must be enabled.
	n.waitAgent(ctx)
	n.waitActive(ctx, unit, 0)
	n.waitPong(ctx, e)
	t.Logf("after boot the database answered PING in %s", time.Since(start).Round(time.Millisecond))
	for _, u := range []string{agentName, unit} {
		if got, _, _ := n.Exec(ctx, "systemctl", "is-enabled", u); strings.TrimSpace(got) != "enabled" {
			t.Errorf("%s is-enabled: %q after boot", u, strings.TrimSpace(got))
		}
	}
	n.checkFilled(ctx, e, 1000)
	if got := n.show(ctx, "cache").Port; got != db.Port {
		t.Errorf("after power loss the port is %d, was %d", got, db.Port)
	}
	waitFor(t, ctx, "db show to report running after boot", func() (bool, string) {
		s := n.show(ctx, "cache").State
		return s == "running", "state " + s
	})
}

// db restart gives the instance a new process and keeps its data; db delete
// removes the unit, its file, redis.conf and the data directory, and the
// database from db list.
func TestSystemd_RestartKeepsDataAndDeleteRemovesUnitConfigAndData(t *testing.T) {
	t.Parallel()
	n := bootNode(t, false)
	ctx := timeout(t, 3*time.Minute)
	n.createDB(ctx, "keep", "nordb", "64mb")
	n.createDB(ctx, "temp", "aof", "128mb")
	e := n.url(ctx, "temp")
	unit := unitName("temp")
	n.mustRedis(ctx, e, "set", "greeting", "hello")
	n.fill(ctx, e, 100)

	pid := n.mainPID(ctx, unit)
	n.mustCLI(ctx, "db", "restart", "temp")
	newPID := n.waitActive(ctx, unit, pid)
	n.waitPong(ctx, e)
	t.Logf("db restart: redis-server pid %d -> %d", pid, newPID)
	n.checkFilled(ctx, e, 100)

	dir := instanceDir("temp")
	if !n.exists(ctx, dir+"/redis.conf") || !n.exists(ctx, unitDir+"/"+unit) {
		t.Fatalf("before delete: %s/redis.conf or %s/%s missing", dir, unitDir, unit)
	}
	n.mustCLI(ctx, "db", "delete", "temp")
	if got := n.list(ctx); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("after delete db list shows %v, want [keep]", got)
	}
	start := time.Now()
	waitFor(t, timeout(t, 30*time.Second), "the unit, its file and the instance directory to be gone", func() (bool, string) {
		if _, _, err := n.Exec(ctx, "systemctl", "cat", unit); err == nil {
			return false, "systemctl cat " + unit + " still works"
		}
		if links, _, _ := n.Exec(ctx, "find", unitDir, "-name", unit); strings.TrimSpace(links) != "" {
			return false, "unit file or enablement link left: " + strings.TrimSpace(links)
		}
		if n.exists(ctx, dir) {
			return false, dir + " still exists"
		}
		if s := n.prop(ctx, unit, "LoadState"); s != "not-found" {
			return false, "LoadState " + s
		}
		return true, ""
	})
	if d := time.Since(start); d > time.Second {
		t.Logf("the unit and files were gone %s after db delete returned", d.Round(time.Millisecond))
	}
	if out, err := n.redis(ctx, e, "ping"); err == nil && out == "PONG" {
		t.Error("the deleted database still answers PING")
	}
	if _, _, err := n.cli(ctx, "db", "show", "temp"); err == nil {
		t.Error("db show of the deleted database succeeds")
	}
	// The other database is untouched.
	if got := n.show(ctx, "keep").State; got != "running" {
		t.Errorf("the other database is %s after the delete", got)
	}
}

// Bad input on a real host is refused with a non-zero exit and a message
// on stderr that names the problem, and changes nothing: no new unit, unit
// file or instance directory, and db list as before.
func TestSystemd_BadInputIsRefusedClearlyAndLeavesNoStrayUnitOrFile(t *testing.T) {
	t.Parallel()
	n := bootNode(t, false)
	ctx := timeout(t, 3*time.Minute)
	n.createDB(ctx, "dupe", "nordb", "64mb")
	e := n.url(ctx, "dupe")
	before, beforeList := n.footprint(ctx), n.list(ctx)

	for _, tc := range []struct {
		name string
		args []string
		// The message must mention one of these (case-insensitive).
		mention []string
	}{
		{"duplicate name", []string{"db", "create", "dupe", "--memory", "64mb", "--flavor", "nordb"}, []string{"dupe"}},
		{"unknown flavor", []string{"db", "create", "other", "--memory", "64mb", "--flavor", "lru"}, []string{"lru"}},
		{"memory too large", []string{"db", "create", "huge", "--memory", "9tb", "--flavor", "aof"}, []string{"memory", "9tb"}},
		{"memory too small", []string{"db", "create", "tiny", "--memory", "1kb", "--flavor", "aof"}, []string{"memory", "1kb"}},
		{"memory unparsable", []string{"db", "create", "vague", "--memory", "lots", "--flavor", "aof"}, []string{"lots"}},
		{"invalid name", []string{"db", "create", "Bad_Name!", "--memory", "64mb", "--flavor", "aof"}, []string{"Bad_Name!", "name"}},
		{"unknown version", []string{"db", "create", "old", "--memory", "64mb", "--flavor", "aof", "--version", "5.0"}, []string{"5.0"}},
		{"show a missing database", []string{"db", "show", "nope"}, []string{"nope"}},
		{"delete a missing database", []string{"db", "delete", "nope"}, []string{"nope"}},
		{"second agent on the same data dir", []string{"agent"}, []string{"agent", "running", "lock", "use"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.in(t).refuse(timeout(t, 30*time.Second), tc.mention, tc.args...)
		})
	}

	if after := n.footprint(ctx); after != before {
		t.Errorf("bad input changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := n.list(ctx); !slices.Equal(got, beforeList) {
		t.Errorf("db list after bad input %v, before %v", got, beforeList)
	}
	// The agent that was running is unharmed by the second one.
	n.waitAgent(ctx)
	if got := n.mustRedis(ctx, e, "ping"); got != "PONG" {
		t.Errorf("the existing database answers %q after the bad input", got)
	}
	if s := n.show(ctx, "dupe").State; s != "running" {
		t.Errorf("the existing database is %s after the bad input", s)
	}
}
