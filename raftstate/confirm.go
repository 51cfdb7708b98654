package raftstate

import (
	"time"
)

// BeatInterval is how often a leader confirms its leadership with a
// majority (hashicorp/raft's VerifyLeader). Each confirmation sends a
// heartbeat to every follower at once, so it is also the leader's
// heartbeat period: a follower hears from it at least twice within its
// HeartbeatTimeout.
const BeatInterval = 200 * time.Millisecond

// confirmLeadership runs while this node leads, until stop is closed: on a
// steady BeatInterval grid it asks a majority to confirm the leadership,
// and records when each confirmed round began.
//
// Why not leave the heartbeats to hashicorp/raft: it sends them from one
// goroutine per follower, each on its own random timer, so an idle leader
// woke twice per period for the sends and twice more for the answers, and
// the agent's own loops on top. Waking the process, not the work done
// once awake, was most of an idle leader's CPU. A confirmation heartbeats
// every follower in the same instant, the answers arrive together, and the
// agent's heartbeat loop runs right after them (Confirmed); hashicorp/raft's
// own timers (LeaderHeartbeatTimeout) are pushed back by every
// confirmation and fire only when one is late.
//
// It also gives the leader's agent a true lease: a confirmed round proves a
// majority heard from this leader after the round began, which being
// leader does not (a cut-off leader stays leader for up to
// LeaderLeaseTimeout).
func (s *Store) confirmLeadership(stop <-chan struct{}) {
	// The first round at once: a new leader tells the followers at once.
	t := time.NewTimer(0)
	defer t.Stop()
	next := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-s.done:
			return
		case <-t.C:
		}
		began := time.Now()
		// Error returns once a majority has answered, or with
		// ErrNotLeader/ErrLeadershipLost when this node no longer leads
		// (a cut-off leader steps down within LeaderLeaseTimeout): stop is
		// then closed by watchLeadership.
		if err := s.raft.VerifyLeader().Error(); err == nil {
			s.confirmed(began)
		}
		// On a grid rather than BeatInterval after each answer, so that the
		// period does not stretch by the round trip. A round that overran
		// (a slow or lost majority) starts the grid again from now.
		next = next.Add(BeatInterval)
		wait := time.Until(next)
		if wait < 0 {
			next, wait = time.Now(), 0
		}
		t.Reset(wait)
	}
}

// confirmed records a confirmed round that began at began, and wakes
// Confirmed's waiters.
func (s *Store) confirmed(began time.Time) {
	s.confirmMu.Lock()
	defer s.confirmMu.Unlock()
	if began.After(s.confirmedAt) {
		s.confirmedAt = began
	}
	close(s.confirmCh)
	s.confirmCh = make(chan struct{})
}

// Confirmed returns when the last round of confirmation that a majority
// answered began (zero if this node never led, monotonic clock), and a
// channel closed when the next round is confirmed. While this node leads
// that is every BeatInterval; a leader cut off from the majority is
// confirmed no more.
func (s *Store) Confirmed() (time.Time, <-chan struct{}) {
	s.confirmMu.Lock()
	defer s.confirmMu.Unlock()
	return s.confirmedAt, s.confirmCh
}
