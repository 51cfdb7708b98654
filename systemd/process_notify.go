package systemd

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// notifySocket is the process supervisor's stand-in for systemd's
// NOTIFY_SOCKET: a datagram socket the child sends READY=1, STATUS=... and
// STOPPING=1 to (redis-server does so with "supervised systemd").
//
// It is an abstract socket so that a child running as another user can
// reach it without a file whose permissions would have to allow that, and
// it has SO_PASSCRED so that, like systemd with NotifyAccess=main, only
// messages from the unit's main PID count. Its name is derived from the
// state directory and unit, so an agent that restarts binds the same name
// and still hears a reattached redis-server.
type notifySocket struct {
	conn *net.UnixConn
	addr string
	log  *slog.Logger
	// ready receives the PID of each sender of READY=1; a stale PID is
	// discarded by the reader.
	ready chan int

	mu     sync.Mutex
	status string
	closed bool
}

func openNotifySocket(stateDir, unit string, log *slog.Logger) (*notifySocket, error) {
	sum := sha256.Sum256([]byte(stateDir + "\x00" + unit))
	addr := "@redis-appliance/notify/" + hex.EncodeToString(sum[:12])
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("notify socket for %s is in use: is another agent supervising state directory %s?", unit, stateDir)
		}
		return nil, fmt.Errorf("create notify socket for %s: %w", unit, err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("create notify socket for %s: %w", unit, err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil || serr != nil {
		conn.Close()
		return nil, fmt.Errorf("enable credentials on notify socket for %s: %w", unit, errors.Join(err, serr))
	}
	return &notifySocket{conn: conn, addr: addr, log: log.With("unit", unit), ready: make(chan int, 8)}, nil
}

// serve reads messages until the socket is closed.
func (n *notifySocket) serve() {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Debug("notify socket read failed", "err", err)
			continue
		}
		pid := senderPID(oob[:noob])
		if pid == 0 {
			continue // no credentials: cannot tell who sent it
		}
		for _, line := range strings.Split(string(buf[:nb]), "\n") {
			switch {
			case line == "READY=1":
				select {
				case n.ready <- pid:
				default:
				}
			case strings.HasPrefix(line, "STATUS="):
				n.mu.Lock()
				n.status = strings.TrimPrefix(line, "STATUS=")
				n.mu.Unlock()
				n.log.Debug("process status", "pid", pid, "status", strings.TrimPrefix(line, "STATUS="))
			}
		}
	}
}

func senderPID(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// lastStatus is the last STATUS= text, for error messages.
func (n *notifySocket) lastStatus() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

func (n *notifySocket) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		n.conn.Close()
	}
}
