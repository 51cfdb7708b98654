package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"
)

// The three-host systemd lab (issue 3): hosts with their own addresses on a
// lab bridge, each running the agent as its unit with a cluster
// configuration, driven only through the CLI inside each host, as an
// operator would drive them.

// clusterWait bounds each wait for the cluster to settle (a join, an
// election, a rejoin, a catch-up). Generous: 2 cores may run several hosts.
const clusterWait = 90 * time.Second

// clusterStatus is `cluster status -o json`.
type clusterStatus struct {
	Node               string          `json:"node"`
	RaftState          string          `json:"raft_state"`
	Leader             string          `json:"leader"`
	Voters             int             `json:"voters"`
	LastIndex          uint64          `json:"last_index"`
	AppliedIndex       uint64          `json:"applied_index"`
	Bootstrapped       bool            `json:"bootstrapped"`
	LastContactSeconds float64         `json:"last_contact_seconds"`
	Members            []clusterMember `json:"members"`
}

type clusterMember struct {
	Name               string  `json:"name"`
	RaftAddress        string  `json:"raft_address"`
	Voter              bool    `json:"voter"`
	Leader             bool    `json:"leader"`
	LastContactSeconds float64 `json:"last_contact_seconds"`
	Healthy            bool    `json:"healthy"`
}

// memberNames are the sorted names of the Raft configuration's servers.
func (s clusterStatus) memberNames() []string {
	var names []string
	for _, m := range s.Members {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	return names
}

// nodeInfo is one row of `node list -o json`.
type nodeInfo struct {
	Name               string  `json:"name"`
	Address            string  `json:"address"`
	Voter              bool    `json:"voter"`
	Leader             bool    `json:"leader"`
	Draining           bool    `json:"draining"`
	LastContactSeconds float64 `json:"last_contact_seconds"`
	Healthy            bool    `json:"healthy"`
	FreeMemory         int64   `json:"free_memory"`
	AllocatedMemory    int64   `json:"allocated_memory"`
	Databases          int     `json:"databases"`
	Hardware           struct {
		MemTotal int64 `json:"mem_total"`
	} `json:"hardware"`
}

// clusterHost is a lab host whose agent is configured as cluster node
// name (its machine name is unique on the machine; name is what the
// cluster knows it by).
type clusterHost struct {
	*node
	name string
}

func (h clusterHost) in(t testing.TB) clusterHost { return clusterHost{h.node.in(t), h.name} }

// clusterLab is hosts lab1, lab2, ... on one lab bridge, each running the
// agent configured for a cluster with bootstrap: manual.
type clusterLab struct {
	hosts []clusterHost
}

// clusterConfig is /etc/redis-appliance/config.yaml of a cluster host, as
// the README says: its name, its address for Raft, the cluster API and the
// instances (which also listen on loopback), and a manual bootstrap.
func clusterConfig(name, addr string) string {
	return fmt.Sprintf(`node_name: %s
advertise_addr: %s
raft_addr: %s:7481
cluster_addr: %s:7482
bind: %s 127.0.0.1
bootstrap: manual
`, name, addr, addr, addr, addr)
}

// bootClusterLab boots count hosts on a new bridge (bridge: at most 10
// characters; prefix: three octets; both unique on the machine), host i
// named lab<i> at prefix.(10+i); the first persistent of them keep their
// disks across power loss. None is a member of a cluster yet.
func bootClusterLab(t testing.TB, bridge, prefix string, count, persistent int) *clusterLab {
	t.Helper()
	br := lab.NewBridge(t, bridge, prefix)
	l := &clusterLab{}
	for i := 1; i <= count; i++ {
		network := br.Attach(i)
		name := fmt.Sprintf("lab%d", i)
		n := bootAgent(t, lab.Options{Name: bridge + "-" + name, Persistent: i <= persistent, Network: network},
			clusterConfig(name, network.Address))
		l.hosts = append(l.hosts, clusterHost{node: n, name: name})
	}
	return l
}

// in returns the lab reporting failures to t, a subtest: the hosts' own
// methods until t ends, and the e2e helpers of the returned hosts.
func (l *clusterLab) in(t testing.TB) *clusterLab {
	out := &clusterLab{}
	for _, h := range l.hosts {
		t.Cleanup(h.ReportTo(t))
		out.hosts = append(out.hosts, h.in(t))
	}
	return out
}

// host returns the host whose node name is name.
func (l *clusterLab) host(name string) clusterHost {
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	l.hosts[0].t.Fatalf("no lab host is node %q", name)
	return clusterHost{}
}

// status is this host's `cluster status -o json`.
func (h clusterHost) status(ctx context.Context) (clusterStatus, error) {
	out, stderr, err := h.cli(ctx, "cluster", "status", "-o", "json")
	if err != nil {
		return clusterStatus{}, fmt.Errorf("%v %s", err, stderr)
	}
	var s clusterStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return clusterStatus{}, fmt.Errorf("cluster status -o json: %v\n%s", err, out)
	}
	return s, nil
}

func (h clusterHost) mustStatus(ctx context.Context) clusterStatus {
	h.t.Helper()
	s, err := h.status(ctx)
	if err != nil {
		h.t.Fatalf("cluster status on %s: %v", h.name, err)
	}
	return s
}

// nodeList is `node list -o json` run on this host (answered by the
// leader).
func (h clusterHost) nodeList(ctx context.Context) ([]nodeInfo, error) {
	out, stderr, err := h.cli(ctx, "node", "list", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("%v %s", err, stderr)
	}
	var nodes []nodeInfo
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		return nil, fmt.Errorf("node list -o json: %v\n%s", err, out)
	}
	return nodes, nil
}

// token makes a join token on this host (forwarded to the leader by a
// follower) and returns it with its expiry.
func (h clusterHost) token(ctx context.Context, ttl string) (string, time.Time) {
	h.t.Helper()
	args := []string{"cluster", "token", "-o", "json"}
	if ttl != "" {
		args = append(args, "--ttl", ttl)
	}
	out := h.mustCLI(ctx, args...)
	var tok struct {
		Token   string    `json:"token"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, "ratok1.") {
		h.t.Fatalf("cluster token -o json on %s: %v: want {\"token\": \"ratok1.…\", \"expires\": …}", h.name, err)
	}
	return tok.Token, tok.Expires
}

// tokenIn finds the join token in the text output of cluster init or
// cluster token: a line of its own starting with ratok1.
func tokenIn(t testing.TB, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "ratok1.") {
			return line
		}
	}
	t.Fatalf("no ratok1. join token on a line of its own in:\n%s", out)
	return ""
}

// initCluster runs `cluster init` on h, checks what it prints, and returns
// the first join token.
func (h clusterHost) initCluster(ctx context.Context) string {
	h.t.Helper()
	out := h.mustCLI(ctx, "cluster", "init")
	if !strings.Contains(out, "cluster initialised: node "+h.name) || !strings.Contains(out, "join token (single use, expires") {
		h.t.Fatalf("cluster init on %s printed:\n%s\nwant `cluster initialised: node %s ...` and the join token", h.name, out, h.name)
	}
	return tokenIn(h.t, out)
}

// form makes the first host a cluster with `cluster init` and joins the
// next count-1 hosts to it, each with a single-use token, as the README
// says: the second with the token init printed, the others with a token
// made on the host that joined before them (a follower: forwarded to the
// leader). It waits until every member sees them all as voters under one
// leader and the leader has every node's heartbeat, and returns the init
// token (spent by then).
func (l *clusterLab) form(ctx context.Context, count int) string {
	first := l.hosts[0]
	first.t.Helper()
	initToken := first.initCluster(ctx)
	for i := 1; i < count; i++ {
		tok := initToken
		if i > 1 {
			tok = tokenIn(first.t, l.hosts[i-1].mustCLI(ctx, "cluster", "token"))
		}
		out := l.hosts[i].mustCLI(ctx, "cluster", "join", first.Addr(), "--token", tok)
		l.hosts[i].checkJoined(out, []string{first.name}, i+1)
	}
	l.waitFormed(ctx, l.hosts[:count])
	return initToken
}

// checkJoined checks what `cluster join` printed on h: "joined: node
// NAME, leader L, N voter(s)", with L one of leaders and N voters.
func (h clusterHost) checkJoined(out string, leaders []string, voters int) {
	h.t.Helper()
	out = strings.TrimSpace(out)
	var node, leader string
	var n int
	if _, err := fmt.Sscanf(out, "joined: node %s leader %s %d voter(s)", &node, &leader, &n); err != nil {
		h.t.Fatalf("cluster join on %s printed %q, want \"joined: node %s, leader L, %d voter(s)\": %v", h.name, out, h.name, voters, err)
	}
	node, leader = strings.TrimSuffix(node, ","), strings.TrimSuffix(leader, ",")
	if node != h.name || !slices.Contains(leaders, leader) {
		h.t.Errorf("cluster join on %s printed %q, want node %s and a leader among %v", h.name, out, h.name, leaders)
	}
	if n != voters {
		// The join must return only once the new node has the cluster's
		// log, so it counts the voters of the real configuration.
		h.t.Errorf("cluster join on %s printed %q: %d voter(s), want %d; the join returned before the new node had the cluster's configuration", h.name, out, n, voters)
	}
}

// waitFormed waits until every host of members reports exactly members as
// voters, the same leader, one of them, and until the leader has a fresh
// heartbeat of every one (a node takes placements only then). It returns
// the leader.
func (l *clusterLab) waitFormed(ctx context.Context, members []clusterHost) clusterHost {
	t := members[0].t
	t.Helper()
	var want []string
	for _, m := range members {
		want = append(want, m.name)
	}
	sort.Strings(want)
	ctx, cancel := context.WithTimeout(ctx, clusterWait)
	defer cancel()
	var leader string
	waitFor(t, ctx, fmt.Sprintf("%v to see each other as voters under one leader", want), func() (bool, string) {
		leader = ""
		for _, m := range members {
			s, err := m.status(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", m.name, err)
			}
			leaders := 0
			for _, mm := range s.Members {
				if mm.Leader {
					leaders++
				}
				if !mm.Voter {
					return false, fmt.Sprintf("%s sees %s as a non-voter", m.name, mm.Name)
				}
			}
			switch {
			case s.Voters != len(members) || !slices.Equal(s.memberNames(), want):
				return false, fmt.Sprintf("%s sees %d voters %v", m.name, s.Voters, s.memberNames())
			case s.Leader == "" || leaders != 1 || !slices.Contains(want, s.Leader):
				return false, fmt.Sprintf("%s sees leader %q (%d members marked leader)", m.name, s.Leader, leaders)
			case leader != "" && s.Leader != leader:
				return false, fmt.Sprintf("%s sees leader %s, another host %s", m.name, s.Leader, leader)
			}
			leader = s.Leader
		}
		return true, ""
	})
	lh := l.host(leader)
	waitFor(t, ctx, "the leader to have a fresh heartbeat of every member", func() (bool, string) {
		nodes, err := lh.nodeList(ctx)
		if err != nil {
			return false, err.Error()
		}
		var healthy []string
		for _, n := range nodes {
			if n.Healthy {
				healthy = append(healthy, n.Name)
			}
		}
		sort.Strings(healthy)
		return slices.Equal(healthy, want), fmt.Sprintf("healthy: %v", healthy)
	})
	return lh
}

// leaderOf asks h who leads and returns that host.
func (l *clusterLab) leaderOf(ctx context.Context, h clusterHost) clusterHost {
	h.t.Helper()
	s := h.mustStatus(ctx)
	if s.Leader == "" {
		h.t.Fatalf("%s knows no leader: %+v", h.name, s)
	}
	return l.host(s.Leader)
}

// others returns the hosts of hs that are not except.
func others(hs []clusterHost, except ...clusterHost) []clusterHost {
	var out []clusterHost
	for _, h := range hs {
		if !slices.ContainsFunc(except, func(e clusterHost) bool { return e.name == h.name }) {
			out = append(out, h)
		}
	}
	return out
}

// unitGone reports whether a database's instance has left no unit or
// directory on the host.
func (h clusterHost) unitGone(ctx context.Context, db string) (bool, string) {
	if s := h.prop(ctx, unitName(db), "LoadState"); s != "not-found" {
		return false, unitName(db) + " LoadState " + s
	}
	if h.exists(ctx, instanceDir(db)) {
		return false, instanceDir(db) + " still exists"
	}
	return true, ""
}

// Three hosts with their own addresses, each running the agent as a
// systemd unit, form a cluster through the CLI as the README says and do
// what an operator relies on: databases created from any host land where
// asked (or are placed) and serve clients on other hosts; the Raft leader's
// host losing power leaves the other two electing a leader with all state
// intact and accepting writes, and the host rejoins when it boots with its
// databases; a partitioned follower catches up after the partition heals;
// joins with a token of another cluster, an expired or a reused token, or to
// an unreachable address are refused and change nothing; a removed node can
// no longer change the cluster; and bad input is refused with a clear
// message and no change.
//
// Hosts: lab1-lab3 form the cluster (persistent disks), lab4 makes a
// cluster of its own, lab5 is a fresh host that tries bad joins, then joins
// and is removed. The steps share the hosts and run in order; a step that
// fails stops the test.
func TestCluster_ThreeHostLabFormsSurvivesHostLossAndPartitionAndRefusesBadJoins(t *testing.T) {
	t.Parallel()
	all := bootClusterLab(t, "racl0", "10.213.0", 5, 3)
	ctx := timeout(t, 10*time.Minute)
	var initToken string
	step := func(name string, f func(t *testing.T, l *clusterLab)) {
		t.Helper()
		if !t.Run(name, func(t *testing.T) { f(t, all.in(t)) }) {
			t.FailNow()
		}
	}

	step("InitAndJoinThroughTheCLI", func(t *testing.T, l *clusterLab) {
		initToken = l.form(ctx, 3)
		leader := l.leaderOf(ctx, l.hosts[2])
		t.Logf("lab1-lab3 formed a cluster led by %s", leader.name)
		if leader.name != "lab1" {
			t.Errorf("the leader right after the joins is %s; cluster init made lab1 the leader and nothing failed since", leader.name)
		}
		// Every node's hardware arrives with its heartbeats.
		nodes, err := l.hosts[1].nodeList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.Hardware.MemTotal <= 0 || n.Address != l.host(n.Name).Addr() || !n.Voter {
				t.Errorf("node list row %+v: want its memory, its address %s and voter", n, l.host(n.Name).Addr())
			}
		}
	})

	step("DatabasesFromAnyHostLandWhereAskedAndServeOtherHosts", func(t *testing.T, l *clusterLab) {
		trio := l.hosts[:3]
		leader := l.leaderOf(ctx, trio[0])
		f := others(trio, leader)
		for _, c := range []struct {
			db, flavor string
			from       clusterHost
			pin        string // empty: placed by the leader
			client     clusterHost
		}{
			// The one on the leader is aof: it must keep its data when
			// its host loses power in the next step.
			{"orders", "aof", f[1], leader.name, f[0]},
			{"sessions", "rdb", leader, f[0].name, f[1]},
			{"cache", "nordb", f[0], f[1].name, leader},
			{"placed", "nordb", f[1], "", f[0]},
		} {
			var extra []string
			if c.pin != "" {
				extra = []string{"--node", c.pin}
			}
			db := c.from.createDB(ctx, c.db, c.flavor, "64mb", extra...)
			if len(db.Instances) != 1 {
				t.Fatalf("db show %s: instances %+v, want one", c.db, db.Instances)
			}
			in := db.Instances[0]
			if c.pin != "" && in.Node != c.pin {
				t.Errorf("%s created on %s with --node %s landed on %s", c.db, c.from.name, c.pin, in.Node)
			}
			if !slices.ContainsFunc(trio, func(h clusterHost) bool { return h.name == in.Node }) {
				t.Fatalf("%s was placed on %q, not on a member", c.db, in.Node)
			}
			on := l.host(in.Node)
			if in.Host != on.Addr() || in.State != "running" {
				t.Errorf("%s instance: host %s state %s, want %s running", c.db, in.Host, in.State, on.Addr())
			}
			client := c.client
			if client.name == on.name {
				client = others(trio, on)[0]
			}
			e := client.url(ctx, c.db)
			if e.Host != on.Addr() || e.Port != in.Port {
				t.Errorf("db url %s on %s points at %s:%d, want %s:%d", c.db, client.name, e.Host, e.Port, on.Addr(), in.Port)
			}
			if got := client.mustRedis(ctx, e, "set", "greeting", "hello"); got != "OK" {
				t.Fatalf("SET on %s from %s: %q", c.db, client.name, got)
			}
			if got := client.mustRedis(ctx, e, "get", "greeting"); got != "hello" {
				t.Fatalf("GET on %s from %s: %q", c.db, client.name, got)
			}
			t.Logf("%s: created on %s, %s on %s (%s:%d), served to %s", c.db, c.from.name,
				map[bool]string{true: "pinned", false: "placed"}[c.pin != ""], in.Node, e.Host, e.Port, client.name)
			if c.db == "orders" {
				client.fill(ctx, e, 200)
				client.waitAOFDurable(ctx, e)
			}
		}
		want := []string{"cache", "orders", "placed", "sessions"}
		for _, h := range trio {
			if got := h.list(ctx); !slices.Equal(got, want) {
				t.Errorf("db list on %s: %v, want %v", h.name, got, want)
			}
		}
	})

	step("LeaderHostPowerLossElectsAnotherLeaderAndTheHostRejoins", func(t *testing.T, l *clusterLab) {
		trio := l.hosts[:3]
		old := l.leaderOf(ctx, trio[0])
		survivors := others(trio, old)
		before := survivors[0].list(ctx)
		orders := survivors[0].url(ctx, "orders")
		if orders.Host != old.Addr() {
			t.Fatalf("orders is served from %s, want the leader's host %s", orders.Host, old.Addr())
		}

		// Link first, then power: no FIN or RST leaves the host, as with a
		// machine that loses power.
		start := time.Now()
		old.Disconnect()
		old.PowerLoss()
		wctx, cancel := context.WithTimeout(ctx, clusterWait)
		defer cancel()
		var newLeader string
		waitFor(t, wctx, "the two survivors to agree on a new leader among themselves", func() (bool, string) {
			newLeader = ""
			for _, h := range survivors {
				s, err := h.status(wctx)
				if err != nil {
					return false, err.Error()
				}
				if s.Leader == "" || s.Leader == old.name || (newLeader != "" && s.Leader != newLeader) {
					return false, fmt.Sprintf("%s sees leader %q", h.name, s.Leader)
				}
				newLeader = s.Leader
			}
			return true, ""
		})
		t.Logf("%s lost power; %s leads, as both survivors saw %s after the cut (CLI polling)", old.name, newLeader, time.Since(start).Round(10*time.Millisecond))

		// All state is there and writes are accepted, from either survivor.
		if got := survivors[1].list(ctx); !slices.Equal(got, before) {
			t.Errorf("db list after the leader's power loss: %v, want %v", got, before)
		}
		db := survivors[1].createDB(ctx, "afterloss", "nordb", "16mb")
		if in := db.Instances[0].Node; in == old.name {
			t.Errorf("afterloss was placed on %s, which has no power", in)
		}
		e := survivors[0].url(ctx, "afterloss")
		if got := survivors[0].mustRedis(ctx, e, "ping"); got != "PONG" {
			t.Errorf("afterloss answers %q", got)
		}
		nodes, err := survivors[0].nodeList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.Name == old.name && n.Healthy {
				t.Errorf("node list shows %s healthy while it has no power", old.name)
			}
		}

		old.Boot()
		booted := time.Now()
		old.waitAgent(ctx)
		l.waitFormed(ctx, trio)
		s := old.mustStatus(ctx)
		if s.RaftState != "follower" || s.Leader == old.name {
			t.Errorf("%s came back as %s with leader %s, want a follower", old.name, s.RaftState, s.Leader)
		}
		t.Logf("%s booted and rejoined as %s of %s in %s", old.name, s.RaftState, s.Leader, time.Since(booted).Round(10*time.Millisecond))
		// Its database comes back by itself, with the data it had.
		survivors[0].waitPong(ctx, orders)
		survivors[0].checkFilled(ctx, orders, 200)
		waitFor(t, wctx, "db show orders to report running again", func() (bool, string) {
			s := survivors[1].show(ctx, "orders").State
			return s == "running", "state " + s
		})
	})

	step("PartitionedFollowerCatchesUpAfterHealing", func(t *testing.T, l *clusterLab) {
		trio := l.hosts[:3]
		leader := l.leaderOf(ctx, trio[0])
		rest := others(trio, leader)
		cut, third := rest[0], rest[1]
		leader.createDB(ctx, "doomed", "nordb", "16mb", "--node", cut.name)

		cut.Disconnect()
		wctx, cancel := context.WithTimeout(ctx, clusterWait)
		defer cancel()
		waitFor(t, wctx, cut.name+" to notice it lost the leader", func() (bool, string) {
			s, err := cut.status(wctx)
			if err != nil {
				return false, err.Error()
			}
			return s.Leader == "", "leader " + s.Leader
		})
		// A minority cannot change the cluster.
		cut.refuse(wctx, []string{"leader", "quorum"}, "db", "create", "minority", "--memory", "16mb", "--flavor", "nordb")

		// The majority changes it meanwhile: a database of the cut host is
		// deleted, one is created elsewhere.
		leader.mustCLI(ctx, "db", "delete", "doomed")
		leader.createDB(ctx, "during", "nordb", "16mb", "--node", third.name)
		ls, cs := leader.mustStatus(ctx), cut.mustStatus(ctx)
		if cs.AppliedIndex >= ls.AppliedIndex {
			t.Fatalf("the cut host applied index %d while the leader is at %d: was it cut off?", cs.AppliedIndex, ls.AppliedIndex)
		}
		t.Logf("while cut off %s is at applied index %d, the leader %s at %d", cut.name, cs.AppliedIndex, leader.name, ls.AppliedIndex)
		// db url goes to the leader: a cut-off host must not hand out the
		// URL of a database the cluster deleted.
		if out, _, err := cut.cli(wctx, "db", "url", "doomed"); err == nil {
			t.Errorf("while cut off, %s still answers db url doomed (deleted by the majority) from its stale state: %s", cut.name, redactURL(out))
		}

		cut.Reconnect()
		healed := time.Now()
		var caughtUp clusterStatus
		waitFor(t, wctx, cut.name+" to follow a leader and reach the leader's applied index", func() (bool, string) {
			cs, err := cut.status(wctx)
			if err != nil {
				return false, err.Error()
			}
			ms, err := third.status(wctx)
			if err != nil {
				return false, err.Error()
			}
			lh := l.host(ms.Leader)
			if ms.Leader == "" || lh.name == cut.name {
				return false, "majority leader " + ms.Leader
			}
			ls, err := lh.status(wctx)
			if err != nil {
				return false, err.Error()
			}
			caughtUp = cs
			return cs.Leader == ms.Leader && cs.AppliedIndex >= ls.AppliedIndex,
				fmt.Sprintf("%s: leader %q applied %d; leader %s applied %d", cut.name, cs.Leader, cs.AppliedIndex, lh.name, ls.AppliedIndex)
		})
		t.Logf("%s caught up to applied index %d, %s after the partition healed", cut.name, caughtUp.AppliedIndex, time.Since(healed).Round(10*time.Millisecond))

		want := []string{"afterloss", "cache", "during", "orders", "placed", "sessions"}
		if got := cut.list(ctx); !slices.Equal(got, want) {
			t.Errorf("db list on %s after healing: %v, want %v", cut.name, got, want)
		}
		// db url reads the local state: it proves the host's own copy.
		if e := cut.url(ctx, "during"); e.Host != third.Addr() {
			t.Errorf("db url during on %s points at %s, want %s", cut.name, e.Host, third.Addr())
		}
		cut.refuse(ctx, []string{"doomed"}, "db", "url", "doomed")
		waitFor(t, wctx, "the deleted database's unit and data to leave "+cut.name, func() (bool, string) {
			return cut.unitGone(wctx, "doomed")
		})
		l.waitFormed(ctx, trio)
	})

	step("JoinsWithAForeignExpiredOrReusedTokenOrToNowhereAreRefused", func(t *testing.T, l *clusterLab) {
		trio, lone, joiner := l.hosts[:3], l.hosts[3], l.hosts[4]
		leader := l.leaderOf(ctx, trio[0])
		// lab4 is a cluster of its own, with its own CA.
		lone.initCluster(ctx)
		foreign, _ := lone.token(ctx, "")
		expiring, expires := trio[1].token(ctx, "1s")
		valid, _ := trio[2].token(ctx, "30m")
		before := leader.mustStatus(ctx).memberNames()

		check := func(what string) {
			t.Helper()
			if s := leader.mustStatus(ctx); s.Voters != 3 || !slices.Equal(s.memberNames(), before) {
				t.Errorf("after %s the members are %v (%d voters), want %v", what, s.memberNames(), s.Voters, before)
			}
			if s := joiner.mustStatus(ctx); s.Bootstrapped || s.RaftState != "none" {
				t.Errorf("after %s %s is %s (bootstrapped %v), want still no member", what, joiner.name, s.RaftState, s.Bootstrapped)
			}
		}
		addr := trio[0].Addr()
		joiner.refuse(ctx, []string{"not part of the cluster", "ca"}, "cluster", "join", addr, "--token", foreign)
		check("a join with another cluster's token")
		// The other way round: a member of another cluster is not ours.
		joiner.refuse(ctx, []string{"not part of the cluster", "ca"}, "cluster", "join", lone.Addr(), "--token", valid)
		check("a join to another cluster's member")

		if wait := time.Until(expires) + 200*time.Millisecond; wait > 0 {
			if wait > 5*time.Second {
				t.Fatalf("a --ttl 1s token expires in %s", wait)
			}
			time.Sleep(wait) // the expiry itself is what is tested
		}
		joiner.refuse(ctx, []string{"expired"}, "cluster", "join", addr, "--token", expiring)
		check("a join with an expired token")
		joiner.refuse(ctx, []string{"already used"}, "cluster", "join", addr, "--token", initToken)
		check("a join with a spent token")
		joiner.refuse(ctx, []string{"token"}, "cluster", "join", addr, "--token", "ratok1.garbage")
		joiner.refuse(ctx, []string{"token"}, "cluster", "join", addr)
		check("joins with a garbled token and none")

		// Nothing answers at .99 of the lab network: the join gives up
		// with a clear message within its bound.
		nowhere := strings.TrimSuffix(addr, ".11") + ".99"
		uctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		start := time.Now()
		joiner.refuse(uctx, []string{"cannot reach", "unreachable", "no route"}, "cluster", "join", nowhere, "--token", valid)
		t.Logf("the join to %s gave up after %s", nowhere, time.Since(start).Round(10*time.Millisecond))
		check("a join to an unreachable address")

		// None of the refusals spent the valid token.
		out := joiner.mustCLI(ctx, "cluster", "join", addr, "--token", valid)
		joiner.checkJoined(out, []string{leader.name}, 4)
		l.waitFormed(ctx, append(slices.Clone(trio), joiner))
	})

	step("RemovedNodeCanNoLongerChangeTheCluster", func(t *testing.T, l *clusterLab) {
		trio, joiner := l.hosts[:3], l.hosts[4]
		leader := l.leaderOf(ctx, trio[0])
		f := others(trio, leader)[0]

		joiner.createDB(ctx, "solo", "nordb", "16mb", "--node", joiner.name)
		f.refuse(ctx, []string{"solo"}, "node", "remove", joiner.name)
		if s := leader.mustStatus(ctx); s.Voters != 4 {
			t.Fatalf("a refused node remove changed the voters to %d", s.Voters)
		}
		f.mustCLI(ctx, "db", "delete", "solo")
		f.mustCLI(ctx, "node", "remove", joiner.name)
		l.waitFormed(ctx, trio)
		nodes, err := leader.nodeList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.Name == joiner.name {
				t.Errorf("node list still shows %s after node remove", joiner.name)
			}
		}

		before := leader.list(ctx)
		beforeIndex := leader.mustStatus(ctx).LastIndex
		mention := []string{"leader", "member", "removed", "not part"}
		joiner.refuse(ctx, mention, "db", "create", "sneaky", "--memory", "16mb", "--flavor", "nordb")
		joiner.refuse(ctx, mention, "db", "delete", "orders")
		joiner.refuse(ctx, mention, "cluster", "token")
		joiner.refuse(ctx, mention, "node", "drain", trio[0].name)
		if got := leader.list(ctx); !slices.Equal(got, before) {
			t.Errorf("db list after the removed node's attempts: %v, want %v", got, before)
		}
		if idx := leader.mustStatus(ctx).LastIndex; idx != beforeIndex {
			t.Errorf("the Raft log grew from %d to %d while only the removed node tried to change it", beforeIndex, idx)
		}
		if nodes, err := leader.nodeList(ctx); err == nil {
			for _, n := range nodes {
				if n.Draining {
					t.Errorf("node %s is draining after the removed node asked", n.Name)
				}
			}
		}
	})

	step("BadInputIsRefusedClearlyAndChangesNothing", func(t *testing.T, l *clusterLab) {
		trio, lone := l.hosts[:3], l.hosts[3]
		leader := l.leaderOf(ctx, trio[0])
		f := others(trio, leader)[0]
		beforeList, beforeMembers := leader.list(ctx), leader.mustStatus(ctx).memberNames()
		footprints := map[string]string{}
		for _, h := range trio {
			footprints[h.name] = h.footprint(ctx)
		}

		f.refuse(ctx, []string{"nosuch"}, "db", "create", "stray", "--memory", "16mb", "--flavor", "nordb", "--node", "nosuch")
		f.refuse(ctx, []string{trio[1].name}, "db", "create", "huge", "--memory", "9tb", "--flavor", "nordb", "--node", trio[1].name)
		f.refuse(ctx, []string{"nosuch"}, "node", "drain", "nosuch")
		f.refuse(ctx, []string{"nosuch"}, "node", "remove", "nosuch")
		f.refuse(ctx, []string{"already"}, "cluster", "init")
		f.refuse(ctx, []string{"already"}, "cluster", "join", leader.Addr(), "--token", "ratok1.garbage")
		f.refuse(ctx, []string{"ttl"}, "cluster", "token", "--ttl", "forever")
		// lab4 is a one-node cluster: its only node is the last voter and
		// the only node that takes databases.
		lone.refuse(ctx, []string{"last voter"}, "node", "remove", lone.name)
		lone.refuse(ctx, []string{"last voter"}, "cluster", "leave")
		lone.refuse(ctx, []string{"only node"}, "node", "drain", lone.name)

		if got := leader.list(ctx); !slices.Equal(got, beforeList) {
			t.Errorf("db list after bad input: %v, want %v", got, beforeList)
		}
		if got := leader.mustStatus(ctx).memberNames(); !slices.Equal(got, beforeMembers) {
			t.Errorf("members after bad input: %v, want %v", got, beforeMembers)
		}
		for _, h := range trio {
			if got := h.footprint(ctx); got != footprints[h.name] {
				t.Errorf("bad input changed %s:\nbefore:\n%s\nafter:\n%s", h.name, footprints[h.name], got)
			}
		}
		s := lone.mustStatus(ctx)
		nodes, err := lone.nodeList(ctx)
		if err != nil || s.Voters != 1 || len(nodes) != 1 || nodes[0].Draining {
			t.Errorf("%s after bad input: %d voters, nodes %+v (%v); want itself, not draining", lone.name, s.Voters, nodes, err)
		}
	})
}

// redactURL hides the password of a redis:// URL for a log line.
func redactURL(u string) string {
	u = strings.TrimSpace(u)
	at := strings.LastIndex(u, "@")
	colon := strings.LastIndex(u[:max(at, 0)], ":")
	if at < 0 || colon < 0 {
		return u
	}
	return u[:colon+1] + "REDACTED" + u[at:]
}
