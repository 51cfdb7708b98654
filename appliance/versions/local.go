package versions

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Local is this node's redis-server binaries: discovered at start and
// again when asked (Refresh), so that a version installed while the agent
// runs is offered without a restart. The reconciler asks it which binary
// runs a database's version; heartbeats tell the leader what it holds.
type Local struct {
	node  string
	paths []string
	log   *slog.Logger

	mu        sync.Mutex
	installed []Installed
	found     time.Time // when the last discovery ran
	running   bool      // a discovery Current started is under way
}

// staleAfter is how old a discovery Current accepts: a version installed
// while the agent runs reaches the leader's placement within it.
const staleAfter = time.Minute

// NewLocal returns the binaries of node found on $PATH and at paths (the
// redis_paths config); call Refresh to discover them.
func NewLocal(node string, paths []string, log *slog.Logger) *Local {
	return &Local{node: node, paths: paths, log: log}
}

// Refresh discovers the binaries again and returns them. Binaries that
// could not be used are logged; a discovery that finds nothing because of
// an error keeps what was known.
func (l *Local) Refresh(ctx context.Context) []Installed {
	found, err := Discover(ctx, l.paths)
	if err != nil {
		l.log.Warn("some redis-server binaries could not be used", "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.found = time.Now()
	if len(found) == 0 && err != nil {
		return l.installed
	}
	l.installed = found
	return found
}

// Current returns the binaries found last, and starts discovering them
// again in the background when that is older than a minute: it never
// waits for a discovery (each runs every binary with --version), so the
// heartbeats that call it are never held up.
func (l *Local) Current() []Installed {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.found) >= staleAfter && !l.running {
		l.running = true
		go func() {
			l.Refresh(context.Background())
			l.mu.Lock()
			l.running = false
			l.mu.Unlock()
		}()
	}
	return append([]Installed(nil), l.installed...)
}

// Installed returns what the last discovery found, oldest version first.
func (l *Local) Installed() []Installed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Installed(nil), l.installed...)
}

// Versions returns the catalogue names (major.minor) of the binaries
// (discovered again if the last discovery is stale, see Current).
func (l *Local) Versions() []string {
	out := []string{}
	for _, in := range l.Current() {
		out = append(out, in.Version)
	}
	return out
}

// Binary returns the redis-server that runs version here.
func (l *Local) Binary(version string) (string, error) {
	for _, in := range l.Installed() {
		if in.Version == version {
			return in.Path, nil
		}
	}
	return "", fmt.Errorf("redis-server %s is not installed on node %s; install it or add its path to redis_paths", version, l.node)
}

// Union is every version installed on any of the nodes, one entry per
// version, for Resolve: a create asks for a version some node can run,
// and placement then picks among the nodes that have it. A binary found
// here (with its path and full version) is preferred to another node's
// report of the same version.
func Union(byNode map[string][]Installed) []Installed {
	names := make([]string, 0, len(byNode))
	for n := range byNode {
		names = append(names, n)
	}
	sort.Strings(names)
	byVersion := map[string]Installed{}
	for _, n := range names {
		for _, in := range byNode[n] {
			if old, ok := byVersion[in.Version]; !ok || (old.Path == "" && in.Path != "") {
				byVersion[in.Version] = in
			}
		}
	}
	out := make([]Installed, 0, len(byVersion))
	for _, in := range byVersion {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].Version, out[j].Version) })
	return out
}

// Has says whether version is among installed.
func Has(installed []Installed, version string) bool {
	for _, in := range installed {
		if in.Version == version {
			return true
		}
	}
	return false
}

// Names lists the versions of installed for messages ("7.0, 7.2", or
// "nothing").
func Names(installed []Installed) string {
	if len(installed) == 0 {
		return "nothing"
	}
	var vs []string
	for _, in := range installed {
		vs = append(vs, in.Version)
	}
	return strings.Join(vs, ", ")
}
