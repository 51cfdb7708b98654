package lab

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// hostRoot is the read-only bind of the machine's root that every host boots
// from (shared/LAB.md). It stays mounted after the tests: other test
// processes may be using it, and it costs nothing.
const hostRoot = "/srv/hostro"

// rootLock serialises PrepareRoot across test processes (go test runs
// packages in parallel) and the shell recipe in shared/LAB.md.
const rootLock = "/run/lock/redis-appliance-hostro.lock"

var prepareOnce struct {
	sync.Mutex
	done bool
}

// PrepareRoot makes /srv/hostro a read-only bind of / if it is not one
// already. It is idempotent and safe to call from concurrent tests and
// processes.
func PrepareRoot() error {
	prepareOnce.Lock()
	defer prepareOnce.Unlock()
	if prepareOnce.done {
		return nil
	}
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(rootLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", rootLock, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", rootLock, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if err := os.MkdirAll(hostRoot, 0o755); err != nil {
		return err
	}
	mounted, readOnly, err := mountState(hostRoot)
	if err != nil {
		return err
	}
	if !mounted {
		if err := syscall.Mount("/", hostRoot, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind / on %s: %w", hostRoot, err)
		}
	}
	if !readOnly {
		// A bind mount only becomes read-only through a remount.
		if err := syscall.Mount("", hostRoot, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", hostRoot, err)
		}
	}
	prepareOnce.done = true
	return nil
}

// mountState reports whether path is a mount point, and whether it is
// mounted read-only, from /proc/self/mountinfo (the last mount on a path
// is the visible one).
func mountState(path string) (mounted, readOnly bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[4] != path {
			continue
		}
		mounted = true
		readOnly = false
		for _, o := range strings.Split(fields[5], ",") {
			if o == "ro" {
				readOnly = true
			}
		}
	}
	return mounted, readOnly, sc.Err()
}
