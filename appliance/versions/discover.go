package versions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultProbeTimeout bounds one `redis-server --version` run. It prints
// and exits in milliseconds; a binary that takes longer is not one to run
// databases with, and must not stall the agent's start.
const DefaultProbeTimeout = 5 * time.Second

// Installed is a redis-server binary found on this node.
type Installed struct {
	// Version is the catalogue name, major.minor ("7.0").
	Version string `json:"version"`
	// Full is what the binary reports ("7.0.15").
	Full string `json:"full"`
	// Path is the binary as found, not its symlink target: redis-server
	// picks its mode from the name it was started by, and on Debian
	// /usr/bin/redis-server is a link to redis-check-rdb.
	Path string `json:"path"`
}

// Skipped is a candidate binary Discover could not use, and why.
type Skipped struct {
	// Path is the candidate as configured or found on $PATH.
	Path string
	// Err says what was wrong with it; it names Path.
	Err error
}

// DiscoverError lists the candidates Discover skipped. It comes with the
// binaries that were found, which remain valid: log it and carry on.
type DiscoverError struct {
	// Skipped lists the unusable candidates in the order they were tried.
	Skipped []Skipped
}

func (e *DiscoverError) Error() string {
	parts := make([]string, len(e.Skipped))
	for i, s := range e.Skipped {
		parts[i] = s.Err.Error()
	}
	return fmt.Sprintf("%d redis-server binaries skipped: %s", len(e.Skipped), strings.Join(parts, "; "))
}

// Discover finds the redis-server binaries of this node: one named
// redis-server in each absolute directory of $PATH, then each entry of
// extraPaths (the redis_paths config), which is a file or a glob such as
// "/usr/lib/redis/*/bin/redis-server" or "/opt/redis-*/bin/redis-server".
// It runs each with --version, bounded by DefaultProbeTimeout and ctx,
// de-duplicates binaries that resolve to the same file, keeps the first one
// found for each major.minor version (so $PATH order, then config order,
// decides), and returns them oldest version first.
//
// An invalid glob is a configuration error: Discover returns it and
// nothing else. Candidates that cannot be run or do not print a version are
// reported in a *DiscoverError that accompanies the binaries found.
func Discover(ctx context.Context, extraPaths []string) ([]Installed, error) {
	return discover(ctx, os.Getenv("PATH"), extraPaths, DefaultProbeTimeout)
}

func discover(ctx context.Context, pathEnv string, extraPaths []string, timeout time.Duration) ([]Installed, error) {
	var candidates []string
	for _, dir := range filepath.SplitList(pathEnv) {
		// A relative $PATH entry ("." or "") would run whatever is in the
		// agent's working directory as root; only absolute ones count.
		if filepath.IsAbs(dir) {
			candidates = append(candidates, filepath.Join(dir, "redis-server"))
		}
	}
	explicit := map[string]bool{} // entries named in the config, not globs
	for _, pattern := range extraPaths {
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("redis_paths entry %q is not a valid glob: %w; fix it in the config", pattern, err)
		}
		if !hasMeta(pattern) {
			// Report a configured file that is missing; Glob drops it.
			matches = []string{pattern}
			explicit[pattern] = true
		}
		candidates = append(candidates, matches...)
	}

	var (
		found    []Installed
		skipped  []Skipped
		seenFile = map[string]bool{}
		seenVer  = map[string]bool{}
	)
	for _, path := range candidates {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			if explicit[path] || !errors.Is(err, os.ErrNotExist) {
				skipped = append(skipped, Skipped{path, fmt.Errorf("%s: %w", path, err)})
			}
			continue // most $PATH directories have no redis-server
		}
		if seenFile[real] {
			continue
		}
		seenFile[real] = true
		if err := checkExecutable(path, real); err != nil {
			skipped = append(skipped, Skipped{path, err})
			continue
		}
		in, err := Probe(ctx, path, timeout)
		if err != nil {
			skipped = append(skipped, Skipped{path, err})
			continue
		}
		if seenVer[in.Version] {
			continue
		}
		seenVer[in.Version] = true
		found = append(found, in)
	}
	sort.SliceStable(found, func(i, j int) bool { return less(found[i].Version, found[j].Version) })
	if len(skipped) > 0 {
		return found, &DiscoverError{Skipped: skipped}
	}
	return found, nil
}

func hasMeta(pattern string) bool { return strings.ContainsAny(pattern, `*?[\`) }

func checkExecutable(path, real string) error {
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable; chmod +x it or remove it from redis_paths", path)
	}
	return nil
}

// Probe runs `path --version`, bounded by timeout and ctx, and reports the
// version it prints. It kills the binary's whole process group on timeout,
// so a wrapper script that hangs in a child cannot hold the agent.
func Probe(ctx context.Context, path string, timeout time.Duration) (Installed, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Stdout = &limitedWriter{w: &out, n: 64 << 10}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Negative pid: the group Setpgid made, children included.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Should a grandchild escape the group and keep stdout open, stop
	// waiting for it shortly after the kill.
	cmd.WaitDelay = time.Second

	err := cmd.Run()
	if ctx.Err() != nil {
		return Installed{}, fmt.Errorf("%s --version did not finish within %s; is it redis-server?", path, timeout)
	}
	if err != nil {
		return Installed{}, fmt.Errorf("%s --version failed: %w (output %q); is it redis-server?", path, err, clip(out.String()))
	}
	version, full, err := ParseVersionOutput(out.Bytes())
	if err != nil {
		return Installed{}, fmt.Errorf("%s: %w", path, err)
	}
	return Installed{Version: version, Full: full, Path: path}, nil
}

// versionRE matches the v= field redis-server --version prints, e.g.
// "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=...".
var versionRE = regexp.MustCompile(`^Redis server v=(\d+)\.(\d+)\.(\d+) `)

// ParseVersionOutput reads the output of `redis-server --version` and
// returns the catalogue version ("7.0") and the full one ("7.0.15").
func ParseVersionOutput(out []byte) (version, full string, err error) {
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	m := versionRE.FindStringSubmatch(line + " ")
	if m == nil {
		return "", "", fmt.Errorf("unexpected --version output %q: want \"Redis server v=X.Y.Z ...\"; is it redis-server?", clip(line))
	}
	for _, n := range m[1:] {
		if _, ok := versionNumbers(n); !ok {
			return "", "", fmt.Errorf("unexpected --version output %q: version part %q is not a number", clip(line), n)
		}
	}
	return m[1] + "." + m[2], m[1] + "." + m[2] + "." + m[3], nil
}

func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// limitedWriter keeps the first n bytes and drops the rest, so a binary
// that prints without end cannot grow the agent's memory before the
// timeout stops it.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
