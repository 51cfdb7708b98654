package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// startCluster starts n agents in this process (bootstrap: manual), inits
// the first and joins the others with tokens, over mutual TLS on loopback.
func startCluster(t *testing.T, n int) []*testAgent {
	t.Helper()
	ctx := ctxT(t)
	var agents []*testAgent
	for i := 1; i <= n; i++ {
		cfg := writeConfig(t, t.TempDir())
		cfg.NodeName = "n" + string(rune('0'+i))
		cfg.Bootstrap = "manual"
		agents = append(agents, startAgent(t, cfg))
	}
	t.Cleanup(func() {
		// Delete databases through the first live agent so no instance
		// outlives the test.
		for _, a := range agents {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			dbs, err := a.client.ListDatabases(cctx)
			cancel()
			if err != nil {
				continue // stopped, or without a leader: try the next
			}
			cctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, db := range dbs {
				_ = a.client.DeleteDatabase(cctx, db.Name)
			}
			return
		}
	})
	st, err := agents[0].client.ClusterInit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Token == nil || !strings.HasPrefix(st.Token.Token, "ratok1.") {
		t.Fatalf("cluster init gave no join token: %+v", st)
	}
	for _, a := range agents[1:] {
		tok, err := agents[0].client.ClusterToken(ctx, api.TokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.client.ClusterJoin(ctx, api.JoinClusterRequest{Addr: agents[0].cfg.ClusterAdvertise(), Token: tok.Token}); err != nil {
			t.Fatalf("%s join: %v", a.cfg.NodeName, err)
		}
	}
	// A join returns once the leader has the node's first report: every
	// node takes placements at once, with no wait here.
	nodes, err := agents[0].client.Nodes(ctx)
	if err != nil || len(nodes) != n {
		t.Fatalf("right after the joins: %d nodes, %v", len(nodes), err)
	}
	for _, nd := range nodes {
		if !nd.Healthy || nd.Hardware.MemTotal == 0 {
			t.Fatalf("right after the joins the leader has no fresh report from %s (contact %.1fs ago): a create placing there would fail", nd.Name, nd.LastContactSeconds)
		}
	}
	return agents
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within 20s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCluster_ThreeNodesJoinOverTLSAndAnyNodeAnswers: init, two joins with
// single-use tokens, every node sees three voters and one leader; a database
// created through a follower is placed, committed, runs and is visible from
// every node; the node list has every node's hardware and heartbeat age.
func TestCluster_ThreeNodesJoinOverTLSAndAnyNodeAnswers(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	for _, a := range agents {
		waitUntil(t, a.cfg.NodeName+" sees 3 voters and leader n1", func() bool {
			st, err := a.client.ClusterStatus(ctx)
			return err == nil && st.Voters == 3 && st.Leader == "n1" && len(st.Members) == 3
		})
	}
	// Writes through a follower are forwarded to the leader.
	db, err := agents[2].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "orders", Memory: "32mb", Flavor: "rdb", Node: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	if db.State != api.StateRunning || db.Instances[0].Node != "n2" {
		t.Fatalf("created through n3, pinned to n2: %+v", db)
	}
	u, err := agents[1].client.DatabaseURL(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := redis.ParseURL(u.URL)
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("write to the database on n2: %v", err)
	}
	// Placement without a pin picks a node, and every node answers reads.
	if _, err := agents[1].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "cache", Memory: "16mb", Flavor: "nordb"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		dbs, err := a.client.ListDatabases(ctx)
		if err != nil || len(dbs) != 2 {
			t.Fatalf("%s lists %d databases (%v), want 2", a.cfg.NodeName, len(dbs), err)
		}
	}
	waitUntil(t, "node list with hardware and fresh heartbeats", func() bool {
		nodes, err := agents[2].client.Nodes(ctx)
		if err != nil || len(nodes) != 3 {
			return false
		}
		for _, n := range nodes {
			if n.Hardware.MemTotal <= 0 || !n.Healthy || n.LastContactSeconds < 0 {
				return false
			}
		}
		return true
	})
	// Key material is 0600 on every node and no secret reaches the logs.
	for _, a := range agents {
		for _, f := range []string{"ca.key", "node.key"} {
			fi, err := os.Stat(filepath.Join(a.cfg.PKIDir(), f))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s %s: %v %v, want 0600", a.cfg.NodeName, f, fi, err)
			}
		}
		if logs := a.logs.String(); strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, "ratok1.") {
			t.Errorf("%s logged key material or a join token", a.cfg.NodeName)
		}
	}
	// Deleting through a follower removes the instance on n2.
	if err := agents[2].client.DeleteDatabase(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(agents[1].cfg.InstancesDir(), "orders-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orders-0 still on n2 after delete: %v", err)
	}
}

// A join returns only once the leader has the new node's first report, so
// a database with a replica on every node can be created the moment the
// last join returns (before, it failed for a moment with "node n3 has not
// reported for a while").
func TestCluster_ADatabaseWithReplicasRightAfterTheJoins(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	db, err := agents[2].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "right-away", Memory: "16mb", Flavor: "nordb", Replicas: 2})
	if err != nil {
		t.Fatalf("create --replicas 2 right after the joins: %v", err)
	}
	nodes := map[string]bool{}
	for _, in := range db.Instances {
		nodes[in.Node] = true
	}
	if len(nodes) != 3 {
		t.Errorf("instances on %v, want one on each of the 3 nodes", nodes)
	}
	// Every node's record says what it runs, from its reports.
	st, err := agents[0].client.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.FeatureLevel != raftstate.FeatureLevel {
			t.Errorf("member %s at feature level %d, want %d", m.Name, m.FeatureLevel, raftstate.FeatureLevel)
		}
	}
	if st.ClusterFeatureLevel != raftstate.FeatureLevel {
		t.Errorf("cluster feature level %d, want %d", st.ClusterFeatureLevel, raftstate.FeatureLevel)
	}
}

// TestCluster_BadJoinsAreRefused: a reused token, a garbled token, a token
// of another cluster (wrong CA), an expired token and a duplicate node name
// are refused with clear errors, and membership does not change.
func TestCluster_BadJoinsAreRefused(t *testing.T) {
	agents := startCluster(t, 2)
	ctx := ctxT(t)
	leader := agents[0]
	other := startCluster(t, 1)[0] // a separate cluster with its own CA

	fresh := func(name string) *testAgent {
		cfg := writeConfig(t, t.TempDir())
		cfg.NodeName, cfg.Bootstrap = name, "manual"
		return startAgent(t, cfg)
	}
	joiner := fresh("n9")
	tok, err := leader.client.ClusterToken(ctx, api.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	short, err := leader.client.ClusterToken(ctx, api.TokenRequest{TTL: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.client.ClusterToken(ctx, api.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	dup := fresh("n2")
	dupTok, _ := leader.client.ClusterToken(ctx, api.TokenRequest{})
	time.Sleep(1100 * time.Millisecond) // let the 1s token expire: its expiry is what is tested

	addr := leader.cfg.ClusterAdvertise()
	cases := []struct {
		name  string
		agent *testAgent
		token string
		says  string
	}{
		{"garbled", joiner, "ratok1.not-base64!", "token"},
		{"not a token", joiner, "hello", "not a redis-appliance join token"},
		{"expired", joiner, short.Token, "expired"},
		{"another cluster's CA", joiner, foreign.Token, "not part of the cluster"},
		{"duplicate node name", dup, dupTok.Token, "already a member"},
	}
	for _, c := range cases {
		_, err := c.agent.client.ClusterJoin(ctx, api.JoinClusterRequest{Addr: addr, Token: c.token})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.says)
		}
	}
	if _, err := joiner.client.ClusterJoin(ctx, api.JoinClusterRequest{Addr: addr, Token: tok.Token}); err != nil {
		t.Fatalf("good join: %v", err)
	}
	reuser := fresh("n8")
	_, err = reuser.client.ClusterJoin(ctx, api.JoinClusterRequest{Addr: addr, Token: tok.Token})
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("reused token: %v, want already used", err)
	}
	st, _ := leader.client.ClusterStatus(ctx)
	if st.Voters != 3 {
		t.Fatalf("voters = %d after one good join among bad ones, want 3", st.Voters)
	}
}

// TestCluster_RemovedNodeCannotChangeTheCluster: node remove is refused
// for a node holding the only copy of a database, works otherwise, and the
// removed node's certificate no longer opens the cluster API.
func TestCluster_RemovedNodeCannotChangeTheCluster(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	leader, victim := agents[0], agents[2]
	if _, err := leader.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "only", Memory: "16mb", Flavor: "nordb", Node: "n3"}); err != nil {
		t.Fatal(err)
	}
	err := leader.client.RemoveNode(ctx, "n3", false)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "only") {
		t.Fatalf("remove n3 holding only: %v, want 409 naming the database", err)
	}
	if err := leader.client.DeleteDatabase(ctx, "only"); err != nil {
		t.Fatal(err)
	}
	if _, err := agents[1].client.DrainNode(ctx, "n9"); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("drain unknown node: %v, want 404", err)
	}
	if err := agents[1].client.RemoveNode(ctx, "n3", false); err != nil {
		t.Fatal(err)
	}
	st, _ := leader.client.ClusterStatus(ctx)
	if st.Voters != 2 {
		t.Fatalf("voters after removal = %d, want 2", st.Voters)
	}
	// The removed node's own certificate is refused by the members.
	c, err := victim.clusterClient(leader.cfg.ClusterAdvertise())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "sneaky", Memory: "16mb", Flavor: "nordb"})
	if !refusedAtHandshake(err) {
		t.Fatalf("removed node creating a database: %v, want its certificate refused at the handshake", err)
	}
	if dbs, _ := leader.client.ListDatabases(ctx); len(dbs) != 0 {
		t.Fatalf("the removed node changed the cluster: %+v", dbs)
	}
	// Its CLI (its own socket) gets a clear error, no retry advice, and
	// changes nothing.
	before, _ := leader.client.ClusterStatus(ctx)
	for what, call := range map[string]func() error{
		"db create": func() error {
			_, err := victim.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "sneaky", Memory: "16mb", Flavor: "nordb"})
			return err
		},
		"db list":    func() error { _, err := victim.client.ListDatabases(ctx); return err },
		"node drain": func() error { _, err := victim.client.DrainNode(ctx, "n1"); return err },
	} {
		err := call()
		if !isStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "not a member of the cluster any more") || strings.Contains(err.Error(), "retry") {
			t.Errorf("%s on the removed node: %v, want 403 saying it is not a member and what to do", what, err)
		}
	}
	if after, _ := leader.client.ClusterStatus(ctx); after.LastIndex != before.LastIndex {
		t.Errorf("the removed node's CLI wrote to Raft: last index %d, was %d", after.LastIndex, before.LastIndex)
	}
}

// clusterClient is a mutual-TLS client with this agent's node certificate.
func (a *testAgent) clusterClient(addr string) (*api.Client, error) {
	m, err := loadMaterial(a.cfg)
	if err != nil {
		return nil, err
	}
	return api.NewRemoteClient(addr, m), nil
}

// TestCluster_MembershipBadInputChangesNothing: removing the last voter,
// draining the only schedulable node, pinning to an unknown node and
// joining an unreachable address are refused with clear errors.
func TestCluster_MembershipBadInputChangesNothing(t *testing.T) {
	solo := startCluster(t, 1)[0]
	ctx := ctxT(t)
	cases := []struct {
		name   string
		call   func() error
		status int
		says   string
	}{
		{"remove last voter", func() error { return solo.client.RemoveNode(ctx, "n1", false) }, http.StatusConflict, "last voter"},
		{"drain only node", func() error { _, err := solo.client.DrainNode(ctx, "n1"); return err }, http.StatusConflict, "only node"},
		{"pin unknown node", func() error {
			_, err := solo.client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "x", Memory: "16mb", Node: "nosuch"})
			return err
		}, http.StatusBadRequest, "unknown node"},
		{"bad token ttl", func() error { _, err := solo.client.ClusterToken(ctx, api.TokenRequest{TTL: "forever"}); return err }, http.StatusBadRequest, "invalid --ttl"},
		{"second init", func() error { _, err := solo.client.ClusterInit(ctx); return err }, http.StatusConflict, "already belongs"},
	}
	for _, c := range cases {
		err := c.call()
		var e *api.Error
		if !errors.As(err, &e) || e.Status != c.status || !strings.Contains(e.Message, c.says) {
			t.Errorf("%s: err = %v, want status %d saying %q", c.name, err, c.status, c.says)
		}
	}
	// Joining an address where nothing listens fails fast and leaves the
	// fresh node outside any cluster.
	cfg := writeConfig(t, t.TempDir())
	cfg.NodeName, cfg.Bootstrap = "n7", "manual"
	fresh := startAgent(t, cfg)
	tok, err := solo.client.ClusterToken(ctx, api.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = fresh.client.ClusterJoin(ctx, api.JoinClusterRequest{Addr: "127.0.0.1:1", Token: tok.Token})
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("join to a closed port: %v, want cannot reach", err)
	}
	if st, _ := fresh.client.ClusterStatus(ctx); st.Bootstrapped || st.Voters != 0 {
		t.Fatalf("failed join left the node in a cluster: %+v", st)
	}
	if st, _ := solo.client.ClusterStatus(ctx); st.Voters != 1 {
		t.Fatalf("voters = %d after refused operations, want 1", st.Voters)
	}
	nodes, _ := solo.client.Nodes(ctx)
	if len(nodes) != 1 || nodes[0].Draining {
		t.Fatalf("node list changed: %+v", nodes)
	}
}

// TestCluster_LeaderCanLeave: the leader leaving hands leadership over and
// is removed by the new leader; the two others go on.
func TestCluster_LeaderCanLeave(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	if err := agents[0].client.ClusterLeave(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "two voters without n1", func() bool {
		st, err := agents[1].client.ClusterStatus(ctx)
		if err != nil || st.Voters != 2 || st.Leader == "" || st.Leader == "n1" {
			return false
		}
		nodes, err := agents[1].client.Nodes(ctx)
		return err == nil && len(nodes) == 2
	})
	if _, err := agents[2].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "after", Memory: "16mb", Flavor: "nordb"}); err != nil {
		t.Fatalf("create after the leader left: %v", err)
	}
}
