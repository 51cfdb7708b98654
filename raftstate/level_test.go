package raftstate

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every command this build knows has a level, decodes, and needs no more
// than FeatureLevel; a type it does not know has none.
func TestCommandLevels_MatchTheCommandsThisBuildApplies(t *testing.T) {
	for ct := range 256 {
		c := CommandType(ct)
		level, known := commandLevel(c)
		_, err := decodePayload(c, payloadVersion, []byte(`{}`))
		if known != (err == nil) {
			t.Errorf("%s: in commandLevels %t, but decodes with err %v", c, known, err)
		}
		if known && (level < 1 || level > FeatureLevel) {
			t.Errorf("%s needs level %d; this build applies up to %d", c, level, FeatureLevel)
		}
	}
}

// RegisterNode records the node's level and release, and a later
// registration without them (an agent downgraded to one from before
// levels) puts it back at level 1.
func TestFSM_RegisterNodeRecordsTheFeatureLevel(t *testing.T) {
	f := NewFSM(nil)
	if err := applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1", FeatureLevel: 3, AgentVersion: "1.5.0"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Node("n1"); n.FeatureLevel != 3 || n.AgentVersion != "1.5.0" || n.Level() != 3 {
		t.Fatalf("node after registering at level 3: %+v", n)
	}
	if err := applyCmd(t, f, 2, CmdRegisterNode, RegisterNode{Name: "n1"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Node("n1"); n.FeatureLevel != 0 || n.AgentVersion != "" || n.Level() != 1 {
		t.Fatalf("node after registering without a level: %+v, want level 1", n)
	}
	// What an agent from before levels decodes: the fields are extra JSON
	// it ignores.
	data, err := Encode(CmdRegisterNode, RegisterNode{Name: "n1", FeatureLevel: 2, AgentVersion: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"feature_level":2`) || !strings.Contains(string(data), `"agent_version":"x"`) {
		t.Fatalf("encoding %s lacks the level and release", data)
	}
}

// A command whose level is above the cluster's is refused before anything
// is written, naming the command, the level and the node to upgrade; once
// the node's record says it is at that level, the command is accepted.
func TestStore_CommandAboveTheClusterLevelIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openStore(t, t.TempDir(), freeAddr(t))
	defer s.Close()
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	// Bootstrap registers this node at this build's level.
	if level, behind, err := s.ClusterLevel(); err != nil || level != FeatureLevel || behind != nil {
		t.Fatalf("ClusterLevel after bootstrap = %d, %v, %v; want %d, none behind", level, behind, err, FeatureLevel)
	}
	// The record says level 1, as an agent from before levels writes it.
	if err := s.Apply(ctx, CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: s.cfg.AdvertiseAddr}); err != nil {
		t.Fatal(err)
	}
	if level, behind, err := s.ClusterLevel(); err != nil || level != 1 || len(behind) != 1 || behind[0] != "n1" {
		t.Fatalf("ClusterLevel = %d, %v, %v; want 1, [n1]", level, behind, err)
	}
	if err := s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	// The test hook: restart-database needs level 3 here.
	s.levelOf = func(c CommandType) (uint32, bool) {
		if c == CmdRestartDatabase {
			return 3, true
		}
		return commandLevel(c)
	}
	last := s.raft.LastIndex()
	err := s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"})
	want := "restart-database needs every voter at feature level 3; n1 runs level 1: upgrade the agent on n1 first"
	if !errors.Is(err, ErrFeatureLevel) || err.Error() != want {
		t.Fatalf("err = %v, want ErrFeatureLevel: %q", err, want)
	}
	if got := s.raft.LastIndex(); got != last {
		t.Fatalf("the refused command was written: log went from %d to %d", last, got)
	}
	if g := s.State().Databases["cache"].RestartGeneration; g != 0 {
		t.Fatalf("restart generation %d after a refusal", g)
	}
	if err := s.Apply(ctx, CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: s.cfg.AdvertiseAddr, FeatureLevel: FeatureLevel}); err != nil {
		t.Fatal(err)
	}
	if level, behind, err := s.ClusterLevel(); err != nil || level != FeatureLevel || behind != nil {
		t.Fatalf("ClusterLevel = %d, %v, %v; want %d, none behind", level, behind, err, FeatureLevel)
	}
	if err := s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"}); err != nil {
		t.Fatalf("at level 3: %v", err)
	}
	if g := s.State().Databases["cache"].RestartGeneration; g != 1 {
		t.Fatalf("restart generation %d, want 1", g)
	}
	// A command type this build does not know is never written.
	if err := s.Apply(ctx, CommandType(200), struct{}{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown command type: %v, want ErrInvalid", err)
	}
}

// In a cluster, every voter counts, one with no node record at level 1,
// and the error names every voter below the level.
func TestStore_ClusterLevelIsTheLowestVoters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx) // n2 and n3 registered without a level
	leader := waitLeader(t, ctx, nodes...)
	level, behind, err := leader.s.ClusterLevel()
	if err != nil || level != 1 || strings.Join(behind, ",") != "n2,n3" {
		t.Fatalf("ClusterLevel = %d, %v, %v; want 1, [n2 n3]", level, behind, err)
	}
	leader.s.levelOf = func(c CommandType) (uint32, bool) {
		if c == CmdRestartDatabase {
			return 2, true
		}
		return commandLevel(c)
	}
	err = leader.s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"})
	if !errors.Is(err, ErrFeatureLevel) || !strings.Contains(err.Error(), "n2 runs level 1, n3 runs level 1: upgrade the agent on n2, n3 first") {
		t.Fatalf("err = %v, want ErrFeatureLevel naming n2 and n3", err)
	}
	for _, n := range nodes[1:] {
		if err := leader.s.Apply(ctx, CmdRegisterNode, RegisterNode{Name: n.name, RaftAddr: n.addr, FeatureLevel: FeatureLevel}); err != nil {
			t.Fatal(err)
		}
	}
	if err := leader.s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"}); err != nil {
		t.Fatal(err)
	}
}

// A store wires the FSM's undecodable entries to ApplyErrors and to its
// logger, and goes on applying what follows.
func TestStore_UndecodableEntryIsReportedNotFatal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logged lockedBuffer
	dir, addr := t.TempDir(), freeAddr(t)
	s, err := Open(Config{NodeName: "n1", Dir: dir, BindAddr: addr, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	// What a newer leader would write: a command this agent does not know.
	f := s.raft.Apply([]byte{200, payloadVersion, '{', '}'}, time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if err, _ := f.Response().(error); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("response %v, want ErrUndecodable", f.Response())
	}
	recent, total := s.ApplyErrors()
	if total != 1 || len(recent) != 1 || recent[0].Index != f.Index() || recent[0].Command != "command-200" {
		t.Fatalf("ApplyErrors = %+v, %d", recent, total)
	}
	if out := logged.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "upgrade the agent") || !strings.Contains(out, "command=command-200") {
		t.Fatalf("log lacks an error telling to upgrade:\n%s", out)
	}
	if err := s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	// Raft flattens the FSM's error into its own.
	if err := s.Snapshot(); err == nil || !strings.Contains(err.Error(), "upgrade this agent") {
		t.Fatalf("snapshot with an entry skipped: %v, want a refusal saying to upgrade", err)
	}
}

// Raft's leadership-lost (appended, may still commit) is not reported as
// not-leader (nothing written): the leader of a three-node cluster whose
// followers are gone appends the entry, cannot commit it, and steps down.
func TestStore_LeadershipLostIsNotNotLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// The followers are closed side by side, then the write goes in at
	// once, well within the leader's lease: a leader that stepped down
	// first (a slow machine) is tried again on a new cluster, a bounded
	// number of times; never skipped.
	for attempt := 1; ; attempt++ {
		nodes := formRecoverCluster(t, ctx)
		leader := waitLeader(t, ctx, nodes...)
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n != leader {
				wg.Add(1)
				go func() { defer wg.Done(); _ = n.s.Close() }()
			}
		}
		wg.Wait()
		err := leader.s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"})
		if errors.Is(err, ErrNotLeader) && !leader.s.IsLeader() && attempt < 3 {
			t.Logf("attempt %d: the leader stepped down before the write reached it; again", attempt)
			continue
		}
		if !errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrNotLeader) {
			t.Fatalf("err = %v, want ErrLeadershipLost (and not ErrNotLeader)", err)
		}
		// Now a follower: refused before anything is appended.
		if err := leader.s.Apply(ctx, CmdRestartDatabase, RestartDatabase{Name: "cache"}); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("on a follower: %v, want ErrNotLeader", err)
		}
		return
	}
}

// LeaderChanged closes on every node when the leader is shut down (the
// leader becomes unknown, then another takes over), and a follower that
// takes the channel before reading Leader always learns the new leader.
// (TestStore_LeadershipChangesAreSeen covers a leadership transfer.)
func TestStore_LeaderChangedFollowsAShutDownLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	old := waitLeader(t, ctx, nodes...)
	var rest []*recoverNode
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	// learn waits, as the forwarder does, until n knows want leads.
	learn := func(n *recoverNode, want string) <-chan struct{} {
		t.Helper()
		for {
			ch := n.s.LeaderChanged()
			if n.s.Leader() == want {
				return ch
			}
			select {
			case <-ch:
			case <-ctx.Done():
				t.Fatalf("%s never learned that %s leads; it says %q", n.name, want, n.s.Leader())
			}
		}
	}
	changed := map[string]<-chan struct{}{}
	for _, n := range rest {
		changed[n.name] = learn(n, old.name)
		select {
		case <-changed[n.name]:
			t.Fatalf("%s: LeaderChanged closed with no change", n.name)
		default:
		}
	}
	old.close(t)
	for _, n := range rest {
		select {
		case <-changed[n.name]:
		case <-ctx.Done():
			t.Fatalf("%s: LeaderChanged not closed after the leader %s shut down", n.name, old.name)
		}
	}
	next := waitLeader(t, ctx, rest...)
	for _, n := range rest {
		learn(n, next.name)
	}
}
