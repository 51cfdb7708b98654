package control

import (
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// A new leader may count its predecessor's node silent from before the
// election, but never so early that the detection window ends before the
// predecessor's agent has fenced its primaries: the old leader's lease ran
// from its last round confirmed by a majority, and the seed allows a
// heartbeat period plus the Raft leader lease on top of that.
func TestPreviousSilentSince_NeverBeforeTheOldLeaderIsFenced(t *testing.T) {
	const fenceTick = 100 * time.Millisecond // appliance/agent's fencer
	t0 := time.Now()
	for _, f := range []config.Failover{
		{Detection: time.Second, Lease: 700 * time.Millisecond},
		{Detection: 1500 * time.Millisecond, Lease: time.Second},
		{Detection: 5 * time.Second, Lease: 2 * time.Second},
		{Detection: 800 * time.Millisecond, Lease: 500 * time.Millisecond},
	} {
		for _, c := range []struct {
			name                 string
			leaderSince, contact time.Time
		}{
			{"heard from it just before the election", t0.Add(700 * time.Millisecond), t0},
			{"elected a heartbeat timeout after the last word", t0.Add(raftstate.HeartbeatTimeout), t0},
			{"slow election", t0.Add(3 * time.Second), t0},
			{"this node was cut off long before", t0.Add(time.Minute), t0},
			{"leadership handed over", t0.Add(20 * time.Millisecond), t0},
		} {
			since, ok := previousSilentSince(c.leaderSince, c.contact, f)
			if !ok {
				if f.Detection == 1500*time.Millisecond && c.name == "heard from it just before the election" {
					t.Errorf("%v, %s: no head start; want the silence counted from before the election", f, c.name)
				}
				continue
			}
			if !since.Before(c.leaderSince) {
				t.Errorf("%v, %s: seed %s is not before the election (%s)", f, c.name, since.Sub(t0), c.leaderSince.Sub(t0))
			}
			// The latest the old leader can have heard from a majority: a
			// voter votes only after a heartbeat timeout without it.
			lastWord := c.leaderSince.Add(-raftstate.HeartbeatTimeout)
			if c.contact.After(lastWord) {
				lastWord = c.contact
			}
			fenced := lastWord.Add(raftstate.LeaderHeartbeatMax + raftstate.LeaderLeaseTimeout + f.Lease + fenceTick)
			if promote := since.Add(f.Detection); !promote.After(fenced) {
				t.Errorf("%v, %s: a failover could come at %s, before the old leader's primaries are fenced (%s)",
					f, c.name, promote.Sub(t0), fenced.Sub(t0))
			}
		}
	}
}
