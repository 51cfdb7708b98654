package agent

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// dbClient connects to a database's primary through its URL.
func dbClient(t *testing.T, a *testAgent, name string) *redis.Client {
	t.Helper()
	u, err := a.client.DatabaseURL(ctxT(t), name)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// instanceClient connects to one instance of a database directly.
func instanceClient(t *testing.T, a *testAgent, db api.Database, in api.Instance) *redis.Client {
	t.Helper()
	u, err := a.client.DatabaseURL(ctxT(t), db.Name)
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := redis.ParseURL(u.URL)
	opt.Addr = fmt.Sprintf("%s:%d", in.Host, in.Port)
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// failoverClient is go-redis's Sentinel-aware client for database name,
// pointed at every agent's discovery port; it also returns the password.
func failoverClient(t *testing.T, agents []*testAgent, name string, timeout time.Duration) (*redis.Client, string) {
	t.Helper()
	u, err := agents[0].client.DatabaseURL(ctxT(t), name)
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := redis.ParseURL(u.URL)
	var sentinels []string
	for _, a := range agents {
		sentinels = append(sentinels, fmt.Sprintf("127.0.0.1:%d", a.cfg.SentinelPort))
	}
	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: name, SentinelAddrs: sentinels, SentinelPassword: opt.Password, Password: opt.Password,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
	})
	t.Cleanup(func() { fc.Close() })
	return fc, opt.Password
}

// writer writes key w1, w2, ... every period until stopped and records
// the keys its write function says were acknowledged.
type writer struct {
	acked sync.Map
	n     atomic.Int64
	done  chan struct{}
	wg    sync.WaitGroup
}

func startWriter(every time.Duration, write func(key string) bool) *writer {
	w := &writer{done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.done:
				return
			case <-time.After(every):
			}
			if k := fmt.Sprintf("w%d", w.n.Add(1)); write(k) {
				w.acked.Store(k, true)
			}
		}
	}()
	return w
}

func (w *writer) stop() {
	close(w.done)
	w.wg.Wait()
}

func primaryOf(db api.Database) api.Instance {
	for _, in := range db.Instances {
		if in.Role == "primary" {
			return in
		}
	}
	return api.Instance{}
}

// TestReplication_HADatabaseSwitchesOverWithoutLosingAWrite: three nodes,
// a database with two replicas on the other nodes; replicas are read-only
// and report their link; two planned switchovers under a writer lose no
// acknowledged write; bad switchovers are refused and change nothing.
func TestReplication_HADatabaseSwitchesOverWithoutLosingAWrite(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	db, err := agents[1].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "sessions", Memory: "32mb", Flavor: "nordb", Replicas: 2, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, in := range db.Instances {
		nodes[in.Node] = true
	}
	if len(db.Instances) != 3 || len(nodes) != 3 || primaryOf(db).Node != "n1" || db.Epoch != 1 {
		t.Fatalf("HA database: %+v", db)
	}
	pc := dbClient(t, agents[0], "sessions")
	if err := pc.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Replicas sync, refuse writes, and db show reports their links.
	waitUntil(t, "both replicas linked with no lag", func() bool {
		v, err := agents[2].client.GetDatabase(ctx, "sessions")
		if err != nil {
			return false
		}
		for _, in := range v.Instances {
			if in.Role == "replica" && (in.Replication == nil || in.Replication.LinkStatus != "up" || in.Replication.LagBytes != 0) {
				return false
			}
		}
		return true
	})
	for _, in := range db.Instances {
		if in.Role != "replica" {
			continue
		}
		rc := instanceClient(t, agents[0], db, in)
		if err := rc.Set(ctx, "x", "y", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
			t.Errorf("write to replica %s: %v, want READONLY", in.ID, err)
		}
		if got, err := rc.Get(ctx, "before").Result(); err != nil || got != "1" {
			t.Errorf("replica %s GET before = %q %v", in.ID, got, err)
		}
	}

	// Bad switchovers change nothing.
	for _, c := range []struct {
		to     string
		status int
		text   string
	}{
		{"n1", http.StatusConflict, "already on n1"},
		{"n9", http.StatusBadRequest, "no replica on node"},
	} {
		_, err := agents[0].client.FailoverDatabase(ctx, "sessions", api.FailoverRequest{To: c.to})
		if !isStatus(err, c.status) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("failover --to %s: %v, want %d mentioning %q", c.to, err, c.status, c.text)
		}
	}
	if v, _ := agents[0].client.GetDatabase(ctx, "sessions"); v.Epoch != 1 || primaryOf(v).Node != "n1" {
		t.Fatalf("refused switchovers changed the database: epoch %d primary %s", v.Epoch, primaryOf(v).Node)
	}

	// A writer that records every acknowledged write, through go-redis's
	// Sentinel-aware client pointed at every node's discovery port.
	fc, password := failoverClient(t, agents, "sessions", time.Second)
	w := startWriter(2*time.Millisecond, func(k string) bool { return fc.Set(ctx, k, "1", 0).Err() == nil })
	acked, n := &w.acked, &w.n
	for i, to := range []string{"n3", "n2"} {
		res, err := agents[i].client.FailoverDatabase(ctx, "sessions", api.FailoverRequest{To: to})
		if err != nil {
			w.stop()
			t.Fatalf("switchover to %s: %v", to, err)
		}
		if primaryOf(res.Database).Node != to || res.Database.Epoch != uint64(i+2) || res.WritePauseMs <= 0 {
			t.Errorf("after switchover to %s: primary %s epoch %d pause %.1f ms", to, primaryOf(res.Database).Node, res.Database.Epoch, res.WritePauseMs)
		}
		t.Logf("switchover to %s: writes paused %.1f ms", to, res.WritePauseMs)
		// The Sentinel-aware client follows without being recreated.
		p := primaryOf(res.Database)
		waitUntil(t, "the failover client writing to the primary on "+to, func() bool {
			before := n.Load()
			time.Sleep(20 * time.Millisecond)
			direct := instanceClient(t, agents[0], res.Database, p)
			got, err := direct.Get(ctx, fmt.Sprintf("w%d", before+1)).Result()
			return err == nil && got == "1"
		})
		// redis-cli asks any node's discovery port for the new address.
		out, err := exec.CommandContext(ctx, "redis-cli", "-p", strconv.Itoa(agents[2].cfg.SentinelPort), "--no-auth-warning", "-a", password,
			"SENTINEL", "get-master-addr-by-name", "sessions").CombinedOutput()
		if want := fmt.Sprintf("%s\n%d\n", p.Host, p.Port); err != nil || string(out) != want {
			t.Errorf("redis-cli SENTINEL get-master-addr-by-name after switchover to %s: %q %v, want %q", to, out, err, want)
		}
	}
	w.stop()
	final := dbClient(t, agents[0], "sessions")
	var lost []string
	acked.Range(func(k, _ any) bool {
		if err := final.Get(ctx, k.(string)).Err(); err != nil {
			lost = append(lost, k.(string))
		}
		return true
	})
	count := 0
	acked.Range(func(_, _ any) bool { count++; return true })
	if len(lost) > 0 || count == 0 {
		t.Fatalf("%d of %d acknowledged writes lost across two switchovers: %v", len(lost), count, lost[:min(len(lost), 10)])
	}
	// The old primaries follow the new one.
	waitUntil(t, "every replica follows the primary on n2", func() bool {
		v, err := agents[0].client.GetDatabase(ctx, "sessions")
		if err != nil {
			return false
		}
		p := primaryOf(v)
		for _, in := range v.Instances {
			if in.Role == "replica" && (in.Replication == nil || in.Replication.Primary != fmt.Sprintf("%s:%d", p.Host, p.Port) || in.Replication.LinkStatus != "up") {
				return false
			}
		}
		return p.Node == "n2"
	})
	// Draining the primary's node moves the primary away.
	d, err := agents[0].client.DrainNode(ctx, "n2")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Moved) != 1 || d.Moved[0] != "sessions" {
		t.Fatalf("drain n2: moved %v, remaining %v; want sessions moved", d.Moved, d.Remaining)
	}
	if v, _ := agents[0].client.GetDatabase(ctx, "sessions"); primaryOf(v).Node == "n2" || v.Epoch != 4 {
		t.Fatalf("after draining n2: primary on %s at epoch %d", primaryOf(v).Node, v.Epoch)
	}
}

// TestReplication_LinkedReplicaPromotionPersists: a linked replica follows
// its source, is refused writes, blocks the source's deletion, and once
// promoted stays a writable primary across a restart of redis-server and
// of the agent.
func TestReplication_LinkedReplicaPromotionPersists(t *testing.T) {
	a := startAgent(t, writeConfig(t, t.TempDir()))
	stopInstances(t, a)
	ctx := ctxT(t)
	if _, err := a.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "orders", Memory: "32mb", Flavor: "aof"}); err != nil {
		t.Fatal(err)
	}
	src := dbClient(t, a, "orders")
	if err := src.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cp, err := a.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "orders-copy", Follows: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Follows != "orders" || cp.Flavor != "aof" || cp.MemoryBytes != 32<<20 {
		t.Fatalf("linked replica did not take the source's settings: %+v", cp)
	}
	copyClient := dbClient(t, a, "orders-copy")
	waitUntil(t, "the linked replica has the source's data", func() bool {
		got, _ := copyClient.Get(ctx, "k").Result()
		return got == "v1"
	})
	if err := copyClient.Set(ctx, "k", "x", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("write to a linked replica: %v, want READONLY", err)
	}
	if v, _ := a.client.GetDatabase(ctx, "orders"); len(v.LinkedReplicas) != 1 || v.LinkedReplicas[0] != "orders-copy" {
		t.Errorf("source shows linked replicas %v", v.LinkedReplicas)
	}

	// Refusals that change nothing.
	err = a.client.DeleteDatabase(ctx, "orders")
	if !isStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "orders-copy") {
		t.Fatalf("delete of a followed database: %v, want 409 naming orders-copy", err)
	}
	for _, c := range []struct {
		name string
		req  api.CreateDatabaseRequest
		code int
		text string
	}{
		{"missing source", api.CreateDatabaseRequest{Name: "x1", Follows: "nope"}, 404, "does not exist"},
		{"non-primary source", api.CreateDatabaseRequest{Name: "x2", Follows: "orders-copy"}, 409, "is itself a replica of orders"},
		{"loop", api.CreateDatabaseRequest{Name: "orders", Follows: "orders-copy"}, 409, "replication loop"},
		{"replicas beyond the nodes", api.CreateDatabaseRequest{Name: "x3", Memory: "32mb", Replicas: 1}, 409, "needs 2 nodes"},
		{"unreachable external", api.CreateDatabaseRequest{Name: "x4", Memory: "32mb", FromURL: "redis://:pw@127.0.0.1:1"}, 400, "cannot reach 127.0.0.1:1"},
		{"external with a wrong password", api.CreateDatabaseRequest{Name: "x5", Memory: "32mb", FromURL: fmt.Sprintf("redis://:wrong@127.0.0.1:%d", primaryOf(cp).Port)}, 400, "refused the password"},
	} {
		_, err := a.client.CreateDatabase(ctx, c.req)
		if !isStatus(err, c.code) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want %d mentioning %q", c.name, err, c.code, c.text)
		}
		if strings.Contains(fmt.Sprint(err), ":wrong@") {
			t.Errorf("%s: the error repeats the URL with its password", c.name)
		}
	}
	if _, err := a.client.PromoteDatabase(ctx, "orders"); !isStatus(err, http.StatusConflict) {
		t.Errorf("promoting a primary: %v, want 409", err)
	}
	if dbs, _ := a.client.ListDatabases(ctx); len(dbs) != 2 {
		t.Fatalf("refusals left %d databases, want 2", len(dbs))
	}

	// Promote: writable, persisted across restarts of redis-server and of
	// the agent, and the source may now go.
	p, err := a.client.PromoteDatabase(ctx, "orders-copy")
	if err != nil {
		t.Fatal(err)
	}
	if p.Follows != "" || p.PromotedFrom != "orders" || p.Epoch != 2 {
		t.Fatalf("after promote: %+v", p)
	}
	if err := copyClient.Set(ctx, "k", "promoted", 0).Err(); err != nil {
		t.Fatalf("write after promote: %v", err)
	}
	if _, err := a.client.RestartDatabase(ctx, "orders-copy"); err != nil {
		t.Fatal(err)
	}
	assertWritablePrimary(t, ctx, copyClient, "after redis-server restarted")
	a.stop()
	a = startAgent(t, a.cfg)
	stopInstances(t, a) // cleanups run last-first: before this agent stops
	assertWritablePrimary(t, ctx, dbClient(t, a, "orders-copy"), "after the agent restarted")
	if err := a.client.DeleteDatabase(ctx, "orders"); err != nil {
		t.Fatalf("delete the source once nothing follows it: %v", err)
	}
}

func assertWritablePrimary(t *testing.T, ctx context.Context, c *redis.Client, when string) {
	t.Helper()
	waitUntil(t, "a writable primary "+when, func() bool {
		info, err := c.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:master") && c.Set(ctx, "probe", when, 0).Err() == nil
	})
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "promoted" {
		t.Fatalf("%s: k = %q %v, want promoted", when, got, err)
	}
}
