package raftstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// These tests run real Raft over loopback TCP (plain TCP: ServerTLS nil),
// with each node's log, stable store and snapshots in its own t.TempDir().

type recoverNode struct {
	name, dir, addr string
	s               *Store
}

func (n *recoverNode) cfg() Config {
	return Config{NodeName: n.name, Dir: n.dir, BindAddr: n.addr, Logger: slog.New(slog.DiscardHandler)}
}

func (n *recoverNode) open(t *testing.T) {
	t.Helper()
	s, err := Open(n.cfg())
	if err != nil {
		t.Fatalf("open %s: %v", n.name, err)
	}
	n.s = s
}

func (n *recoverNode) close(t *testing.T) {
	t.Helper()
	if n.s == nil {
		return
	}
	if err := n.s.Close(); err != nil {
		t.Fatalf("close %s: %v", n.name, err)
	}
	n.s = nil
}

func recoverAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// formRecoverCluster builds a three-voter cluster n1, n2, n3 whose state
// holds the three nodes and two databases. n1 took a snapshot between the
// two databases, so its disk holds a snapshot plus log entries after it;
// n2 and n3 hold the log only.
func formRecoverCluster(t *testing.T, ctx context.Context) []*recoverNode {
	t.Helper()
	nodes := make([]*recoverNode, 3)
	for i := range nodes {
		nodes[i] = &recoverNode{name: "n" + string(rune('1'+i)), dir: t.TempDir(), addr: recoverAddr(t)}
		nodes[i].open(t)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.s != nil {
				_ = n.s.Close()
			}
		}
	})
	n1 := nodes[0].s
	if err := n1.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := n1.AddVoter(ctx, n.name, n.addr); err != nil {
			t.Fatal(err)
		}
		if err := n1.Apply(ctx, CmdRegisterNode, RegisterNode{Name: n.name, RaftAddr: n.addr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n1.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	if err := n1.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("sessions", 6401)}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitState(t, ctx, n, func(st *State) bool { return len(st.Databases) == 2 && len(st.Nodes) == 3 })
	}
	return nodes
}

func waitState(t *testing.T, ctx context.Context, n *recoverNode, ok func(*State) bool) {
	t.Helper()
	for !ok(n.s.State()) {
		select {
		case <-ctx.Done():
			t.Fatalf("%s never reached the expected state; it has %+v", n.name, n.s.State())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitLeader returns whichever of nodes becomes leader.
func waitLeader(t *testing.T, ctx context.Context, nodes ...*recoverNode) *recoverNode {
	t.Helper()
	for {
		for _, n := range nodes {
			if n.s.IsLeader() {
				return n
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader elected among %d recovered nodes", len(nodes))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func voterIDs(t *testing.T, s *Store) []string {
	t.Helper()
	srvs, err := s.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, srv := range srvs {
		if !srv.Voter {
			t.Fatalf("server %s is not a voter: %+v", srv.ID, srvs)
		}
		ids = append(ids, srv.ID)
	}
	sort.Strings(ids)
	return ids
}

// loseQuorum stops n2 and n3 and proves n1 alone can neither commit nor
// elect a leader, then stops n1.
func loseQuorum(t *testing.T, ctx context.Context, nodes []*recoverNode) {
	t.Helper()
	nodes[2].close(t)
	nodes[1].close(t)
	n1 := nodes[0]
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// This entry may reach n1's log without ever being committed: the
	// uncommitted tail that Recover replays (see its doc comment).
	if err := n1.s.Apply(qctx, CmdRestartDatabase, RestartDatabase{Name: "cache"}); err == nil {
		t.Fatal("n1 committed a write with two of three voters down")
	} else {
		t.Logf("write without quorum refused as expected: %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
	defer scancel()
	for n1.s.IsLeader() {
		select {
		case <-sctx.Done():
			t.Fatal("n1 stays leader without a quorum")
		case <-time.After(20 * time.Millisecond):
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer lcancel()
	if err := n1.s.WaitLeader(lctx); err == nil {
		t.Fatalf("a leader (%s) was elected with two of three voters down", n1.s.Leader())
	}
	if err := n1.s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("lost", 6409)}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write on a node without quorum: err = %v, want ErrNotLeader", err)
	}
	n1.close(t)
}

// TestRecover_SingleSurvivorBecomesLeader is the worst case an operator
// meets: two of three voters are gone for good. After `cluster recover
// --voters n1` on the survivor, it elects itself, keeps every database, and
// accepts writes again.
func TestRecover_SingleSurvivorBecomesLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	loseQuorum(t, ctx, nodes)
	n1 := nodes[0]

	res, err := Recover(n1.cfg(), []string{"n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Voters) != 1 || res.Voters[0] != (Server{ID: "n1", Address: n1.addr, Voter: true}) {
		t.Fatalf("recovered voters = %+v, want n1 at %s", res.Voters, n1.addr)
	}
	if len(res.Previous) != 3 || res.Databases != 2 || res.LastIndex == 0 || res.Node != "n1" {
		t.Fatalf("recover result = %+v, want 3 previous servers, 2 databases, an index", res)
	}

	n1.open(t)
	if err := n1.s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if !n1.s.IsLeader() {
		t.Fatalf("recovered n1 is not the leader: %+v", n1.s.Status())
	}
	if ids := voterIDs(t, n1.s); strings.Join(ids, ",") != "n1" {
		t.Fatalf("voters after recovery = %v, want [n1]", ids)
	}
	st := n1.s.State()
	if st.Databases["cache"] == nil || st.Databases["sessions"] == nil || len(st.Nodes) != 3 {
		t.Fatalf("state after recovery: %+v", st)
	}
	t.Logf("restart generation of cache after recovery: %d (1 when the uncommitted write reached n1's log)", st.Databases["cache"].RestartGeneration)
	if err := n1.s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("orders", 6402)}); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	if len(n1.s.State().Databases) != 3 {
		t.Fatalf("databases after a write: %+v", n1.s.State().Databases)
	}

	// The recovered configuration survives a plain restart.
	n1.close(t)
	n1.open(t)
	if err := n1.s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := voterIDs(t, n1.s); strings.Join(ids, ",") != "n1" || len(n1.s.State().Databases) != 3 {
		t.Fatalf("after restart: voters %v, state %+v", ids, n1.s.State())
	}
}

// TestRecover_TwoSurvivorsFormCluster recovers the same voter list on two
// survivors, one with a snapshot and one with only a log: they form a
// two-voter cluster with the whole state and accept writes, which reach
// both.
func TestRecover_TwoSurvivorsFormCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	loseQuorum(t, ctx, nodes)
	n1, n2 := nodes[0], nodes[1]

	for _, n := range []*recoverNode{n1, n2} {
		res, err := Recover(n.cfg(), []string{"n1", "n2"}, nil)
		if err != nil {
			t.Fatalf("recover %s: %v", n.name, err)
		}
		if len(res.Voters) != 2 || res.Voters[0].Address != n1.addr || res.Voters[1].Address != n2.addr || res.Databases != 2 {
			t.Fatalf("recover %s: %+v", n.name, res)
		}
	}
	n1.open(t)
	n2.open(t)
	leader := waitLeader(t, ctx, n1, n2)
	if err := leader.s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if ids := voterIDs(t, leader.s); strings.Join(ids, ",") != "n1,n2" {
		t.Fatalf("voters after recovery = %v, want [n1 n2]", ids)
	}
	if err := leader.s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("orders", 6402)}); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}
	for _, n := range []*recoverNode{n1, n2} {
		waitState(t, ctx, n, func(st *State) bool {
			return len(st.Databases) == 3 && st.Databases["cache"] != nil && st.Databases["sessions"] != nil && st.Databases["orders"] != nil
		})
	}
	// Whatever tail n1 held beyond n2 (the write refused for lack of
	// quorum), the two converge on one history.
	if a, b := n1.s.State(), n2.s.State(); !reflect.DeepEqual(a, b) {
		t.Fatalf("recovered nodes disagree:\nn1 %+v\nn2 %+v", a, b)
	}
}

// dirPrint is every file under dir with a hash of its content.
func dirPrint(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func samePrint(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRecover_RefusesBadInput: every refusal says what is wrong and leaves
// the node's Raft files byte for byte as they were, so the cluster's
// configuration is still the old one.
func TestRecover_RefusesBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	n1 := nodes[0]
	// n4 was admitted (registered) but never became a Raft member.
	if err := n1.s.Apply(ctx, CmdRegisterNode, RegisterNode{Name: "n4", RaftAddr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}

	// A running agent holds the bolt lock.
	_, err := Recover(n1.cfg(), []string{"n1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "stop the agent") {
		t.Fatalf("recover on a running node: err = %v, want a stop-the-agent error", err)
	}
	if err := n1.s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"}); err != nil {
		t.Fatalf("the running cluster is disturbed by a refused recover: %v", err)
	}

	for _, n := range []*recoverNode{nodes[2], nodes[1], n1} {
		n.close(t)
	}
	before := dirPrint(t, n1.dir)
	mismatched := n1.cfg()
	mismatched.AdvertiseAddr = "127.0.0.1:1"
	cases := []struct {
		name   string
		cfg    Config
		voters []string
		is     error
		says   string
	}{
		{"empty list", n1.cfg(), nil, ErrInvalid, "no voters given"},
		{"duplicate", n1.cfg(), []string{"n1", "n2", "n1"}, ErrInvalid, "voter n1 is listed twice"},
		{"bad name", n1.cfg(), []string{"n1", "N2"}, ErrInvalid, `voter "N2" is not a node name`},
		{"own node missing", n1.cfg(), []string{"n2", "n3"}, ErrInvalid, "this node (n1) is not among the voters"},
		{"unknown voter", n1.cfg(), []string{"n1", "n9"}, ErrNotFound, "voter(s) n9 not found"},
		{"not a raft member", n1.cfg(), []string{"n1", "n4"}, ErrInvalid, "n4 are not members of the last Raft configuration"},
		{"address changed", mismatched, []string{"n1"}, ErrConflict, "advertises Raft address 127.0.0.1:1"},
	}
	for _, c := range cases {
		_, err := Recover(c.cfg, c.voters, nil)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err = %v, want %v saying %q", c.name, err, c.is, c.says)
		}
		if !samePrint(before, dirPrint(t, n1.dir)) {
			t.Fatalf("%s: the refused recover changed files in %s", c.name, n1.dir)
		}
	}

	// A node that never joined has nothing to recover, and gets no files.
	fresh := &recoverNode{name: "n1", dir: t.TempDir(), addr: recoverAddr(t)}
	if _, err := Recover(fresh.cfg(), []string{"n1"}, nil); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "never joined") {
		t.Errorf("recover of a fresh node: err = %v, want ErrNotFound saying it never joined", err)
	}
	if ents, _ := os.ReadDir(fresh.dir); len(ents) != 0 {
		t.Errorf("recover of a fresh node created %d files", len(ents))
	}

	// The configuration is still the three old voters.
	n1.open(t)
	if ids := voterIDs(t, n1.s); strings.Join(ids, ",") != "n1,n2,n3" {
		t.Fatalf("voters after refused recovers = %v, want [n1 n2 n3]", ids)
	}
}

// Offline recovery commits to the state it rebuilds, so an entry this
// agent cannot decode stops it (with what to do), rather than being
// skipped as a running FSM skips it.
func TestRecover_ReplayRefusesAnUndecodableEntry(t *testing.T) {
	rb := &rebuilt{fsm: NewFSM(nil)}
	err := replay(rb, &raft.Log{Index: 7, Type: raft.LogCommand, Data: []byte{200, payloadVersion, '{', '}'}})
	if err == nil || !strings.Contains(err.Error(), "entry 7") || !strings.Contains(err.Error(), "agent version the cluster last ran") {
		t.Fatalf("replay = %v, want a refusal naming entry 7 and what to do", err)
	}
	if err := replay(rb, &raft.Log{Index: 8, Type: raft.LogCommand, Data: mustEncode(t, CmdDeleteDatabase, DeleteDatabase{Name: "gone"})}); err != nil {
		t.Fatalf("a refused (but decodable) command is history, not an error: %v", err)
	}
}

func mustEncode(t *testing.T, ct CommandType, p any) []byte {
	t.Helper()
	b, err := Encode(ct, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
