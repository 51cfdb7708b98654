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
