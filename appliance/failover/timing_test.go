package failover

import (
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// The inequalities that keep failover safe and live, checked with the
// defaults and with the tightest and loosest settings Validate accepts.
// Each says what breaks if it fails.
func TestTimings_Inequalities(t *testing.T) {
	settings := []Settings{
		Defaults,
		{Detection: MinDetection, Lease: MinLease, Cooldown: time.Second},
		{Detection: MaxDetection, Lease: MaxDetection - FenceSlack, Cooldown: MaxCooldown},
	}
	for _, s := range settings {
		if err := s.Validate(); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		check := func(ok bool, what string) {
			t.Helper()
			if !ok {
				t.Errorf("detection %s, lease %s: %s", s.Detection, s.Lease, what)
			}
		}
		// A cut-off node fences (lease + slack) before the leader may
		// declare it failed (detection, counted from the report's arrival,
		// which is after it left).
		check(s.Lease+FenceSlack <= s.Detection, "lease + FenceSlack must not exceed detection: a cut-off primary would take writes after a replica was promoted")
		// Two reports may be lost or late in a row without losing the
		// lease.
		check(3*HeartbeatInterval <= s.Lease, "the lease must survive two lost reports")
		check(3*FollowerFallback <= s.Lease, "a follower that hears no leader heartbeat must report three times within the lease (two may be lost)")
		check(LeaderFallback < s.Lease, "the leader's own report (and lease renewal) must come within its lease")
		// The replicas' confirmation comes within detection.
		check(ProbeLost < s.Detection, "replicas must see an unreachable primary within detection")
		// A Raft leader cut off steps down before its lease could be
		// renewed past detection.
		check(raftstate.LeaderLeaseTimeout < s.Detection, "a cut-off Raft leader must step down within detection")
	}
	// The fencer acts within the slack: it wakes at the lease's end (the
	// timer) or within a tick, and fencing takes a round trip.
	if FenceTick >= FenceSlack {
		t.Errorf("FenceTick %s must be shorter than FenceSlack %s", FenceTick, FenceSlack)
	}
	if ObserveWait >= HeartbeatInterval {
		t.Errorf("ObserveWait %s must leave each report its interval (%s)", ObserveWait, HeartbeatInterval)
	}
	if ReportGap >= raftstate.BeatInterval || FollowerFallback <= raftstate.BeatInterval {
		t.Errorf("a follower must report once per leader heartbeat (%s): ReportGap %s, FollowerFallback %s", raftstate.BeatInterval, ReportGap, FollowerFallback)
	}
	if DetectTick >= MinDetection/4 {
		t.Errorf("DetectTick %s must be well under the shortest detection %s", DetectTick, MinDetection)
	}
	if CatchUpWait >= SwitchoverPause || SettleWait >= SwitchoverPause {
		t.Errorf("a switchover must finish (catch-up %s, settle %s) within its pause %s, or writes resume on the old primary mid-way", CatchUpWait, SettleWait, SwitchoverPause)
	}
}

// A new leader may count its predecessor's node silent from before the
// election, but never so early that the detection window ends before the
// predecessor's agent has fenced its primaries: that agent's lease ran from
// its last round confirmed by a majority, which (outside a handover) every
// voter last heard a heartbeat timeout or more before it voted. With the
// defaults an election proper leaves at most half a second to wait.
func TestPreviousSilentSince_NeverBeforeTheOldLeaderIsFenced(t *testing.T) {
	t0 := time.Now()
	for _, s := range []Settings{
		Defaults,
		{Detection: 1500 * time.Millisecond, Lease: time.Second},
		{Detection: 5 * time.Second, Lease: 2 * time.Second},
		{Detection: MinDetection, Lease: MinLease},
	} {
		for _, c := range []struct {
			name                 string
			leaderSince, contact time.Time
			handover             bool
		}{
			{"elected right after the heartbeat timeout", t0.Add(raftstate.HeartbeatTimeout + time.Millisecond), t0, false},
			{"typical election", t0.Add(900 * time.Millisecond), t0, false},
			{"slow election", t0.Add(3 * time.Second), t0, false},
			{"this node was cut off long before", t0.Add(time.Minute), t0, false},
			{"leadership handed over", t0.Add(20 * time.Millisecond), t0, true},
			{"handed over after a pause", t0.Add(raftstate.HeartbeatTimeout - time.Millisecond), t0, true},
		} {
			since, ok := previousSilentSince(c.leaderSince, c.contact, s)
			if !ok {
				if s == Defaults && !c.handover {
					t.Errorf("%+v, %s: no head start; want the silence counted from before the election", s, c.name)
				}
				continue
			}
			if !since.Before(c.leaderSince) {
				t.Errorf("%+v, %s: seed %s is not before the election (%s)", s, c.name, since.Sub(t0), c.leaderSince.Sub(t0))
			}
			// The latest the old leader can have been confirmed by a
			// majority: after an election, a heartbeat timeout before the
			// vote; in a handover, until the vote.
			lastWord := c.leaderSince.Add(-raftstate.HeartbeatTimeout)
			if c.handover {
				lastWord = c.leaderSince
			}
			fenced := lastWord.Add(s.Lease + FenceTick)
			promote := since.Add(s.Detection)
			if !promote.After(fenced) {
				t.Errorf("%+v, %s: a failover could come at %s, before the old leader's primaries are fenced (%s)",
					s, c.name, promote.Sub(t0), fenced.Sub(t0))
			}
			if s == Defaults && !c.handover {
				if wait := promote.Sub(c.leaderSince); wait > 500*time.Millisecond {
					t.Errorf("%+v, %s: the new leader waits %s after taking over; want at most 500ms", s, c.name, wait)
				}
			}
		}
	}
}

// Settings outside their ranges are refused with the key and the range.
func TestSettings_ValidateRefusesWithTheKeyAndRange(t *testing.T) {
	for _, c := range []struct {
		s    Settings
		says string
	}{
		{Settings{Detection: 0, Lease: Defaults.Lease, Cooldown: time.Minute}, "failover.detection"},
		{Settings{Detection: -time.Second, Lease: Defaults.Lease, Cooldown: time.Minute}, "failover.detection"},
		{Settings{Detection: time.Second, Lease: 100 * time.Millisecond, Cooldown: time.Minute}, "failover.lease"},
		{Settings{Detection: time.Second, Lease: 800 * time.Millisecond, Cooldown: time.Minute}, "at least 300ms shorter"},
		{Settings{Detection: time.Second, Lease: Defaults.Lease, Cooldown: 0}, "failover.cooldown"},
		{Settings{Detection: time.Second, Lease: Defaults.Lease, Cooldown: time.Minute, MaxLag: -1}, "failover.max_lag"},
		{Settings{Detection: time.Second, Lease: Defaults.Lease, Cooldown: time.Minute, SwitchoverMaxLag: MaxLag + 1}, "failover.switchover_max_lag"},
	} {
		err := c.s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want an error naming %s", c.s, err, c.says)
		}
	}
	if err := Defaults.Validate(); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
}
