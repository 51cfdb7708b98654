package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/failover"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/lab"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// rig is a controller of node n1 over a real one-node cluster (Raft over
// mutual TLS on loopback, its own CA and cluster key), this machine's
// redis-server binaries and hardware, and a reconciler that is never run:
// these tests are about deciding, not running.
type rig struct {
	ctl   *Controller
	cl    *cluster.Manager
	live  *health.View
	store *raftstate.Store
	// rec is the node's reconciler, run only by tests that need
	// instances (runReconciler); clock is its clock and the controller's.
	rec   *reconcile.Reconciler
	clock *testClock
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	base := lab.FreePort(t)
	yaml := fmt.Sprintf("node_name: n1\ndata_dir: %s\nsocket: %s\nraft_addr: 127.0.0.1:%d\ncluster_addr: 127.0.0.1:%d\nport_range: %d-%d\ninstance_user: \"\"\nsupervisor: process\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "api.sock"), lab.FreePort(t), lab.FreePort(t), base, base+20)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AgentVersion = "test"
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("RA_DEBUG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	local := versions.NewLocal(cfg.NodeName, cfg.RedisPaths, log)
	if len(local.Refresh(context.Background())) == 0 {
		t.Fatal("no redis-server on this machine: apt-get install redis-server")
	}
	cl, err := cluster.New(cfg, local, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	if err := cl.Store().WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	sup, err := systemd.NewProcess(filepath.Join(dir, "supervisor"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Close() })
	clock := &testClock{now: time.Now()}
	rec := reconcile.New(reconcile.Config{Node: cfg.NodeName, InstancesDir: cfg.InstancesDir(), Bind: cfg.BindAddrs(), UID: -1, GID: -1, Binary: local.Binary, Now: clock.Now}, cl, sup, cl, log)
	live := health.NewView()
	status := failover.NewStatus()
	ctl := New(Deps{
		Config: cfg, Cluster: cl, Live: live, Reconciler: rec, Versions: local, Failover: status,
		FailoverCluster: func() failover.Cluster { return failover.Cluster{Store: cl.Store(), Log: log, Now: time.Now} },
		Supervisor:      sup.Kind(), Log: log,
	})
	ctl.Now = clock.Now
	ctl.MarkReady()
	if err := cl.Register(ctx); err != nil {
		t.Fatal(err)
	}
	return &rig{ctl: ctl, cl: cl, live: live, store: cl.Store(), rec: rec, clock: clock}
}

// addNode records a node n in the state with the versions it reported (nil:
// an agent too old to say) and gives it a fresh report with room.
func (r *rig) addNode(t *testing.T, name string, vs []string) {
	t.Helper()
	ctx := context.Background()
	if err := r.store.Apply(ctx, raftstate.CmdRegisterNode, raftstate.RegisterNode{
		Name: name, RaftAddr: "10.0.0.9:7481", APIAddr: "10.0.0.9:7482", Address: "10.0.0.9", Versions: vs,
	}); err != nil {
		t.Fatal(err)
	}
	hw := sizing.Hardware{MemTotal: 64 * sizing.GiB, MemAvailable: 60 * sizing.GiB, CPUs: 8, DiskPath: "/var/lib", DiskTotal: 500 * sizing.GiB, DiskFree: 400 * sizing.GiB}
	if err := r.live.Record(health.Heartbeat{Node: name, Hardware: hw, PortMin: 6400, PortMax: 6499}); err != nil {
		t.Fatal(err)
	}
}

func statusOf(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	var fit *sizing.FitError
	if errors.As(err, &fit) {
		return http.StatusUnprocessableEntity
	}
	return 0
}

// Every rule a create is held to, decided by the agent, answered with a
// message saying what to do, and nothing recorded.
func TestValidateDatabase_RefusesEachBadRequestAndChangesNothing(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		req    api.CreateDatabaseRequest
		status int
		says   string
	}{
		{"a bad name", api.CreateDatabaseRequest{Name: "Cache!", Memory: "64mb"}, 400, `invalid database name "Cache!": use 1 to 40 lowercase letters`},
		{"a traversal as a name", api.CreateDatabaseRequest{Name: "../../etc", Memory: "64mb"}, 400, "invalid database name"},
		{"an unknown flavor", api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Flavor: "fast"}, 400, `unknown flavor "fast": use aof`},
		{"no plan", api.CreateDatabaseRequest{Name: "cache"}, 400, "a memory plan is required"},
		{"a plan that is no size", api.CreateDatabaseRequest{Name: "cache", Memory: "lots"}, 400, `invalid memory "lots"`},
		{"a plan below the minimum", api.CreateDatabaseRequest{Name: "cache", Memory: "1kb"}, 400, "below the minimum plan"},
		{"a plan the node cannot hold", api.CreateDatabaseRequest{Name: "cache", Memory: "9tb"}, 422, "n1"},
		{"more replicas than nodes", api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Replicas: 2}, 409, "--replicas 2 needs 3 nodes"},
		{"negative replicas", api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Replicas: -1}, 400, "--replicas must be 0 or more"},
		{"a version no node has", api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Version: "8.2"}, 400, "version 8.2 is not installed on any node (n1 has 7.0)"},
		{"a version not in the catalogue", api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Version: "5.0"}, 400, "5.0"},
		{"a pin to an unknown node", api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Node: "n7"}, 400, `unknown node "n7"`},
		{"a missing source", api.CreateDatabaseRequest{Name: "copy", Follows: "nothing"}, 404, `source database "nothing" does not exist`},
		{"both a source and a URL", api.CreateDatabaseRequest{Name: "copy", Follows: "x", FromURL: "redis://:pw@10.0.0.1:6379"}, 400, "not both"},
		{"a URL with a bad host", api.CreateDatabaseRequest{Name: "copy", FromURL: "redis://:pw@bad_host!:6379"}, 400, "--from"},
	} {
		_, err := r.ctl.ValidateDatabase(ctx, c.req)
		if err == nil || statusOf(err) != c.status || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v (status %d), want %d saying %q", c.name, err, statusOf(err), c.status, c.says)
		}
		// A create with the same request is refused the same way.
		_, cerr := r.ctl.CreateDatabase(ctx, c.req)
		if cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("%s: create said %v, validate %v; want the same answer", c.name, cerr, err)
		}
	}
	if n := len(r.store.View().Databases); n != 0 {
		t.Errorf("refused requests left %d databases", n)
	}
}

// A validation answers where the create would go and what it needs, and
// records nothing.
func TestValidateDatabase_PlansWithoutCreating(t *testing.T) {
	r := newRig(t)
	r.addNode(t, "n2", []string{"7.0"})
	plan, err := r.ctl.ValidateDatabase(context.Background(), api.CreateDatabaseRequest{Name: "cache", Memory: "64mb", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	db := plan.Database
	if db.Version != "7.0" || db.Flavor != "aof" || db.MemoryBytes != 64*sizing.MiB || len(db.Instances) != 2 {
		t.Fatalf("plan %+v", db)
	}
	if db.Instances[0].Role != "primary" || db.Instances[1].Role != "replica" || db.Instances[0].Node == db.Instances[1].Node {
		t.Errorf("instances %+v: want a primary and a replica on two nodes", db.Instances)
	}
	if db.Instances[0].State != api.StatePlanned || plan.NeedMemory <= db.MemoryBytes || plan.NeedDisk <= 0 {
		t.Errorf("plan %+v, needs %d memory %d disk", db.Instances[0], plan.NeedMemory, plan.NeedDisk)
	}
	if n := len(r.store.View().Databases); n != 0 {
		t.Errorf("a validation created %d databases", n)
	}
}

// Placement puts an instance only on a node that has the database's
// version: a node that reported other versions is passed over, one too
// old to report is trusted, and a version only a full node has is refused
// naming the nodes.
func TestPlace_OnlyOnNodesThatHaveTheVersion(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.addNode(t, "n2", []string{"7.0", "7.2"})
	plan, err := r.ctl.ValidateDatabase(ctx, api.CreateDatabaseRequest{Name: "new", Memory: "64mb", Version: "7.2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Database.Instances[0].Node; got != "n2" {
		t.Errorf("7.2 placed on %s; only n2 has it", got)
	}
	if _, err := r.ctl.ValidateDatabase(ctx, api.CreateDatabaseRequest{Name: "new", Memory: "64mb", Version: "7.2", Node: "n1"}); err == nil ||
		!strings.Contains(err.Error(), "version 7.2 is installed on no node that can take it (n1 has 7.0)") {
		t.Errorf("7.2 pinned to n1, which lacks it: %v", err)
	}
	if _, err := r.ctl.ValidateDatabase(ctx, api.CreateDatabaseRequest{Name: "new", Memory: "64mb", Version: "7.2", Replicas: 1}); err == nil ||
		!strings.Contains(err.Error(), "cannot place replica 1 of 1") || !strings.Contains(err.Error(), "n1 has 7.0") {
		t.Errorf("a 7.2 replica with only one node having 7.2: %v", err)
	}
	// A node whose agent is too old to report its versions is not ruled
	// out: it was not before.
	r.addNode(t, "n3", nil)
	plan, err = r.ctl.ValidateDatabase(ctx, api.CreateDatabaseRequest{Name: "new", Memory: "64mb", Version: "7.2", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Database.Instances[1].Node; got != "n3" {
		t.Errorf("the replica went to %s, want n3 (unknown versions, trusted)", got)
	}
}

// The leader records what a node's reports say of its agent and binaries
// once they change, and nothing for a report that says nothing new or
// comes from an agent too old to say.
func TestRecordHeartbeat_KeepsTheNodeRecordInStep(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.addNode(t, "n2", nil)
	before := r.store.AppliedIndex()
	if _, err := r.ctl.RecordHeartbeat(ctx, health.Heartbeat{Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	if r.store.AppliedIndex() != before {
		t.Error("a report from an agent too old to say anything was written to Raft")
	}
	hb := health.Heartbeat{Node: "n2", Versions: []string{"7.0", "7.2"}, AgentVersion: "v2", FeatureLevel: raftstate.FeatureLevel}
	if _, err := r.ctl.RecordHeartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	// Written beside the acknowledgement, not before it.
	r.waitRecord(t, "n2", func(n raftstate.Node) bool {
		return n.AgentVersion == "v2" && n.FeatureLevel == raftstate.FeatureLevel && strings.Join(n.Versions, ",") == "7.0,7.2" && n.Address == "10.0.0.9"
	})
	r.waitIdle(t)
	at := r.store.AppliedIndex()
	if _, err := r.ctl.RecordHeartbeat(ctx, hb); err != nil {
		t.Fatal(err)
	}
	r.waitIdle(t)
	if r.store.AppliedIndex() != at {
		t.Error("the same facts were written again")
	}
	// (Each step below waits for the write before it: one write per node
	// is in flight at a time, and a report meanwhile is left to the next.)
	// A node with no redis-server at all is known to have none, not
	// unknown: placement must pass it over.
	if _, err := r.ctl.RecordHeartbeat(ctx, health.Heartbeat{Node: "n2", AgentVersion: "v2", FeatureLevel: raftstate.FeatureLevel}); err != nil {
		t.Fatal(err)
	}
	r.waitRecord(t, "n2", func(n raftstate.Node) bool { return n.Versions != nil && len(n.Versions) == 0 })
	if n, _ := r.store.Node("n2"); n.HasVersion("7.0") {
		t.Error("a node that reported no redis-server may run 7.0")
	}
	r.waitIdle(t)
	// Downgraded to an agent from before levels: level 1 and unknown again.
	if _, err := r.ctl.RecordHeartbeat(ctx, health.Heartbeat{Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	r.waitRecord(t, "n2", func(n raftstate.Node) bool { return n.FeatureLevel == 0 && n.AgentVersion == "" && n.Versions == nil })
}

// waitRecord polls (bounded) until node's record satisfies ok.
func (r *rig) waitRecord(t *testing.T, node string, ok func(raftstate.Node) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := r.store.Node(node)
		if ok(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("record of %s: %+v", node, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitIdle waits (bounded) until no write of facts is in flight.
func (r *rig) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.ctl.factsMu.Lock()
		busy := len(r.ctl.factsBusy)
		r.ctl.factsMu.Unlock()
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a write of facts never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Only the node itself completes its join.
func TestJoinComplete_OnlyTheJoiningNode(t *testing.T) {
	r := newRig(t)
	ctx := api.WithPeerNode(context.Background(), "n5")
	err := r.ctl.JoinComplete(ctx, api.JoinCompleteRequest{Node: "n6"})
	if statusOf(err) != http.StatusForbidden {
		t.Fatalf("n5 completing n6's join: %v", err)
	}
}
