package systemd

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listenNotify plays systemd's side of NOTIFY_SOCKET for this test.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func recvNotify(t *testing.T, conn *net.UnixConn, bound time.Duration) string {
	t.Helper()
	buf := make([]byte, 1024)
	if err := conn.SetReadDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %s: %v", bound, err)
	}
	return string(buf[:n])
}

// TestNotifyHelpers proves each helper sends the sd_notify message systemd
// expects.
func TestNotifyHelpers(t *testing.T) {
	conn := listenNotify(t)
	for _, c := range []struct {
		send func() error
		want string
	}{
		{Ready, "READY=1"},
		{func() error { return Status("2 instances\nall healthy") }, "STATUS=2 instances all healthy"},
		{Stopping, "STOPPING=1"},
	} {
		if err := c.send(); err != nil {
			t.Fatalf("send %s: %v", c.want, err)
		}
		if got := recvNotify(t, conn, 2*time.Second); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// TestNotifyWithoutSocket proves the helpers do nothing, successfully, when
// the agent does not run under systemd.
func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	t.Setenv("WATCHDOG_USEC", "100000")
	for _, f := range []func() error{Ready, Stopping, func() error { return Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("helper failed without NOTIFY_SOCKET: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- WatchdogLoop(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchdogLoop: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WatchdogLoop did not return at once without NOTIFY_SOCKET")
	}
}

// TestWatchdogLoop proves pings come at half of WATCHDOG_USEC, so systemd
// never sees the deadline pass, and stop when the context ends.
func TestWatchdogLoop(t *testing.T) {
	conn := listenNotify(t)
	const usec = 400000 // 400ms
	t.Setenv("WATCHDOG_USEC", strconv.Itoa(usec))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WatchdogLoop(ctx) }()

	var at []time.Time
	for range 3 {
		if got := recvNotify(t, conn, 2*time.Second); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
		at = append(at, time.Now())
	}
	for i := 1; i < len(at); i++ {
		gap := at[i].Sub(at[i-1])
		// Half of 400ms is 200ms; anything at or past 400ms would let the
		// watchdog fire.
		if gap < 100*time.Millisecond || gap >= 400*time.Millisecond {
			t.Errorf("ping gap %s, want about 200ms", gap)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WatchdogLoop: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WatchdogLoop did not stop when its context ended")
	}

	// A watchdog meant for another PID (a parent) is not ours to feed.
	t.Setenv("WATCHDOG_PID", "1")
	if err := WatchdogLoop(context.Background()); err != nil {
		t.Fatalf("WatchdogLoop for another PID: %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Fatalf("pinged another PID's watchdog (%d bytes)", n)
	}
}
