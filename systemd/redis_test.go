package systemd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file holds what the supervisor tests share: a minimal RESP client
// (enough for AUTH, PING, INFO, BGSAVE), redis.conf writing, free ports,
// bounded polling and a test logger.

const redisServer = "/usr/bin/redis-server"

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeRedisConf writes a minimal config for an instance in dir, plus the
// given extra lines, and returns its path.
func writeRedisConf(t *testing.T, dir string, port int, password string, extra ...string) string {
	t.Helper()
	lines := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"supervised systemd",
		"daemonize no",
		"requirepass " + password,
		"dir " + dir,
		`logfile ""`,
	}
	lines = append(lines, extra...)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// redisDo sends one command after AUTH and returns the reply: a string for
// simple and bulk strings, an int64, or []any. A server error is an error.
func redisDo(addr, password string, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	send := func(args ...string) (any, error) {
		var b bytes.Buffer
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write(b.Bytes()); err != nil {
			return nil, err
		}
		return readReply(r)
	}
	if password != "" {
		if _, err := send("AUTH", password); err != nil {
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return send(args...)
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, max(n, 0))
		for range n {
			v, err := readReply(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// ping checks that the instance answers PONG to an authenticated client.
func ping(addr, password string) error {
	v, err := redisDo(addr, password, "PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("PING answered %v", v)
	}
	return nil
}

// infoField reads one field of INFO <section>.
func infoField(addr, password, section, field string) (string, error) {
	v, err := redisDo(addr, password, "INFO", section)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	for _, line := range strings.Split(s, "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok && k == field {
			return val, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no field %s", section, field)
}

// waitFor polls cond every 50ms until it returns nil or the bound passes,
// then fails the test with cond's last error.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, bound, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testLogger sends slog output to t.Log until the test's cleanups run, so a
// goroutine that logs late cannot panic the test binary.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
}

// procsInDir lists PIDs whose working directory is dir: the redis-server
// processes of one instance, whatever started them.
func procsInDir(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd == dir {
			if st, err := readProcStat(pid); err == nil && st.state != 'Z' {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// procUID reads the real uid of a process.
func procUID(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, fmt.Errorf("no Uid line in /proc/%d/status", pid)
}

// drain empties a changes channel and reports whether name was in it.
func drain(ch <-chan string, name string) bool {
	seen := false
	for {
		select {
		case n := <-ch:
			if n == name {
				seen = true
			}
		default:
			return seen
		}
	}
}

// waitChange waits, bounded, for name on a changes channel.
func waitChange(t *testing.T, ch <-chan string, name string, bound time.Duration) {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		select {
		case n, ok := <-ch:
			if !ok {
				t.Fatalf("changes channel closed while waiting for %s", name)
			}
			if n == name {
				return
			}
		case <-timer.C:
			t.Fatalf("no change notification for %s within %s", name, bound)
		}
	}
}
