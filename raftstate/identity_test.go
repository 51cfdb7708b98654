package raftstate

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/redis-appliance/redis-appliance/appliance/pki"
)

// pinnedStore is one real Store over mutual TLS on loopback, with the
// certificate the cluster pinned for it.
type pinnedStore struct {
	name string
	st   *Store
	mat  *pki.Material
}

func openPinnedStore(t *testing.T, ca *pki.CA, name string) *pinnedStore {
	t.Helper()
	m := nodeMaterial(t, ca, name)
	st, err := Open(Config{
		NodeName: name, Dir: t.TempDir(), BindAddr: freeAddr(t), Logger: slog.New(slog.DiscardHandler),
		ServerTLS: pki.ServerConfig(m), ClientTLS: pki.ClientConfig(m, ""), PeerName: pki.NodeName,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &pinnedStore{name: name, st: st, mat: m}
}

// startPinnedCluster bootstraps n1, pins its certificate, and admits n2
// and n3 the way the leader does at feature level 3 (CmdAdmitNode with
// the pin), then makes them voters; every store has replayed the state.
func startPinnedCluster(t *testing.T, ca *pki.CA) []*pinnedStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	nodes := []*pinnedStore{openPinnedStore(t, ca, "n1")}
	leader := nodes[0].st
	if err := leader.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := leader.Apply(ctx, CmdPinNode, PinNode{Name: "n1", CertSHA256: nodes[0].mat.NodeFingerprint()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n2", "n3"} {
		n := openPinnedStore(t, ca, name)
		nodes = append(nodes, n)
		now := time.Now().UTC()
		if err := leader.Apply(ctx, CmdAddJoinToken, AddJoinToken{Token: JoinToken{ID: "t-" + name, Hash: "h-" + name, CreatedAt: now, Expires: now.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		err := leader.Apply(ctx, CmdAdmitNode, AdmitNode{
			Token:      ConsumeJoinToken{ID: "t-" + name, Hash: "h-" + name, Node: name, At: now},
			Node:       RegisterNode{Name: name, RaftAddr: n.st.cfg.AdvertiseAddr, At: now, FeatureLevel: FeatureLevel},
			CertSHA256: n.mat.NodeFingerprint(),
		})
		if err != nil {
			t.Fatalf("admit %s: %v", name, err)
		}
		if err := leader.AddVoter(ctx, name, n.st.cfg.AdvertiseAddr); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := n.st.WaitReady(ctx); err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
	}
	waitFor(t, "every store to hold every pin", func() bool {
		for _, n := range nodes {
			for _, m := range nodes {
				if rec, ok := n.st.Node(m.name); !ok || rec.CertSHA256 != m.mat.NodeFingerprint() {
					return false
				}
			}
		}
		return true
	})
	return nodes
}

// raftAddr is a store's Raft address.
func (n *pinnedStore) raftAddr() raft.ServerAddress {
	return raft.ServerAddress(n.st.cfg.AdvertiseAddr)
}

// forgedMaterial is a certificate from the cluster's own CA with a
// member's name but a key of its own: what anyone holding a copy of the
// CA key can make.
func forgedMaterial(t *testing.T, ca *pki.CA, name string) *pki.Material {
	return nodeMaterial(t, ca, name)
}

// A certificate minted with the cluster CA under a member's name is not
// that member: every member's Raft refuses it at the handshake, while the
// member's real certificate still connects.
func TestStore_RaftRefusesACertificateThatIsNotTheMembersPin(t *testing.T) {
	ca := newTestCA(t)
	nodes := startPinnedCluster(t, ca)
	real := newLayer(t, nodes[1].mat)
	forged := newLayer(t, forgedMaterial(t, ca, "n2"))
	for _, target := range []*pinnedStore{nodes[0], nodes[2]} {
		c, err := real.Dial(target.raftAddr(), 2*time.Second)
		if err != nil {
			t.Fatalf("n2's own certificate refused by %s: %v", target.name, err)
		}
		c.Close()
		if c, err := forged.Dial(target.raftAddr(), 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("%s accepted a certificate minted for n2 with another key", target.name)
		}
	}
	// The other way round: a server with a forged certificate is refused
	// by a member dialing it.
	impostor := newLayer(t, forgedMaterial(t, ca, "n3"))
	go echo(impostor)
	if _, err := nodes[0].st.layer.Dial(raft.ServerAddress(impostor.Addr().String()), 2*time.Second); err == nil {
		t.Fatal("n1 dialed a server presenting a forged n3 certificate and accepted it")
	}
}

// A removed node is cut off at once by every member: its open Raft
// connections are closed and a new handshake with its (genuine,
// unexpired) certificate is refused.
func TestStore_RemovedNodeIsRefusedAtOnceByEveryMember(t *testing.T) {
	ca := newTestCA(t)
	nodes := startPinnedCluster(t, ca)
	leader := nodes[0].st
	removed := newLayer(t, nodes[2].mat)
	var open []net.Conn
	for _, target := range nodes[:2] {
		c, err := removed.Dial(target.raftAddr(), 2*time.Second)
		if err != nil {
			t.Fatalf("n3 refused by %s before its removal: %v", target.name, err)
		}
		open = append(open, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := leader.Apply(ctx, CmdRemoveNode, RemoveNode{Name: "n3"}); err != nil {
		t.Fatal(err)
	}
	if err := leader.RemoveServer(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 to apply the removal", func() bool { _, ok := nodes[1].st.Node("n3"); return !ok })
	for i, c := range open {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("n3's open connection to %s still open after the removal (read: %v)", nodes[i].name, err)
		}
		if !errors.Is(err, io.EOF) {
			t.Logf("n3's connection to %s ended: %v", nodes[i].name, err)
		}
		c.Close()
	}
	for _, target := range nodes[:2] {
		if c, err := removed.Dial(target.raftAddr(), 2*time.Second); err == nil {
			c.Close()
			t.Fatalf("%s accepted a new connection from removed n3", target.name)
		}
	}
	leaf, err := x509.ParseCertificate(nodes[2].mat.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].st.VerifyPeer([]*x509.Certificate{leaf}); !errors.Is(err, ErrPeerRefused) {
		t.Fatal("VerifyPeer on n2 accepts removed n3")
	}
}

// A member that joined before pins is accepted by name until the leader
// pins the certificate it presents; then only that one.
func TestPeerVerdict_TrustOnFirstUseThenPinned(t *testing.T) {
	s := NewState()
	s.Nodes["old"] = &Node{Name: "old"}
	a, b := fp("a"), fp("b")
	if err := peerVerdict(s, "old", a, false, nil); err != nil {
		t.Fatalf("an unpinned member from before pins is refused: %v", err)
	}
	f := &FSM{state: s, changed: func() {}}
	if err := f.applyPinNode(PinNode{Name: "old", CertSHA256: a}); err != nil {
		t.Fatal(err)
	}
	if err := peerVerdict(s, "old", b, false, nil); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("another certificate for a pinned member: %v, want refused", err)
	}
	if err := f.applyPinNode(PinNode{Name: "old", CertSHA256: b}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second first-use pin replaced the first: %v", err)
	}
	if err := peerVerdict(s, "stranger", a, false, func(string) bool { return true }); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("a name in no record, on a caught-up node: %v, want refused", err)
	}
	if err := peerVerdict(s, "newer", a, true, func(n string) bool { return n == "newer" }); err != nil {
		t.Fatalf("a server of the Raft configuration, while this node replays: %v", err)
	}
	if err := peerVerdict(NewState(), "anyone", a, false, nil); err != nil {
		t.Fatalf("a node with no state yet (joining): %v", err)
	}
}

func fp(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
