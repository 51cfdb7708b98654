package sentinel

// These tests run real clients (go-redis, redis-py, redis-cli) against the
// server, and the clients' data traffic against real redis-server
// processes, because what matters is that those clients work unchanged.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const dbPW = "db-secret"

// primaryWithReplica starts two redis-servers, b replicating a, and a
// source that says so.
func primaryWithReplica(t *testing.T) (a, b redisProc, src *staticSource) {
	a = startRedis(t, dbPW)
	b = startRedis(t, dbPW, "--replicaof", a.addr.IP, strconv.Itoa(a.addr.Port))
	src = &staticSource{masters: []Master{{
		Name: "cache", Addr: a.addr, Epoch: 1, Password: dbPW,
		Replicas: []Replica{
			{Addr: b.addr, LinkUp: true},
			{Addr: Addr{"127.0.0.1", 1}, Down: true}, // clients must skip it
		},
	}}}
	return a, b, src
}

// switchover makes b the primary in the servers and in the source, and
// tells srv. With demote, a becomes b's replica, as in a real switchover;
// without, a stays a writable primary, as an old primary that has not been
// fenced yet would be.
func switchover(t *testing.T, ctx context.Context, srv *Server, src *staticSource, a, b redisProc, demote bool) {
	t.Helper()
	if err := b.client(t, dbPW).ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatalf("promote %s: %v", b.hostPort(), err)
	}
	if demote {
		if err := a.client(t, dbPW).ReplicaOf(ctx, b.addr.IP, strconv.Itoa(b.addr.Port)).Err(); err != nil {
			t.Fatalf("demote %s: %v", a.hostPort(), err)
		}
	}
	src.set(Master{Name: "cache", Addr: b.addr, Epoch: 2, Password: dbPW, Replicas: []Replica{{Addr: a.addr, LinkUp: demote}}})
	srv.Changed()
}

// failoverClientFollows runs a go-redis failover client through a
// switchover and requires that the same client object, not a new one,
// ends up writing to the new primary within 10 s.
func failoverClientFollows(t *testing.T, demote bool) {
	a, b, src := primaryWithReplica(t)
	srv, addr := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       "cache",
		SentinelAddrs:    []string{addr},
		SentinelPassword: dbPW,
		Password:         dbPW,
	})
	t.Cleanup(func() { _ = rdb.Close() })

	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatalf("SET through the failover client: %v", err)
	}
	if got, err := a.client(t, dbPW).Get(ctx, "k").Result(); err != nil || got != "before" {
		t.Fatalf("the write did not land on the primary %s: %q, %v", a.hostPort(), got, err)
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "before" {
		t.Fatalf("GET through the failover client: %q, %v", got, err)
	}

	switchover(t, ctx, srv, src, a, b, demote)

	direct := b.client(t, dbPW)
	i := 0
	eventually(t, 10*time.Second, "a write through the same client lands on the new primary "+b.hostPort(), func() error {
		i++
		want := fmt.Sprintf("after-%d", i)
		if err := rdb.Set(ctx, "k2", want, 0).Err(); err != nil {
			return err
		}
		got, err := direct.Get(ctx, "k2").Result()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("the new primary has no k2: the write went elsewhere")
		}
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("the new primary holds %q, not %q", got, want)
		}
		return nil
	})
}

// The old primary stays writable, so the client's pooled connections to it
// keep working: only the "+switch-master" message can move the client.
func TestGoRedisFailoverClient_SwitchMasterMovesAnOpenClient(t *testing.T) {
	failoverClientFollows(t, false)
}

// A real switchover: the old primary becomes a replica of the new one.
// The client moves on the message, or else on the old primary's READONLY
// answer, after which go-redis asks the server again; either way it must
// end up on the new primary.
func TestGoRedisFailoverClient_FollowsARealSwitchover(t *testing.T) {
	failoverClientFollows(t, true)
}

// go-redis opens with HELLO 3 and falls back to AUTH on NOPROTO; with
// Protocol 2 it sends HELLO 2 AUTH. Both must leave a working connection,
// and the Sentinel replies must parse.
func TestGoRedisSentinelClient_ConnectsWithEitherHello(t *testing.T) {
	_, addr := startServer(t, twoDatabases())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, proto := range []int{3, 2} {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: cachePW, Protocol: proto})
		t.Cleanup(func() { _ = sc.Close() })
		got, err := sc.GetMasterAddrByName(ctx, "cache").Result()
		if err != nil || !reflect.DeepEqual(got, []string{"10.0.0.1", "7001"}) {
			t.Errorf("protocol %d: get-master-addr-by-name: %q, %v", proto, got, err)
		}
		if _, err := sc.GetMasterAddrByName(ctx, "sessions").Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("protocol %d: another database's address: %v, want redis.Nil", proto, err)
		}
		master, err := sc.Master(ctx, "cache").Result()
		if err != nil || master["port"] != "7001" || master["flags"] != "master" {
			t.Errorf("protocol %d: SENTINEL master: %v, %v", proto, master, err)
		}
		replicas, err := sc.Replicas(ctx, "cache").Result()
		if err != nil || len(replicas) != 2 || replicas[0]["ip"] != "10.0.0.2" {
			t.Errorf("protocol %d: SENTINEL replicas: %v, %v", proto, replicas, err)
		}
		sentinels, err := sc.Sentinels(ctx, "cache").Result()
		if err != nil || len(sentinels) != 2 || sentinels[0]["port"] != "26379" {
			t.Errorf("protocol %d: SENTINEL sentinels: %v, %v", proto, sentinels, err)
		}
		if err := sc.Ping(ctx).Err(); err != nil {
			t.Errorf("protocol %d: PING: %v", proto, err)
		}
	}
	bad := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: "wrong"})
	t.Cleanup(func() { _ = bad.Close() })
	if err := bad.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("wrong password: %v, want WRONGPASS", err)
	}
}

// A go-redis subscriber hears "+switch-master" with the exact payload for
// its own database, and nothing about another database.
func TestGoRedisSubscriber_HearsOnlyItsOwnDatabase(t *testing.T) {
	src := twoDatabases()
	srv, addr := startServer(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	subscribe := func(password string) *redis.PubSub {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: password})
		t.Cleanup(func() { _ = sc.Close() })
		ps := sc.Subscribe(ctx, "+switch-master")
		t.Cleanup(func() { _ = ps.Close() })
		// Wait for the confirmation, so that the subscription exists
		// before anything is published.
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		return ps
	}
	cache, sessions := subscribe(cachePW), subscribe(sessionsPW)

	m := src.Masters()[0]
	m.Addr = Addr{"10.0.0.2", 7001}
	src.set(m)
	srv.Changed()
	msg, err := cache.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Channel != "+switch-master" || msg.Payload != "cache 10.0.0.1 7001 10.0.0.2 7001" {
		t.Errorf("cache subscriber got %q on %q", msg.Payload, msg.Channel)
	}

	// The sessions subscriber's first message must be about sessions.
	s := src.Masters()[1]
	s.Addr = Addr{"10.0.0.3", 7002}
	src.set(s)
	srv.Changed()
	msg, err = sessions.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Payload != "sessions 10.0.0.2 7002 10.0.0.3 7002" {
		t.Errorf("sessions subscriber got %q first: it heard about another database", msg.Payload)
	}
}

// pythonWithRedis finds a Python that imports redis-py: Debian's
// python3-redis is installed for /usr/bin/python3, which may not be the
// python3 first on PATH.
func pythonWithRedis(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	tried := []string{}
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		tried = append(tried, p)
		if exec.Command(p, "-c", "import redis.sentinel").Run() == nil {
			return p
		}
	}
	if len(tried) == 0 {
		t.Fatal("python3 not found; install it with: apt-get install python3 python3-redis")
	}
	t.Fatalf("redis-py is not importable from %s; install it with: apt-get install python3-redis", strings.Join(tried, ", "))
	return ""
}

// redisPyScript uses redis-py's Sentinel as its documentation shows, and
// prints what it found as JSON.
const redisPyScript = `
import json, sys
from redis.sentinel import Sentinel
port, pw, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = Sentinel([("127.0.0.1", port)], sentinel_kwargs={"password": pw}, password=pw, socket_timeout=5)
out = {"master": list(s.discover_master(name)), "slaves": [list(x) for x in s.discover_slaves(name)]}
m = s.master_for(name, socket_timeout=5)
m.set("py-key", "py-value")
out["get"] = m.get("py-key").decode()
bad = Sentinel([("127.0.0.1", port)], sentinel_kwargs={"password": "wrong"}, password=pw, socket_timeout=5)
try:
    bad.discover_master(name)
    out["wrong_password"] = "found a master"
except Exception as e:
    out["wrong_password"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
`

func TestRedisPy_DiscoversAndWrites(t *testing.T) {
	py := pythonWithRedis(t)
	a, b, src := primaryWithReplica(t)
	_, addr := startServer(t, src)
	port := addr[strings.LastIndex(addr, ":")+1:]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	out, err := exec.CommandContext(ctx, py, "-c", redisPyScript, port, dbPW, "cache").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-py: %v\n%s", err, out)
	}
	var got struct {
		Master        []any   `json:"master"`
		Slaves        [][]any `json:"slaves"`
		Get           string  `json:"get"`
		WrongPassword string  `json:"wrong_password"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("redis-py printed %q: %v", out, err)
	}
	if want := []any{"127.0.0.1", float64(a.addr.Port)}; !reflect.DeepEqual(got.Master, want) {
		t.Errorf("discover_master: %v, want %v", got.Master, want)
	}
	// The down replica is filtered out by redis-py because of its s_down flag.
	if want := [][]any{{"127.0.0.1", float64(b.addr.Port)}}; !reflect.DeepEqual(got.Slaves, want) {
		t.Errorf("discover_slaves: %v, want %v", got.Slaves, want)
	}
	if got.Get != "py-value" {
		t.Errorf("master_for get: %q", got.Get)
	}
	if v, err := a.client(t, dbPW).Get(ctx, "py-key").Result(); err != nil || v != "py-value" {
		t.Errorf("redis-py's write is not on the primary: %q, %v", v, err)
	}
	// redis-py 4.3 maps WRONGPASS to no exception class of its own, so, as
	// against a real Sentinel, it surfaces as a ResponseError.
	if !strings.Contains(got.WrongPassword, "WRONGPASS") {
		t.Errorf("with a wrong sentinel password redis-py got %q, want the WRONGPASS error", got.WrongPassword)
	}
}

func TestRedisCli_GetMasterAddrByName(t *testing.T) {
	cli := requireTool(t, "redis-cli", "redis-tools")
	_, addr := startServer(t, twoDatabases())
	port := addr[strings.LastIndex(addr, ":")+1:]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(password string) (string, error) {
		out, err := exec.CommandContext(ctx, cli, "-h", "127.0.0.1", "-p", port, "-a", password, "--no-auth-warning",
			"SENTINEL", "get-master-addr-by-name", "cache").CombinedOutput()
		return string(out), err
	}
	out, err := run(cachePW)
	if err != nil || out != "10.0.0.1\n7001\n" {
		t.Errorf("redis-cli with the password: %q, %v", out, err)
	}
	// redis-cli 7.0 reports the refused AUTH, still sends the command and
	// prints its NOAUTH error; it exits 0 all the same, as against a real
	// Sentinel, so the output is what tells.
	out, _ = run("wrong")
	if strings.Contains(out, "7001") || !strings.Contains(out, "AUTH failed: WRONGPASS") || !strings.Contains(out, "NOAUTH") {
		t.Errorf("redis-cli with a wrong password: %q, want AUTH failed: WRONGPASS and NOAUTH, no address", out)
	}
}

// The field lists of SENTINEL MASTER and SENTINEL REPLICAS match those of
// a real redis-sentinel watching a real primary and replica.
func TestFields_MatchARealSentinel(t *testing.T) {
	bin := requireTool(t, "redis-sentinel", "redis-sentinel")
	a, _, _ := primaryWithReplica(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\nsentinel monitor cache %s %d 1\nsentinel auth-pass cache %s\n",
		port, dir, filepath.Join(dir, "sentinel.log"), a.addr.IP, a.addr.Port, dbPW)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = sc.Close() })
	eventually(t, 30*time.Second, "the real sentinel sees the replica", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		replicas, err := sc.Replicas(ctx, "cache").Result()
		if err != nil {
			return err
		}
		if len(replicas) != 1 {
			return fmt.Errorf("%d replicas", len(replicas))
		}
		return nil
	})
	c := dialRaw(t, addr)
	real := parseFlat(t, "*1\r\n"+c.do("SENTINEL", "master", "cache"))[0]
	if got, want := strings.Join(keysOf(real), " "), strings.Join(masterKeys, " "); got != want {
		t.Errorf("a real Sentinel's master fields:\n%s\nours:\n%s", got, want)
	}
	replica := parseFlat(t, c.do("SENTINEL", "replicas", "cache"))[0]
	if got, want := strings.Join(keysOf(replica), " "), strings.Join(replicaKeys, " "); got != want {
		t.Errorf("a real Sentinel's replica fields:\n%s\nours:\n%s", got, want)
	}
}
