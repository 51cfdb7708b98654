package cluster

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// VerifyPeer checks a member's certificates against the state: a current
// member, with the certificate pinned for it (raftstate.Store.VerifyPeer).
func (m *Manager) VerifyPeer(certs []*x509.Certificate) error {
	st := m.Store()
	if st == nil {
		return ErrNotMember
	}
	_, err := st.VerifyPeer(certs)
	return err
}

// verifyMember is a tls.Config.VerifyConnection that refuses any peer
// certificate that is not a current member's (checked after crypto/tls
// has verified the chain to the cluster CA). allowNone lets a peer with
// no certificate through: a joining host, held to its token.
func (m *Manager) verifyMember(allowNone bool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 && allowNone {
			return nil
		}
		return m.VerifyPeer(cs.PeerCertificates)
	}
}

// pinRetry is how long after a failed first-use pin the next is tried.
const pinRetry = 10 * time.Second

// NotePeer is told of every call a member makes over the cluster API,
// with the certificate it presented. On the leader, once every voter is
// at feature level 3, a member from before pins gets the certificate it
// presents pinned (trust on first use: it presented it with a valid
// chain, under its name, before any pin existed), in the background.
func (m *Manager) NotePeer(node string, cert *x509.Certificate) {
	st := m.Store()
	if st == nil || !st.IsLeader() {
		return
	}
	n, ok := st.Node(node)
	if !ok || n.CertSHA256 != "" {
		return
	}
	m.pinMu.Lock()
	defer m.pinMu.Unlock()
	if m.pinBusy[node] || time.Since(m.pinFailed[node]) < pinRetry {
		return
	}
	if level, _, err := st.ClusterLevel(); err != nil || level < 3 {
		return
	}
	m.pinBusy[node] = true
	fp := pki.CertFingerprint(cert)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := st.Apply(ctx, raftstate.CmdPinNode, raftstate.PinNode{Name: node, CertSHA256: fp})
		m.pinMu.Lock()
		defer m.pinMu.Unlock()
		delete(m.pinBusy, node)
		if err != nil {
			m.pinFailed[node] = time.Now()
			m.log.Warn("cannot pin a member's certificate; retrying on a later call", "node", node, "err", err)
			return
		}
		delete(m.pinFailed, node)
		m.log.Info("pinned the certificate a member from before pins presents (first use)", "node", node, "cert_sha256", fp)
	}()
}

// pinSelf pins this node's own certificate once the cluster allows it
// (the leader only: it registers itself), and says so if the state pins
// another one.
func (m *Manager) pinSelf(ctx context.Context, st *raftstate.Store) error {
	m.mu.Lock()
	fp := m.material.NodeFingerprint()
	m.mu.Unlock()
	n, ok := st.Node(m.cfg.NodeName)
	switch {
	case !ok || n.CertSHA256 == fp:
		return nil
	case n.CertSHA256 != "":
		return fmt.Errorf("this node's certificate (SHA-256 %s) is not the one the cluster pinned for %s (%s); the other members refuse it: restore %s, or remove this node and join it again",
			fp, m.cfg.NodeName, n.CertSHA256, m.dir.NodeCertPath())
	}
	if level, _, err := st.ClusterLevel(); err != nil || level < 3 {
		return nil
	}
	err := st.Apply(ctx, raftstate.CmdPinNode, raftstate.PinNode{Name: m.cfg.NodeName, CertSHA256: fp})
	if n, ok := st.Node(m.cfg.NodeName); err != nil && ok && n.CertSHA256 == fp {
		return nil // pinned by a concurrent registration
	}
	return err
}

// checkToken checks a join token against this leader's state before
// anything is written: a forged, spent or expired token costs a map
// lookup and a comparison, never a Raft entry. The comparison of the
// secret's hash takes the same time whatever the guess (and an unknown ID
// is compared against a stand-in, so it takes that time too).
func checkToken(s *raftstate.State, tok pki.Token, node string, now time.Time) error {
	t, ok := s.Tokens[tok.ID]
	want := tok.Hash()
	have := "unknown token id: compared so that this takes as long as a known one"
	if ok {
		have = t.Hash
	}
	match := subtle.ConstantTimeCompare([]byte(have), []byte(want)) == 1
	switch {
	case !ok || !match:
		return fmt.Errorf("unknown token; create one with redis-appliance cluster token: %w", raftstate.ErrTokenRefused)
	case t.ConsumedBy != "":
		return fmt.Errorf("token already used by node %s; create a new one with redis-appliance cluster token: %w", t.ConsumedBy, raftstate.ErrTokenRefused)
	case !now.Before(t.Expires):
		return fmt.Errorf("token expired at %s; create a new one with redis-appliance cluster token: %w", t.Expires.UTC().Format(time.RFC3339), raftstate.ErrTokenRefused)
	}
	if _, taken := s.Nodes[node]; taken {
		return fmt.Errorf("a node named %s is already a member; give the joining node another node_name: %w", node, raftstate.ErrExists)
	}
	return nil
}
