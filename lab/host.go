package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultMask lists the units of the machine's own packages that would
// otherwise start inside every host and collide with what tests run there
// (Debian's redis-server on 6379, redis-sentinel on 26379) or slow the boot.
// They are masked from the first instant of the boot by binding /dev/null
// over their unit file, so they never start.
var DefaultMask = []string{
	"redis-server.service",
	"redis-sentinel.service",
	"postgresql.service",
	"postgresql@.service",
}

// Timeouts bound every wait in the package. They are generous for a loaded
// 2-core CI machine; a healthy container boots in 3-6 s.
const (
	// BootTimeout bounds a boot, from starting systemd-nspawn to systemd
	// reporting running or degraded.
	BootTimeout = 90 * time.Second
	// StopTimeout bounds a clean power-off after SIGTERM before the host is
	// killed.
	StopTimeout = 45 * time.Second
	// KillTimeout bounds the exit of systemd-nspawn after its container's
	// PID 1 was killed.
	KillTimeout = 30 * time.Second
)

// Bind makes a file or directory of the machine visible inside a host.
type Bind struct {
	// Host is the absolute path on the machine.
	Host string
	// Container is the absolute path inside the host; empty means Host.
	Container string
	// Writable allows the host to write through the bind; binds are
	// read-only by default.
	Writable bool
}

// Options describe a host to boot.
type Options struct {
	// Name is the machine name (and hostname). It must be unique among the
	// hosts running on the machine at the same time. Empty means a name
	// derived from the test name plus a random suffix.
	Name string
	// Persistent keeps the host's disk (the overlay's upper layer, a
	// directory under the test's temporary directory) across PowerLoss,
	// Shutdown and Boot. A volatile host (the default) starts every boot
	// from the machine's files alone.
	Persistent bool
	// Binds are extra files or directories of the machine to show inside.
	Binds []Bind
	// Network selects the network; the zero value is a private network
	// namespace with loopback only.
	Network Network
	// Mask lists units to mask in addition to DefaultMask.
	Mask []string
}

// Host is one booted (or powered-off) lab host.
type Host struct {
	t       testing.TB
	opts    Options
	name    string
	dir     string
	upper   string
	logPath string

	mu     sync.Mutex
	boots  int
	nspawn *exec.Cmd
	leader int           // PID (on the machine) of the container's PID 1
	exited chan struct{} // closed when systemd-nspawn has exited
}

// Boot checks the machine's prerequisites, boots a host and waits until its
// systemd reports running (or degraded). The host is shut down by
// t.Cleanup. Any failure is fatal to the test.
func Boot(t testing.TB, opts Options) *Host {
	t.Helper()
	Require(t)
	if err := PrepareRoot(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	name := opts.Name
	if name == "" {
		name = machineName(t.Name())
	}
	dir := t.TempDir()
	h := &Host{
		t:       t,
		opts:    opts,
		name:    name,
		dir:     dir,
		logPath: filepath.Join(dir, "console.log"),
	}
	// systemd inside takes its hostname from /etc/hostname, which is the
	// machine's own: give each host its machine name instead, so that
	// several hosts (cluster nodes) tell themselves apart.
	if err := os.WriteFile(filepath.Join(dir, "hostname"), []byte(name+"\n"), 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if opts.Persistent {
		// The upper layer gets its own parent: nspawn puts overlayfs's work
		// directory beside it.
		h.upper = filepath.Join(dir, "disk", "upper")
		if err := os.MkdirAll(h.upper, 0o755); err != nil {
			t.Fatalf("lab: %v", err)
		}
	}
	t.Cleanup(h.cleanup)
	h.Boot()
	return h
}

// Require fails the test (it never skips it) when the machine cannot boot
// lab hosts, saying what to install.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("lab: booting systemd-nspawn hosts needs root (running as uid %d); run the tests as root", os.Geteuid())
	}
	for _, bin := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			pkg := "systemd-container"
			if bin == "nsenter" {
				pkg = "util-linux"
			}
			t.Fatalf("lab: %s not found (%v); install it with: apt-get install %s", bin, err, pkg)
		}
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Fatalf("lab: no systemd to boot in the hosts (%v); install it with: apt-get install systemd systemd-container", err)
	}
}

// ReportTo makes the host's methods report failures to t, a subtest (or
// sub-benchmark) of the test that booted the host, until the returned
// function is called: FailNow must run on the goroutine of the test that
// calls it, and a subtest runs on its own. Subtests sharing a host must run
// one after the other, never in parallel. The host is still torn down by
// the test that booted it.
func (h *Host) ReportTo(t testing.TB) (restore func()) {
	prev := h.t
	h.t = t
	return func() { h.t = prev }
}

// Name is the host's machine name.
func (h *Host) Name() string { return h.name }

// Dir is the host's directory on the machine (console log, disk).
func (h *Host) Dir() string { return h.dir }

// Running reports whether the host is booted (its systemd-nspawn runs).
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runningLocked()
}

func (h *Host) runningLocked() bool {
	if h.exited == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// Leader is the PID, on the machine, of the host's PID 1 (its systemd); 0
// when the host is not running.
func (h *Host) Leader() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.runningLocked() {
		return 0
	}
	return h.leader
}

// Boot boots the host again after PowerLoss or Shutdown, on the same disk
// when the host is persistent, and waits until systemd is running.
func (h *Host) Boot() {
	h.t.Helper()
	if err := h.start(); err != nil {
		h.t.Fatalf("lab: boot %s: %v\n%s", h.name, err, h.ConsoleTail(40))
	}
	ctx, cancel := context.WithTimeout(context.Background(), BootTimeout)
	defer cancel()
	if err := h.WaitRunning(ctx); err != nil {
		h.t.Fatalf("lab: boot %s: %v\n%s", h.name, err, h.ConsoleTail(40))
	}
}

func (h *Host) start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.runningLocked() {
		return errors.New("already running")
	}
	h.boots++
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n===== lab: boot %d of %s at %s =====\n", h.boots, h.name, time.Now().Format(time.RFC3339Nano))

	if link := h.opts.Network.Link; link != "" {
		// Up again after a power loss or shutdown took it down.
		if err := ipQuiet("link", "set", link, "up"); err != nil {
			return err
		}
	}
	cmd := exec.Command("systemd-nspawn", h.nspawnArgs()...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = withoutEnv(os.Environ(), "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")
	// If the test binary dies (go test -timeout), nspawn powers the
	// container off instead of leaving it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start systemd-nspawn: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	h.nspawn, h.exited, h.leader = cmd, exited, 0

	leader, err := waitLeader(cmd.Process.Pid, exited, 20*time.Second)
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return err
	}
	h.leader = leader
	return nil
}

func (h *Host) nspawnArgs() []string {
	args := []string{
		"--register=no", "--keep-unit",
		"--directory=" + hostRoot,
		"--boot",
		"--machine=" + h.name,
	}
	if h.upper != "" {
		args = append(args, "--overlay="+hostRoot+":"+h.upper+":/")
	} else {
		args = append(args, "--volatile=overlay")
	}
	if p := h.opts.Network.NamespacePath; p != "" {
		args = append(args, "--network-namespace-path="+p)
	} else {
		args = append(args, "--private-network")
	}
	for _, unit := range append(append([]string(nil), DefaultMask...), h.opts.Mask...) {
		args = append(args, "--bind-ro=/dev/null:/etc/systemd/system/"+unit)
	}
	args = append(args, "--bind-ro="+filepath.Join(h.dir, "hostname")+":/etc/hostname")
	for _, b := range h.opts.Binds {
		dst := b.Container
		if dst == "" {
			dst = b.Host
		}
		flag := "--bind-ro="
		if b.Writable {
			flag = "--bind="
		}
		args = append(args, flag+b.Host+":"+dst)
	}
	return args
}

// waitLeader polls for the container's PID 1: a child of systemd-nspawn in
// another PID namespace that has exec'd systemd.
func waitLeader(nspawnPID int, exited <-chan struct{}, bound time.Duration) (int, error) {
	self, _ := os.Readlink("/proc/self/ns/pid")
	deadline := time.Now().Add(bound)
	for {
		for _, pid := range childrenOf(nspawnPID) {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
			if err != nil || ns == self {
				continue
			}
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if err == nil && strings.TrimSpace(string(comm)) == "systemd" {
				return pid, nil
			}
		}
		select {
		case <-exited:
			return 0, errors.New("systemd-nspawn exited before the container's systemd started")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the container's systemd did not start within %s", bound)
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(child); ok && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

// WaitRunning polls `systemctl is-system-running` until it answers running
// or degraded. It gives up when the host stops or ctx ends; without a
// deadline on ctx it is bounded by BootTimeout.
func (h *Host) WaitRunning(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, BootTimeout)
		defer cancel()
	}
	var last string
	for {
		if !h.Running() {
			return fmt.Errorf("host %s is not running (last state %q)", h.name, last)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, _, _ := h.Exec(pctx, "systemctl", "is-system-running")
		cancel()
		last = strings.TrimSpace(out)
		switch last {
		case "running":
			return nil
		case "degraded":
			failed, _, _ := h.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain")
			h.t.Logf("lab: %s booted degraded; failed units:\n%s", h.name, failed)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("systemd in %s did not reach running (last state %q): %w", h.name, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// execEnv is the environment of commands run inside a host: the machine's
// own environment (a developer's shell, CI's) has no business there.
var execEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"SYSTEMD_PAGER=",
	"SYSTEMD_COLORS=0",
}

// Command prepares args to run inside the host (all its namespaces, its
// root) with a clean environment; add to cmd.Env or set cmd.Stdin before
// running it. Cancelling ctx kills the command inside the host too.
func (h *Host) Command(ctx context.Context, args ...string) *exec.Cmd {
	leader := h.Leader()
	nsargs := append([]string{"-t", strconv.Itoa(leader), "-a", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", nsargs...)
	cmd.Env = append([]string(nil), execEnv...)
	// nsenter forks to enter the PID namespace; its own group holds the
	// command inside, so cancelling kills both rather than orphaning it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs args inside the host and returns its standard output and
// error. A non-zero exit is an error that names the command, its exit
// status and its stderr.
func (h *Host) Exec(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return h.ExecEnv(ctx, nil, args...)
}

// ExecEnv is Exec with extra environment variables ("KEY=value"), the way
// to hand a secret to a command without putting it in its argv.
func (h *Host) ExecEnv(ctx context.Context, env []string, args ...string) (stdout, stderr string, err error) {
	if h.Leader() == 0 {
		return "", "", fmt.Errorf("lab: %s: host %s is not running", strings.Join(args, " "), h.name)
	}
	cmd := h.Command(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	if err != nil {
		err = &ExecError{Host: h.name, Args: args, Stderr: se.String(), Err: err}
	}
	return so.String(), se.String(), err
}

// ExecError is a command inside a host that failed.
type ExecError struct {
	Host   string
	Args   []string
	Stderr string
	Err    error
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("lab: %s: %q: %v", e.Host, e.Args, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *ExecError) Unwrap() error { return e.Err }

// ExitCode is the command's exit status, or -1 when it did not exit
// normally.
func (e *ExecError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// MustExec is Exec that fails the test on error, and returns stdout.
func (h *Host) MustExec(ctx context.Context, args ...string) string {
	h.t.Helper()
	out, _, err := h.Exec(ctx, args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// PowerLoss cuts the host's power: SIGKILL to its PID 1 kills every process
// in it at once, with no shutdown and no sync beyond what the kernel already
// has. It returns once systemd-nspawn has exited.
func (h *Host) PowerLoss() {
	h.t.Helper()
	h.mu.Lock()
	if !h.runningLocked() {
		h.mu.Unlock()
		h.t.Fatalf("lab: power loss of %s: host is not running", h.name)
	}
	leader, exited := h.leader, h.exited
	h.mu.Unlock()
	if err := syscall.Kill(leader, syscall.SIGKILL); err != nil {
		h.t.Fatalf("lab: power loss of %s: kill PID 1 (%d): %v", h.name, leader, err)
	}
	select {
	case <-exited:
	case <-time.After(KillTimeout):
		h.t.Fatalf("lab: power loss of %s: systemd-nspawn still runs %s after its PID 1 was killed", h.name, KillTimeout)
	}
	h.forgetPropagateDir()
	h.linkDownAfterStop()
}

// linkDownAfterStop takes a bridged host's link down once it has stopped:
// a named network namespace outlives the container, and with its link up
// peers would get "connection refused" at once, where a machine without
// power makes them time out.
func (h *Host) linkDownAfterStop() {
	if link := h.opts.Network.Link; link != "" {
		if err := ipQuiet("link", "set", link, "down"); err != nil {
			h.t.Errorf("lab: %v", err)
		}
	}
}

// Shutdown powers the host off cleanly (SIGTERM to systemd-nspawn), and
// kills it if it has not stopped within StopTimeout. It returns once
// systemd-nspawn has exited; it does nothing on a host that is not running.
func (h *Host) Shutdown() {
	h.t.Helper()
	if err := h.shutdown(); err != nil {
		h.t.Errorf("lab: shutdown of %s: %v", h.name, err)
	}
	h.linkDownAfterStop()
}

func (h *Host) shutdown() error {
	h.mu.Lock()
	if !h.runningLocked() {
		h.mu.Unlock()
		return nil
	}
	cmd, leader, exited := h.nspawn, h.leader, h.exited
	h.mu.Unlock()
	defer h.forgetPropagateDir()

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(StopTimeout):
	}
	// Killing nspawn alone would leave the container running: kill its
	// PID 1 first, which takes every process inside with it.
	if leader > 0 {
		_ = syscall.Kill(leader, syscall.SIGKILL)
	}
	select {
	case <-exited:
		return fmt.Errorf("did not power off within %s; killed", StopTimeout)
	case <-time.After(KillTimeout):
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
		return fmt.Errorf("did not power off within %s; killed systemd-nspawn", StopTimeout)
	case <-time.After(KillTimeout):
		return fmt.Errorf("systemd-nspawn (pid %d) survived SIGKILL", cmd.Process.Pid)
	}
}

// forgetPropagateDir removes the directory nspawn leaves for this machine
// under /run (it refuses to remove it itself when /run is not a tmpfs, as
// on a machine without systemd).
func (h *Host) forgetPropagateDir() {
	_ = os.Remove(filepath.Join("/run/systemd/nspawn/propagate", h.name))
}

// Path returns where path inside the running host can be read from the
// machine (through its PID 1's root, /proc/PID/root), e.g. to inspect
// binary files without copying them through a command.
func (h *Host) Path(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", h.Leader(), filepath.Clean("/"+path))
}

// Console is the path of the file holding the host's console output (all
// boots, one after the other).
func (h *Host) Console() string { return h.logPath }

// ConsoleTail returns the last n lines of the console output.
func (h *Host) ConsoleTail(n int) string {
	b, err := os.ReadFile(h.logPath)
	if err != nil {
		return fmt.Sprintf("(no console log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- console of %s (last %d lines of %s) ---\n%s", h.name, len(lines), h.logPath, strings.Join(lines, "\n"))
}

// cleanup runs at the end of the test: diagnostics first when it failed,
// then a shutdown.
func (h *Host) cleanup() {
	if h.t.Failed() && h.Running() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		failed, _, _ := h.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain")
		journal, _, _ := h.Exec(ctx, "journalctl", "-b", "--no-pager", "-n", "150", "-o", "short-monotonic")
		cancel()
		h.t.Logf("lab: %s failed units:\n%s\n--- journal of %s (last 150 lines) ---\n%s", h.name, failed, h.name, journal)
	}
	if err := h.shutdown(); err != nil {
		h.t.Errorf("lab: shutdown of %s: %v", h.name, err)
	}
	if h.t.Failed() {
		h.t.Log(h.ConsoleTail(30))
	}
}

// machineName turns a test name into a valid, unique machine name: lower
// case letters, digits and dashes, at most 40 characters plus a random
// suffix.
func machineName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
	}
	if name == "" {
		name = "lab"
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	return name + "-" + hex.EncodeToString(suffix[:])
}

func withoutEnv(env []string, keys ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, k := range keys {
			if strings.HasPrefix(kv, k+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
