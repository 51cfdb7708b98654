package sentinel

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

const (
	// defaultQueueLimit bounds the bytes waiting to be written to one
	// client. Replies to discovery commands are a few KiB; a subscriber
	// this far behind has stopped reading.
	defaultQueueLimit = 256 << 10
	// writeTimeout drops a client that accepts nothing for this long, so
	// that one which pipelines without reading cannot hold its goroutines
	// until Close.
	writeTimeout = 10 * time.Second
)

// Server is a Sentinel discovery endpoint. Use New, then Serve.
type Server struct {
	src Source
	id  string
	log *slog.Logger
	// queueLimit is defaultQueueLimit; tests lower it.
	queueLimit int
	limits     Limits

	mu        sync.Mutex
	closed    bool
	done      chan struct{} // closed by Close
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	nextID    int64
	wg        sync.WaitGroup // every connection goroutine

	// changeMu serialises Changed, and guards primaries: the primary
	// address last seen for each master, to tell a switch from a first
	// sight.
	changeMu  sync.Mutex
	primaries map[string]Addr
}

// New returns a server answering from src. id is this node's Sentinel run
// id (see RunID); empty means a random one. log may be nil.
//
// New reads src once, so that a primary that moves before the first
// Changed is still announced.
func New(src Source, id string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if id == "" {
		var b [20]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	s := &Server{
		src:        src,
		id:         id,
		log:        log,
		queueLimit: defaultQueueLimit,
		limits:     DefaultLimits(),
		done:       make(chan struct{}),
		listeners:  map[net.Listener]struct{}{},
		conns:      map[*conn]struct{}{},
	}
	s.primaries = primariesOf(src.Masters())
	return s
}

// ID is this server's Sentinel run id.
func (s *Server) ID() string { return s.id }

// Serve accepts connections on l until Close, then returns nil. It returns
// an error only if l fails for another reason. Serve may be called for
// several listeners.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	limited := s.limitListener(l)
	var backoff time.Duration
	for {
		nc, err := limited.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("sentinel: listener %s was closed by something other than Server.Close: %w", l.Addr(), err)
			}
			// Out of file descriptors and the like: the condition may
			// pass, and giving up would leave clients with no discovery.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("sentinel: accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return nil
			}
			continue
		}
		backoff = 0
		s.start(nc)
	}
}

// Close stops every Serve, closes every client connection and waits for
// their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	var listeners []net.Listener
	for l := range s.listeners {
		listeners = append(listeners, l)
	}
	var conns []*conn
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	var err error
	for _, l := range listeners {
		if e := l.Close(); e != nil && !errors.Is(e, net.ErrClosed) {
			err = errors.Join(err, e)
		}
	}
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// start registers a new connection and runs its reader and writer.
func (s *Server) start(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.nextID++
	c := &conn{
		s:      s,
		nc:     nc,
		id:     s.nextID,
		remote: nc.RemoteAddr().String(),
		done:   make(chan struct{}),
		// connected starts the time to authenticate (limits.go).
		connected: time.Now(),
		out:       outQueue{limit: s.queueLimit, wake: make(chan struct{}, 1), drained: make(chan struct{}, 1)},
	}
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()

	s.log.Debug("sentinel: client connected", "client", c.id, "remote", c.remote)
	go c.writeLoop()
	go c.readLoop()
}

// openConns returns the open connections, for publishing.
func (s *Server) openConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// conn is one client connection. Its reader goroutine parses and runs
// commands; its writer goroutine drains out. Replies and published messages
// share out, so a client sees them in the order they happened.
type conn struct {
	s      *Server
	nc     net.Conn
	id     int64
	remote string
	done   chan struct{}
	once   sync.Once
	out    outQueue
	// connected is when the connection was accepted.
	connected time.Time

	// mu guards what publishers read from other goroutines: credentials
	// and subscriptions. Subscribe and publish both queue output while
	// holding it, so a "subscribe" confirmation always precedes the
	// messages it enables.
	mu       sync.Mutex
	authed   bool
	user     string
	digest   [32]byte // SHA-256 of the password authenticated with
	name     string
	channels map[string]struct{}
	patterns map[string]struct{}
}

// readLoop runs commands until the client leaves, QUITs or breaks the
// protocol.
func (c *conn) readLoop() {
	defer c.s.wg.Done()
	r := bufio.NewReader(c.nc)
	for {
		_ = c.nc.SetReadDeadline(c.readDeadline())
		args, err := readCommand(r)
		if err != nil {
			var pe *protocolError
			if errors.As(err, &pe) {
				c.s.log.Info("sentinel: closing client after protocol error", "client", c.id, "remote", c.remote, "err", pe.msg)
				c.out.push(appendError(nil, "ERR "+pe.Error()), true)
				c.out.finish()
				return
			}
			c.close()
			return
		}
		if len(args) == 0 {
			continue
		}
		if !c.waitForRoom() {
			return
		}
		r := c.s.dispatch(c, args)
		if len(r.out) > 0 {
			c.out.push(r.out, true)
		}
		if r.quit {
			c.out.finish()
			return
		}
	}
}

// waitForRoom holds the next command until the client has taken enough of
// its earlier replies. That is what bounds the queue for replies, which are
// pushed unconditionally.
func (c *conn) waitForRoom() bool {
	for c.out.pending() >= c.out.limit {
		select {
		case <-c.out.drained:
		case <-c.done:
			return false
		}
	}
	return true
}

// writeLoop writes queued output until the connection closes, or until the
// queue is finished and flushed.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.close()
	var spare []byte
	for {
		select {
		case <-c.out.wake:
		case <-c.done:
			return
		}
		b, finished := c.out.take(spare)
		if len(b) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(b); err != nil {
				c.s.log.Debug("sentinel: write to client failed", "client", c.id, "remote", c.remote, "err", err)
				return
			}
		}
		spare = b[:0]
		if finished {
			return
		}
	}
}

// close ends the connection at once; queued output is dropped.
func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.log.Debug("sentinel: client disconnected", "client", c.id, "remote", c.remote)
	})
}

// outQueue holds output not yet written to a client. Replies are always
// accepted (the reader waits for room before running a command, which
// bounds them); published messages are refused over the limit, so that a
// subscriber that stops reading is dropped instead of blocking the
// publisher or growing without bound.
type outQueue struct {
	limit   int
	wake    chan struct{} // capacity 1: there is output, or the queue is finished
	drained chan struct{} // capacity 1: the writer took the queued output

	mu       sync.Mutex
	buf      []byte
	finished bool // close the connection once buf is written
}

// push queues b; unless force, it refuses (false) when the queue would go
// over its limit.
func (q *outQueue) push(b []byte, force bool) bool {
	q.mu.Lock()
	if !force && len(q.buf)+len(b) > q.limit {
		q.mu.Unlock()
		return false
	}
	q.buf = append(q.buf, b...)
	q.mu.Unlock()
	signal(q.wake)
	return true
}

// finish asks the writer to close the connection after writing what is
// queued: the reply to QUIT, or a protocol error, must reach the client.
func (q *outQueue) finish() {
	q.mu.Lock()
	q.finished = true
	q.mu.Unlock()
	signal(q.wake)
}

// take hands the queued output to the writer and gives the queue spare to
// fill next, so two buffers alternate instead of one being allocated per
// write.
func (q *outQueue) take(spare []byte) (b []byte, finished bool) {
	q.mu.Lock()
	b, q.buf = q.buf, spare
	finished = q.finished
	q.mu.Unlock()
	signal(q.drained)
	return b, finished
}

func (q *outQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf)
}

// signal wakes a waiter on a capacity-1 channel without blocking; a signal
// already pending covers this one.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
