package cluster

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// The Manager exists from the agent's start, while the store and the
// keyring exist only once this node has a cluster. These methods let the
// reconciler, the forwarder and the leader's loops be built at start and
// hold the Manager, instead of being handed the store later.

// State returns a copy of the replicated state; empty before the store
// opens (for the reconciler, which runs only once it has).
func (m *Manager) State() *raftstate.State {
	if st := m.Store(); st != nil {
		return st.State()
	}
	return raftstate.NewState()
}

// Changes receives after every change of the state (nil, never, before
// the store opens).
func (m *Manager) Changes() <-chan struct{} {
	if st := m.Store(); st != nil {
		return st.Changes()
	}
	return nil
}

// errNoKeys is returned by Open before this node has the cluster key.
var errNoKeys = errors.New("this node has no cluster key yet: it is not a member of a cluster")

// Open opens a secret sealed with the cluster key.
func (m *Manager) Open(sealed []byte) ([]byte, error) {
	k := m.Keys()
	if k == nil {
		return nil, errNoKeys
	}
	return k.Open(sealed)
}

// Leader implements forward.Membership: who leads as this node knows it.
func (m *Manager) Leader() (self bool, name, addr string, err error) {
	st := m.Store()
	if st == nil {
		return false, "", "", ErrNotMember
	}
	if st.IsLeader() {
		return true, m.cfg.NodeName, m.cfg.ClusterAdvertise(), nil
	}
	name = st.Leader()
	if n, ok := st.Node(name); ok {
		addr = n.APIAddr
	}
	return false, name, addr, nil
}

// LeaderChanged implements forward.Membership.
func (m *Manager) LeaderChanged() <-chan struct{} {
	if st := m.Store(); st != nil {
		return st.LeaderChanged()
	}
	return nil
}

// Transport implements forward.Membership: requests to other members over
// mutual TLS, with this node's certificate.
func (m *Manager) Transport() (http.RoundTripper, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.material == nil {
		return nil, ErrNotMember
	}
	if m.transport == nil {
		m.transport = api.RemoteTransport(pki.ClientConfig(m.material, ""))
	}
	return m.transport, nil
}

// WhileLeader runs fn each time this node becomes the leader, with a
// context that ends when it stops being leader (or ctx ends), and waits
// for fn to return before watching again. It is the one place that
// follows this node's leadership for the loops that act only on the
// leader.
func (m *Manager) WhileLeader(ctx context.Context, fn func(context.Context)) {
	select {
	case <-ctx.Done():
		return
	case <-m.Opened():
	}
	st := m.Store()
	for {
		changed := st.LeadershipChanged()
		if st.IsLeader() {
			lctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(lctx)
			}()
			select {
			case <-ctx.Done():
			case <-changed:
			}
			cancel()
			wg.Wait()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
