package raftstate

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/redis-appliance/redis-appliance/appliance/pki"
)

// waitBound bounds every wait in these tests.
const waitBound = 10 * time.Second

// lockedBuffer collects log output written from raft's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listFSM records applied entries; it is the trivial FSM these transport
// tests need, not the product's FSM.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return nil
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("listFSM does not snapshot")
}

func (f *listFSM) Restore(io.ReadCloser) error { return errors.New("listFSM does not restore") }

func (f *listFSM) has(entry string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		if e == entry {
			return true
		}
	}
	return false
}

func (f *listFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// waitFor polls cond until it holds, failing the test after waitBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitBound, what)
		}
		<-tick.C
	}
}

// nodeMaterial issues a certificate for node on 127.0.0.1 from ca.
func nodeMaterial(t *testing.T, ca *pki.CA, node string) *pki.Material {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueNode(node, []net.IP{net.ParseIP("127.0.0.1")}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, err := pki.NewMaterial(ca.CertPEM(), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newTestCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// newLayer returns a TLS stream layer on 127.0.0.1 with m's certificate.
func newLayer(t *testing.T, m *pki.Material) *TLSStreamLayer {
	t.Helper()
	l, err := NewTLSStreamLayer("127.0.0.1:0", nil, pki.ServerConfig(m), pki.ClientConfig(m, ""))
	if err != nil {
		t.Fatalf("NewTLSStreamLayer: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// tlsNode is one in-process Raft node whose transport is TLSStreamLayer.
type tlsNode struct {
	id    raft.ServerID
	addr  raft.ServerAddress
	raft  *raft.Raft
	fsm   *listFSM
	trans *raft.NetworkTransport
	logs  *lockedBuffer
}

func startTLSNode(t *testing.T, ca *pki.CA, name string) *tlsNode {
	t.Helper()
	layer := newLayer(t, nodeMaterial(t, ca, name))
	logs := &lockedBuffer{}
	hl := hclog.New(&hclog.LoggerOptions{Name: name, Output: logs, Level: hclog.Info})
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 2 * time.Second,
		Logger:  hl,
	})
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(name)
	cfg.Logger = hl
	// The timeouts store.go uses, so the test runs at production pace.
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	fsm := &listFSM{}
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(cfg, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatalf("start raft %s: %v", name, err)
	}
	n := &tlsNode{id: cfg.LocalID, addr: trans.LocalAddr(), raft: r, fsm: fsm, trans: trans, logs: logs}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
		_ = trans.Close()
		if t.Failed() {
			t.Logf("raft log of %s:\n%s", name, logs.String())
		}
	})
	return n
}

// startTLSCluster bootstraps n1 and adds n2 and n3 as voters, all with
// certificates from ca.
func startTLSCluster(t *testing.T, ca *pki.CA) []*tlsNode {
	t.Helper()
	nodes := []*tlsNode{startTLSNode(t, ca, "n1"), startTLSNode(t, ca, "n2"), startTLSNode(t, ca, "n3")}
	leader := nodes[0]
	if err := leader.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: leader.id, Address: leader.addr},
	}}).Error(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	waitFor(t, "n1 to lead", func() bool { return leader.raft.State() == raft.Leader })
	for _, n := range nodes[1:] {
		if err := leader.raft.AddVoter(n.id, n.addr, 0, waitBound).Error(); err != nil {
			t.Fatalf("add voter %s: %v", n.id, err)
		}
	}
	return nodes
}

// TestTLSStreamLayer_ThreeNodesReplicate proves that Raft runs over mutual
// TLS: three real raft nodes on loopback, each with its own certificate from
// one cluster CA, form a cluster and a command applied on the leader reaches
// every FSM.
func TestTLSStreamLayer_ThreeNodesReplicate(t *testing.T) {
	nodes := startTLSCluster(t, newTestCA(t))
	leader := nodes[0]
	if err := leader.raft.Apply([]byte("hello"), waitBound).Error(); err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, n := range nodes {
		waitFor(t, string(n.id)+" to apply hello", func() bool { return n.fsm.has("hello") })
	}
	f := leader.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if got := len(f.Configuration().Servers); got != 3 {
		t.Errorf("configuration has %d servers, want 3", got)
	}
	for _, n := range nodes[1:] {
		waitFor(t, string(n.id)+" to know the leader", func() bool {
			_, id := n.raft.LeaderWithID()
			return id == leader.id
		})
	}
}

// TestTLSStreamLayer_StrangerCannotJoin proves that a node whose
// certificate comes from another CA gets no Raft entries even when the
// leader is told to add it: every connection between it and the cluster
// fails verification, and the leader's log says so.
func TestTLSStreamLayer_StrangerCannotJoin(t *testing.T) {
	nodes := startTLSCluster(t, newTestCA(t))
	leader := nodes[0]
	stranger := startTLSNode(t, newTestCA(t), "n4")

	// The configuration change may commit (n1..n3 are a quorum of four) or
	// fail; either way the stranger must receive nothing.
	_ = leader.raft.AddVoter(stranger.id, stranger.addr, 0, 2*time.Second).Error()
	if err := leader.raft.Apply([]byte("after"), waitBound).Error(); err != nil {
		t.Fatalf("apply with the stranger in the configuration: %v", err)
	}
	for _, n := range nodes {
		waitFor(t, string(n.id)+" to apply after", func() bool { return n.fsm.has("after") })
	}
	waitFor(t, "the leader to log the certificate failure", func() bool {
		return strings.Contains(leader.logs.String(), "certificate signed by unknown authority")
	})
	// Several heartbeat rounds: the stranger still has no entry at all.
	deadline := time.Now().Add(2 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if stranger.raft.LastIndex() != 0 || stranger.fsm.len() != 0 {
			t.Fatalf("stranger received entries: last index %d, %d applied", stranger.raft.LastIndex(), stranger.fsm.len())
		}
		<-tick.C
	}
}

// echo serves l: every accepted connection gets back what it sends.
func echo(l *TLSStreamLayer) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func ping(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitBound))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

// TestTLSStreamLayer_DialFailsOnWrongCertificates proves that Dial itself,
// within its timeout, refuses a server from another CA and reports that the
// server refused our certificate (another CA's, or none), instead of
// handing raft a connection that fails at its first RPC.
func TestTLSStreamLayer_DialFailsOnWrongCertificates(t *testing.T) {
	caA, caB := newTestCA(t), newTestCA(t)
	server := newLayer(t, nodeMaterial(t, caA, "n1"))
	go echo(server)
	member := newLayer(t, nodeMaterial(t, caA, "n2"))
	addr := raft.ServerAddress(server.Addr().String())

	c, err := member.Dial(addr, 2*time.Second)
	if err != nil {
		t.Fatalf("member dial: %v", err)
	}
	ping(t, c)
	c.Close()

	// A node of another cluster: it does not trust our server.
	stranger := newLayer(t, nodeMaterial(t, caB, "n2"))
	if _, err := stranger.Dial(addr, 2*time.Second); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("stranger dial: err = %v, want unknown authority", err)
	}

	// An intruder who trusts our (public) CA certificate but holds a
	// certificate from another CA, and one with no certificate: with TLS
	// 1.3 their handshake completes, so only the ready byte makes Dial fail.
	mB := nodeMaterial(t, caB, "n2")
	mA := nodeMaterial(t, caA, "n3")
	for name, certs := range map[string][]tls.Certificate{"foreign certificate": {mB.Cert}, "no certificate": nil} {
		client := pki.ClientConfig(mA, "")
		client.Certificates = certs
		l, err := NewTLSStreamLayer("127.0.0.1:0", nil, pki.ServerConfig(mA), client)
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.Dial(addr, 2*time.Second)
		l.Close()
		if err == nil || !strings.Contains(err.Error(), "did not confirm the TLS session") {
			t.Errorf("%s: dial err = %v, want a refusal from Dial", name, err)
		}
	}
}

// TestTLSStreamLayer_StalledClientDoesNotBlockAccept proves that a client
// which connects and never handshakes neither delays other peers nor keeps
// its connection beyond the handshake timeout.
func TestTLSStreamLayer_StalledClientDoesNotBlockAccept(t *testing.T) {
	ca := newTestCA(t)
	server := newLayer(t, nodeMaterial(t, ca, "n1"))
	server.handshakeTimeout = 300 * time.Millisecond
	go echo(server)

	stalled, err := net.Dial("tcp", server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()

	member := newLayer(t, nodeMaterial(t, ca, "n2"))
	c, err := member.Dial(raft.ServerAddress(server.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatalf("dial while another client stalls: %v", err)
	}
	ping(t, c)
	c.Close()

	_ = stalled.SetReadDeadline(time.Now().Add(waitBound))
	n, err := stalled.Read(make([]byte, 1))
	if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("stalled client: read %d bytes, err %v; want the server to close it after the handshake timeout", n, err)
	}
}

// TestTLSStreamLayer_PlainTCPRefused proves that a peer speaking plain Raft
// over TCP gets no answer: its RPC fails, the connection is closed, and the
// TLS node logs the TLS error.
func TestTLSStreamLayer_PlainTCPRefused(t *testing.T) {
	n1 := startTLSNode(t, newTestCA(t), "n1")

	plain, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var resp raft.AppendEntriesResponse
	err = plain.AppendEntries("n1", n1.addr, &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ID: []byte("plain"), Addr: []byte(plain.LocalAddr())},
		Term:      1,
	}, &resp)
	if err == nil {
		t.Fatal("plain-TCP AppendEntries succeeded against the TLS port")
	}
	waitFor(t, "the TLS node to log the TLS error", func() bool {
		return strings.Contains(n1.logs.String(), "first record does not look like a TLS handshake")
	})

	raw, err := net.Dial("tcp", string(n1.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(waitBound))
	if _, err := raw.Write([]byte("hello raft\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Read(make([]byte, 64)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("plain client: read %d bytes, err %v; want the connection closed", n, err)
	}
}

// TestNewTLSStreamLayer_RefusesUnsafeConfigs: configurations that would let
// strangers in, or an address peers cannot dial, are refused up front.
func TestNewTLSStreamLayer_RefusesUnsafeConfigs(t *testing.T) {
	m := nodeMaterial(t, newTestCA(t), "n1")
	noClientAuth := pki.ServerConfig(m)
	noClientAuth.ClientAuth = tls.VerifyClientCertIfGiven
	skip := pki.ClientConfig(m, "")
	skip.InsecureSkipVerify = true
	cases := []struct {
		name           string
		bind           string
		server, client *tls.Config
		want           string
	}{
		{"nil server", "127.0.0.1:0", nil, pki.ClientConfig(m, ""), "needs both"},
		{"optional client certs", "127.0.0.1:0", noClientAuth, pki.ClientConfig(m, ""), "require and verify client certificates"},
		{"unverified servers", "127.0.0.1:0", pki.ServerConfig(m), skip, "skips server verification"},
		{"wildcard without advertise", "0.0.0.0:0", pki.ServerConfig(m), pki.ClientConfig(m, ""), "cannot be dialed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewTLSStreamLayer(tc.bind, nil, tc.server, tc.client)
			if err == nil {
				l.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	adv := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 7481}
	l, err := NewTLSStreamLayer("0.0.0.0:0", adv, pki.ServerConfig(m), pki.ClientConfig(m, ""))
	if err != nil {
		t.Fatalf("wildcard with advertise: %v", err)
	}
	defer l.Close()
	if l.Addr().String() != adv.String() {
		t.Errorf("Addr = %s, want the advertise address %s", l.Addr(), adv)
	}
}

// A follower's agent reports right after the leader's heartbeat reaches
// it: Heard must receive when a peer's bytes arrive on a connection the
// peer opened, and not before.
func TestTLSStreamLayer_HeardWhenAPeerSpeaks(t *testing.T) {
	ca := newTestCA(t)
	server := newLayer(t, nodeMaterial(t, ca, "n1"))
	go echo(server)
	peer := newLayer(t, nodeMaterial(t, ca, "n2"))
	c, err := peer.Dial(raft.ServerAddress(server.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	select {
	case <-server.Heard():
		t.Fatal("Heard received before the peer sent anything")
	default:
	}
	for i := range 3 {
		ping(t, c)
		select {
		case <-server.Heard():
		case <-time.After(waitBound):
			t.Fatalf("ping %d: Heard never received after the peer's bytes arrived", i)
		}
	}
	// The dialing side hears nothing: answers to its own requests are not
	// a peer speaking to it.
	select {
	case <-peer.Heard():
		t.Fatal("the dialer's Heard received the answers to its own pings")
	default:
	}
}
