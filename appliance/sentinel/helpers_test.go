package sentinel

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// staticSource stands in for the cluster state: a fixed list the test
// edits. A fake is fine here because what is under test is the protocol
// and the clients; the agent's own Source is tested with the cluster.
type staticSource struct {
	mu      sync.Mutex
	masters []Master
	peers   []Peer
}

func (s *staticSource) Masters() []Master {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Master, len(s.masters))
	for i, m := range s.masters {
		m.Replicas = append([]Replica(nil), m.Replicas...)
		out[i] = m
	}
	return out
}

func (s *staticSource) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Peer(nil), s.peers...)
}

// set replaces the master with m's name, or adds it.
func (s *staticSource) set(m Master) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.masters {
		if s.masters[i].Name == m.Name {
			s.masters[i] = m
			return
		}
	}
	s.masters = append(s.masters, m)
}

// testLogger writes the server's log into the test's output, so a failure
// shows what the server saw.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer serves src on a loopback port and returns the server and
// its address; both are closed when the test ends.
func startServer(t *testing.T, src Source) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(src, RunID("n1"), testLogger(t))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after Close, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of Close")
		}
	})
	return srv, l.Addr().String()
}

// rawClient speaks RESP by hand so that tests can check exact bytes.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// send writes raw bytes.
func (c *rawClient) send(raw string) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.nc, raw); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// do sends a command as a RESP array and returns the reply's raw bytes.
func (c *rawClient) do(args ...string) string {
	c.t.Helper()
	c.send(string(appendBulks(nil, args...)))
	return c.read()
}

// read returns the next reply's raw bytes.
func (c *rawClient) read() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf bytes.Buffer
	if err := readReply(c.r, &buf); err != nil {
		c.t.Fatalf("reading reply (got so far %q): %v", buf.String(), err)
	}
	return buf.String()
}

// readReply copies one RESP2 reply from r to w.
func readReply(r *bufio.Reader, w *bytes.Buffer) error {
	line, err := r.ReadString('\n')
	w.WriteString(line)
	if err != nil {
		return err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return fmt.Errorf("bad reply line %q", line)
	}
	n, _ := strconv.Atoi(line[1 : len(line)-2])
	switch line[0] {
	case '+', '-', ':':
		return nil
	case '$':
		if n < 0 {
			return nil
		}
		b := make([]byte, n+2)
		_, err := io.ReadFull(r, b)
		w.Write(b)
		return err
	case '*':
		for range max(n, 0) {
			if err := readReply(r, w); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("bad reply type in %q", line)
}

// closedByServer reports whether the server closed the connection (EOF
// within the deadline, after any replies).
func (c *rawClient) closedByServer() bool {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Logf("reading until the server closes: %v", err)
	}
	return err == nil
}

// bulks encodes what a reply of bulk strings looks like on the wire.
func bulks(ss ...string) string { return string(appendBulks(nil, ss...)) }

// requireTool fails (not skips) when a program the tests need is missing,
// saying which Debian package provides it.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH; install it with: apt-get install %s", name, pkg)
	}
	return p
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// redisProc is a redis-server the test started.
type redisProc struct {
	addr Addr
	dir  string
}

func (p redisProc) hostPort() string { return hostPort(p.addr) }

// client is a direct client to this server, closed at the end of the test.
func (p redisProc) client(t *testing.T, password string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: p.hostPort(), Password: password})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// startRedis runs a real redis-server on a free loopback port, with no
// persistence, in a temporary directory. It is killed by PID when the test
// ends. extra are more command-line options.
func startRedis(t *testing.T, password string, extra ...string) redisProc {
	t.Helper()
	bin := requireTool(t, "redis-server", "redis-server")
	dir := t.TempDir()
	var lastErr error
	// The free port can be taken between freePort and the bind; a few
	// tries make that race harmless.
	for range 3 {
		port := freePort(t)
		args := append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--requirepass", password, "--masterauth", password,
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"),
		}, extra...)
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		// exited is closed once the process is gone; waitErr says how.
		exited := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		p := redisProc{addr: Addr{IP: "127.0.0.1", Port: port}, dir: dir}
		lastErr = waitForPing(p, password, exited, func() error { return waitErr }, 10*time.Second)
		if lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return p
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	logText, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
	t.Fatalf("redis-server did not answer PING: %v\nits log:\n%s", lastErr, logText)
	return redisProc{}
}

// waitForPing polls until the server answers PING, it exits, or the
// deadline passes.
func waitForPing(p redisProc, password string, exited <-chan struct{}, exitErr func() error, within time.Duration) error {
	rdb := redis.NewClient(&redis.Options{Addr: p.hostPort(), Password: password, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited (%v); last PING error: %v", exitErr(), err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %v: %v", within, err)
		}
	}
}

// eventually polls f until it returns nil or within passes, then fails the
// test with f's last error. Polls start at 1ms apart and back off to 20ms.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for pause := time.Millisecond; ; pause = min(2*pause, 20*time.Millisecond) {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(pause)
	}
}
