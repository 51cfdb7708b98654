// Package flood is a test helper: it opens many connections to a server
// that then say nothing, and records what each one heard and when the
// server closed it, to test connection limits and deadlines from the
// client's side.
package flood

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Conn is what one connection saw.
type Conn struct {
	// Opened is when the dial returned.
	Opened time.Time
	// Closed is when the server closed it (zero while open, or if it was
	// still open at the bound).
	Closed time.Time
	// Heard is everything the server sent.
	Heard string
}

// Flood is a set of silent connections.
type Flood struct {
	mu    sync.Mutex
	conns []*Conn
	ncs   []net.Conn
	wg    sync.WaitGroup
}

// Open dials n connections to addr from the local IP from ("" for any)
// and reads each until the server closes it, for at most bound. The
// connections are closed when the test ends.
func Open(t testing.TB, addr string, n int, from string, bound time.Duration) *Flood {
	t.Helper()
	RaiseFileLimit(t, 2*n+256)
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	f := &Flood{}
	t.Cleanup(f.close)
	for range n {
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood: dial %s from %q (%d open): %v", addr, from, len(f.ncs), err)
		}
		c := &Conn{Opened: time.Now()}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.ncs = append(f.ncs, nc)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = nc.SetReadDeadline(c.Opened.Add(bound))
			heard, err := io.ReadAll(nc)
			// As a client does once the server has hung up.
			_ = nc.Close()
			f.mu.Lock()
			defer f.mu.Unlock()
			c.Heard = string(heard)
			// A reset is the server closing too (it closed with
			// unread data, or the TLS layer did).
			if err == nil || errors.Is(err, syscall.ECONNRESET) {
				c.Closed = time.Now()
			}
		}()
	}
	return f
}

// Snapshot returns what every connection has seen so far.
func (f *Flood) Snapshot() []Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Conn, len(f.conns))
	for i, c := range f.conns {
		out[i] = *c
	}
	return out
}

// Count is the number of connections for which match holds now.
func (f *Flood) Count(match func(Conn) bool) int {
	n := 0
	for _, c := range f.Snapshot() {
		if match(c) {
			n++
		}
	}
	return n
}

// Wait returns once every connection was closed by the server or reached
// its bound.
func (f *Flood) Wait() []Conn {
	f.wg.Wait()
	return f.Snapshot()
}

func (f *Flood) close() {
	f.mu.Lock()
	for _, nc := range f.ncs {
		_ = nc.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// RaiseFileLimit makes sure the process may open need file descriptors,
// raising its soft limit up to the hard one; it fails the test if even the
// hard limit is lower.
func RaiseFileLimit(t testing.TB, need int) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if rl.Cur >= uint64(need) {
		return
	}
	if rl.Max < uint64(need) {
		t.Fatalf("this test opens about %d files but RLIMIT_NOFILE's hard limit is %d; raise it (ulimit -Hn) as root", need, rl.Max)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE to %d: %v", rl.Max, err)
	}
}
