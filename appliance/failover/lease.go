package failover

import (
	"sync"
	"time"
)

// Lease is this node's right to keep its primaries writable: renewed by
// every report the leader acknowledges (on the leader, by every round of
// confirmation a majority answered), and lost when none has been for the
// lease window. Times are monotonic.
type Lease struct {
	window time.Duration
	mu     sync.Mutex
	last   time.Time // zero: never heard from a leader since start
	// index is the leader's applied index in its last acknowledgement.
	index uint64
	// expiry fires when the lease runs out. Every renewal pushes it back,
	// so the fencer, which waits on it, sleeps for as long as renewals
	// come instead of waking to look.
	expiry *time.Timer
}

// NewLease returns a lease of window that is not held yet.
func NewLease(window time.Duration) *Lease {
	t := time.NewTimer(window)
	t.Stop()
	return &Lease{window: window, expiry: t}
}

// Window is the lease's length.
func (l *Lease) Window() time.Duration { return l.window }

// Renew extends the lease from sent, when the acknowledged report left
// (monotonic): the leader counts this node's silence from when the report
// arrived, and a slow answer must not stretch the lease past the moment
// the leader may fail this node over. An older acknowledgement arriving
// late never shortens it. leaderIndex is the leader's applied index when
// it answered.
func (l *Lease) Renew(sent time.Time, leaderIndex uint64) {
	l.mu.Lock()
	if sent.After(l.last) {
		l.last = sent
		// A millisecond past the end, so that the lease is seen lost.
		l.expiry.Reset(time.Until(l.last.Add(l.window)) + time.Millisecond)
	}
	l.index = leaderIndex
	l.mu.Unlock()
}

// Expired receives when the lease runs out (reset by every renewal: a
// value from before a renewal is never received after it).
func (l *Lease) Expired() <-chan time.Time { return l.expiry.C }

// LeaderIndex is the leader's applied index when it last acknowledged us.
func (l *Lease) LeaderIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.index
}

// Held reports whether the lease runs.
func (l *Lease) Held() bool { return l.Remaining() > 0 }

// Remaining is how long the lease still runs: zero once lost.
func (l *Lease) Remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		return 0
	}
	return max(l.window-time.Since(l.last), 0)
}
