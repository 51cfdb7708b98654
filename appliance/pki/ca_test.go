package pki

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T, clusterID string) *CA {
	t.Helper()
	return newCAAt(t, clusterID, time.Now())
}

func newCAAt(t *testing.T, clusterID string, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(clusterID, now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// issue returns the Material of a node certified by ca for 127.0.0.1.
func issue(t *testing.T, ca *CA, node string) *Material {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueNode(node, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatalf("IssueNode(%s): %v", node, err)
	}
	m, err := NewMaterial(ca.CertPEM(), certPEM, keyPEM)
	if err != nil {
		t.Fatalf("NewMaterial(%s): %v", node, err)
	}
	return m
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCAProperties checks what operators and verifiers rely on: a P-256 CA
// that may sign only leaf certificates, for 10 years, with a key ID.
func TestCAProperties(t *testing.T) {
	ca, err := NewCA("c-1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA key usage %v lacks CertSign", c.KeyUsage)
	}
	if len(c.SubjectKeyId) != 20 {
		t.Errorf("SubjectKeyId = %x, want 20 bytes", c.SubjectKeyId)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("public key algorithm %v, want ECDSA", c.PublicKeyAlgorithm)
	}
	if want := testNow.AddDate(10, 0, 0); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if !c.NotBefore.Before(testNow) {
		t.Errorf("NotBefore = %v, want before %v (clock skew allowance)", c.NotBefore, testNow)
	}
	if ca.ClusterID() != "c-1" {
		t.Errorf("ClusterID = %q", ca.ClusterID())
	}
	block, _ := pem.Decode(ca.CertPEM())
	sum := sha256.Sum256(block.Bytes)
	if got, want := ca.Fingerprint(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Fingerprint = %s, want SHA-256 of the DER %s", got, want)
	}
	if fp := ca.Fingerprint(); fp != strings.ToLower(fp) || len(fp) != 64 {
		t.Errorf("Fingerprint %q is not 64 lowercase hex digits", fp)
	}
	if _, err := NewCA("", testNow); err == nil {
		t.Error("NewCA accepted an empty cluster ID")
	}
}

// TestChainVerifiesOnlyAgainstItsCA proves that a node certificate is
// accepted by its own cluster CA, for server and client use, and refused by
// another CA even when that CA has the same cluster ID and subject.
func TestChainVerifiesOnlyAgainstItsCA(t *testing.T) {
	caA := newCAAt(t, "same-id", testNow)
	caB := newCAAt(t, "same-id", testNow)
	certPEM, _, err := caA.IssueNode("n1", []net.IP{net.ParseIP("10.0.0.1")}, []string{"n1.example"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, certPEM)
	at := testNow.Add(time.Hour)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		poolA := x509.NewCertPool()
		poolA.AddCert(caA.Certificate())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolA, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: "10.0.0.1"}); err != nil {
			t.Errorf("usage %v: chain does not verify against its CA: %v", usage, err)
		}
		poolB := x509.NewCertPool()
		poolB.AddCert(caB.Certificate())
		_, err := leaf.Verify(x509.VerifyOptions{Roots: poolB, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("usage %v: verify against another CA: err = %v, want UnknownAuthorityError", usage, err)
		}
	}
	if leaf.Subject.CommonName != "n1" {
		t.Errorf("CommonName = %q, want n1", leaf.Subject.CommonName)
	}
	if name, err := NodeName(leaf); err != nil || name != "n1" {
		t.Errorf("NodeName = %q, %v; want n1", name, err)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, caA.Certificate().SubjectKeyId) {
		t.Errorf("AuthorityKeyId %x != CA SubjectKeyId %x", leaf.AuthorityKeyId, caA.Certificate().SubjectKeyId)
	}
	if want := testNow.AddDate(2, 0, 0); !leaf.NotAfter.Equal(want) {
		t.Errorf("node NotAfter = %v, want %v", leaf.NotAfter, want)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) || len(leaf.DNSNames) != 1 {
		t.Errorf("SANs: IPs %v DNS %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if err := leaf.VerifyHostname("n1.example"); err != nil {
		t.Errorf("DNS SAN: %v", err)
	}
}

// TestIssueNodeRefusesBadInput: names that would not be valid node names,
// and certificates no peer could verify, are refused before signing.
func TestIssueNodeRefusesBadInput(t *testing.T) {
	ca := newCA(t, "c")
	ip := []net.IP{net.ParseIP("127.0.0.1")}
	cases := []struct {
		name, node string
		ips        []net.IP
		dns        []string
		want       string
	}{
		{"empty name", "", ip, nil, "invalid"},
		{"upper case", "Node1", ip, nil, "invalid"},
		{"uri characters", "n1/../x", ip, nil, "invalid"},
		{"no address", "n1", nil, nil, "at least one"},
		{"wildcard", "n1", []net.IP{net.IPv4zero}, nil, "wildcard"},
		{"empty dns", "n1", nil, []string{""}, "empty DNS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ca.IssueNode(tc.node, tc.ips, tc.dns, testNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestNodeNameRuleMatchesRaftstate keeps the certificate's node-name rule
// identical to the one raftstate enforces on registered nodes.
func TestNodeNameRuleMatchesRaftstate(t *testing.T) {
	if nodeNameRE.String() != raftstate.NameRE.String() {
		t.Fatalf("pki node name rule %s differs from raftstate.NameRE %s", nodeNameRE, raftstate.NameRE)
	}
}

// TestNodeNameRefusesForeignCertificates: a certificate without our URI SAN
// (a CA, or any web certificate) yields no node name.
func TestNodeNameRefusesForeignCertificates(t *testing.T) {
	ca := newCA(t, "c")
	if _, err := NodeName(ca.Certificate()); err == nil {
		t.Error("NodeName accepted a CA certificate")
	}
	if _, err := NodeName(nil); err == nil {
		t.Error("NodeName accepted nil")
	}
}

// TestLoadCA proves a CA survives the round trip through its PEM files and
// can keep issuing, and that a key from another CA is refused.
func TestLoadCA(t *testing.T) {
	ca := newCA(t, "c")
	other := newCA(t, "c")
	loaded, err := LoadCA(ca.CertPEM(), ca.KeyPEM())
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if loaded.Fingerprint() != ca.Fingerprint() || loaded.ClusterID() != "c" {
		t.Errorf("loaded CA differs: %s vs %s", loaded.Fingerprint(), ca.Fingerprint())
	}
	m := issue(t, loaded, "n2")
	if m.CAFingerprint() != ca.Fingerprint() {
		t.Errorf("certificate from loaded CA: CA fingerprint %s", m.CAFingerprint())
	}
	if _, err := LoadCA(ca.CertPEM(), other.KeyPEM()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("LoadCA with a foreign key: err = %v", err)
	}
	certPEM, keyPEM, err := ca.IssueNode("n3", []net.IP{net.ParseIP("127.0.0.1")}, nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(certPEM, keyPEM); err == nil || !strings.Contains(err.Error(), "not a certificate authority") {
		t.Errorf("LoadCA with a node certificate: err = %v", err)
	}
	if _, err := LoadCA([]byte("garbage"), ca.KeyPEM()); err == nil {
		t.Error("LoadCA accepted garbage")
	}
}

// TestNewMaterialRefusesMismatches: a node certificate from another CA, or
// a key from another node, is caught when the files are loaded, not at the
// first handshake.
func TestNewMaterialRefusesMismatches(t *testing.T) {
	caA := newCA(t, "c")
	caB := newCA(t, "c")
	ip := []net.IP{net.ParseIP("127.0.0.1")}
	certA, keyA, err := caA.IssueNode("n1", ip, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, keyA2, err := caA.IssueNode("n2", ip, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMaterial(caB.CertPEM(), certA, keyA); err == nil || !strings.Contains(err.Error(), "does not verify against the cluster CA") {
		t.Errorf("certificate from another CA: err = %v", err)
	}
	if _, err := NewMaterial(caA.CertPEM(), certA, keyA2); err == nil {
		t.Error("key of another node accepted")
	}
	m, err := NewMaterial(caA.CertPEM(), certA, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if m.NodeName != "n1" || len(m.Cert.Certificate) != 2 || !bytes.Equal(m.Cert.Certificate[1], caA.Certificate().Raw) {
		t.Errorf("material: node %q, chain of %d", m.NodeName, len(m.Cert.Certificate))
	}
}
