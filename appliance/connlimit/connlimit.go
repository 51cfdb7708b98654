// Package connlimit bounds how many connections a listener keeps open, in
// all and from one remote address, so that a client that opens
// connections and never uses them runs out of slots before the server
// runs out of file descriptors, memory or goroutines.
//
// A connection over a limit is accepted and closed at once (after an
// optional last word, such as Redis's "max number of clients reached")
// rather than left in the kernel's accept queue: the client hears no at
// once instead of timing out, and the queue never fills with connections
// nobody will read.
package connlimit

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// refuseWriteTimeout bounds the last word to a refused client: a
	// socket just accepted has an empty send buffer, so a short line never
	// waits unless something is badly wrong.
	refuseWriteTimeout = 100 * time.Millisecond
	// refuseLinger is how long a refused connection that was given a last
	// word stays half-open, reading and discarding, so that the client
	// reads that word: closed at once, the client's first command would
	// meet a closed socket and the reset would discard the word unread.
	refuseLinger = 500 * time.Millisecond
	// maxLingering bounds the refused connections lingering at once, so a
	// flood of them cannot hold more than this many descriptors; beyond it
	// they are closed at once.
	maxLingering = 256
)

// Limits are the caps of one listener. Zero means no cap.
type Limits struct {
	// Max is the number of connections open at once.
	Max int
	// PerHost is the number of connections open at once from one remote
	// IP address, so that one misbehaving host cannot take every slot.
	PerHost int
}

// Listener is a net.Listener whose Accept returns only connections within
// its Limits. Closing a returned connection frees its slot.
type Listener struct {
	net.Listener
	limits Limits
	refuse func(net.Conn)

	mu        sync.Mutex
	open      int
	perHost   map[string]int
	refused   atomic.Uint64
	lingering chan struct{} // a slot per lingering refused connection
}

// New wraps l. refuse, if not nil, may write a last word to a connection
// over a limit before it is closed; it must not block (its writes have a
// 100 ms deadline) nor close the connection.
func New(l net.Listener, limits Limits, refuse func(net.Conn)) *Listener {
	return &Listener{Listener: l, limits: limits, refuse: refuse, perHost: map[string]int{}, lingering: make(chan struct{}, maxLingering)}
}

// Accept waits for the next connection within the limits; connections
// over them are refused and closed meanwhile.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := remoteHost(c)
		if l.take(host) {
			return &conn{Conn: c, l: l, host: host}, nil
		}
		l.refused.Add(1)
		l.turnAway(c)
	}
}

// turnAway gives c the last word, if any, and closes it.
func (l *Listener) turnAway(c net.Conn) {
	if l.refuse == nil {
		_ = c.Close()
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	l.refuse(c)
	hc, ok := c.(interface{ CloseWrite() error })
	select {
	case l.lingering <- struct{}{}:
	default:
		ok = false
	}
	if !ok {
		_ = c.Close()
		return
	}
	_ = hc.CloseWrite()
	go func() {
		defer func() { <-l.lingering }()
		_ = c.SetReadDeadline(time.Now().Add(refuseLinger))
		_, _ = io.Copy(io.Discard, c)
		_ = c.Close()
	}()
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused is the number of connections refused so far.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

func (l *Listener) take(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limits.Max > 0 && l.open >= l.limits.Max {
		return false
	}
	if l.limits.PerHost > 0 && host != "" && l.perHost[host] >= l.limits.PerHost {
		return false
	}
	l.open++
	if host != "" {
		l.perHost[host]++
	}
	return true
}

func (l *Listener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if host == "" {
		return
	}
	if l.perHost[host]--; l.perHost[host] <= 0 {
		delete(l.perHost, host)
	}
}

// remoteHost is the IP address of c's peer, or "" when it has none (a
// unix socket), which only the overall cap then counts.
func remoteHost(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// conn gives its slot back on the first Close.
type conn struct {
	net.Conn
	l    *Listener
	host string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}
