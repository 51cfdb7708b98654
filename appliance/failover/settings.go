package failover

import (
	"fmt"
	"time"
)

// Settings are the operator's failover settings (config.yaml, failover:
// docs/failover.md). Every node should have the same.
type Settings struct {
	// Detection: how long a primary's node must be silent (or its
	// redis-server failed or unresponsive) before the leader fails it
	// over.
	Detection time.Duration
	// Lease: how long an agent keeps its primaries writable without
	// hearing from the leader. Shorter than Detection by FenceSlack at
	// least, so a cut-off primary is fenced before anyone replaces it.
	Lease time.Duration
	// MaxLag: how far behind its primary (bytes) a replica may be and
	// still be promoted by an automatic failover.
	MaxLag int64
	// SwitchoverMaxLag: how far behind a replica may be and still be the
	// target of a planned switchover. Writes pause while it catches up
	// (CatchUpWait at most), so this bounds that pause.
	SwitchoverMaxLag int64
	// Cooldown: the least time between two automatic failovers of one
	// database.
	Cooldown time.Duration
}

// Defaults are the settings of the embedded default configuration.
var Defaults = Settings{
	Detection: time.Second, Lease: 700 * time.Millisecond,
	MaxLag: 1 << 20, SwitchoverMaxLag: 64 << 20, Cooldown: 30 * time.Second,
}

// Bounds of each setting, inclusive, as Validate checks them.
const (
	// MinLease keeps two reports lost in a row from fencing a healthy
	// node, even one that reports on its fallback timer.
	MinLease = 3 * FollowerFallback
	// MinDetection leaves the shortest lease its FenceSlack.
	MinDetection = MinLease + FenceSlack
	MaxDetection = 5 * time.Minute
	MaxLag       = 1 << 40
	MaxCooldown  = 24 * time.Hour
	durationHint = "e.g. 1500ms or 30s"
)

// Validate refuses settings outside their ranges, or whose lease does not
// end FenceSlack before detection: the error names the key and the
// allowed range.
func (s Settings) Validate() error {
	for _, d := range []struct {
		key      string
		v        time.Duration
		min, max time.Duration
	}{
		{"detection", s.Detection, MinDetection, MaxDetection},
		{"lease", s.Lease, MinLease, MaxDetection - FenceSlack},
		{"cooldown", s.Cooldown, time.Second, MaxCooldown},
	} {
		if d.v < d.min || d.v > d.max {
			return fmt.Errorf("failover.%s is %s: want a duration from %s to %s (%s)", d.key, d.v, d.min, d.max, durationHint)
		}
	}
	for _, b := range []struct {
		key string
		v   int64
	}{{"max_lag", s.MaxLag}, {"switchover_max_lag", s.SwitchoverMaxLag}} {
		if b.v < 0 || b.v > MaxLag {
			return fmt.Errorf("failover.%s is %d bytes: want a size from 0 to 1tb", b.key, b.v)
		}
	}
	if s.Lease+FenceSlack > s.Detection {
		return fmt.Errorf("failover.lease (%s) must be at least %s shorter than failover.detection (%s): a cut-off primary must refuse writes before a replica replaces it", s.Lease, FenceSlack, s.Detection)
	}
	return nil
}
