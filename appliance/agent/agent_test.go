package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
)

// testAgent is an agent running in this process with the child-process
// supervisor, real Raft on loopback and real redis-server instances.
type testAgent struct {
	logs   *syncBuffer
	cfg    *config.Config
	client *api.Client
	cancel context.CancelFunc
	done   chan error
}

// writeConfig writes an agent config for a test in dir and loads it.
func writeConfig(t *testing.T, dir string) *config.Config {
	t.Helper()
	base := lab.FreePort(t)
	yaml := fmt.Sprintf(`node_name: n1
data_dir: %s
socket: %s
raft_addr: 127.0.0.1:%d
cluster_addr: 127.0.0.1:%d
port_range: %d-%d
sentinel_port: %d
instance_user: ""
supervisor: process
log_level: debug
`, filepath.Join(dir, "data"), filepath.Join(dir, "api.sock"), lab.FreePort(t), lab.FreePort(t), base, base+20, lab.FreePort(t))
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startAgent(t *testing.T, cfg *config.Config) *testAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	a := &testAgent{cfg: cfg, client: api.NewClient(cfg.Socket), cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, a.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { a.done <- Run(ctx, cfg, log, ready) }()
	select {
	case <-ready:
	case err := <-a.done:
		cancel()
		t.Fatalf("agent did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("agent not ready within 30s")
	}
	t.Cleanup(a.stop)
	return a
}

func (a *testAgent) stop() {
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
	}
}

// stopInstances stops every redis-server the test started: the process
// supervisor leaves them running on purpose, like systemd units.
func stopInstances(t *testing.T, a *testAgent) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dbs, _ := a.client.ListDatabases(ctx)
		for _, db := range dbs {
			_ = a.client.DeleteDatabase(ctx, db.Name)
		}
	})
}

type testWriter struct{ t *testing.T }

// syncBuffer collects the agent's logs so tests can search them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAgent_DatabaseLifecycleWithRealClients walks the README's tour against
// real redis-server: create, URL, write with redis-cli, go-redis and
// redis-py, list, show, restart (data kept), delete (process and files gone).
func TestAgent_DatabaseLifecycleWithRealClients(t *testing.T) {
	cfg := writeConfig(t, t.TempDir())
	a := startAgent(t, cfg)
	stopInstances(t, a)
	ctx := ctxT(t)

	db, err := a.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Flavor: "aof"})
	if err != nil {
		t.Fatal(err)
	}
	if db.State != api.StateRunning || db.Version != "7.0" || db.MemoryBytes != 64<<20 || db.Port < cfg.PortMin || db.Port > cfg.PortMax {
		t.Fatalf("created database: %+v", db)
	}
	u, err := a.client.DatabaseURL(ctx, "cache")
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := pu.User.Password()
	if pu.Scheme != "redis" || pu.User.Username() != "default" || len(pw) < 43 || pu.Port() != fmt.Sprint(db.Port) || pu.Path != "/0" {
		t.Fatalf("url %q is not redis://default:PASSWORD@HOST:PORT/0 with a long password", u.URL)
	}

	// redis-cli exactly as the README shows it.
	out, err := exec.CommandContext(ctx, "redis-cli", "-u", u.URL, "--no-auth-warning", "set", "greeting", "hello").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("redis-cli set: %q %v", out, err)
	}
	// Without the password the server refuses.
	out, _ = exec.CommandContext(ctx, "redis-cli", "-p", fmt.Sprint(db.Port), "get", "greeting").CombinedOutput()
	if !strings.Contains(string(out), "NOAUTH") {
		t.Fatalf("unauthenticated GET answered %q, want NOAUTH", out)
	}
	// go-redis from the URL.
	opt, err := redis.ParseURL(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if v, err := rc.Get(ctx, "greeting").Result(); err != nil || v != "hello" {
		t.Fatalf("go-redis get = %q, %v", v, err)
	}
	// redis-py (Debian's python3-redis) from the URL, given on stdin.
	py := exec.CommandContext(ctx, "/usr/bin/python3", "-c",
		"import redis,sys; r=redis.Redis.from_url(sys.stdin.read().strip()); r.set('py','yes'); print(r.get('greeting').decode())")
	py.Stdin = strings.NewReader(u.URL)
	if out, err := py.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("redis-py: %q %v", out, err)
	}

	list, err := a.client.ListDatabases(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "cache" || list[0].State != api.StateRunning {
		t.Fatalf("list = %+v, %v", list, err)
	}
	// The go-redis connection above is counted (with the agent's own).
	if list[0].Clients < 2 {
		t.Errorf("clients = %d with a go-redis client connected, want at least 2", list[0].Clients)
	}
	show, err := a.client.GetDatabase(ctx, "cache")
	if err != nil || show.MemoryUsedBytes <= 0 || show.Instances[0].PID <= 0 || show.Unit != "redis-appliance-db-cache-0.service" {
		t.Fatalf("show = %+v, %v", show, err)
	}
	pid := show.Instances[0].PID

	if _, err := a.client.RestartDatabase(ctx, "cache"); err != nil {
		t.Fatal(err)
	}
	show, _ = a.client.GetDatabase(ctx, "cache")
	if show.Instances[0].PID == pid || show.State != api.StateRunning {
		t.Fatalf("after restart pid %d (was %d), state %s", show.Instances[0].PID, pid, show.State)
	}
	if v, err := rc.Get(ctx, "py").Result(); err != nil || v != "yes" {
		t.Fatalf("after restart, py = %q, %v (aof data lost?)", v, err)
	}

	// The password is in no log, not in the Raft log or snapshots in the
	// clear, and the API socket is 0660.
	if strings.Contains(a.logs.String(), pw) {
		t.Fatal("the agent logged the password")
	}
	err = filepath.WalkDir(cfg.RaftDir(), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		// Look for the password and for its base64 (how JSON writes []byte).
		if err == nil && (bytes.Contains(b, []byte(pw)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(pw))))) {
			t.Errorf("%s holds the password in the clear", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cfg.Socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v %v, want 0660", fi.Mode().Perm(), err)
	}

	dir := filepath.Join(cfg.InstancesDir(), "cache-0")
	if fi, err := os.Stat(filepath.Join(dir, "redis.conf")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("redis.conf: %v %v, want mode 0600", fi, err)
	}
	if err := a.client.DeleteDatabase(ctx, "cache"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("instance directory still there after delete: %v", err)
	}
	if err := exec.CommandContext(ctx, "kill", "-0", fmt.Sprint(show.Instances[0].PID)).Run(); err == nil {
		t.Fatal("redis-server still running after delete")
	}
	if _, err := a.client.GetDatabase(ctx, "cache"); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("show after delete: %v, want 404", err)
	}
}

func isStatus(err error, status int) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == status
}

// TestAgent_BadInputIsRefusedAndChangesNothing sends each kind of bad
// request and checks the error, the status and that nothing was created.
func TestAgent_BadInputIsRefusedAndChangesNothing(t *testing.T) {
	cfg := writeConfig(t, t.TempDir())
	a := startAgent(t, cfg)
	stopInstances(t, a)
	ctx := ctxT(t)
	if _, err := a.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "cache", Memory: "32mb", Flavor: "nordb"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		req    api.CreateDatabaseRequest
		status int
		says   string
	}{
		{"invalid name", api.CreateDatabaseRequest{Name: "Bad_Name", Memory: "32mb"}, 400, "invalid database name"},
		{"name too long", api.CreateDatabaseRequest{Name: strings.Repeat("a", 41), Memory: "32mb"}, 400, "invalid database name"},
		{"duplicate", api.CreateDatabaseRequest{Name: "cache", Memory: "32mb"}, 409, "already exists"},
		{"unknown flavor", api.CreateDatabaseRequest{Name: "x1", Memory: "32mb", Flavor: "lsm"}, 400, "unknown flavor"},
		{"unknown version", api.CreateDatabaseRequest{Name: "x2", Memory: "32mb", Version: "9.9"}, 400, "unknown version"},
		{"version not installed", api.CreateDatabaseRequest{Name: "x3", Memory: "32mb", Version: "8.2"}, 400, "not installed"},
		{"memory unparsable", api.CreateDatabaseRequest{Name: "x4", Memory: "lots"}, 400, "invalid memory"},
		{"memory missing", api.CreateDatabaseRequest{Name: "x5"}, 400, "memory plan is required"},
		{"memory too small", api.CreateDatabaseRequest{Name: "x6", Memory: "1mb"}, 400, "minimum"},
		{"memory too large", api.CreateDatabaseRequest{Name: "x7", Memory: "9tb"}, 422, "free"},
	}
	for _, c := range cases {
		_, err := a.client.CreateDatabase(ctx, c.req)
		var e *api.Error
		if !errors.As(err, &e) || e.Status != c.status || !strings.Contains(e.Message, c.says) {
			t.Errorf("%s: err = %v, want status %d saying %q", c.name, err, c.status, c.says)
		}
	}
	for _, name := range []string{"nope"} {
		if err := a.client.DeleteDatabase(ctx, name); !isStatus(err, 404) {
			t.Errorf("delete %s: %v, want 404", name, err)
		}
		if _, err := a.client.GetDatabase(ctx, name); !isStatus(err, 404) {
			t.Errorf("show %s: %v, want 404", name, err)
		}
		if _, err := a.client.RestartDatabase(ctx, name); !isStatus(err, 404) {
			t.Errorf("restart %s: %v, want 404", name, err)
		}
	}
	dbs, _ := a.client.ListDatabases(ctx)
	if len(dbs) != 1 {
		t.Fatalf("bad input changed the database list: %+v", dbs)
	}
	entries, _ := os.ReadDir(cfg.InstancesDir())
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "cache-0") {
			t.Errorf("stray instance file %s", e.Name())
		}
	}
}

// TestAgent_SecondAgentOnSameDataDirIsRefused checks the data-dir lock.
func TestAgent_SecondAgentOnSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	startAgent(t, cfg)
	second := *cfg
	second.Socket = filepath.Join(dir, "other.sock")
	second.RaftAddr = fmt.Sprintf("127.0.0.1:%d", lab.FreePort(t))
	second.ClusterAddr = fmt.Sprintf("127.0.0.1:%d", lab.FreePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Run(ctx, &second, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Fatalf("second agent: %v, want a refusal naming another agent", err)
	}
}

// TestAgent_ManualBootstrapWaitsForClusterInit: with bootstrap: manual a
// fresh node serves its API but has no cluster until `cluster init`, which
// works once.
func TestAgent_ManualBootstrapWaitsForClusterInit(t *testing.T) {
	cfg := writeConfig(t, t.TempDir())
	cfg.Bootstrap = "manual"
	a := startAgent(t, cfg)
	stopInstances(t, a)
	ctx := ctxT(t)
	st, err := a.client.ClusterStatus(ctx)
	if err != nil || st.Bootstrapped || st.Leader != "" {
		t.Fatalf("before init: %+v %v, want not bootstrapped and no leader", st, err)
	}
	st, err = a.client.ClusterInit(ctx)
	if err != nil || !st.Bootstrapped || st.Leader != "n1" || st.Voters != 1 {
		t.Fatalf("init: %+v %v", st, err)
	}
	if _, err := a.client.ClusterInit(ctx); !isStatus(err, http.StatusConflict) {
		t.Fatalf("second init: %v, want 409", err)
	}
	if _, err := a.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "after-init", Memory: "16mb", Flavor: "nordb"}); err != nil {
		t.Fatal(err)
	}
}

func loadMaterial(cfg *config.Config) (*tls.Config, error) {
	m, err := pki.LoadDir(cfg.PKIDir())
	if err != nil {
		return nil, err
	}
	return pki.ClientConfig(m, ""), nil
}
