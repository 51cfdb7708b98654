package raftstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func openStore(t *testing.T, dir, addr string) *Store {
	t.Helper()
	s, err := Open(Config{NodeName: "n1", Dir: dir, BindAddr: addr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore_StateSurvivesRestartAndSnapshot runs real Raft over loopback TCP:
// bootstrap, write, snapshot, write more, close, reopen, and find everything.
func TestStore_StateSurvivesRestartAndSnapshot(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s := openStore(t, dir, addr)
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("sessions", 6401)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6402)}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: err = %v, want ErrExists", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, addr)
	defer s.Close()
	if err := s.Bootstrap(ctx); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Fatalf("second bootstrap: err = %v, want ErrAlreadyBootstrapped", err)
	}
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if len(st.Databases) != 2 || st.Databases["sessions"] == nil || st.Nodes["n1"] == nil {
		t.Fatalf("state after restart: %+v", st)
	}
	if s.Status().Voters != 1 || !s.IsLeader() {
		t.Fatalf("status after restart: %+v", s.Status())
	}
}

func TestStore_SecondOpenOnSameDirFails(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, freeAddr(t))
	defer s.Close()
	_, err := Open(Config{NodeName: "n1", Dir: dir, BindAddr: freeAddr(t), Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Fatal("a second store opened the same directory")
	}
}

// TestStore_ReplayTargetIsTheLastCommand: a follower waits for its FSM to
// have applied the last command of its log, not the barrier Apply appends
// after it (barriers never reach the FSM), and the FSM's own applied index
// says when it has.
func TestStore_ReplayTargetIsTheLastCommand(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openStore(t, dir, addr)
	defer s.Close()
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	applied := s.fsm.Applied()
	deadline := time.Now().Add(10 * time.Second)
	for s.raft.LastIndex() <= applied {
		if time.Now().After(deadline) {
			t.Fatal("no barrier was appended after the write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := s.lastCommand(s.raft.LastIndex())
	if err != nil || got != applied {
		t.Fatalf("lastCommand = %d, %v; want %d, the create (log ends at %d)", got, err, applied, s.raft.LastIndex())
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// Everything is in the snapshot now: nothing to wait for.
	if got, err := s.lastCommand(s.raft.LastIndex()); err != nil || got != 0 {
		t.Fatalf("after a snapshot lastCommand = %d, %v; want 0", got, err)
	}
}

// The leader runs hashicorp/raft's heartbeat timers at
// LeaderHeartbeatTimeout (its heartbeats come from confirmLeadership;
// these are the fallback) while followers keep the short HeartbeatTimeout
// before they stand for election; a node that hands leadership over goes
// back to the short timeout as a follower.
func TestStore_OnlyTheLeaderSlowsItsHeartbeats(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	paced := func() (string, bool) {
		var leader string
		for _, n := range nodes {
			want := HeartbeatTimeout
			if n.s.IsLeader() {
				want, leader = LeaderHeartbeatTimeout, n.name
			}
			if got := n.s.raft.ReloadableConfig().HeartbeatTimeout; got != want {
				return "", false
			}
		}
		return leader, leader != ""
	}
	waitPaced := func(what string) string {
		t.Helper()
		for {
			if leader, ok := paced(); ok {
				return leader
			}
			select {
			case <-ctx.Done():
				var got []string
				for _, n := range nodes {
					got = append(got, fmt.Sprintf("%s leader=%t timeout=%s", n.name, n.s.IsLeader(), n.s.raft.ReloadableConfig().HeartbeatTimeout))
				}
				t.Fatalf("%s: want the leader at %s and followers at %s; got %s", what, LeaderHeartbeatTimeout, HeartbeatTimeout, strings.Join(got, ", "))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	first := waitPaced("after forming")
	for _, n := range nodes {
		if n.name == first {
			if err := n.s.TransferLeadership(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if second := waitPaced("after a leadership transfer"); second == first {
		t.Fatalf("%s still leads after handing leadership over", first)
	}
}

// A new leader's failure detector starts from LeadershipChanged and seeds
// PreviousLeader, and the forwarder waits on LeaderChanged: all must
// follow a leadership transfer.
func TestStore_LeadershipChangesAreSeen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	wait := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			select {
			case <-ctx.Done():
				t.Fatal(what)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	leader := func() *recoverNode {
		for _, n := range nodes {
			if n.s.IsLeader() {
				return n
			}
		}
		return nil
	}
	wait("no leader after forming", func() bool { return leader() != nil })
	old := leader()
	for _, n := range nodes {
		if n != old {
			wait(n.name+" never remembered the leader it follows", func() bool { return n.s.PreviousLeader() == old.name })
		}
	}
	changed, moved := map[string]<-chan struct{}{}, map[string]<-chan struct{}{}
	for _, n := range nodes {
		changed[n.name] = n.s.LeadershipChanged()
		moved[n.name] = n.s.LeaderChanged()
	}
	if err := old.s.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	wait("no new leader after the transfer", func() bool { l := leader(); return l != nil && l != old })
	next := leader()
	for _, n := range []*recoverNode{old, next} {
		select {
		case <-changed[n.name]:
		case <-ctx.Done():
			t.Fatalf("%s: LeadershipChanged not closed after the transfer", n.name)
		}
	}
	for _, n := range nodes {
		select {
		case <-moved[n.name]:
		case <-ctx.Done():
			t.Fatalf("%s: LeaderChanged not closed after the transfer", n.name)
		}
	}
	if got := next.s.PreviousLeader(); got != old.name {
		t.Fatalf("new leader %s: PreviousLeader %q, want %s", next.name, got, old.name)
	}
}

// The leader's agent takes its lease from Confirmed: it must advance while
// a majority answers (every BeatInterval), never on a follower, and never
// for a round that began once the majority was gone.
func TestStore_OnlyAMajorityConfirmsTheLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := formRecoverCluster(t, ctx)
	leader := waitLeader(t, ctx, nodes...)
	// Several rounds in a row, each closing the channel of the one before.
	var last time.Time
	for i := range 5 {
		prev, next := leader.s.Confirmed()
		select {
		case <-next:
		case <-ctx.Done():
			t.Fatalf("round %d: the leader was never confirmed again (last round began %s ago)", i, time.Since(prev))
		}
		at, _ := leader.s.Confirmed()
		if !at.After(prev) || !at.After(last) {
			t.Fatalf("round %d: Confirmed did not advance: %s after %s", i, at, prev)
		}
		last = at
	}
	for _, n := range nodes {
		if n != leader {
			if at, _ := n.s.Confirmed(); !at.IsZero() {
				t.Errorf("follower %s was confirmed as leader at %s", n.name, at)
			}
		}
	}
	// Lose the majority: the leader may still lead for a while, but no
	// round that began after that is confirmed.
	for _, n := range nodes {
		if n != leader {
			n.close(t)
		}
	}
	gone := time.Now()
	for leader.s.IsLeader() {
		select {
		case <-ctx.Done():
			t.Fatal("the leader never stepped down after losing both followers")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if at, _ := leader.s.Confirmed(); at.After(gone) {
		t.Fatalf("a round that began %s after the followers were gone was confirmed", at.Sub(gone))
	}
}

// TestStore_AReopenedStoreHoldsItsVoteAHeartbeatTimeout: a node that has
// just restarted knows no leader, so hashicorp/raft would vote at once,
// though it may have answered the old leader a moment before; the failure
// detector's head start after an election relies on no voter doing so
// (appliance/control, seedPrevious). Raft starts only a heartbeat timeout
// after the store was closed.
func TestStore_AReopenedStoreHoldsItsVoteAHeartbeatTimeout(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	s := openStore(t, dir, addr)
	// A single voter elects itself: then it has just heard from a leader.
	if err := s.Bootstrap(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitLeader(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	s = openStore(t, dir, addr)
	defer s.Close()
	if held := time.Since(closed); held < HeartbeatTimeout {
		t.Fatalf("Raft started %s after the store closed; want at least the heartbeat timeout (%s)", held, HeartbeatTimeout)
	}
	if err := s.WaitLeader(t.Context()); err != nil {
		t.Fatal(err)
	}
}
