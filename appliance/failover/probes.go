package failover

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Opener opens sealed secrets (the cluster's keyring).
type Opener interface {
	Open(sealed []byte) ([]byte, error)
}

// Probes is this node's own check that the primaries its replicas follow
// answer: the confirmation the leader needs before failing a primary over.
// A primary the leader cannot see but the replicas can is left alone.
type Probes struct {
	node     string
	fallback string // address of a node that registered none

	pool *instance.Pool // key: the primary's address and sealed password

	mu     sync.Mutex
	lastOK map[string]time.Time // replica instance ID → last PING answered
	// synced: replica ID → the primary (host:port) it last synced with.
	synced map[string]string
}

// NewProbes returns the probes of node; fallback is the address of a node
// that registered none (see instance.Host).
func NewProbes(node, fallback string) *Probes {
	return &Probes{node: node, fallback: fallback, pool: instance.NewPool(instance.NameProbe, ProbeEvery), lastOK: map[string]time.Time{}, synced: map[string]string{}}
}

// Reachable reports whether the primary of replica id answered lately.
func (p *Probes) Reachable(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.lastOK[id]
	return ok && time.Since(t) < ProbeLost
}

// Annotate returns the reports with each replica's PrimaryReachable from
// the probes, and Synced from what this node has seen of it: up with no
// sync in progress since it began following its current primary.
func (p *Probes) Annotate(obs []health.InstanceReport) []health.InstanceReport {
	out := make([]health.InstanceReport, len(obs))
	for i, r := range obs {
		if r.Link != nil {
			l := *r.Link
			primary := net.JoinHostPort(l.MasterHost, strconv.Itoa(l.MasterPort))
			reachable := p.Reachable(r.ID)
			p.mu.Lock()
			if l.Up && !l.SyncInProgress {
				p.synced[r.ID] = primary
			}
			l.Synced = p.synced[r.ID] == primary
			p.mu.Unlock()
			l.PrimaryReachable = reachable
			r.Link = &l
		}
		out[i] = r
	}
	return out
}

// Run PINGs the primary of every local replica until ctx ends. st returns
// the store, nil until this node has one.
func (p *Probes) Run(ctx context.Context, st func() *raftstate.Store, keys Opener) {
	t := time.NewTimer(ProbeEvery)
	defer t.Stop()
	defer p.pool.Close()
	// With no replica here there is nothing to probe: sleep until the
	// state changes (a replica placed here) instead of ticking.
	var subscribed *raftstate.Store
	var changes <-chan struct{}
	wait := ProbeEvery
	for {
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changes:
		}
		s := st()
		if s == nil {
			wait = ProbeEvery
			continue
		}
		if s != subscribed {
			subscribed, changes = s, s.Subscribe()
		}
		wait = p.round(ctx, s.View(), keys)
	}
}

// round probes once and says how long to wait for the next.
func (p *Probes) round(ctx context.Context, state *raftstate.State, keys Opener) time.Duration {
	wait := ProbeIdle
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, pi := range state.InstancesOn(p.node) {
		if pi.Instance.Role != raftstate.RoleReplica {
			continue
		}
		wait = ProbeEvery
		prim, ok := pi.Database.Primary()
		if !ok {
			continue
		}
		addr := instance.Addr(state, prim, p.fallback)
		key := addr + "|" + pi.Database.Name
		db := pi.Database
		c, err := p.pool.Get(ctx, key, addr, func() ([]instance.Credential, error) {
			return access.ProbeCredentials(keys, db)
		})
		if err != nil {
			continue
		}
		id := pi.Instance.ID
		seen[key] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, ProbeEvery)
			defer cancel()
			err := c.Ping(pctx).Err()
			p.pool.Refused(key, err)
			p.mu.Lock()
			defer p.mu.Unlock()
			switch {
			case err == nil:
				p.lastOK[id] = time.Now()
			case errors.Is(err, syscall.ECONNREFUSED):
				// The primary's host answered that nothing listens: no
				// need to wait for more silence (a crashed redis-server
				// is confirmed at once, not after ProbeLost).
				delete(p.lastOK, id)
			}
		}()
	}
	wg.Wait()
	p.pool.Keep(seen)
	return wait
}
