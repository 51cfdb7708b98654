package redisconf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	agentconn "github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

const redisServer = "/usr/bin/redis-server"

// instance is a real redis-server started by a test from a rendered file.
type instance struct {
	t       *testing.T
	cmd     *exec.Cmd
	done    chan struct{}
	port    int
	logPath string
}

// startRedis renders p, writes it with WriteFile and starts redis-server on
// it, with the file's path as its only argument: the password travels in
// the file, never in argv. It waits until the instance answers an
// authenticated PING and stops it when the test ends.
func startRedis(t *testing.T, p Params) *instance {
	t.Helper()
	if _, err := os.Stat(redisServer); err != nil {
		t.Fatalf("%s not installed (%v): apt-get install redis-server", redisServer, err)
	}
	conf, err := Render(p)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	confDir := t.TempDir()
	confPath := filepath.Join(confDir, "redis.conf")
	if _, err := WriteFile(confPath, conf, -1, -1); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	logPath := filepath.Join(confDir, "redis.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	cmd := exec.Command(redisServer, confPath)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, confDir
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", redisServer, err)
	}
	in := &instance{t: t, cmd: cmd, done: make(chan struct{}), port: p.Port, logPath: logPath}
	go func() { cmd.Wait(); close(in.done) }()
	t.Cleanup(in.stop)

	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
	for _, secret := range []string{testPassword, testAgentSecret, testReplSecret, p.MasterAuth} {
		if secret != "" && strings.Contains(string(cmdline), secret) {
			t.Errorf("a secret in redis-server's argv: %q", cmdline)
		}
	}

	c := agentClient(t, p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return in
		}
		select {
		case <-in.done:
			t.Fatalf("redis-server exited at start: %v\n%s", cmd.ProcessState, in.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not answer PING within 10s: %v\n%s", err, in.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) log() string {
	b, _ := os.ReadFile(in.logPath)
	return string(b)
}

// stop sends SIGTERM to the PID this test started (a clean shutdown, which
// saves for persistent flavors), and SIGKILL if it has not exited in 15s.
func (in *instance) stop() {
	select {
	case <-in.done:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		in.t.Errorf("redis-server pid %d ignored SIGTERM for 15s; killing it", in.cmd.Process.Pid)
		_ = in.cmd.Process.Kill()
		<-in.done
	}
}

// agentClient connects as the agent's user, or as the default user for
// a file from before access control (no agent user).
func agentClient(t *testing.T, p Params) *redis.Client {
	if p.TLS != nil && p.TLS.Only {
		return tlsClient(t, p.TLS.Port, p.TLS.CAFile, "127.0.0.1", access.AgentUser, testAgentSecret, 0)
	}
	for _, u := range p.Users {
		if u.Name == access.AgentUser {
			return userClient(t, p.Port, access.AgentUser, testAgentSecret)
		}
	}
	return client(t, p.Port, testPassword)
}

func client(t *testing.T, port int, password string) *redis.Client {
	return userClient(t, port, "", password)
}

func userClient(t *testing.T, port int, user, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:            fmt.Sprintf("127.0.0.1:%d", port),
		Username:        user,
		Password:        password,
		DialTimeout:     time.Second,
		ReadTimeout:     2 * time.Second,
		MaxRetries:      -1, // report the first answer, do not retry
		DisableIdentity: true,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestRender_AcceptedByRealRedis proves, for each flavor, that redis-server
// 7.0 starts from the rendered file, requires the password (one full of
// quotes, backslashes, a newline, a NUL and UTF-8 for aof), runs with the
// settings rendered, and persists (or not) across a restart as the flavor
// promises.
func TestRender_AcceptedByRealRedis(t *testing.T) {
	nasty := "p\"a\\ss w#rd\n\x00\xc3\xa9 " + testPassword
	tests := []struct {
		flavor   raftstate.Flavor
		password string
		policy   string
		want     map[string]string // CONFIG GET answers
		aofDir   bool              // appendonlydir/ written
		dump     bool              // dump.rdb written at shutdown
	}{
		{raftstate.FlavorAOF, nasty, "",
			map[string]string{"appendonly": "yes", "appendfsync": "everysec", "save": "900 1 300 10 60 10000", "maxmemory-policy": "noeviction"},
			true, true},
		{raftstate.FlavorRDB, testPassword, "allkeys-lru",
			map[string]string{"appendonly": "no", "save": "900 1 300 10 60 10000", "maxmemory-policy": "allkeys-lru"},
			false, true},
		{raftstate.FlavorNoRDB, testPassword, "volatile-ttl",
			map[string]string{"appendonly": "no", "save": "", "maxmemory-policy": "volatile-ttl"},
			false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.flavor), func(t *testing.T) {
			dir := t.TempDir()
			p := Params{
				Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, tt.password, false),
				MasterUser: access.ReplicationUser, MasterAuth: testReplSecret,
				MaxMemory: 64 << 20, MaxMemoryPolicy: tt.policy, Dir: dir, Flavor: tt.flavor,
			}
			in := startRedis(t, p)

			err := client(t, p.Port, "").Ping(ctx(t)).Err()
			if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
				t.Errorf("PING without password = %v, want NOAUTH", err)
			}
			err = client(t, p.Port, testPassword+"-wrong").Ping(ctx(t)).Err()
			if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Errorf("PING with a wrong password = %v, want WRONGPASS", err)
			}

			app := client(t, p.Port, tt.password)
			if err := app.ConfigGet(ctx(t), "maxmemory").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("CONFIG GET as the default user = %v, want NOPERM", err)
			}
			c := agentClient(t, p)
			want := map[string]string{
				"maxmemory": "67108864", "port": fmt.Sprint(p.Port), "bind": "127.0.0.1",
				"protected-mode": "yes", "dir": dir, "dbfilename": "dump.rdb",
				"appenddirname": "appendonlydir", "tcp-keepalive": "60", "daemonize": "no",
				"supervised": "systemd", "logfile": "", "pidfile": "", "sanitize-dump-payload": "clients",
			}
			for k, v := range tt.want {
				want[k] = v
			}
			for key, v := range want {
				got, err := c.ConfigGet(ctx(t), key).Result()
				if err != nil {
					t.Errorf("CONFIG GET %s: %v", key, err)
					continue
				}
				if got[key] != v {
					t.Errorf("CONFIG GET %s = %q, want %q", key, got[key], v)
				}
			}

			if err := app.Set(ctx(t), "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			in.stop()
			if _, err := os.Stat(filepath.Join(dir, "appendonlydir")); (err == nil) != tt.aofDir {
				t.Errorf("appendonlydir exists = %v, want %v", err == nil, tt.aofDir)
			}
			if _, err := os.Stat(filepath.Join(dir, "dump.rdb")); (err == nil) != tt.dump {
				t.Errorf("dump.rdb exists = %v, want %v", err == nil, tt.dump)
			}

			// Start again from the same file: persistent flavors kept the key.
			startRedis(t, p)
			got, err := client(t, p.Port, tt.password).Get(ctx(t), "k").Result()
			switch {
			case tt.flavor == raftstate.FlavorNoRDB && !errors.Is(err, redis.Nil):
				t.Errorf("nordb after restart: GET k = %q, %v; want no key", got, err)
			case tt.flavor != raftstate.FlavorNoRDB && (err != nil || got != "v"):
				t.Errorf("%s after restart: GET k = %q, %v; want v", tt.flavor, got, err)
			}
		})
	}
}

// TestRender_ReplicaStartsAsReplica proves an instance rendered with
// ReplicaOf starts as a read-only replica of that primary, authenticated
// as the replication user (which can do nothing else), and follows its
// writes: a returning old primary rendered this way never takes a write.
func TestRender_ReplicaStartsAsReplica(t *testing.T) {
	primary := Params{Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, testPassword, false),
		MasterUser: access.ReplicationUser, MasterAuth: testReplSecret,
		MaxMemory: 32 << 20, Dir: t.TempDir(), Flavor: raftstate.FlavorRDB}
	startRedis(t, primary)
	replica := primary
	replica.Port = lab.FreePort(t)
	replica.Dir = t.TempDir()
	replica.ReplicaOf = fmt.Sprintf("127.0.0.1:%d", primary.Port)
	startRedis(t, replica)

	pc := client(t, primary.Port, testPassword)
	rc := client(t, replica.Port, testPassword)
	if err := pc.Set(ctx(t), "k", "from-primary", 0).Err(); err != nil {
		t.Fatalf("SET on primary: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, _ := rc.Info(ctx(t), "replication").Result()
		got, _ := rc.Get(ctx(t), "k").Result()
		if strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") && got == "from-primary" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not sync within 15s; GET k = %q; INFO replication:\n%s", got, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := rc.Set(ctx(t), "k", "on-replica", 0).Err()
	if err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Errorf("SET on replica = %v, want READONLY", err)
	}
	// Another node's probe: a named connection of the replication user.
	probe := agentconn.Connect(fmt.Sprintf("127.0.0.1:%d", primary.Port), agentconn.Credential{User: access.ReplicationUser, Password: testReplSecret}, agentconn.NameProbe, time.Second)
	defer probe.Close()
	if err := probe.Ping(ctx(t)).Err(); err != nil {
		t.Errorf("a probe's PING as the replication user: %v", err)
	}
	repl := userClient(t, primary.Port, access.ReplicationUser, testReplSecret)
	for _, cmd := range [][]any{{"GET", "k"}, {"SET", "k", "x"}, {"CONFIG", "GET", "maxmemory"}, {"REPLICAOF", "NO", "ONE"}, {"ACL", "LIST"}} {
		if err := repl.Do(ctx(t), cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%v as the replication user = %v, want NOPERM", cmd, err)
		}
	}
}

func TestRender_ReadOnlyRefusesWritesButServesReads(t *testing.T) {
	app := raftstate.User{Name: "app", Role: raftstate.UserWrite, Password: raftstate.Sealed("app-" + testPassword)}
	p := Params{Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, testPassword, true, app),
		MaxMemory: 32 << 20, Dir: t.TempDir(), Flavor: raftstate.FlavorNoRDB}
	startRedis(t, p)
	if err := userClient(t, p.Port, "app", "app-"+testPassword).Set(ctx(t), "k", "v", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET as an application user on a read-only database = %v, want NOPERM", err)
	}
	c := client(t, p.Port, testPassword)
	err := c.Set(ctx(t), "k", "v", 0).Err()
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("SET on a read-only database = %v, want NOPERM", err)
	}
	if err := c.Get(ctx(t), "k").Err(); err != nil && err.Error() != "redis: nil" {
		t.Fatalf("GET on a read-only database: %v", err)
	}
	if err := c.Do(ctx(t), "ACL", "SETUSER", "default", "+@all").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("the default user lifting read-only itself = %v, want NOPERM", err)
	}
	// Promotion lifts it at run time, as the reconciler does: over the
	// agent's connection, with the users of a writable database.
	agent := agentClient(t, p)
	for _, u := range testUsers(t, testPassword, false) {
		if u.Name != "default" {
			continue
		}
		if err := agent.Do(ctx(t), append([]any{"ACL", "SETUSER", u.Name}, toAny(u.Args)...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET after the promotion's ACL SETUSER default: %v", err)
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
