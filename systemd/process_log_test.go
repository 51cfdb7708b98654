package systemd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The instance's user can write its instance directory; the agent, as
// root, writes the instance's log. A link the instance puts in its
// directory must not make the agent write anywhere: the log lives in the
// agent's own 0700 state directory and is opened without following links.
func TestProcessLog_NeverInTheInstanceDirectoryNorThroughALink(t *testing.T) {
	ctx := context.Background()
	spec, addr := processInstance(t, "logs")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Where the log used to be, and any other name the instance may try.
	for _, n := range []string{"process.log", "redis-appliance.log", spec.Name + ".log"} {
		if err := os.Symlink(victim, filepath.Join(spec.Dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	p := newProcess(t, stateDir)
	if _, err := p.Install(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx, spec.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := ping(addr, testPassword); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
		t.Fatalf("the file a link in the instance directory names was written to: %q", data)
	}
	log := p.LogPath(spec.Name)
	if filepath.Dir(log) != stateDir {
		t.Errorf("log %s is outside the state directory %s", log, stateDir)
	}
	fi, err := os.Lstat(log)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("log %s: %v %v; want a regular 0600 file", log, fi, err)
	}
	if data, _ := os.ReadFile(log); !strings.Contains(string(data), "-- redis-appliance: starting "+spec.Name) {
		t.Errorf("log %s lacks the start line: %q", log, data)
	}
	di, err := os.Stat(stateDir)
	if err != nil || di.Mode().Perm() != 0o700 || int(di.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		t.Errorf("state directory %s: %v %v; want 0700 and this process's own", stateDir, di, err)
	}
	if err := p.Stop(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}

	// A link in place of the log itself (whoever put it there) is refused,
	// not followed.
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, log); err != nil {
		t.Fatal(err)
	}
	err = p.Start(ctx, spec.Name)
	if err == nil || !strings.Contains(err.Error(), log) {
		t.Errorf("Start with a link as the log: %v; want an error naming %s", err, log)
	}
	if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
		t.Fatalf("the file a link in place of the log names was written to: %q", data)
	}
}

// A state directory that others can write is made private; one that is a
// link or another user's is refused.
func TestProcessStateDir_IsTheAgentsAlone(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	newProcess(t, open)
	if fi, err := os.Stat(open); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("a world-writable state directory is now %v %v; want 0700", fi, err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(open, link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewProcess(link, testLogger(t)); err == nil || !strings.Contains(err.Error(), "not a link") {
		t.Errorf("NewProcess on a link: %v; want a refusal", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := NewProcess(other, testLogger(t)); err == nil || !strings.Contains(err.Error(), "owned by uid 0") {
			t.Errorf("NewProcess on another user's directory: %v; want a refusal", err)
		}
	}
}
