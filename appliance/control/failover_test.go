package control

import (
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// A new leader may count its predecessor's node silent from before the
// election, but never so early that the detection window ends before the
// predecessor's agent has fenced its primaries: that agent's lease ran from
// its last round confirmed by a majority, which (outside a handover) every
// voter last heard a heartbeat timeout or more before it voted. With the
// defaults an election proper leaves under half a second to wait.
func TestPreviousSilentSince_NeverBeforeTheOldLeaderIsFenced(t *testing.T) {
	const fenceTick = 100 * time.Millisecond // appliance/agent's fencer, with room
	defaults := config.Failover{Detection: time.Second, Lease: 700 * time.Millisecond}
	t0 := time.Now()
	for _, f := range []config.Failover{
		defaults,
		{Detection: 1500 * time.Millisecond, Lease: time.Second},
		{Detection: 5 * time.Second, Lease: 2 * time.Second},
		{Detection: 800 * time.Millisecond, Lease: 500 * time.Millisecond},
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
			since, ok := previousSilentSince(c.leaderSince, c.contact, f)
			if !ok {
				if f == defaults && !c.handover {
					t.Errorf("%v, %s: no head start; want the silence counted from before the election", f, c.name)
				}
				continue
			}
			if !since.Before(c.leaderSince) {
				t.Errorf("%v, %s: seed %s is not before the election (%s)", f, c.name, since.Sub(t0), c.leaderSince.Sub(t0))
			}
			// The latest the old leader can have been confirmed by a
			// majority: after an election, a heartbeat timeout before the
			// vote; in a handover, until the vote.
			lastWord := c.leaderSince.Add(-raftstate.HeartbeatTimeout)
			if c.handover {
				lastWord = c.leaderSince
			}
			fenced := lastWord.Add(f.Lease + fenceTick)
			promote := since.Add(f.Detection)
			if !promote.After(fenced) {
				t.Errorf("%v, %s: a failover could come at %s, before the old leader's primaries are fenced (%s)",
					f, c.name, promote.Sub(t0), fenced.Sub(t0))
			}
			if f == defaults && !c.handover {
				if wait := promote.Sub(c.leaderSince); wait > 500*time.Millisecond {
					t.Errorf("%v, %s: the new leader waits %s after taking over; want under 500ms", f, c.name, wait)
				}
			}
		}
	}
}
