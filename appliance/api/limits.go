package api

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/connlimit"
)

// The cluster listener's bounds (docs/security.md, "Connection limits").
// Members keep a few pooled connections to each other (api.RemoteTransport)
// and joining hosts one each, so the caps sit far above honest use and far
// below the agent's file descriptor limit.
const (
	// DefaultHeaderTimeout bounds the TLS handshake and then the request
	// headers of each request: a connection that says nothing is closed
	// before any certificate or membership is known.
	DefaultHeaderTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds reading a request body (at most maxBody).
	// Not http.Server.ReadTimeout, which would also cancel the context of
	// a handler still running when it expires (a create waits for its
	// instances).
	DefaultBodyTimeout = 30 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection with no request
	// in flight. It is longer than RemoteTransport's IdleConnTimeout
	// (30 s), so a member's pool always closes first and never sends a
	// request into a connection the server is closing.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxConns caps the cluster listener's open connections.
	DefaultMaxConns = 1024
	// DefaultMaxConnsPerHost caps those from one IP address, so that one
	// host cannot take every slot from the members.
	DefaultMaxConnsPerHost = 128
)

// Limits bound the connections of the cluster listener. The timeouts
// apply to the local socket too; the caps only to the cluster listener.
type Limits struct {
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	IdleTimeout   time.Duration
	Conns         connlimit.Limits
}

// DefaultLimits are the limits of NewServer and ListenCluster.
func DefaultLimits() Limits {
	return Limits{
		HeaderTimeout: DefaultHeaderTimeout,
		BodyTimeout:   DefaultBodyTimeout,
		IdleTimeout:   DefaultIdleTimeout,
		Conns:         connlimit.Limits{Max: DefaultMaxConns, PerHost: DefaultMaxConnsPerHost},
	}
}

// SetLimits replaces the server's timeouts; call it before Serve.
func (s *Server) SetLimits(l Limits) {
	s.limits = l
	// net/http bounds the TLS handshake by the shortest of its timeouts
	// that is set, which is this one.
	s.http.ReadHeaderTimeout = l.HeaderTimeout
	s.http.IdleTimeout = l.IdleTimeout
}

// ListenClusterWith is ListenCluster with limits other than the defaults.
// The caps are applied before TLS, so a refused connection costs no
// handshake.
func ListenClusterWith(addr string, cfg *tls.Config, l Limits) (net.Listener, error) {
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the cluster API on %s (is the port free?): %w", addr, err)
	}
	return tls.NewListener(connlimit.New(tl, l.Conns, nil), cfg), nil
}
