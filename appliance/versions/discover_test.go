package versions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const realRedis = "/usr/bin/redis-server"

func needRealRedis(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(realRedis); err != nil {
		t.Fatalf("%s not installed (%v): apt-get install redis-server", realRedis, err)
	}
}

// writeFakeRedis writes a FAKE redis-server: a shell script at
// dir/redis-server whose body is script. Fakes stand in for versions
// Debian 12 cannot install (6.2) and for broken binaries.
func writeFakeRedis(t *testing.T, dir, script string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "redis-server")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

const fake62 = `echo "Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.1.0 bits=64 build=fake"`

// TestDiscover_RealRedis proves the Debian binary is found on $PATH, probed
// as 7.0.15, reported under the path it was found by (not its
// redis-check-rdb symlink target) and listed once although /bin and
// /usr/bin are the same directory on a merged-/usr system.
func TestDiscover_RealRedis(t *testing.T) {
	needRealRedis(t)
	got, err := discover(context.Background(), "/usr/bin:/bin:relative/dir:", nil, DefaultProbeTimeout)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	want := []Installed{{Version: "7.0", Full: "7.0.15", Path: realRedis}}
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("discover = %+v, want %+v", got, want)
	}

	// And through the exported entry point with the real environment.
	all, err := Discover(context.Background(), nil)
	if err != nil {
		t.Logf("Discover reported skipped binaries: %v", err)
	}
	var seen bool
	for _, in := range all {
		seen = seen || in.Full == "7.0.15"
	}
	if !seen {
		t.Errorf("Discover(PATH=%s) = %+v, want a 7.0.15", os.Getenv("PATH"), all)
	}
}

// TestDiscover_ExtraPathsAndFakes proves globs in redis_paths are expanded,
// results come oldest first, a second binary of a version already found is
// ignored, and broken candidates are reported without hiding good ones.
func TestDiscover_ExtraPathsAndFakes(t *testing.T) {
	needRealRedis(t)
	tmp := t.TempDir()
	fake := writeFakeRedis(t, filepath.Join(tmp, "opt", "redis-6.2", "bin"), fake62)
	// A second 6.2, later in glob order: the first one found wins.
	writeFakeRedis(t, filepath.Join(tmp, "opt", "redis-6.3", "bin"),
		`echo "Redis server v=6.2.7 sha=00000000:0 malloc=libc bits=64 build=fake"`)
	broken := writeFakeRedis(t, filepath.Join(tmp, "broken", "bin"), `echo "redis-cli 7.0.15"`)
	failing := writeFakeRedis(t, filepath.Join(tmp, "failing", "bin"), `echo oops >&2; exit 3`)
	notExec := filepath.Join(tmp, "noexec", "redis-server")
	if err := os.MkdirAll(filepath.Dir(notExec), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notExec, []byte(fake62), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(tmp, "missing", "redis-server")
	link := filepath.Join(tmp, "link-to-real")
	if err := os.Symlink(realRedis, link); err != nil {
		t.Fatal(err)
	}

	extra := []string{
		filepath.Join(tmp, "opt", "redis-*", "bin", "redis-server"),
		filepath.Join(tmp, "nomatch-*", "redis-server"), // matches nothing: fine
		broken, failing, notExec, missing,
		link, // same file as /usr/bin/redis-server: de-duplicated
	}
	got, err := discover(context.Background(), "/usr/bin", extra, 2*time.Second)

	want := []Installed{
		{Version: "6.2", Full: "6.2.14", Path: fake},
		{Version: "7.0", Full: "7.0.15", Path: realRedis},
	}
	if len(got) != len(want) {
		t.Fatalf("discover = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("discover[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	var de *DiscoverError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DiscoverError", err)
	}
	wantSkipped := map[string]string{
		broken:  `unexpected --version output "redis-cli 7.0.15"`,
		failing: `--version failed: exit status 3 (output "oops\n")`,
		notExec: "is not executable",
		missing: "no such file",
	}
	if len(de.Skipped) != len(wantSkipped) {
		t.Errorf("skipped %d: %v; want %d", len(de.Skipped), de, len(wantSkipped))
	}
	for _, s := range de.Skipped {
		frag, ok := wantSkipped[s.Path]
		if !ok {
			t.Errorf("unexpected skip of %s: %v", s.Path, s.Err)
			continue
		}
		if !strings.Contains(s.Err.Error(), frag) || !strings.Contains(s.Err.Error(), s.Path) {
			t.Errorf("skip of %s: %q, want it to name the path and contain %q", s.Path, s.Err, frag)
		}
	}
}

// TestDiscover_BadGlob proves an invalid redis_paths pattern is refused as a
// configuration error that names it.
func TestDiscover_BadGlob(t *testing.T) {
	got, err := discover(context.Background(), "", []string{"/opt/redis-[/bin/redis-server"}, time.Second)
	if err == nil || !strings.Contains(err.Error(), `redis_paths entry "/opt/redis-[/bin/redis-server" is not a valid glob`) {
		t.Errorf("discover = %v, %v; want a bad-glob error", got, err)
	}
	if got != nil {
		t.Errorf("returned %v with a configuration error", got)
	}
}

// TestProbe_HangingBinaryIsBounded proves a FAKE redis-server that never
// exits, even through a child process holding its output open, is killed
// at the timeout and reported, and does not stop discovery of the others.
func TestProbe_HangingBinaryIsBounded(t *testing.T) {
	tmp := t.TempDir()
	hang := writeFakeRedis(t, filepath.Join(tmp, "hang"), `sleep 60 & wait`)
	good := writeFakeRedis(t, filepath.Join(tmp, "good"), fake62)

	start := time.Now()
	_, err := Probe(context.Background(), hang, 300*time.Millisecond)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Probe took %s with a 300ms timeout", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "did not finish within 300ms") {
		t.Errorf("Probe(hang) = %v, want a timeout error", err)
	}

	start = time.Now()
	got, err := discover(context.Background(), "", []string{hang, good}, 300*time.Millisecond)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("discover took %s with a 300ms timeout", elapsed)
	}
	if len(got) != 1 || got[0].Full != "6.2.14" {
		t.Errorf("discover = %+v, want the good fake only", got)
	}
	var de *DiscoverError
	if !errors.As(err, &de) || len(de.Skipped) != 1 || de.Skipped[0].Path != hang {
		t.Errorf("err = %v, want the hanging binary skipped", err)
	}
}

// TestProbe_CancelledContext proves the caller's context bounds probing too.
func TestProbe_CancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hang := writeFakeRedis(t, t.TempDir(), `sleep 60`)
	if _, err := Probe(ctx, hang, time.Minute); err == nil {
		t.Error("Probe with a cancelled context succeeded")
	}
}

// TestParseVersionOutput proves the version is read from real-looking
// output and anything else is refused with the output quoted.
func TestParseVersionOutput(t *testing.T) {
	tests := []struct {
		name, out     string
		version, full string
		wantErr       string
	}{
		{name: "debian 7.0", out: "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d7c971a948f0\n",
			version: "7.0", full: "7.0.15"},
		{name: "no trailing fields", out: "Redis server v=8.2.1", version: "8.2", full: "8.2.1"},
		{name: "two digit parts", out: "Redis server v=7.10.123 sha=x", version: "7.10", full: "7.10.123"},
		{name: "leading blank line", out: "\nRedis server v=6.2.14 sha=x\n", version: "6.2", full: "6.2.14"},
		{name: "empty", out: "", wantErr: `unexpected --version output ""`},
		{name: "redis-cli", out: "redis-cli 7.0.15\n", wantErr: `unexpected --version output "redis-cli 7.0.15"`},
		{name: "missing patch", out: "Redis server v=7.0 sha=x", wantErr: "unexpected --version output"},
		{name: "suffix", out: "Redis server v=7.0.15-rc1 sha=x", wantErr: "unexpected --version output"},
		{name: "empty version", out: "Redis server v= sha=x", wantErr: "unexpected --version output"},
		{name: "huge number", out: "Redis server v=99999999999999999999.0.1 sha=x", wantErr: "is not a number"},
		{name: "sentinel mode text", out: "Redis sentinel v=7.0.15", wantErr: "unexpected --version output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, f, err := ParseVersionOutput([]byte(tt.out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseVersionOutput(%q) = %q, %q, %v; want error containing %q", tt.out, v, f, err, tt.wantErr)
				}
				return
			}
			if err != nil || v != tt.version || f != tt.full {
				t.Errorf("ParseVersionOutput(%q) = %q, %q, %v; want %q, %q", tt.out, v, f, err, tt.version, tt.full)
			}
		})
	}
}
