package lab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Ports handed out by FreePort: below Linux's ephemeral range (32768 and
// up by default), which the kernel gives to outgoing connections. A port
// taken from the ephemeral range can be given to one of the thousands of
// loopback connections a load test opens before the test that asked for
// it binds it ("address already in use").
//
// Each call takes a block of portBlock ports and returns its first: tests
// use the ports after it as the agent's port range (base to base+20).
const (
	portFirst = 10000
	portLast  = 32000
	portBlock = 24
)

// portCounter is shared by every test process of a run (go test runs
// packages in parallel): each takes the next port under a file lock, so
// two processes never get the same port until the range wraps.
var portCounter = filepath.Join(os.TempDir(), "redis-appliance-test-ports")

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago, for
// tests that start servers on loopback; no other test process of the run
// is given it or the portBlock-1 ports after it.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := nextPort()
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	return p
}

func nextPort() (int, error) {
	f, err := os.OpenFile(portCounter, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // released by Close too
	buf := make([]byte, 16)
	n, _ := f.ReadAt(buf, 0)
	next, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || next < portFirst || next+portBlock-1 > portLast {
		next = portFirst
	}
	for range (portLast - portFirst) / portBlock {
		p := next
		if next += portBlock; next+portBlock-1 > portLast {
			next = portFirst
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken by something else: the next one
		}
		l.Close()
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(next)), 0); err != nil {
			return 0, err
		}
		return p, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d on 127.0.0.1", portFirst, portLast)
}
