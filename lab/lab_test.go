package lab_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A volatile host runs real systemd as PID 1, sees binds and the machine's
// packages, never starts the machine's redis-server, and writes nothing
// back to the machine.
func TestLab_VolatileHostRunsSystemdAndLeavesTheMachineAlone(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "greeting")
	if err := os.WriteFile(src, []byte("hello from the machine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := lab.Boot(t, lab.Options{Binds: []lab.Bind{{Host: src, Container: "/opt/lab/greeting"}}})
	ctx := ctxFor(t, time.Minute)

	if got := strings.TrimSpace(h.MustExec(ctx, "cat", "/proc/1/comm")); got != "systemd" {
		t.Fatalf("PID 1 inside is %q, want systemd", got)
	}
	if got := strings.TrimSpace(h.MustExec(ctx, "hostname")); got != h.Name() {
		t.Errorf("hostname %q, want the machine name %q", got, h.Name())
	}
	if got := h.MustExec(ctx, "cat", "/opt/lab/greeting"); got != "hello from the machine\n" {
		t.Errorf("bound file reads %q", got)
	}
	if _, _, err := h.Exec(ctx, "sh", "-c", "echo x > /opt/lab/greeting"); err == nil {
		t.Error("a read-only bind was writable from inside")
	}
	if got, _, _ := h.Exec(ctx, "systemctl", "is-active", "redis-server.service"); strings.TrimSpace(got) == "active" {
		t.Error("the machine's own redis-server.service runs inside the host")
	}
	if _, _, err := h.Exec(ctx, "redis-server", "--version"); err != nil {
		t.Errorf("the machine's packages are not visible inside: %v", err)
	}

	// The environment reaches the command without being in its argv.
	out, _, err := h.ExecEnv(ctx, []string{"LAB_SECRET=s3cret"}, "sh", "-c", `printf %s "$LAB_SECRET"`)
	if err != nil || out != "s3cret" {
		t.Errorf("ExecEnv: got %q, %v", out, err)
	}

	_, _, err = h.Exec(ctx, "sh", "-c", "echo oops >&2; exit 3")
	var ee *lab.ExecError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(err.Error(), "oops") {
		t.Errorf("failing command: got %v, want an ExecError with exit 3 naming its stderr", err)
	}

	marker := "/var/lib/lab-marker-" + h.Name()
	h.MustExec(ctx, "sh", "-c", "echo inside > "+marker)
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file written inside the host appeared on the machine: %v", err)
	}

	// A command cut short by its context is killed inside the host too.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := h.Exec(short, "sleep", "300"); err == nil {
		t.Error("sleep 300 with a 300ms context returned no error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled command took %s to return", d)
	}
	// SIGKILL is delivered at once but the corpse lingers until systemd
	// reaps it: poll, bounded.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _, _ := h.Exec(ctx, "pgrep", "-x", "sleep")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the cancelled sleep still runs inside the host: pid %s", out)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A persistent host keeps its disk, including enabled units, across a power
// loss and a clean shutdown; a volatile one forgets everything at reboot.
func TestLab_PersistentDiskSurvivesPowerLossAndShutdown(t *testing.T) {
	t.Parallel()
	h := lab.Boot(t, lab.Options{Persistent: true})
	ctx := ctxFor(t, 3*time.Minute)

	h.MustExec(ctx, "sh", "-c", "echo before > /var/lib/lab-disk && sync")
	h.MustExec(ctx, "systemd-run", "--unit=lab-marker", "--remain-after-exit", "true")
	h.PowerLoss()
	if h.Running() {
		t.Fatal("host still running after power loss")
	}
	if _, _, err := h.Exec(ctx, "true"); err == nil {
		t.Fatal("Exec succeeded on a powered-off host")
	}
	h.Boot()
	if got := strings.TrimSpace(h.MustExec(ctx, "cat", "/var/lib/lab-disk")); got != "before" {
		t.Fatalf("after power loss the file reads %q, want before", got)
	}
	// A transient unit lives in /run: a reboot forgets it even on a
	// persistent disk.
	if out, _, _ := h.Exec(ctx, "systemctl", "is-active", "lab-marker"); strings.TrimSpace(out) == "active" {
		t.Error("a transient unit survived the power loss")
	}

	h.MustExec(ctx, "sh", "-c", "echo again >> /var/lib/lab-disk")
	h.Shutdown()
	h.Boot()
	if got := h.MustExec(ctx, "cat", "/var/lib/lab-disk"); got != "before\nagain\n" {
		t.Fatalf("after shutdown and boot the file reads %q", got)
	}

	v := lab.Boot(t, lab.Options{})
	v.MustExec(ctx, "sh", "-c", "echo x > /var/lib/lab-disk")
	v.Shutdown()
	v.Boot()
	if _, _, err := v.Exec(ctx, "test", "-e", "/var/lib/lab-disk"); err == nil {
		t.Error("a volatile host kept a file across a reboot")
	}
}

// Hosts on a bridge reach each other by address; Disconnect cuts a host
// off so that its peers time out, until Reconnect; and a powered-off host is
// silent rather than refusing connections.
func TestLab_BridgedHostsReachEachOtherUntilCutOffOrPoweredOff(t *testing.T) {
	t.Parallel()
	br := lab.NewBridge(t, "labt0", "10.213.7")
	h1 := lab.Boot(t, lab.Options{Network: br.Attach(1)})
	h2 := lab.Boot(t, lab.Options{Network: br.Attach(2)})
	ctx := ctxFor(t, 2*time.Minute)
	if h1.Addr() != "10.213.7.11" || h2.Addr() != "10.213.7.12" {
		t.Fatalf("addresses %s %s", h1.Addr(), h2.Addr())
	}

	h1.MustExec(ctx, "systemd-run", "--unit=lab-redis", "redis-server",
		"--port", "7777", "--bind", h1.Addr(), "--protected-mode", "no", "--save", "", "--appendonly", "no")
	ping := func(d time.Duration) (string, error) {
		pctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		out, _, err := h2.Exec(pctx, "redis-cli", "-h", h1.Addr(), "-p", "7777", "ping")
		return strings.TrimSpace(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := ping(5 * time.Second)
		if out == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("h2 cannot reach redis on h1 at %s:7777: %q %v", h1.Addr(), out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	h1.Disconnect()
	if out, err := ping(3 * time.Second); err == nil || out == "PONG" {
		t.Fatalf("h1 still answers after Disconnect: %q %v", out, err)
	}
	h1.Reconnect()
	deadline = time.Now().Add(30 * time.Second)
	for {
		if out, _ := ping(5 * time.Second); out == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("h1 does not answer again after Reconnect")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A host without power does not refuse connections: it is silent.
	h1.PowerLoss()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, stderr, err := h2.Exec(pctx, "redis-cli", "-h", h1.Addr(), "-p", "7777", "ping")
	if err == nil || strings.Contains(out+stderr, "refused") {
		t.Errorf("after power loss h1 answered or refused at once: %q %q %v", out, stderr, err)
	}
}
