package sentinel

import (
	"net"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/connlimit"
)

// The discovery port's bounds (docs/security.md, "Connection limits").
// Applications hold one or two connections to each node per process (a
// query connection and a +switch-master subscriber), so the caps leave
// room for hundreds of application processes per host.
const (
	// DefaultAuthTimeout is how long a new connection has to authenticate
	// (AUTH or HELLO ... AUTH); until then it can see nothing, so one that
	// does not is only holding a slot.
	DefaultAuthTimeout = 10 * time.Second
	// DefaultIdleTimeout closes an authenticated connection that sends no
	// command for this long, as Redis's "timeout" does. Subscribers are
	// exempt (they wait for +switch-master by design), as in Redis; client
	// libraries reconnect a closed query connection on their next use.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxClients caps the open connections, well under the
	// agent's file descriptor limit.
	DefaultMaxClients = 4096
	// DefaultMaxClientsPerHost caps those from one IP address, so that
	// one host cannot take every slot from the others.
	DefaultMaxClientsPerHost = 1024
)

// Limits bound the server's connections. Zero means no bound.
type Limits struct {
	AuthTimeout time.Duration
	IdleTimeout time.Duration
	Clients     connlimit.Limits
}

// DefaultLimits are the limits of a server from New.
func DefaultLimits() Limits {
	return Limits{
		AuthTimeout: DefaultAuthTimeout,
		IdleTimeout: DefaultIdleTimeout,
		Clients:     connlimit.Limits{Max: DefaultMaxClients, PerHost: DefaultMaxClientsPerHost},
	}
}

// SetLimits replaces the server's limits; call it before Serve.
func (s *Server) SetLimits(l Limits) { s.limits = l }

// maxClientsReply is what Redis (and so Sentinel) answers a connection
// over maxclients before closing it; client libraries report it as is.
const maxClientsReply = "-ERR max number of clients reached\r\n"

// limitListener applies the caps to l.
func (s *Server) limitListener(l net.Listener) net.Listener {
	return connlimit.New(l, s.limits.Clients, func(c net.Conn) {
		_, _ = c.Write([]byte(maxClientsReply))
		s.log.Debug("sentinel: refused a client over the connection limits", "remote", c.RemoteAddr())
	})
}

// readDeadline is when c's next command must have arrived: a fixed time
// after connecting while it has not authenticated (sending other commands
// does not extend it), the idle timeout once it has, none while it is
// subscribed.
func (c *conn) readDeadline() time.Time {
	c.mu.Lock()
	authed, subscribed := c.authed, c.subscriptions() > 0
	c.mu.Unlock()
	lim := c.s.limits
	switch {
	case !authed && lim.AuthTimeout > 0:
		return c.connected.Add(lim.AuthTimeout)
	case authed && !subscribed && lim.IdleTimeout > 0:
		return time.Now().Add(lim.IdleTimeout)
	}
	return time.Time{}
}
