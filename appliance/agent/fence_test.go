package agent

import (
	"testing"
	"time"
)

// The lease runs from when an acknowledged report left: an answer that
// took its time must not stretch it past what the leader counts (it counts
// silence from the report's arrival), and a late answer to an older report
// must not shorten it.
func TestLease_RunsFromWhenTheAcknowledgedReportLeft(t *testing.T) {
	const window = 700 * time.Millisecond
	var l lease
	if l.held(window) {
		t.Fatal("a lease never renewed is held; want it lost until a leader answers")
	}
	now := time.Now()
	l.renew(now.Add(-800*time.Millisecond), 7)
	if l.held(window) {
		t.Error("a report sent 800 ms ago, answered just now, holds a 700 ms lease; it must run from the send")
	}
	l.renew(now.Add(-100*time.Millisecond), 8)
	l.renew(now.Add(-650*time.Millisecond), 6)
	if !l.held(window) {
		t.Error("a late answer to an older report shortened the lease")
	}
}

// The fencer sleeps while the lease is held, but never past the moment it
// runs out: a lost lease must fence at once, not at the next tick.
func TestFenceWait_WakesWhenTheLeaseRunsOut(t *testing.T) {
	cases := []struct {
		name                   string
		fenced                 bool
		leaseLeft, sinceAssert time.Duration
		want                   time.Duration
	}{
		{"held, taking writes: until the lease runs out", false, 450 * time.Millisecond, time.Second, 451 * time.Millisecond},
		{"held, nearly out", false, 3 * time.Millisecond, time.Second, 4 * time.Millisecond},
		{"fenced: ticks until contact and a pass", true, 450 * time.Millisecond, time.Second, fenceTick},
		{"lease lost, not yet fenced: the next tick", false, 0, time.Second, fenceTick},
		{"refresh due before the lease runs out", false, 450 * time.Millisecond, fenceRefresh - 200*time.Millisecond, 200 * time.Millisecond},
		{"a failed assert retries at the next tick", false, 450 * time.Millisecond, fenceRefresh + time.Hour, fenceTick},
	}
	for _, c := range cases {
		if got := fenceWait(c.fenced, c.leaseLeft, c.sinceAssert); got != c.want {
			t.Errorf("%s: fenceWait = %s, want %s", c.name, got, c.want)
		}
	}
	var l lease
	l.renew(time.Now(), 1)
	if left := l.remaining(700 * time.Millisecond); left <= 600*time.Millisecond || left > 700*time.Millisecond {
		t.Errorf("a lease renewed just now has %s left of 700 ms", left)
	}
}
