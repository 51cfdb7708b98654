package raftstate

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// A member is known by its certificate, not only by the name in it: the
// leader that issues a joining node's certificate records its SHA-256
// (Node.CertSHA256, "the pin") in the same entry that admits the node, and
// every member accepts a peer, on Raft and on the cluster API, only if the
// certificate it presents is the one pinned for a current member. A
// certificate minted later with a member's name (by anyone holding the CA
// key) is not that member; a removed node's certificate belongs to no
// member.
//
// Members that joined before pins existed (feature level 3) have none:
// they are accepted by name, as before, until the leader records the
// certificate such a member presents on its first call to the leader's
// cluster API (trust on first use, PinNode with an empty Previous), which
// happens within a heartbeat once every voter is at level 3.

// AdmitNode is the payload of CmdAdmitNode: a join at feature level 3 in
// one entry, so that no node is ever a member without its pin. It spends
// the token exactly as ConsumeJoinToken does, records the node exactly as
// RegisterNode does (a new node only), and pins its certificate.
type AdmitNode struct {
	Token ConsumeJoinToken `json:"token"`
	Node  RegisterNode     `json:"node"`
	// CertSHA256 is the fingerprint of the certificate the leader issued
	// to the node (pki.CertFingerprint).
	CertSHA256 string `json:"cert_sha256"`
}

// PinNode is the payload of CmdPinNode: it records the certificate a
// member presents, if its pin is still Previous ("" for a member from
// before pins: trust on first use). The compare makes two leaders' or two
// calls' pins of one node never overwrite each other.
type PinNode struct {
	Name       string `json:"name"`
	CertSHA256 string `json:"cert_sha256"`
	Previous   string `json:"previous,omitempty"`
}

// CheckFingerprint accepts a SHA-256 fingerprint as the state records it:
// 64 lowercase hex digits.
func CheckFingerprint(fp string) error {
	if len(fp) != 64 {
		return invalidf("certificate fingerprint %q is not a SHA-256 (64 hex digits)", fp)
	}
	if _, err := hex.DecodeString(fp); err != nil || fp != lowerHex(fp) {
		return invalidf("certificate fingerprint %q is not lowercase hexadecimal", fp)
	}
	return nil
}

func lowerHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'F' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (f *FSM) applyAdmitNode(p AdmitNode) error {
	rec := Node{
		Name: p.Node.Name, RaftAddr: p.Node.RaftAddr, APIAddr: p.Node.APIAddr, Address: p.Node.Address,
		SentinelPort: p.Node.SentinelPort, FeatureLevel: p.Node.FeatureLevel, AgentVersion: p.Node.AgentVersion, Versions: p.Node.Versions,
	}
	if err := checkNode(&rec); err != nil {
		return err
	}
	if err := CheckFingerprint(p.CertSHA256); err != nil {
		return fmt.Errorf("node %s: %w", p.Node.Name, err)
	}
	if p.Token.Node != p.Node.Name {
		return invalidf("the token is spent for node %q but node %q is admitted", p.Token.Node, p.Node.Name)
	}
	// Checks everything, then spends the token: the last thing that can
	// fail, so a refused admission changes nothing.
	if err := f.applyConsumeJoinToken(p.Token); err != nil {
		return err
	}
	rec.JoinedAt, rec.CertSHA256 = p.Node.At, p.CertSHA256
	f.state.Nodes[rec.Name] = &rec
	return nil
}

func (f *FSM) applyPinNode(p PinNode) error {
	if err := CheckName("node", p.Name); err != nil {
		return err
	}
	if err := CheckFingerprint(p.CertSHA256); err != nil {
		return err
	}
	n, ok := f.state.Nodes[p.Name]
	if !ok {
		return fmt.Errorf("node %q %w", p.Name, ErrNotFound)
	}
	if n.CertSHA256 != p.Previous {
		return &refusal{kind: ErrConflict, msg: fmt.Sprintf("node %s has another certificate pinned already; a member's pin changes only by removing it and joining it again", p.Name)}
	}
	n.CertSHA256 = p.CertSHA256
	return nil
}

// ErrPeerRefused is what VerifyPeer answers for a certificate that is not
// a current member's.
var ErrPeerRefused = errors.New("peer certificate refused")

// peerVerdict says whether a node presenting a certificate with
// fingerprint fp is a current member, against state s. raftMember says
// whether the name is a server of this node's Raft configuration; it is
// asked only while this node's state may lag its own log (see VerifyPeer).
func peerVerdict(s *State, name, fp string, lagging bool, raftMember func(string) bool) error {
	if n, ok := s.Nodes[name]; ok {
		if n.CertSHA256 == "" || n.CertSHA256 == fp {
			return nil
		}
		return &refusal{kind: ErrPeerRefused, msg: fmt.Sprintf("node %s presented a certificate (SHA-256 %s) that is not the one recorded for it (%s): minted elsewhere, or the node was re-installed; remove it and join it again", name, short(fp), short(n.CertSHA256))}
	}
	switch {
	case len(s.Nodes) == 0:
		// This node has no state yet (it is joining, or has not replayed
		// a thing): the CA's signature is all it can check, as before.
		return nil
	case lagging && raftMember(name):
		// Restarted, and not caught up: a member that joined after this
		// node's snapshot is in the Raft configuration (read from this
		// node's own log) before it is in the state.
		return nil
	}
	return &refusal{kind: ErrPeerRefused, msg: fmt.Sprintf("node %s is not a member of this cluster (removed?)", name)}
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}

// VerifyPeer checks the certificates a peer presented (already verified
// against the cluster CA) against the current state: the first must be a
// node certificate whose node is a member and, once pinned, the pinned
// certificate. It returns the peer's node name. Both Raft's stream layer
// and the cluster API call it at the handshake, and again when the state
// changes, so a removed node is cut off at once.
func (s *Store) VerifyPeer(certs []*x509.Certificate) (string, error) {
	if len(certs) == 0 {
		return "", fmt.Errorf("no client certificate: %w", ErrPeerRefused)
	}
	name, err := s.cfg.PeerName(certs[0])
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, ErrPeerRefused)
	}
	return name, peerVerdict(s.fsm.View(), name, CertFingerprint(certs[0]), !s.ready.Load(), s.inConfiguration)
}

// CertFingerprint is the SHA-256 of a certificate's DER encoding,
// lowercase hex: what a pin records (pki.CertFingerprint computes the
// same; raftstate does not import pki, whose tests import raftstate).
func CertFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// inConfiguration reports whether name is a server of this node's Raft
// configuration.
func (s *Store) inConfiguration(name string) bool {
	if s.raft == nil {
		return false
	}
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(name) {
			return true
		}
	}
	return false
}

// verifyConnection is the tls.Config.VerifyConnection of Raft's stream
// layer, both ways.
func (s *Store) verifyConnection(cs tls.ConnectionState) error {
	_, err := s.VerifyPeer(cs.PeerCertificates)
	return err
}

// withPeerCheck returns a copy of c that also checks the peer against the
// state (VerifyPeer), after crypto/tls has verified its chain.
func withPeerCheck(c *tls.Config, verify func(tls.ConnectionState) error) *tls.Config {
	c = c.Clone()
	prev := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		return verify(cs)
	}
	return c
}
