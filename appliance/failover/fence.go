package failover

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Phase is where this node's fencer stands.
type Phase int

// The fencer's phases. A primary of a database with replicas takes writes
// only in Writable.
const (
	// Starting: the agent has just started and holds no lease yet.
	// Primaries that were running keep their writes until the lease plus
	// StartCatchUp has passed; those that start now start fenced (their
	// redis.conf says so).
	Starting Phase = iota
	// Writable: the lease is held and the roles the cluster decided are
	// applied: primaries take writes.
	Writable
	// Fenced: the lease was lost (or never came within the start grace):
	// primaries refuse writes (NOREPLICAS).
	Fenced
	// CatchingUp: the lease is back; still fenced until this node has
	// applied the leader's log as it was when the leader answered (a
	// failover may be in it).
	CatchingUp
	// Applying: caught up; still fenced until a reconcile pass has applied
	// the roles (a primary that was failed over comes back as a replica,
	// never writable).
	Applying
)

func (p Phase) String() string {
	return [...]string{"starting", "writable", "fenced", "catching-up", "applying"}[p]
}

// fenceInput is what the fencer knows when it wakes.
type fenceInput struct {
	held      bool // the lease runs
	graceOver bool // the start grace (lease + StartCatchUp) has passed
	caughtUp  bool // applied index ≥ the leader's at its last answer
	passed    bool // the reconcile pass asked for on entering Applying is done
}

// fenceStep is what a wake-up decides.
type fenceStep struct {
	next Phase
	// decided is whether a fence state has been asserted since the start
	// (false until the first Fenced or Writable).
	decided bool
	// assert: set every local primary's fence to the new decision now.
	assert bool
	// pass: ask for a reconcile pass and wait for it.
	pass bool
	// event is the fenced/unfenced event to record ("" for none).
	event string
}

// step is the fencer's transition: pure, so that every path is tested
// without clocks, Raft or redis-server.
func step(p Phase, decided bool, in fenceInput) fenceStep {
	s := fenceStep{next: p, decided: decided}
	lost := func() fenceStep {
		if !decided {
			s.next = Starting
			return s
		}
		s.next = Fenced
		return s
	}
	// The lease is back: catch up first, or ask for the pass at once if
	// already caught up (a wake-up saved is a tenth of a second less
	// fenced).
	back := func() fenceStep {
		s.next = CatchingUp
		if in.caughtUp {
			s.next, s.pass = Applying, true
		}
		return s
	}
	switch p {
	case Starting:
		switch {
		case in.held:
			return back()
		case in.graceOver:
			s.next, s.decided, s.assert, s.event = Fenced, true, true, "fenced"
		}
	case Writable:
		if !in.held {
			s.next, s.assert, s.event = Fenced, true, "fenced"
		}
	case Fenced:
		if in.held {
			return back()
		}
	case CatchingUp:
		switch {
		case !in.held:
			return lost()
		case in.caughtUp:
			s.next, s.pass = Applying, true
		}
	case Applying:
		switch {
		case !in.held:
			return lost()
		case in.passed:
			s.next, s.decided, s.assert = Writable, true, true
			if decided {
				s.event = "unfenced"
			}
		}
	}
	return s
}

// decision is what the phase means for the local primaries: fenced, and
// whether that is decided yet (an undecided fence leaves running
// primaries as they are).
func decision(p Phase, decided bool) (fenced, known bool) {
	if p == Writable {
		return false, true
	}
	return true, decided
}

// Local is this node's reconciler as the failover code uses it.
type Local interface {
	// Passed returns a channel closed when the next pass completes.
	Passed() <-chan struct{}
	// Trigger asks for a pass soon.
	Trigger()
	// Fence sets a running primary's fence.
	Fence(ctx context.Context, db *raftstate.Database, in raftstate.Instance, fenced bool) error
	// ObserveAll observes local instances.
	ObserveAll(ctx context.Context, placed []raftstate.PlacedInstance) []health.InstanceReport
	// Present lists the instance IDs that have a unit on this node.
	Present(ctx context.Context) ([]string, error)
}

// StateSource is this node's copy of the replicated state.
type StateSource interface {
	// View returns the current state, shared: do not modify it.
	View() *raftstate.State
	// AppliedIndex is the index of the last entry applied here.
	AppliedIndex() uint64
}

// Fencer keeps this node's HA primaries refusing writes while the lease is
// lost, and lifts the fence once it is held again and a reconcile pass has
// applied the roles the cluster decided meanwhile.
type Fencer struct {
	node   string
	lease  *Lease
	events *health.EventQueue
	log    *slog.Logger

	mu      sync.Mutex
	phase   Phase
	decided bool
}

// NewFencer returns the fencer of node; it acts once Run is given the
// node's reconciler, which itself asks Decision.
func NewFencer(node string, lease *Lease, events *health.EventQueue, log *slog.Logger) *Fencer {
	return &Fencer{node: node, lease: lease, events: events, log: log}
}

// Decision tells the reconciler the fence of the moment, for a primary it
// starts or repoints (see reconcile.Config.Fenced).
func (f *Fencer) Decision() (fenced, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return decision(f.phase, f.decided)
}

// Phase is where the fencer stands.
func (f *Fencer) Phase() Phase {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.phase
}

// fenceWait is how long the fencer may sleep on its own timer: while the
// primaries take writes, until the next refresh (the lease's expiry wakes
// it if the lease runs out first); a tick otherwise.
func fenceWait(p Phase, held bool, sinceAssert time.Duration) time.Duration {
	if p != Writable || !held {
		return FenceTick
	}
	return max(FenceRefresh-sinceAssert, FenceTick)
}

// Run fences local's primaries until ctx ends. st returns nil until this
// node has a store.
func (f *Fencer) Run(ctx context.Context, local Local, st func() StateSource) {
	t := time.NewTimer(FenceTick)
	defer t.Stop()
	start := time.Now()
	passed := local.Passed()
	var waitPass <-chan struct{}
	lastAssert := start
	var prims []raftstate.PlacedInstance
	var seen *raftstate.State
	for {
		t.Reset(fenceWait(f.Phase(), f.lease.Held(), time.Since(lastAssert)))
		passPending := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.lease.Expired():
		case <-passed:
			// An instance may have (re)started, fenced by its redis.conf:
			// act now, not when the lease would run out.
			passed, passPending = local.Passed(), true
		}
		src := st()
		if src == nil {
			continue
		}
		if v := src.View(); v != seen {
			seen, prims = v, haPrimaries(v.InstancesOn(f.node))
		}
		in := fenceInput{
			held:      f.lease.Held(),
			graceOver: time.Since(start) > f.lease.Window()+StartCatchUp,
			caughtUp:  src.AppliedIndex() >= f.lease.LeaderIndex(),
		}
		if waitPass != nil {
			select {
			case <-waitPass:
				in.passed = true
			default:
			}
		}
		f.mu.Lock()
		from := f.phase
		s := step(f.phase, f.decided, in)
		f.phase, f.decided = s.next, s.decided
		fenced, known := decision(s.next, s.decided)
		f.mu.Unlock()
		if s.next != Applying {
			waitPass = nil
		}
		if s.pass {
			waitPass = local.Passed()
			local.Trigger()
		}
		if s.event != "" && len(prims) > 0 {
			f.record(s.event, from, len(prims))
		}
		assert := s.assert || (passPending && known) || (known && time.Since(lastAssert) >= FenceRefresh)
		if !assert || !known {
			continue
		}
		lastAssert = time.Now()
		if !f.setAll(ctx, local, prims, fenced) {
			lastAssert = time.Time{} // retry at the next tick
		}
	}
}

// setAll sets the fence of every primary side by side, so that a wedged
// redis-server cannot hold up its neighbours; false if any failed.
func (f *Fencer) setAll(ctx context.Context, local Local, prims []raftstate.PlacedInstance, fenced bool) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := true
	for _, pi := range prims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fctx, cancel := context.WithTimeout(ctx, FenceTimeout)
			defer cancel()
			if err := local.Fence(fctx, pi.Database, pi.Instance, fenced); err != nil {
				f.log.Debug("cannot set the fence of an instance; retrying", "instance", pi.Instance.ID, "fenced", fenced, "err", err)
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

// record logs a fence change and queues its event for the cluster.
func (f *Fencer) record(kind string, from Phase, n int) {
	var msg string
	switch {
	case kind == "unfenced":
		msg = fmt.Sprintf("the leader is reachable again: %d primaries take writes", n)
	case from == Starting:
		msg = fmt.Sprintf("no leader answered within %s of the agent starting: %d primaries refuse writes until one does", f.lease.Window()+StartCatchUp, n)
	default:
		msg = fmt.Sprintf("no word from the leader for %s: %d primaries refuse writes until contact returns", f.lease.Window(), n)
	}
	if kind == "unfenced" {
		f.log.Info(msg)
	} else {
		f.log.Warn(msg)
	}
	f.events.Add(raftstate.Event{At: time.Now().UTC(), Kind: kind, Node: f.node, Message: msg})
}

// haPrimaries are the primaries of databases with replicas among placed:
// the ones a failover may replace, and so the ones to fence.
func haPrimaries(placed []raftstate.PlacedInstance) []raftstate.PlacedInstance {
	var out []raftstate.PlacedInstance
	for _, pi := range placed {
		if instance.HAPrimary(pi.Database, pi.Instance) {
			out = append(out, pi)
		}
	}
	return out
}
