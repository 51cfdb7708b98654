package pki

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// ioTimeout bounds every network step of these tests.
const ioTimeout = 5 * time.Second

// tlsServer accepts TLS connections on 127.0.0.1 with cfg. For each client
// it completes the handshake and answers with one line: the client's node
// name read from its verified certificate, or "anonymous". Handshake errors
// are sent on the returned channel.
func tlsServer(t *testing.T, cfg *tls.Config) (addr string, handshakeErrs <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errs := make(chan error, 16)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c := tls.Server(raw, cfg)
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(ioTimeout))
				if err := c.Handshake(); err != nil {
					errs <- err
					return
				}
				answer := "anonymous"
				if pc := c.ConnectionState().PeerCertificates; len(pc) > 0 {
					name, err := NodeName(pc[0])
					if err != nil {
						answer = "error: " + err.Error()
					} else {
						answer = name
					}
				}
				_, _ = c.Write([]byte(answer + "\n"))
			}()
		}
	}()
	return ln.Addr().String(), errs
}

// exchange dials addr with cfg and returns the server's one-line answer.
// With TLS 1.3 a client learns that the server refused its certificate only
// when it reads, so the error may come from either step.
func exchange(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func waitErr(t *testing.T, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(ioTimeout):
		t.Fatal("server reported no handshake error")
		return nil
	}
}

// TestMutualTLS runs real handshakes over TCP on 127.0.0.1 and proves that
// members of one cluster talk, that the server learns the client's node name
// from its certificate, and that everyone else is refused.
func TestMutualTLS(t *testing.T) {
	caA := newCA(t, "a")
	caB := newCA(t, "b")
	n1 := issue(t, caA, "n1")
	n2 := issue(t, caA, "n2")
	intruder := issue(t, caB, "n2")
	addr, errs := tlsServer(t, ServerConfig(n1))

	t.Run("member is accepted and identified", func(t *testing.T) {
		got, err := exchange(addr, ClientConfig(n2, ""))
		if err != nil || got != "n2" {
			t.Fatalf("answer %q, %v; want n2", got, err)
		}
	})

	t.Run("client certificate from another CA is refused", func(t *testing.T) {
		cfg := ClientConfig(n2, "")
		// The intruder knows the public CA certificate and trusts it, so its
		// side of the handshake succeeds; only its own certificate is wrong.
		cfg.Certificates = []tls.Certificate{intruder.Cert}
		if got, err := exchange(addr, cfg); err == nil {
			t.Fatalf("intruder got answer %q", got)
		}
		if err := waitErr(t, errs); !strings.Contains(err.Error(), "certificate") {
			t.Errorf("server handshake error %v, want a certificate error", err)
		}
	})

	t.Run("client without certificate is refused", func(t *testing.T) {
		cfg := ClientConfig(n2, "")
		cfg.Certificates = nil
		got, err := exchange(addr, cfg)
		if err == nil {
			t.Fatalf("anonymous client got answer %q", got)
		}
		if !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("client error %v, want tls: certificate required", err)
		}
		if err := waitErr(t, errs); err == nil {
			t.Error("server accepted a client without certificate")
		}
	})

	t.Run("server from another CA is refused", func(t *testing.T) {
		otherAddr, _ := tlsServer(t, ServerConfig(intruder))
		_, err := exchange(otherAddr, ClientConfig(n2, ""))
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
	})

	t.Run("server name must be in the certificate", func(t *testing.T) {
		_, err := exchange(addr, ClientConfig(n2, "10.9.9.9"))
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
	})

	t.Run("TLS 1.2 is refused", func(t *testing.T) {
		cfg := ClientConfig(n2, "")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if _, err := exchange(addr, cfg); err == nil {
			t.Fatal("TLS 1.2 client accepted")
		}
	})
}

// TestPinnedConfig proves that a joining host, which knows only the CA
// fingerprint from its token, reaches a member of that cluster and refuses a
// server of another cluster before sending anything.
func TestPinnedConfig(t *testing.T) {
	caA := newCA(t, "a")
	caB := newCA(t, "b")
	n1 := issue(t, caA, "n1")
	// The join listener lets certificate-less clients in; the token is
	// their credential.
	addr, _ := tlsServer(t, JoinServerConfig(n1))

	got, err := exchange(addr, PinnedConfig(caA.Fingerprint()))
	if err != nil || got != "anonymous" {
		t.Fatalf("pinned to the right CA: answer %q, %v", got, err)
	}

	// openssl prints fingerprints as upper-case hex pairs with colons.
	var b strings.Builder
	for i, r := range strings.ToUpper(caA.Fingerprint()) {
		if i > 0 && i%2 == 0 {
			b.WriteByte(':')
		}
		b.WriteRune(r)
	}
	if _, err := exchange(addr, PinnedConfig(b.String())); err != nil {
		t.Errorf("openssl-style fingerprint %s: %v", b.String(), err)
	}

	_, err = exchange(addr, PinnedConfig(caB.Fingerprint()))
	if err == nil || !strings.Contains(err.Error(), "not the one in the join token") {
		t.Errorf("pinned to another CA: err = %v", err)
	}

	_, err = exchange(addr, PinnedConfig("abc"))
	if err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("malformed pin: err = %v", err)
	}

	// A server of the other cluster, for a host that pinned A.
	m := issue(t, caB, "n9")
	otherAddr, _ := tlsServer(t, JoinServerConfig(m))
	if _, err := exchange(otherAddr, PinnedConfig(caA.Fingerprint())); err == nil {
		t.Error("server of another cluster accepted by a host pinned to A")
	}

	// A member with a certificate can still use the join listener as a
	// member and is identified.
	n2 := issue(t, caA, "n2")
	if got, err := exchange(addr, ClientConfig(n2, "")); err != nil || got != "n2" {
		t.Errorf("member on the join listener: %q, %v", got, err)
	}
}

// TestVerifyPinnedRefusesNonCA: a server cannot satisfy the pin by sending
// the pinned certificate if that certificate is not a CA that signed it.
func TestVerifyPinnedRefusesNonCA(t *testing.T) {
	caA := newCA(t, "a")
	n1 := issue(t, caA, "n1")
	n2 := issue(t, caA, "n2")
	leaf1 := n1.Cert.Leaf
	leaf2 := n2.Cert.Leaf
	// n1 presents n2's certificate as if it were its CA.
	if err := verifyPinned([]*x509.Certificate{leaf1, leaf2}, fingerprint(leaf2.Raw)); err == nil || !strings.Contains(err.Error(), "not a certificate authority") {
		t.Errorf("err = %v", err)
	}
	if err := verifyPinned(nil, caA.Fingerprint()); err == nil {
		t.Error("no certificates accepted")
	}
}
