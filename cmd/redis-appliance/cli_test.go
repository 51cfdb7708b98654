package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// These tests run the real binary: an agent process (child-process
// supervisor, real Raft, real redis-server) and the CLI against it.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ra-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "redis-appliance")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type agentProc struct {
	t      *testing.T
	config string
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

func newAgentProc(t *testing.T) *agentProc {
	dir := t.TempDir()
	base := lab.FreePort(t)
	a := &agentProc{t: t, config: filepath.Join(dir, "config.yaml"), socket: filepath.Join(dir, "api.sock")}
	cfg := fmt.Sprintf("node_name: n1\ndata_dir: %s\nsocket: %s\nraft_addr: 127.0.0.1:%d\ncluster_addr: 127.0.0.1:%d\nport_range: %d-%d\nsentinel_port: 0\ninstance_user: \"\"\nsupervisor: process\n",
		filepath.Join(dir, "data"), a.socket, lab.FreePort(t), lab.FreePort(t), base, base+10)
	if err := os.WriteFile(a.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Delete what the test created so no redis-server outlives it.
		if a.cmd == nil {
			a.start()
		}
		out, _, _ := a.cli("db", "list", "-o", "json")
		var dbs []api.Database
		_ = json.Unmarshal([]byte(out), &dbs)
		for _, db := range dbs {
			a.cli("db", "delete", db.Name)
		}
		a.stop(syscall.SIGTERM)
	})
	return a
}

func (a *agentProc) start() {
	a.t.Helper()
	a.log = &bytes.Buffer{}
	a.cmd = exec.Command(binary, "agent", "--config", a.config)
	a.cmd.Stderr = a.log
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := a.cli("db", "list"); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.t.Fatalf("agent not answering within 30s; log:\n%s", a.log)
}

func (a *agentProc) stop(sig syscall.Signal) {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-done
	}
	a.cmd = nil
}

// cli runs the CLI against this agent and returns stdout, stderr and error.
func (a *agentProc) cli(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--socket", a.socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (a *agentProc) mustCLI(args ...string) string {
	a.t.Helper()
	out, errs, err := a.cli(args...)
	if err != nil {
		a.t.Fatalf("redis-appliance %s: %v\nstderr: %s\nagent log:\n%s", strings.Join(args, " "), err, errs, a.log)
	}
	return out
}

func (a *agentProc) show(name string) api.Database {
	a.t.Helper()
	var db api.Database
	if err := json.Unmarshal([]byte(a.mustCLI("db", "show", name, "-o", "json")), &db); err != nil {
		a.t.Fatal(err)
	}
	return db
}

func redisCLI(t *testing.T, url string, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-u", url, "--no-auth-warning"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestCLI_StateSurvivesAgentKill9AndRestart: a database created through the
// CLI is still listed, on the same port, served by the same redis-server and
// with its data after the agent is killed with SIGKILL and after a clean
// restart.
func TestCLI_StateSurvivesAgentKill9AndRestart(t *testing.T) {
	a := newAgentProc(t)
	a.start()
	a.mustCLI("db", "create", "cache", "--memory", "32mb", "--flavor", "aof")
	url := strings.TrimSpace(a.mustCLI("db", "url", "cache"))
	var u api.URL
	if err := json.Unmarshal([]byte(a.mustCLI("db", "url", "cache", "-o", "json")), &u); err != nil || u.URL != url {
		t.Fatalf("db url -o json = %+v %v, want the same URL as plain output", u, err)
	}
	if redisCLI(t, url, "set", "k", "v") != "OK" {
		t.Fatal("set failed")
	}
	before := a.show("cache")

	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		a.stop(sig)
		a.start()
		after := a.show("cache")
		if after.Port != before.Port || after.State != api.StateRunning || after.Instances[0].PID != before.Instances[0].PID {
			t.Fatalf("after %v: %+v, before %+v (want same port, running, same redis-server)", sig, after, before)
		}
		if got := redisCLI(t, url, "get", "k"); got != "v" {
			t.Fatalf("after %v: get k = %q", sig, got)
		}
	}
	if !strings.Contains(a.mustCLI("db", "list"), "cache") {
		t.Fatal("db list lost the database")
	}
}

// TestCLI_ErrorsGoToStderrWithNonZeroExit checks what a user sees on bad
// input and that -o json is machine-readable.
func TestCLI_ErrorsGoToStderrWithNonZeroExit(t *testing.T) {
	a := newAgentProc(t)
	a.start()
	cases := [][]string{
		{"db", "create", "cache", "--memory", "12zb"},
		{"db", "create", "Cache!", "--memory", "32mb"},
		{"db", "create", "cache", "--memory", "32mb", "--flavor", "btree"},
		{"db", "show", "missing"},
		{"db", "delete", "missing"},
		{"db", "list", "-o", "yaml"},
		{"db", "create"},
	}
	for _, c := range cases {
		out, errs, err := a.cli(c...)
		if err == nil || !strings.HasPrefix(errs, "error: ") || out != "" {
			t.Errorf("%v: err=%v stdout=%q stderr=%q; want non-zero exit, error on stderr only", c, err, out, errs)
		}
	}
	// --dry-run asks the agent the same checks and creates nothing.
	for _, c := range cases[:3] {
		if _, errs, err := a.cli(append(c, "--dry-run")...); err == nil || !strings.HasPrefix(errs, "error: ") {
			t.Errorf("%v --dry-run: err=%v stderr=%q; want the create's refusal", c, err, errs)
		}
	}
	if out := a.mustCLI("db", "create", "cache", "--memory", "32mb", "--dry-run"); !strings.Contains(out, "would create cache: version 7.0, flavor aof, plan 32 MiB") || !strings.Contains(out, "cache-0") {
		t.Errorf("db create --dry-run said %q", out)
	}
	var plan api.CreatePlan
	if err := json.Unmarshal([]byte(a.mustCLI("db", "create", "cache", "--memory", "32mb", "--dry-run", "-o", "json")), &plan); err != nil ||
		plan.Database.Instances[0].Node != "n1" || plan.NeedMemory <= 32<<20 {
		t.Errorf("db create --dry-run -o json: %+v %v", plan, err)
	}
	var dbs []api.Database
	if err := json.Unmarshal([]byte(a.mustCLI("db", "list", "-o", "json")), &dbs); err != nil || len(dbs) != 0 {
		t.Fatalf("db list -o json = %v %v, want an empty JSON list (nothing created by the dry runs)", dbs, err)
	}
	var vs []api.Version
	if err := json.Unmarshal([]byte(a.mustCLI("versions", "-o", "json")), &vs); err != nil || len(vs) < 5 {
		t.Fatalf("versions -o json: %v %v", vs, err)
	}
	var n api.Node
	if err := json.Unmarshal([]byte(a.mustCLI("node", "show", "-o", "json")), &n); err != nil || n.Hardware.MemTotal <= 0 || n.Hardware.CPUs <= 0 {
		t.Fatalf("node show -o json: %+v %v", n, err)
	}
	// With no agent, the CLI says how to start one.
	_, errs, err := (&agentProc{t: t, socket: filepath.Join(t.TempDir(), "none.sock")}).cli("db", "list")
	if err == nil || !strings.Contains(errs, "no agent is listening") {
		t.Fatalf("no agent: %v %q", err, errs)
	}
}

// TestCLI_DatabaseUsers runs db user create, list, rotate, delete, db url
// --user and db rotate-password through the real binary: a password is
// printed once (create, rotate), never by list or url --user, and bad
// input exits non-zero with the error on stderr and nothing created.
func TestCLI_DatabaseUsers(t *testing.T) {
	a := newAgentProc(t)
	a.start()
	a.mustCLI("db", "create", "shop", "--memory", "32mb", "--flavor", "nordb")
	for _, c := range [][]string{
		{"db", "user", "create", "shop", "app"},
		{"db", "user", "create", "shop", "app", "--role", "root"},
		{"db", "user", "create", "shop", "my app", "--role", "read"},
		{"db", "user", "create", "shop", "app", "--role", "read", "--keys", "a b"},
		{"db", "user", "create", "shop", "default", "--role", "admin"},
		{"db", "user", "create", "shop"},
		{"db", "user", "rotate", "shop", "ghost"},
		{"db", "user", "delete", "shop", "ghost"},
		{"db", "url", "shop", "--user", "ghost"},
		{"db", "rotate-password", "shop", "--grace", "forever"},
	} {
		out, errs, err := a.cli(c...)
		if err == nil || !strings.HasPrefix(errs, "error: ") || out != "" {
			t.Errorf("%v: err=%v stdout=%q stderr=%q; want non-zero exit, error on stderr only", c, err, out, errs)
		}
	}
	var us []api.DatabaseUser
	if err := json.Unmarshal([]byte(a.mustCLI("db", "user", "list", "shop", "-o", "json")), &us); err != nil || len(us) != 0 {
		t.Fatalf("users after bad input: %+v %v", us, err)
	}
	var cr api.Credentials
	if err := json.Unmarshal([]byte(a.mustCLI("db", "user", "create", "shop", "app", "--role", "write", "--keys", "app:*", "-o", "json")), &cr); err != nil || cr.Password == "" {
		t.Fatalf("db user create -o json: %+v %v", cr, err)
	}
	list := a.mustCLI("db", "user", "list", "shop")
	if !strings.Contains(list, "app") || !strings.Contains(list, "write") || !strings.Contains(list, "app:*") || strings.Contains(list, cr.Password) {
		t.Errorf("db user list:\n%s", list)
	}
	if js := a.mustCLI("db", "user", "list", "shop", "-o", "json"); strings.Contains(js, cr.Password) || strings.Contains(js, "password\"") {
		t.Errorf("db user list -o json shows a password: %s", js)
	}
	if u := a.mustCLI("db", "url", "shop", "--user", "app"); strings.Contains(u, cr.Password) || !strings.HasPrefix(u, "redis://app@") {
		t.Errorf("db url --user = %q, want the URL without the password", u)
	}
	if show := a.mustCLI("db", "show", "shop"); strings.Contains(show, cr.Password) || !strings.Contains(show, "default (admin) and 1 more") {
		t.Errorf("db show:\n%s", show)
	}
	rot := a.mustCLI("db", "user", "rotate", "shop", "app", "--grace", "10m")
	if !strings.Contains(rot, "Password:") || strings.Contains(rot, cr.Password) || !strings.Contains(rot, "Old password:") {
		t.Errorf("db user rotate:\n%s", rot)
	}
	if out := a.mustCLI("db", "rotate-password", "shop"); !strings.Contains(out, "User:") || !strings.Contains(out, "default") {
		t.Errorf("db rotate-password:\n%s", out)
	}
	a.mustCLI("db", "user", "delete", "shop", "app")
	if list := a.mustCLI("db", "user", "list", "shop"); strings.Contains(list, "app") {
		t.Errorf("after delete:\n%s", list)
	}
}
