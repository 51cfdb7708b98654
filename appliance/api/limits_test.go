package api

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/connlimit"
	"github.com/redis-appliance/redis-appliance/appliance/connlimit/flood"
	"github.com/redis-appliance/redis-appliance/appliance/forward"
)

// selfSigned is a certificate for 127.0.0.1 that the test's server and
// clients both use; the Authorizer below takes any certificate as member
// "n3".
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "n3"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// limitedCluster serves a cluster listener with lim on loopback and
// returns its address and a member's TLS configuration.
func limitedCluster(t *testing.T, lim Limits) (string, *tls.Config) {
	t.Helper()
	cert, pool := selfSigned(t)
	auth := Authorizer{
		NodeName: func(*x509.Certificate) (string, error) { return "n3", nil },
		IsMember: func(string) bool { return true },
	}
	s := NewServer(&fakeBackend{name: "n1"}, auth, forward.New(&leading{self: true, name: "n1"}), quiet())
	s.SetLimits(lim)
	// As pki's server configuration: a certificate is asked for, not
	// required, since a joining host has none yet.
	l, err := ListenClusterWith("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS13,
	}, lim)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String(), &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13}
}

// memberClient is a member's client with the production transport and a
// single attempt per call.
func memberClient(t *testing.T, addr string, cfg *tls.Config) *Client {
	c := NewRemoteClient(addr, cfg)
	t.Cleanup(c.Close)
	return c
}

// A few thousand connections that never start TLS fill the cluster
// listener: those over the cap are closed at once, a member's call made
// meanwhile fails at once (no hang), the rest are closed when the time for
// the handshake is up, and then the member's call is served.
func TestClusterListener_SilentConnectionsAreCappedAndClosedAtTheHandshakeDeadline(t *testing.T) {
	const (
		capacity  = 1500
		flooders  = 2000
		handshake = 3 * time.Second
		bound     = 20 * time.Second
	)
	addr, cfg := limitedCluster(t, Limits{
		HeaderTimeout: handshake, BodyTimeout: time.Second, IdleTimeout: time.Minute,
		Conns: connlimit.Limits{Max: capacity},
	})
	start := time.Now()
	f := flood.Open(t, addr, flooders, "", bound)
	closedAtOnce := func(c flood.Conn) bool { return !c.Closed.IsZero() && c.Closed.Sub(c.Opened) < handshake/2 }
	waitUntil(t, 10*time.Second, "the connections over the cap to be closed", func() error {
		if n := f.Count(closedAtOnce); n != flooders-capacity {
			return fmt.Errorf("%d closed", n)
		}
		return nil
	})

	member := memberClient(t, addr, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	tried := time.Now()
	if _, err := member.ClusterStatus(ctx); err == nil {
		t.Fatal("a member was served while the cap was reached")
	} else {
		t.Logf("a member's call while the cap was reached: %v", err)
	}
	if d := time.Since(tried); d > time.Second {
		t.Errorf("the refusal took %s; want it at once", d)
	}
	if open := f.Count(func(c flood.Conn) bool { return c.Closed.IsZero() }); open != capacity {
		t.Fatalf("the member was refused while %d flooders were open, want %d (slow machine? handshake timeout %s)", open, capacity, handshake)
	}
	waitUntil(t, bound, "the member to be served once the flooders are closed", func() error {
		_, err := member.ClusterStatus(ctx)
		return err
	})
	served := time.Since(start)
	last := time.Duration(0)
	for i, c := range f.Wait() {
		if closedAtOnce(c) {
			continue
		}
		if c.Closed.IsZero() {
			t.Fatalf("flooder %d was still open %s after it connected; want closed after %s", i, bound, handshake)
		}
		// The server may accept a moment before the dial returns here.
		if alive := c.Closed.Sub(c.Opened); alive < handshake-50*time.Millisecond {
			t.Fatalf("flooder %d was closed after %s; want %s", i, alive, handshake)
		}
		last = max(last, c.Closed.Sub(start))
	}
	t.Logf("%d connections: %d closed at once, %d closed %s–%s after the first dial; the member was served after %s",
		flooders, flooders-capacity, capacity, handshake, last.Round(time.Millisecond), served.Round(time.Millisecond))
}

// After its handshake a connection must send its request headers in time
// and its body in time, and a keep-alive connection with no request is
// closed after the idle timeout.
func TestClusterListener_SlowHeadersSlowBodiesAndIdleConnectionsAreClosed(t *testing.T) {
	const (
		headers = 500 * time.Millisecond
		body    = 500 * time.Millisecond
		idle    = 800 * time.Millisecond
	)
	addr, cfg := limitedCluster(t, Limits{HeaderTimeout: headers, BodyTimeout: body, IdleTimeout: idle})
	dial := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	closedAfter := func(what string, r io.Reader, since time.Time, want time.Duration) {
		t.Helper()
		_, err := io.Copy(io.Discard, r)
		alive := time.Since(since)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("%s: %v after %s, want the server to close it after %s", what, err, alive, want)
			return
		}
		if alive < want-50*time.Millisecond || alive > want+5*time.Second {
			t.Errorf("%s: closed after %s, want about %s", what, alive, want)
		}
	}

	// Headers started, never finished.
	c, r := dial()
	sent := time.Now()
	fmt.Fprint(c, "GET /v1/cluster HTTP/1.1\r\nHost: n1\r\n")
	closedAfter("a request whose headers never end", r, sent, headers)

	// A body that stops half way: answered with an error once the body
	// timeout is up, before any handler runs.
	c, r = dial()
	sent = time.Now()
	fmt.Fprint(c, "POST /v1/internal/join HTTP/1.1\r\nHost: n1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"token\":")
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("a body that stops half way: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	if took := time.Since(sent); resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(msg), "timeout") || took < body-50*time.Millisecond {
		t.Errorf("a body that stops half way: %d %s after %s; want 408 after %s", resp.StatusCode, msg, took, body)
	}

	// A member's request, answered; the connection then idles.
	c, r = dial()
	fmt.Fprint(c, "GET /v1/cluster HTTP/1.1\r\nHost: n1\r\n\r\n")
	resp, err = http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a member's request: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	answered := time.Now()
	closedAfter("an idle keep-alive connection", r, answered, idle)
}

// One host cannot take every slot: with its own cap used up, a member on
// another address is served at once.
func TestClusterListener_OneHostCannotTakeEverySlot(t *testing.T) {
	const perHost = 100
	addr, cfg := limitedCluster(t, Limits{HeaderTimeout: 30 * time.Second, Conns: connlimit.Limits{PerHost: perHost}})
	f := flood.Open(t, addr, 3*perHost, "127.0.0.1", 30*time.Second)
	waitUntil(t, 10*time.Second, "the connections over the host's cap to be closed", func() error {
		if n := f.Count(func(c flood.Conn) bool { return !c.Closed.IsZero() }); n != 2*perHost {
			return fmt.Errorf("%d closed", n)
		}
		return nil
	})
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	tr := RemoteTransport(cfg)
	tr.DialContext = d.DialContext
	member := &Client{socket: addr, base: "https://" + addr, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	t.Cleanup(member.Close)
	if _, err := member.ClusterStatus(context.Background()); err != nil {
		t.Fatalf("a member on another address while 127.0.0.1 is at its cap: %v", err)
	}
}

// waitUntil polls f every 20 ms until it returns nil, failing the test
// with its last error after bound.
func waitUntil(t *testing.T, bound time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", bound, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
