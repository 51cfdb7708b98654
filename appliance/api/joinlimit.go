package api

import (
	"net"
	"sync"
	"time"
)

// Join attempts from hosts without a member certificate are limited per
// source address, so that nobody can guess tokens at line rate or keep the
// leader busy with them: a token bucket of joinBurst attempts, refilled by
// one every joinRefill. A real join makes one attempt (two, with a retry);
// a mistyped token leaves room for a few more.
const (
	joinBurst  = 5
	joinRefill = 12 * time.Second
	// joinTrack bounds the addresses remembered; past it, full buckets
	// (addresses idle long enough to have nothing to remember) are forgotten.
	joinTrack = 4096
)

// joinLimiter is the per-address token bucket for join attempts.
type joinLimiter struct {
	mu      sync.Mutex
	now     func() time.Time
	buckets map[string]*joinBucket
}

type joinBucket struct {
	tokens float64
	at     time.Time
}

func newJoinLimiter() *joinLimiter {
	return &joinLimiter{now: time.Now, buckets: map[string]*joinBucket{}}
}

// allow takes one attempt from the bucket of remoteAddr's host, and says
// whether there was one, or how long until there is.
func (l *joinLimiter) allow(remoteAddr string) (bool, time.Duration) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[host]
	if !ok {
		if len(l.buckets) >= joinTrack {
			l.forgetIdle(now)
		}
		if len(l.buckets) >= joinTrack {
			// Thousands of addresses trying at once: refuse newcomers
			// rather than forget who is being limited.
			return false, joinRefill
		}
		b = &joinBucket{tokens: joinBurst, at: now}
		l.buckets[host] = b
	}
	b.tokens = min(joinBurst, b.tokens+float64(now.Sub(b.at))/float64(joinRefill))
	b.at = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(joinRefill))
	}
	b.tokens--
	return true, 0
}

// forgetIdle drops the buckets that have refilled completely.
func (l *joinLimiter) forgetIdle(now time.Time) {
	for h, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(joinRefill) >= joinBurst {
			delete(l.buckets, h)
		}
	}
}
