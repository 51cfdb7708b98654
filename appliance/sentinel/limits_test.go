package sentinel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/connlimit"
	"github.com/redis-appliance/redis-appliance/appliance/connlimit/flood"
	"github.com/redis/go-redis/v9"
)

// startLimited serves src with limits on a loopback port; logs are
// dropped (thousands of connections each log twice).
func startLimited(t *testing.T, src Source, lim Limits) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(src, RunID("n1"), slog.New(slog.DiscardHandler))
	srv.SetLimits(lim)
	done := make(chan struct{})
	go func() { _ = srv.Serve(l); close(done) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return l.Addr().String()
}

// A few thousand connections that never authenticate: those over the cap
// hear Redis's "max number of clients reached" at once, the rest are
// closed when their time to authenticate is up (sending commands other
// than AUTH does not extend it), and an application's Sentinel client that
// was refused while the cap was reached is served once they are gone.
func TestLimits_UnauthenticatedClientsAreCappedAndClosedAtTheirDeadline(t *testing.T) {
	const (
		capacity    = 2000
		flooders    = 2500
		authTimeout = 3 * time.Second
		bound       = 20 * time.Second
	)
	addr := startLimited(t, twoDatabases(), Limits{
		AuthTimeout: authTimeout, IdleTimeout: time.Minute,
		Clients: connlimit.Limits{Max: capacity},
	})
	start := time.Now()
	f := flood.Open(t, addr, flooders, "", bound)
	refused := func(c flood.Conn) bool { return c.Heard == maxClientsReply && !c.Closed.IsZero() }
	eventually(t, 10*time.Second, "the connections over the cap to be refused", func() error {
		if n := f.Count(refused); n != flooders-capacity {
			return fmt.Errorf("%d refused", n)
		}
		return nil
	})
	// One that keeps talking, without AUTH.
	chatty := dialRaw(t, addr)
	if got := chatty.read(); got != maxClientsReply {
		t.Fatalf("a connection over the cap heard %q, want %q", got, maxClientsReply)
	}

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: cachePW, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = sc.Close() })
	tried := time.Now()
	_, err := sc.GetMasterAddrByName(ctx, "cache").Result()
	// go-redis reads the refusal as the answer to its HELLO, falls back to
	// AUTH and then meets the closed connection: it reports EOF. What
	// matters is that it hears no at once instead of hanging.
	if err == nil {
		t.Fatal("with the cap reached, the client was served")
	}
	if d := time.Since(tried); d > time.Second {
		t.Errorf("the refusal took %s; want it at once", d)
	}
	if open := f.Count(func(c flood.Conn) bool { return c.Closed.IsZero() }); open != capacity {
		t.Fatalf("the client was refused while %d flooders were open, want %d (slow machine? authTimeout %s)", open, capacity, authTimeout)
	}

	// The silent ones are closed at their deadline, not before.
	var served []string
	eventually(t, bound, "the client to be served once the flooders are closed", func() error {
		served, err = sc.GetMasterAddrByName(ctx, "cache").Result()
		return err
	})
	if !reflect.DeepEqual(served, []string{"10.0.0.1", "7001"}) {
		t.Errorf("get-master-addr-by-name after the flood: %q", served)
	}
	conns := f.Wait()
	last := time.Duration(0)
	for i, c := range conns {
		if refused(c) {
			continue
		}
		if c.Closed.IsZero() {
			t.Fatalf("flooder %d was still open %s after it connected; want closed after %s", i, bound, authTimeout)
		}
		alive := c.Closed.Sub(c.Opened)
		// The server may accept a moment before the dial returns here.
		if alive < authTimeout-50*time.Millisecond || c.Heard != "" {
			t.Fatalf("flooder %d was closed after %s having heard %q; want silence for at least %s", i, alive, c.Heard, authTimeout)
		}
		last = max(last, c.Closed.Sub(start))
	}
	t.Logf("%d connections: %d refused at once, %d closed %s–%s after the first dial; the client was served after %s",
		flooders, flooders-capacity, capacity, authTimeout, last.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// A connection that sends commands but never AUTH is closed at the
	// same deadline.
	pinger := dialRaw(t, addr)
	opened := time.Now()
	for time.Since(opened) < authTimeout/2 {
		if got := pinger.do("PING"); got != noAuth {
			t.Fatalf("PING before AUTH: %q", got)
		}
		time.Sleep(100 * time.Millisecond) // a client's own pace, not a wait for the server
	}
	if !pinger.closedByServer() {
		t.Fatal("a connection that only sent PINGs was not closed at its deadline")
	}
	if alive := time.Since(opened); alive < authTimeout || alive > authTimeout+5*time.Second {
		t.Errorf("the pinging connection was closed after %s, want about %s", alive, authTimeout)
	}
}

// An authenticated connection that sends nothing is closed after the idle
// timeout; a subscriber waiting for +switch-master is not, however long it
// waits.
func TestLimits_IdleClientsAreClosedButSubscribersStay(t *testing.T) {
	const idle = 500 * time.Millisecond
	addr := startLimited(t, twoDatabases(), Limits{AuthTimeout: 5 * time.Second, IdleTimeout: idle})
	sub := dialRaw(t, addr)
	if got := sub.do("AUTH", cachePW); got != "+OK\r\n" {
		t.Fatalf("AUTH: %q", got)
	}
	if got := sub.do("SUBSCRIBE", "+switch-master"); !strings.Contains(got, "+switch-master") {
		t.Fatalf("SUBSCRIBE: %q", got)
	}
	for round := range 3 {
		q := dialRaw(t, addr)
		if got := q.do("AUTH", cachePW); got != "+OK\r\n" {
			t.Fatalf("AUTH: %q", got)
		}
		if got := q.do("SENTINEL", "get-master-addr-by-name", "cache"); got != bulks("10.0.0.1", "7001") {
			t.Fatalf("query: %q", got)
		}
		asked := time.Now()
		if !q.closedByServer() {
			t.Fatalf("round %d: an idle authenticated connection was still open 5s after its last command", round)
		}
		if alive := time.Since(asked); alive < idle {
			t.Fatalf("round %d: an idle connection was closed after %s, want %s", round, alive, idle)
		}
	}
	// The subscriber has been idle for more than three idle timeouts.
	if got := sub.do("PING"); got != bulks("pong", "") {
		t.Fatalf("the idle subscriber answered %q; want it still open", got)
	}
}

// One host cannot take every slot: with its own cap used up, a client on
// another address is served at once.
func TestLimits_OneHostCannotTakeEverySlot(t *testing.T) {
	const perHost = 100
	addr := startLimited(t, twoDatabases(), Limits{AuthTimeout: 30 * time.Second, Clients: connlimit.Limits{PerHost: perHost}})
	f := flood.Open(t, addr, 3*perHost, "127.0.0.1", 30*time.Second)
	eventually(t, 10*time.Second, "the connections over the host's cap to be refused", func() error {
		if n := f.Count(func(c flood.Conn) bool { return c.Heard == maxClientsReply }); n != 2*perHost {
			return fmt.Errorf("%d refused", n)
		}
		return nil
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: cachePW, MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { _ = sc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := sc.GetMasterAddrByName(ctx, "cache").Result(); err != nil || !reflect.DeepEqual(got, []string{"10.0.0.1", "7001"}) {
		t.Fatalf("a client from another address while 127.0.0.1 is at its cap: %q %v", got, err)
	}
	if open := f.Count(func(c flood.Conn) bool { return c.Closed.IsZero() }); open != perHost {
		t.Errorf("%d connections of the flooding host open, want %d", open, perHost)
	}
}
