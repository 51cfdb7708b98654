package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/lab"
)

// The terminal UI end to end: the real binary's `tui` in a real terminal
// (tmux), driven with send-keys and read with capture-pane, against a real
// single-node appliance (an agent process with the child-process
// supervisor, real Raft and real redis-server) that the test starts.

// screenTimeout bounds each wait for something to appear on screen: the
// UI refreshes every second, a create waits for redis-server to start.
const screenTimeout = 60 * time.Second

// tuiAgent is an agent process on loopback with its own data directory.
type tuiAgent struct {
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

// startTUIAgent starts an agent with a config of free ports and waits
// until its API answers. Cleanup deletes every database it made, so that
// no redis-server outlives the test, and stops it.
func startTUIAgent(t *testing.T) *tuiAgent {
	t.Helper()
	dir := t.TempDir()
	a := &tuiAgent{socket: filepath.Join(dir, "api.sock"), log: &bytes.Buffer{}}
	base := lab.FreePort(t)
	cfg := fmt.Sprintf("node_name: n1\ndata_dir: %s\nsocket: %s\nraft_addr: 127.0.0.1:%d\ncluster_addr: 127.0.0.1:%d\nport_range: %d-%d\nsentinel_port: 0\ninstance_user: \"\"\nsupervisor: process\n",
		filepath.Join(dir, "data"), a.socket, lab.FreePort(t), lab.FreePort(t), base, base+10)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(binary, "agent", "--config", config)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(a.socket)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if dbs, err := c.ListDatabases(ctx); err == nil {
			for _, db := range dbs {
				_ = c.DeleteDatabase(ctx, db.Name)
			}
		}
		c.Close()
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", a.log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListDatabases(ctx)
		cancel()
		if err == nil {
			return a
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("agent not answering within 30s; log:\n%s", a.log)
	return nil
}

// tmuxSession is a program running in a detached tmux session on a
// private tmux server.
type tmuxSession struct {
	t      *testing.T
	socket string
	last   string
}

// startTmux runs argv in a w×h tmux window.
func startTmux(t *testing.T, w, h int, argv ...string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed; it drives the terminal UI in this test: apt-get install tmux")
	}
	s := &tmuxSession{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	args := append([]string{"new-session", "-d", "-s", "tui", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), "--"}, argv...)
	s.tmux(args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", s.last)
		}
		// Ends the UI with its terminal; harmless if it already quit.
		_ = exec.Command("tmux", "-S", s.socket, "kill-server").Run()
	})
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-S", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keys presses keys by their tmux names (Enter, Tab, a letter), one at a
// time with a pause, as a person types.
func (s *tmuxSession) keys(keys ...string) {
	s.t.Helper()
	for _, k := range keys {
		s.tmux("send-keys", "-t", "tui", k)
		time.Sleep(50 * time.Millisecond)
	}
}

// text types literal text.
func (s *tmuxSession) text(text string) {
	s.t.Helper()
	s.tmux("send-keys", "-t", "tui", "-l", text)
	time.Sleep(50 * time.Millisecond)
}

// screen returns what the terminal shows, as text.
func (s *tmuxSession) screen() string {
	s.t.Helper()
	s.last = s.tmux("capture-pane", "-p", "-t", "tui")
	return s.last
}

// waitFor polls the screen until cond holds, and fails with what it says.
func (s *tmuxSession) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(screenTimeout)
	for time.Now().Before(deadline) {
		if sc := s.screen(); cond(sc) {
			return sc
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("waited %s for %s; the screen shows:\n%s", screenTimeout, what, s.last)
	return ""
}

func (s *tmuxSession) waitText(text string) string {
	s.t.Helper()
	return s.waitFor(fmt.Sprintf("%q", text), func(sc string) bool { return strings.Contains(sc, text) })
}

// row returns the screen line listing database name, or "".
func row(screen, name string) string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "▸")); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

// TestTUI_CreateAndDeleteInTmux: in an 80×24 terminal, an operator creates
// a database from the form, sees it running in the list, follows a resize,
// and deletes it by typing its name; the agent agrees at each step.
func TestTUI_CreateAndDeleteInTmux(t *testing.T) {
	a := startTUIAgent(t)
	c := api.NewClient(a.socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	s := startTmux(t, 80, 24, binary, "--socket", a.socket, "tui")
	s.waitText("● live")
	s.waitText("n1 is leader")

	s.keys("2")
	s.waitText("No databases yet. Press n to create one.")

	// The form: name, memory, then tab past flavor, version and node to
	// Create.
	s.keys("n")
	s.waitText("NEW DATABASE")
	s.text("tuidb")
	s.keys("Tab")
	s.text("32mb")
	// Leaving the plan asks the agent to check the create: its plan shows.
	s.keys("Tab")
	s.waitText("✓ on ")
	s.keys("Tab", "Tab", "Tab", "Tab")
	s.waitText("▸ [ Create ]")
	s.keys("Enter")
	sc := s.waitFor("tuidb running in the list", func(sc string) bool {
		return strings.Contains(row(sc, "tuidb"), "running")
	})
	if !strings.Contains(sc, "✓ created tuidb") {
		t.Errorf("no confirmation of the create:\n%s", sc)
	}
	db, err := c.GetDatabase(ctx, "tuidb")
	if err != nil || db.State != api.StateRunning || db.Flavor != "aof" || db.MemoryBytes != 32<<20 {
		t.Fatalf("agent says %+v, %v; want tuidb running, aof, 32 MiB", db, err)
	}

	// The UI follows the terminal's size.
	s.tmux("resize-window", "-t", "tui", "-x", "120", "-y", "30")
	s.waitFor("the header at the right edge of 120 columns", func(sc string) bool {
		first := strings.SplitN(sc, "\n", 2)[0]
		return len([]rune(strings.TrimRight(first, " "))) > 100 && strings.Contains(first, "ago")
	})

	// Delete: D, type the name, enter.
	s.keys("D")
	s.waitText("Type tuidb and press enter")
	s.text("tuidb")
	s.keys("Enter")
	s.waitText("No databases yet.")
	s.waitText("✓ deleted tuidb")
	if dbs, err := c.ListDatabases(ctx); err != nil || len(dbs) != 0 {
		t.Fatalf("agent still lists %v (%v)", dbs, err)
	}

	// q quits: the program ends and tmux closes its session.
	s.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("tmux", "-S", s.socket, "has-session", "-t", "tui").Run() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the UI did not quit on q:\n%s", s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
