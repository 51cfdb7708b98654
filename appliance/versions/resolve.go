package versions

import (
	"errors"

	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// Errors Resolve wraps, so the API can choose a status without reading text.
var (
	// ErrUnknownVersion: the version is not in the catalogue.
	ErrUnknownVersion = errors.New("unknown version")
	// ErrNotInstalled: the version is offered but no binary for it exists.
	ErrNotInstalled = errors.New("version not installed")
	// ErrDeprecated: the version is past its deprecation date.
	ErrDeprecated = errors.New("version deprecated")
	// ErrEndOfLife: the version is past its end of life.
	ErrEndOfLife = errors.New("version end of life")
)

// resolveError carries a full message for people and a sentinel for code.
type resolveError struct {
	sentinel error
	msg      string
}

func (e *resolveError) Error() string { return e.msg }
func (e *resolveError) Unwrap() error { return e.sentinel }

// installHint says how to get a version onto a node. Debian 12 packages
// only 7.0; other versions come as binaries placed by the administrator.
const installHint = "install it (on Debian: apt-get install redis-server) or add the binary's path to redis_paths in the config"

var requestRE = regexp.MustCompile(`^\d+(\.\d+(\.\d+)?)?$`)

// Resolve picks the binary for a new database that asks for requested:
//   - "" is the newest installed version that is still supported;
//   - a major ("7") is the newest supported version of it that is installed;
//   - major.minor ("7.0") is that version;
//   - major.minor.patch ("7.0.15") is that version, if exactly that patch
//     release is what is installed.
//
// It refuses versions not in the catalogue, deprecated or end-of-life
// versions (existing databases keep their binary; Resolve is only asked
// for new ones), and versions no binary is installed for, each with an
// error that wraps ErrUnknownVersion, ErrDeprecated, ErrEndOfLife or
// ErrNotInstalled and says what to ask for instead.
func Resolve(requested string, installed []Installed, now time.Time) (Installed, error) {
	req := strings.TrimSpace(requested)
	byVersion := map[string]Installed{}
	for _, in := range installed {
		if _, ok := byVersion[in.Version]; !ok {
			byVersion[in.Version] = in
		}
	}

	if req == "" {
		if in, ok := newestSupported(byVersion, now); ok {
			return in, nil
		}
		return Installed{}, &resolveError{ErrNotInstalled, fmt.Sprintf(
			"no supported version is installed (installed: %s); install a supported version (see redis-appliance versions): on Debian apt-get install redis-server, or add the binary's path to redis_paths in the config",
			installedList(installed, now))}
	}

	if !requestRE.MatchString(req) {
		return Installed{}, unknown(req)
	}
	parts := strings.Split(req, ".")

	if len(parts) == 1 {
		return resolveMajor(req, byVersion, installed, now)
	}

	version := parts[0] + "." + parts[1]
	r, ok := Lookup(version)
	if !ok {
		return Installed{}, unknown(req)
	}
	if err := lifecycle(r, byVersion, now); err != nil {
		return Installed{}, err
	}
	in, ok := byVersion[version]
	if !ok {
		return Installed{}, &resolveError{ErrNotInstalled, fmt.Sprintf(
			"version %s is not installed (installed: %s); %s",
			version, installedList(installed, now), installHint)}
	}
	if len(parts) == 3 && in.Full != req {
		return Installed{}, &resolveError{ErrNotInstalled, fmt.Sprintf(
			"version %s is not installed: %s is installed as %s at %s; ask for %s to use it",
			req, version, in.Full, in.Path, version)}
	}
	return in, nil
}

// resolveMajor picks the newest supported, installed minor of a major.
func resolveMajor(major string, byVersion map[string]Installed, installed []Installed, now time.Time) (Installed, error) {
	var all, supported []Release
	for _, r := range catalogue {
		if strings.HasPrefix(r.Version, major+".") {
			all = append(all, r)
			if r.Status(now) == StatusSupported {
				supported = append(supported, r)
			}
		}
	}
	if len(all) == 0 {
		return Installed{}, unknown(major)
	}
	if len(supported) == 0 {
		// Every minor of it is retired: say why with the newest one.
		return Installed{}, lifecycle(all[len(all)-1], byVersion, now)
	}
	for i := len(supported) - 1; i >= 0; i-- {
		if in, ok := byVersion[supported[i].Version]; ok {
			return in, nil
		}
	}
	names := make([]string, len(supported))
	for i, r := range supported {
		names[i] = r.Version
	}
	return Installed{}, &resolveError{ErrNotInstalled, fmt.Sprintf(
		"no supported version %s.x is installed (supported: %s; installed: %s); %s",
		major, strings.Join(names, ", "), installedList(installed, now), installHint)}
}

func unknown(req string) error {
	return &resolveError{ErrUnknownVersion, fmt.Sprintf(
		"unknown version %q; known: %s (see redis-appliance versions)", req, knownList())}
}

// lifecycle refuses a deprecated or end-of-life release and names the
// version to use instead.
func lifecycle(r Release, byVersion map[string]Installed, now time.Time) error {
	var sentinel error
	var msg string
	switch r.Status(now) {
	case StatusSupported:
		return nil
	case StatusDeprecated:
		sentinel = ErrDeprecated
		msg = fmt.Sprintf("version %s is deprecated: no new databases after %s (existing ones run until its end of life on %s)",
			r.Version, r.Deprecated.Format(dateLayout), r.EOL.Format(dateLayout))
	default:
		sentinel = ErrEndOfLife
		msg = fmt.Sprintf("version %s reached its end of life on %s: no new databases", r.Version, r.EOL.Format(dateLayout))
	}
	if in, ok := newestSupported(byVersion, now); ok {
		msg += fmt.Sprintf("; use %s, the newest supported version installed", in.Version)
	} else {
		msg += "; no supported version is installed: install one (see redis-appliance versions)"
	}
	return &resolveError{sentinel, msg}
}

// newestSupported is the default version: the newest catalogue version that
// is supported at now and installed.
func newestSupported(byVersion map[string]Installed, now time.Time) (Installed, bool) {
	for i := len(catalogue) - 1; i >= 0; i-- {
		r := catalogue[i]
		if in, ok := byVersion[r.Version]; ok && r.Status(now) == StatusSupported {
			return in, true
		}
	}
	return Installed{}, false
}

// installedList is "7.0.15 at /usr/bin/redis-server, 6.2.14 at ... (eol)"
// for messages, newest first.
func installedList(installed []Installed, now time.Time) string {
	if len(installed) == 0 {
		return "none"
	}
	var parts []string
	for i := len(installed) - 1; i >= 0; i-- {
		in := installed[i]
		s := in.Full + " at " + in.Path
		if r, ok := Lookup(in.Version); !ok {
			s += " (not in the catalogue)"
		} else if st := r.Status(now); st != StatusSupported {
			s += " (" + string(st) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// List returns the catalogue as the API shows it, oldest first, with what
// is installed here (installed) and the default marked, followed by any
// installed versions the catalogue does not know (status unknown), so
// users can see why a binary they installed is not offered. nodes are the
// nodes that have each version, by version.
func List(installed []Installed, nodes map[string][]string, now time.Time) []api.Version {
	byVersion := map[string]Installed{}
	for _, in := range installed {
		if _, ok := byVersion[in.Version]; !ok {
			byVersion[in.Version] = in
		}
	}
	def, hasDefault := newestSupported(byVersion, now)

	var rows []api.Version
	for _, r := range catalogue {
		row := api.Version{
			Version:    r.Version,
			Status:     string(r.Status(now)),
			Released:   r.Released.Format(dateLayout),
			Deprecated: r.Deprecated.Format(dateLayout),
			EndOfLife:  r.EOL.Format(dateLayout),
			Nodes:      nodes[r.Version],
		}
		if in, ok := byVersion[r.Version]; ok {
			row.Installed, row.Full, row.Path = true, in.Full, in.Path
			row.Default = hasDefault && def.Version == r.Version
		}
		rows = append(rows, row)
	}
	for _, in := range installed {
		if _, ok := Lookup(in.Version); !ok && byVersion[in.Version] == in {
			rows = append(rows, api.Version{Version: in.Version, Status: string(StatusUnknown), Installed: true, Full: in.Full, Path: in.Path, Nodes: nodes[in.Version]})
		}
	}
	return rows
}
