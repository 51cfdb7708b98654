package connlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// A slot is taken per accepted connection and given back once, on the
// first Close; a connection over the cap hears the last word and is
// closed, and the next one within the cap is still accepted.
func TestListener_SlotsAreTakenAndGivenBackOnce(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(tl, Limits{Max: 1}, func(c net.Conn) { _, _ = io.WriteString(c, "full\n") })
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", tl.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted within 5s")
			return nil
		}
	}

	first := dial()
	held := next()
	over := dial()
	if heard, err := io.ReadAll(over); string(heard) != "full\n" || err != nil {
		t.Fatalf("a connection over the cap heard %q (%v), want the last word and EOF", heard, err)
	}
	if l.Open() != 1 || l.Refused() != 1 {
		t.Fatalf("open %d refused %d, want 1 and 1", l.Open(), l.Refused())
	}
	// Closing twice gives the slot back once.
	_ = held.Close()
	_ = held.Close()
	if l.Open() != 0 {
		t.Fatalf("open %d after Close, want 0", l.Open())
	}
	_ = first.Close()
	dial()
	c := next()
	defer c.Close()
	if l.Open() != 1 {
		t.Fatalf("open %d, want 1", l.Open())
	}
}
