package raftstate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

const (
	// handshakeTimeout bounds the server side of a TLS handshake, so a peer
	// that connects and then stalls holds a goroutine and a socket for at
	// most this long.
	handshakeTimeout = 10 * time.Second
	// defaultDialTimeout applies when raft asks to dial with no timeout.
	defaultDialTimeout = 10 * time.Second
	// readyByte is what the server sends right after it has verified the
	// client's certificate; see Dial.
	readyByte = 0x52 // 'R'
)

// TLSStreamLayer is a raft.StreamLayer over mutual TLS: both sides present
// a certificate and verify the other's, so only members of the cluster can
// send or receive Raft RPCs. Use it with raft.NewNetworkTransportWithConfig.
//
// On top of TLS it adds one byte: after the server has verified the
// client's certificate it sends readyByte, and Dial waits for it. With TLS
// 1.3 a client's handshake completes before the server has checked the
// client's certificate, so without that byte a peer whose certificate is
// refused would learn it only at its first RPC read; with it, Dial fails
// within its timeout and says why.
type TLSStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	// handshakeTimeout is a field so tests can shorten it.
	handshakeTimeout time.Duration
	// heard receives (without blocking the reader) when bytes arrive on
	// an accepted connection: see Heard.
	heard chan struct{}
	// conns are the open connections, accepted and dialed, so that
	// Recheck can cut off a peer that stopped being a member.
	connMu sync.Mutex
	conns  map[*tls.Conn]struct{}
}

var _ raft.StreamLayer = (*TLSStreamLayer)(nil)

// NewTLSStreamLayer listens on bindAddr (e.g. "0.0.0.0:7481") for Raft over
// TLS. advertise is the address peers dial (nil: the listener's address,
// which must then not be a wildcard). server must require and verify client
// certificates (pki.ServerConfig); client presents this node's certificate
// and verifies servers against the cluster CA (pki.ClientConfig with an
// empty server name, so each peer's address is checked against its
// certificate). Both configs are copied.
func NewTLSStreamLayer(bindAddr string, advertise net.Addr, server, client *tls.Config) (*TLSStreamLayer, error) {
	if server == nil || client == nil {
		return nil, errors.New("raft over TLS needs both a server and a client TLS configuration")
	}
	if server.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("raft TLS server configuration must require and verify client certificates (use pki.ServerConfig), or any host could join the Raft traffic")
	}
	if len(server.Certificates) == 0 && server.GetCertificate == nil {
		return nil, errors.New("raft TLS server configuration has no certificate; load the node's PKI material first")
	}
	if client.InsecureSkipVerify && client.VerifyConnection == nil {
		return nil, errors.New("raft TLS client configuration skips server verification; use pki.ClientConfig")
	}
	ln, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s (is the port free?): %w", bindAddr, err)
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if tcp, ok := advertise.(*net.TCPAddr); !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("raft address %s cannot be dialed by peers; set an advertise address (this host's IP on the cluster network)", advertise)
	}
	return &TLSStreamLayer{
		ln:               ln,
		advertise:        advertise,
		server:           server.Clone(),
		client:           client.Clone(),
		handshakeTimeout: handshakeTimeout,
		heard:            make(chan struct{}, 1),
		conns:            map[*tls.Conn]struct{}{},
	}, nil
}

// Heard receives when a peer's Raft traffic arrives on a connection it
// opened to this node: on a follower, the leader's heartbeats and appends.
// Bursts coalesce into one value; it has one reader (the agent's
// heartbeat loop, which reports to the leader right after hearing from it,
// when this node is awake anyway).
func (s *TLSStreamLayer) Heard() <-chan struct{} { return s.heard }

// Accept waits for the next connection and returns it with its TLS
// handshake not yet done. The handshake runs on the connection's first Read
// or Write, as crypto/tls does, bounded by a timeout. Raft's transport
// serves each accepted connection in its own goroutine, so a slow or hostile
// client delays only its own connection, never Accept and so never the
// other peers; doing the handshake here would let one stalled client block
// every peer for the whole timeout.
func (s *TLSStreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, s.server)
	s.track(tc)
	return &serverConn{Conn: tc, timeout: s.handshakeTimeout, heard: s.heard, layer: s}, nil
}

func (s *TLSStreamLayer) track(c *tls.Conn) {
	s.connMu.Lock()
	s.conns[c] = struct{}{}
	s.connMu.Unlock()
}

func (s *TLSStreamLayer) untrack(c *tls.Conn) {
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
}

// Recheck closes every open connection, either way, whose peer verify now
// refuses, and returns how many it closed. The handshake checked the peer
// once; a connection outlives that check (Raft keeps its connections for
// as long as they work), so when the membership changes (a node removed)
// the store calls Recheck, and the removed node's connections end at once
// rather than when they next break.
func (s *TLSStreamLayer) Recheck(verify func(tls.ConnectionState) error) int {
	s.connMu.Lock()
	conns := make([]*tls.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.connMu.Unlock()
	closed := 0
	for _, c := range conns {
		cs := c.ConnectionState()
		if !cs.HandshakeComplete {
			continue // its handshake will check the peer
		}
		if verify(cs) != nil {
			_ = c.Close()
			s.untrack(c)
			closed++
		}
	}
	return closed
}

// Close stops listening; established connections are left to their owners.
func (s *TLSStreamLayer) Close() error { return s.ln.Close() }

// Addr returns the address peers dial (the advertise address).
func (s *TLSStreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to a peer's Raft address and completes the TLS handshake
// and the server's verification of this node's certificate (readyByte)
// within timeout, so a peer with a wrong certificate, or one that refuses
// ours, fails here rather than at the first RPC.
func (s *TLSStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.client}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft: connect to %s over TLS: %w", address, err)
	}
	dl, _ := ctx.Deadline()
	if err := c.SetReadDeadline(dl); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("raft: connect to %s: %w", address, err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("raft: %s did not confirm the TLS session (it refused this node's certificate, or it is not a redis-appliance Raft port): %w", address, err)
	}
	if b[0] != readyByte {
		_ = c.Close()
		return nil, fmt.Errorf("raft: %s is not a redis-appliance Raft endpoint (unexpected greeting %#x)", address, b[0])
	}
	// Raft sets its own deadlines per RPC; clear ours.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("raft: connect to %s: %w", address, err)
	}
	tc := c.(*tls.Conn)
	s.track(tc)
	return &dialedConn{Conn: tc, layer: s}, nil
}

// dialedConn is a connection Dial opened, forgotten by Recheck once closed.
type dialedConn struct {
	*tls.Conn
	layer *TLSStreamLayer
}

// Close closes the connection and stops tracking it.
func (c *dialedConn) Close() error {
	c.layer.untrack(c.Conn)
	return c.Conn.Close()
}

// serverConn is an accepted connection whose handshake (and readyByte) is
// done once, on first use, within timeout.
type serverConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
	heard   chan<- struct{}
	layer   *TLSStreamLayer
}

// Close closes the connection and stops tracking it.
func (c *serverConn) Close() error {
	c.layer.untrack(c.Conn)
	return c.Conn.Close()
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		// HandshakeContext closes the connection when the context ends, so
		// the bound needs no deadline on the socket (Raft owns those).
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("raft: TLS handshake with %s: %w", c.RemoteAddr(), err)
			return
		}
		// One byte into a fresh socket's empty send buffer does not block,
		// so this write needs no deadline of its own.
		if _, err := c.Conn.Write([]byte{readyByte}); err != nil {
			c.err = fmt.Errorf("raft: greet %s: %w", c.RemoteAddr(), err)
		}
	})
	return c.err
}

// Read completes the handshake first, then reads, and tells Heard that
// the peer spoke.
func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		select {
		case c.heard <- struct{}{}:
		default:
		}
	}
	return n, err
}

// Write completes the handshake first, then writes.
func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
