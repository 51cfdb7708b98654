package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func dbCA(t *testing.T, now time.Time) *CA {
	t.Helper()
	ca, err := NewDatabaseCA("test-cluster", now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// TestIssueServer_ClientsVerifyEveryHostAndOnlyAgainstTheDatabaseCA: a
// certificate issued for a node's address and host names passes a real
// TLS handshake for each, verified against the database CA alone; against
// the cluster CA, or for a name it was not issued for, the client refuses.
func TestIssueServer_ClientsVerifyEveryHostAndOnlyAgainstTheDatabaseCA(t *testing.T) {
	now := time.Now()
	ca := dbCA(t, now)
	if !strings.Contains(ca.Certificate().Subject.CommonName, "database CA") {
		t.Errorf("database CA subject: %v", ca.Certificate().Subject)
	}
	certPEM, keyPEM, err := ca.IssueServer([]string{"127.0.0.1", "localhost", "redis.example.test"}, 90*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	dial := func(name string, roots *x509.CertPool) error {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err == nil {
			c.Close()
		}
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, name := range []string{"127.0.0.1", "localhost", "redis.example.test"} {
		if err := dial(name, roots); err != nil {
			t.Errorf("a client dialing %s and trusting the database CA: %v", name, err)
		}
	}
	if err := dial("other.example.test", roots); err == nil {
		t.Error("a client dialing a name the certificate lacks was not refused")
	}
	cluster := x509.NewCertPool()
	cluster.AddCert(newCA(t, "test-cluster").Certificate())
	if err := dial("127.0.0.1", cluster); err == nil {
		t.Error("a client trusting the cluster CA accepted the database certificate")
	}
	leaf, err := CheckServerCert(certPEM, keyPEM, []string{"127.0.0.1", "redis.example.test"}, roots, now)
	if err != nil || leaf.NotAfter.Sub(now) > 91*24*time.Hour {
		t.Errorf("CheckServerCert of a good certificate: %v (not after %s)", err, leaf.NotAfter)
	}
}

// selfSigned makes an operator's certificate from elsewhere (RSA, as
// internal PKIs often issue) for names, valid from notBefore to notAfter.
func selfSigned(t *testing.T, names []string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

// TestCheckServerCert_BadCertificatesAreRefusedWithWhatToDo: an operator's
// certificate that does not match its key, has expired or is not valid
// yet, lacks an address clients dial, is not PEM, or does not chain to the
// CA given for it, is refused with an error saying so; an operator's RSA
// certificate that is right passes.
func TestCheckServerCert_BadCertificatesAreRefusedWithWhatToDo(t *testing.T) {
	now := time.Now()
	hosts := []string{"redis.example.test"}
	good, goodKey := selfSigned(t, hosts, now.Add(-time.Hour), now.Add(time.Hour))
	_, otherKey := selfSigned(t, hosts, now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := selfSigned(t, hosts, now.Add(-2*time.Hour), now.Add(-time.Hour))
	future, futureKey := selfSigned(t, hosts, now.Add(time.Hour), now.Add(2*time.Hour))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})
	dbRoots := x509.NewCertPool()
	dbRoots.AddCert(dbCA(t, now).Certificate())
	for _, c := range []struct {
		name      string
		cert, key []byte
		hosts     []string
		roots     *x509.CertPool
		says      string
	}{
		{"key of another certificate", good, otherKey, hosts, nil, "not a usable pair"},
		{"key of another type", good, ecPEM, hosts, nil, "not a usable pair"},
		{"expired", expired, expiredKey, hosts, nil, "expired at"},
		{"not valid yet", future, futureKey, hosts, nil, "not valid before"},
		{"an address it lacks", good, goodKey, []string{"redis.example.test", "10.0.0.7"}, nil, "does not cover 10.0.0.7"},
		{"not PEM", []byte("hello"), goodKey, hosts, nil, "not a usable pair"},
		{"another CA", good, goodKey, hosts, dbRoots, "does not chain"},
	} {
		_, err := CheckServerCert(c.cert, c.key, c.hosts, c.roots, now)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.says)
		}
	}
	own := x509.NewCertPool()
	block, _ := pem.Decode(good)
	leaf, _ := x509.ParseCertificate(block.Bytes)
	own.AddCert(leaf)
	if _, err := CheckServerCert(good, goodKey, hosts, own, now); err != nil {
		t.Errorf("an operator's RSA certificate that is right: %v", err)
	}
}

func TestReadPrivateKeyFile_RefusesAKeyReadableByOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.key")
	if err := os.WriteFile(path, []byte("key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivateKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a 0644 key: %v, want a refusal saying chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadPrivateKeyFile(path); err != nil || string(b) != "key" {
		t.Errorf("a 0600 key: %q %v", b, err)
	}
}

func TestIssueServer_BadHostsAreRefused(t *testing.T) {
	ca := dbCA(t, time.Now())
	for _, hosts := range [][]string{nil, {"0.0.0.0"}, {"a b"}, {""}} {
		if _, _, err := ca.IssueServer(hosts, time.Hour, time.Now()); err == nil {
			t.Errorf("IssueServer(%q) issued a certificate", hosts)
		}
	}
	if _, _, err := ca.IssueServer([]string{"127.0.0.1"}, 0, time.Now()); err == nil {
		t.Error("a zero lifetime was accepted")
	}
}
