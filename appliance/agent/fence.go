package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// lease is this node's right to keep primaries writable: renewed by every
// heartbeat the leader acknowledges (on the leader, by every round of
// confirmation a majority answered), and lost when none has been for the
// lease window. Times are monotonic.
type lease struct {
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

func newLease(window time.Duration) *lease {
	t := time.NewTimer(window)
	t.Stop()
	return &lease{window: window, expiry: t}
}

// renew extends the lease from sent, when the acknowledged report left
// (monotonic); an older acknowledgement arriving late never shortens it.
func (l *lease) renew(sent time.Time, leaderIndex uint64) {
	l.mu.Lock()
	if sent.After(l.last) {
		l.last = sent
		// A millisecond past the end, so that the lease is seen lost.
		l.expiry.Reset(time.Until(l.last.Add(l.window)) + time.Millisecond)
	}
	l.index = leaderIndex
	l.mu.Unlock()
}

// expired receives when the lease runs out (Reset by every renewal: a
// value from before a renewal is never received after it).
func (l *lease) expired() <-chan time.Time { return l.expiry.C }

// leaderIndex is the leader's applied index when it last acknowledged us.
func (l *lease) leaderIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.index
}

func (l *lease) held() bool {
	return l.remaining() > 0
}

// remaining is how long the lease still runs: zero once lost.
func (l *lease) remaining() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		return 0
	}
	return max(l.window-time.Since(l.last), 0)
}

// fenceState is the fencer's decision, shared with the reconciler so that
// an instance it starts or repoints gets the fence of the moment.
type fenceState struct {
	mu     sync.Mutex
	known  bool
	fenced bool
}

func (f *fenceState) set(fenced bool) {
	f.mu.Lock()
	f.known, f.fenced = true, fenced
	f.mu.Unlock()
}

func (f *fenceState) get() (fenced, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced, f.known
}

// eventQueue holds events for the cluster until a heartbeat delivers them.
type eventQueue struct {
	mu  sync.Mutex
	evs []raftstate.Event
}

// maxQueued bounds what a long-isolated node keeps.
const maxQueued = 100

func (q *eventQueue) add(e raftstate.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.evs = append(q.evs, e)
	if len(q.evs) > maxQueued {
		q.evs = q.evs[len(q.evs)-maxQueued:]
	}
}

// peek returns the queued events; drop removes the first n once delivered.
func (q *eventQueue) peek() []raftstate.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]raftstate.Event(nil), q.evs...)
}

func (q *eventQueue) drop(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.evs = q.evs[min(n, len(q.evs)):]
}

// fenceTick is how often the fencer looks while it is fenced or retrying.
// While the lease is held it sleeps until the lease runs out (see
// lease.expired) or a refresh is due, not ten times a second: on an idle
// agent, timers firing were a large part of its CPU.
const fenceTick = 100 * time.Millisecond

// fenceWait is how long the fencer may sleep on its own timer: while the
// lease is held and the primaries take writes, until the next refresh (the
// lease's expiry wakes it if the lease runs out first); a tick while
// fenced (waiting for the leader, for the log to catch up, for a pass) or
// once the lease is lost.
func fenceWait(fenced, held bool, sinceAssert time.Duration) time.Duration {
	if fenced || !held {
		return fenceTick
	}
	return max(fenceRefresh-sinceAssert, fenceTick)
}

// startCatchUp is what a restarted agent gets on top of the lease window
// before it fences the primaries it finds running. A restarted follower
// learns the cluster's state only when the leader next tells it the commit
// index (hashicorp/raft does so with the next replication, up to twice its
// commit timeout later), and until then cannot even find the leader's
// API. The lease did not cover those primaries while the agent was down;
// this bounds how long they stay unfenced once it is back.
const startCatchUp = 2 * raftstate.CommitTimeout

// fenceRefresh re-asserts the fence state of every local primary this
// often, a safety net for an instance restarted behind the agent's back.
const fenceRefresh = 10 * time.Second

// haPrimaries are this node's primaries of databases with replicas: the
// ones a failover may replace, and so the ones to fence.
func haPrimaries(placed []raftstate.PlacedInstance) []raftstate.PlacedInstance {
	var out []raftstate.PlacedInstance
	for _, pi := range placed {
		if pi.Instance.Role == raftstate.RolePrimary && len(pi.Database.Instances) > 1 {
			out = append(out, pi)
		}
	}
	return out
}

// localInstances remembers what one loop derived from a Raft state, the
// instances on this node, until the state changes. Loops that wake several
// times a second would otherwise sort every database name each time: on
// an idle leader with 100 databases that was a tenth of its CPU.
type localInstances struct {
	node   string
	state  *raftstate.State
	placed []raftstate.PlacedInstance
	// derived is the caller's own result from placed, kept alongside.
	derived []raftstate.PlacedInstance
}

// of returns the instances on this node in st (a Store.View, which is a
// new pointer after every change), and whether they were just recomputed.
func (l *localInstances) of(st *raftstate.State) ([]raftstate.PlacedInstance, bool) {
	if st == l.state {
		return l.placed, false
	}
	l.state, l.placed = st, st.InstancesOn(l.node)
	return l.placed, true
}

// fence keeps this node's HA primaries refusing writes while the lease is
// lost, and lifts the fence once it is held again and a reconcile pass has
// applied the roles the cluster decided meanwhile (a primary that was
// failed over comes back as a replica, never writable).
func fence(ctx context.Context, cfg *config.Config, cl *cluster.Manager, rec *reconcile.Reconciler, ls *lease, fs *fenceState, q *eventQueue, log *slog.Logger) {
	t := time.NewTimer(fenceTick)
	defer t.Stop()
	window := ls.window
	// Instances start fenced (their redis.conf says so) until the lease is
	// held. Those already running when the agent restarts keep taking
	// writes, unless no leader answers within startGrace: then they are
	// fenced too.
	fenced := true
	start := time.Now()
	startFenced := false
	var waitPass <-chan struct{}
	passed := rec.Passed()
	lastAssert := start
	local := localInstances{node: cfg.NodeName}
	// passPending: a reconcile pass completed and the fencer has not yet
	// acted on it.
	passPending := false
	for {
		t.Reset(fenceWait(fenced, ls.held(), time.Since(lastAssert)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ls.expired():
		case <-passed:
			// An instance may have (re)started, fenced by its redis.conf:
			// act now, not when the lease would run out.
		}
		select {
		case <-passed:
			passed, passPending = rec.Passed(), true
		default:
		}
		st := cl.Store()
		if st == nil {
			continue
		}
		if placed, fresh := local.of(st.View()); fresh {
			local.derived = haPrimaries(placed)
		}
		prims := local.derived
		held := ls.held()
		reassert := false
		switch {
		case !held && fenced && !startFenced && time.Since(start) > window+startCatchUp:
			startFenced, reassert = true, true
			if len(prims) > 0 {
				msg := fmt.Sprintf("no leader answered within %s of the agent starting: %d primaries refuse writes until one does", window+startCatchUp, len(prims))
				log.Warn(msg)
				q.add(raftstate.Event{At: time.Now().UTC(), Kind: "fenced", Node: cfg.NodeName, Message: msg})
			}
		case !held && !fenced:
			fenced, waitPass, reassert, startFenced = true, nil, true, true
			if len(prims) > 0 {
				msg := fmt.Sprintf("no word from the leader for %s: %d primaries refuse writes until contact returns", window, len(prims))
				log.Warn(msg)
				q.add(raftstate.Event{At: time.Now().UTC(), Kind: "fenced", Node: cfg.NodeName, Message: msg})
			}
		case held && fenced && waitPass == nil:
			// Apply whatever the cluster decided while we were away first:
			// catch up with the leader's log as it was when it answered
			// (a failover may be in it), then let a pass apply the roles.
			if st.AppliedIndex() < ls.leaderIndex() {
				continue
			}
			waitPass = rec.Passed()
			rec.Trigger()
		case held && fenced:
			select {
			case <-waitPass:
				fenced, waitPass, reassert = false, nil, true
				if len(prims) > 0 && startFenced {
					msg := fmt.Sprintf("the leader is reachable again: %d primaries take writes", len(prims))
					log.Info(msg)
					q.add(raftstate.Event{At: time.Now().UTC(), Kind: "unfenced", Node: cfg.NodeName, Message: msg})
				}
			default:
			}
		}
		if passPending {
			// An instance may have (re)started fenced by its redis.conf.
			// Until the fence is decided (just started), leave running
			// instances as they are.
			passPending = false
			reassert = reassert || !fenced || startFenced
		}
		if reassert {
			fs.set(fenced)
		}
		if _, known := fs.get(); !known || (!reassert && time.Since(lastAssert) < fenceRefresh) {
			continue
		}
		lastAssert = time.Now()
		for _, pi := range prims {
			fctx, cancel := context.WithTimeout(ctx, time.Second)
			err := rec.Fence(fctx, pi.Database, pi.Instance, fenced)
			cancel()
			if err != nil {
				log.Debug("cannot set the fence of an instance; retrying", "instance", pi.Instance.ID, "fenced", fenced, "err", err)
				lastAssert = time.Time{} // retry at the next tick
			}
		}
	}
}

// primaryProbes is this node's own check that the primaries its replicas
// follow answer: the confirmation the leader needs before failing over.
type primaryProbes struct {
	mu      sync.Mutex
	lastOK  map[string]time.Time // replica instance ID → last PING answered
	clients map[string]*redis.Client
}

// probeEvery is the PING period; a primary is unreachable from here when
// none answered for probeLost.
const (
	probeEvery = 250 * time.Millisecond
	probeLost  = 3 * probeEvery
)

// probeIdle is how long the probes sleep while no replica is placed here,
// a safety net: a state change wakes them at once.
const probeIdle = 5 * time.Second

func newPrimaryProbes() *primaryProbes {
	return &primaryProbes{lastOK: map[string]time.Time{}, clients: map[string]*redis.Client{}}
}

// reachable reports whether the primary of replica id answered lately.
func (p *primaryProbes) reachable(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.lastOK[id]
	return ok && time.Since(t) < probeLost
}

// run PINGs the primary of every local replica of an HA database.
func (p *primaryProbes) run(ctx context.Context, cfg *config.Config, cl *cluster.Manager) {
	t := time.NewTimer(probeEvery)
	defer t.Stop()
	defer func() {
		p.mu.Lock()
		for _, c := range p.clients {
			_ = c.Close()
		}
		p.mu.Unlock()
	}()
	local := localInstances{node: cfg.NodeName}
	// With no replica here there is nothing to probe: sleep until the
	// state changes (a replica placed here) instead of ticking.
	var subscribed *raftstate.Store
	var changes <-chan struct{}
	wait := probeEvery
	for {
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changes:
		}
		st := cl.Store()
		if st == nil {
			wait = probeEvery
			continue
		}
		if st != subscribed {
			subscribed, changes = st, st.Subscribe()
		}
		state := st.View()
		placed, _ := local.of(state)
		wait = probeIdle
		if slices.ContainsFunc(placed, func(pi raftstate.PlacedInstance) bool { return pi.Instance.Role == raftstate.RoleReplica }) {
			wait = probeEvery
		}
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for _, pi := range placed {
			if pi.Instance.Role != raftstate.RoleReplica {
				continue
			}
			prim, ok := pi.Database.Primary()
			if !ok {
				continue
			}
			host := cfg.AdvertiseAddr
			if n, ok := state.Nodes[prim.Node]; ok && n.Address != "" {
				host = n.Address
			}
			addr := net.JoinHostPort(host, strconv.Itoa(prim.Port))
			key := addr + "|" + string(pi.Database.Password)
			c, err := p.client(cl, pi.Database, addr, key)
			if err != nil {
				continue
			}
			id := pi.Instance.ID
			seen[key] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, probeEvery)
				defer cancel()
				err := c.Ping(pctx).Err()
				p.mu.Lock()
				switch {
				case err == nil:
					p.lastOK[id] = time.Now()
				case errors.Is(err, syscall.ECONNREFUSED):
					// The primary's host answered that nothing listens:
					// no need to wait for more silence (a crashed
					// redis-server is confirmed at once, not after
					// probeLost).
					delete(p.lastOK, id)
				}
				p.mu.Unlock()
			}()
		}
		wg.Wait()
		p.mu.Lock()
		for key, c := range p.clients {
			if !seen[key] {
				_ = c.Close()
				delete(p.clients, key)
			}
		}
		p.mu.Unlock()
	}
}

// client returns the cached client for key: the primary's address and
// the database's sealed password, so a new database on an old port gets a
// client with its own password.
func (p *primaryProbes) client(cl *cluster.Manager, db *raftstate.Database, addr, key string) (*redis.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c, nil
	}
	pw, err := cl.Keys().Open(db.Password)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: string(pw),
		DialTimeout: probeEvery, ReadTimeout: probeEvery, WriteTimeout: probeEvery,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1, Protocol: 2, DisableIdentity: true,
		ClientName: "redis-appliance-probe",
	})
	p.clients[key] = c
	return c, nil
}
