package failover

import (
	"testing"
	"time"
)

// The lease runs from when an acknowledged report left: an answer that
// took its time must not stretch it past what the leader counts (it counts
// silence from the report's arrival), and a late answer to an older report
// must not shorten it.
func TestLease_RunsFromWhenTheAcknowledgedReportLeft(t *testing.T) {
	l := NewLease(700 * time.Millisecond)
	if l.Held() {
		t.Fatal("a lease never renewed is held; want it lost until a leader answers")
	}
	now := time.Now()
	l.Renew(now.Add(-800*time.Millisecond), 7)
	if l.Held() {
		t.Error("a report sent 800 ms ago, answered just now, holds a 700 ms lease; it must run from the send")
	}
	l.Renew(now.Add(-100*time.Millisecond), 8)
	l.Renew(now.Add(-650*time.Millisecond), 6)
	if !l.Held() {
		t.Error("a late answer to an older report shortened the lease")
	}
	if left := l.Remaining(); left <= 500*time.Millisecond || left > 600*time.Millisecond {
		t.Errorf("a lease renewed from 100 ms ago has %s left of 700 ms", left)
	}
}

// The fencer sleeps while the lease is held and the primaries take writes
// (the lease's expiry wakes it), and ticks while it is fenced or the lease
// is lost.
func TestFenceWait_SleepsWhileTheLeaseIsHeld(t *testing.T) {
	cases := []struct {
		name        string
		phase       Phase
		held        bool
		sinceAssert time.Duration
		want        time.Duration
	}{
		{"held, taking writes: until the refresh", Writable, true, time.Second, FenceRefresh - time.Second},
		{"fenced: ticks until contact and a pass", Fenced, true, time.Second, FenceTick},
		{"catching up: ticks", CatchingUp, true, time.Second, FenceTick},
		{"lease lost, not yet fenced: the next tick", Writable, false, time.Second, FenceTick},
		{"a failed assert retries at the next tick", Writable, true, FenceRefresh + time.Hour, FenceTick},
	}
	for _, c := range cases {
		if got := fenceWait(c.phase, c.held, c.sinceAssert); got != c.want {
			t.Errorf("%s: fenceWait = %s, want %s", c.name, got, c.want)
		}
	}
}

// A lost lease must wake the fencer at once, however long its own timer
// sleeps; a renewal pushes the wake-up back, so a lease that is renewed in
// time never wakes it.
func TestLeaseExpired_FiresWhenTheLeaseRunsOutAndNotBefore(t *testing.T) {
	const window = 300 * time.Millisecond
	l := NewLease(window)
	start := time.Now()
	l.Renew(start, 1)
	// Renewed twice before it would run out: no wake-up meanwhile.
	for range 2 {
		select {
		case <-l.Expired():
			t.Fatalf("expired %s after a renewal, while the lease was held", time.Since(start))
		case <-time.After(window / 2):
		}
		l.Renew(time.Now(), 1)
	}
	renewed := time.Now()
	select {
	case <-l.Expired():
		if held := time.Since(renewed); held < window {
			t.Errorf("expired %s after the last renewal; want no earlier than the window, %s", held, window)
		}
		if l.Held() {
			t.Error("expired, but held() still says the lease is held")
		}
	case <-time.After(10 * window):
		t.Fatalf("no expiry %s after the last renewal of a %s lease", 10*window, window)
	}
}
