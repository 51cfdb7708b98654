package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Timings written into every unit. They are constants rather than spec fields
// because they describe redis-server, not one database.
const (
	// unitRestartSec is short so that a crashed instance is back before the
	// failover controller's detection window closes, yet long enough that a
	// crash loop does not spin the CPU.
	unitRestartSec = "2s"
	// unitTimeoutStartSec is long because redis-server sends READY=1 only
	// after it has loaded the whole RDB/AOF and never extends the timeout
	// (no EXTEND_TIMEOUT_USEC): with systemd's default of 90s a large
	// dataset would be killed mid-load and restarted forever.
	unitTimeoutStartSec = "15min"
	// unitTimeoutStopSec bounds the final RDB save redis-server does on
	// SIGTERM. Debian uses 0 (wait forever); a bound keeps a shutdown or a
	// failover from hanging on a stuck disk. Redis writes the RDB to a
	// temporary file and renames it, so a kill mid-save leaves the previous
	// snapshot intact.
	unitTimeoutStopSec = "5min"
	// unitStartLimitBurst starts in unitStartLimitInterval turn a crash loop
	// into "failed", which the failover controller treats as a dead primary.
	unitStartLimitBurst    = "5"
	unitStartLimitInterval = "60s"
)

// UnitFileMode is the mode of unit files: systemd and systemctl read them as
// any user, and they hold no secrets (the password is in redis.conf).
const UnitFileMode = 0o644

var (
	unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.service$`)
	// userNameRE is the portable POSIX user/group name subset that
	// useradd and systemd both accept.
	userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}\$?$`)
	// safePathRE keeps paths free of whitespace, quotes, backslashes and
	// specifier characters, because WorkingDirectory= takes its value raw
	// while ReadWritePaths= splits on whitespace.
	safePathRE = regexp.MustCompile(`^/[A-Za-z0-9._/@+:=,-]*$`)
)

// Validate reports whether spec can be turned into a unit that systemd parses
// exactly as meant. Both supervisors call it from Install.
func (s UnitSpec) Validate() error {
	var errs []error
	if !strings.HasPrefix(s.Name, UnitPrefix) || !unitNameRE.MatchString(s.Name) || len(s.Name) > 255 {
		errs = append(errs, fmt.Errorf("unit name %q must start with %q, end with .service and use only [A-Za-z0-9:_.@-]", s.Name, UnitPrefix))
	}
	if len(s.ExecStart) == 0 {
		errs = append(errs, fmt.Errorf("unit %s: ExecStart is empty; give the redis-server binary and its config file", s.Name))
	} else if !filepath.IsAbs(s.ExecStart[0]) || !safePathRE.MatchString(s.ExecStart[0]) {
		errs = append(errs, fmt.Errorf("unit %s: executable %q must be an absolute path without spaces or quotes", s.Name, s.ExecStart[0]))
	}
	// No ":" either: BindPaths= and TemporaryFileSystem= split on it.
	if s.Dir == "" || !safePathRE.MatchString(s.Dir) || strings.Contains(s.Dir, ":") || filepath.Clean(s.Dir) != s.Dir || filepath.Dir(s.Dir) == "/" {
		errs = append(errs, fmt.Errorf("unit %s: directory %q must be a clean absolute path at least two levels below / (its parent is hidden from the instance) without spaces, quotes or colons", s.Name, s.Dir))
	}
	if s.User != "" && !userNameRE.MatchString(s.User) {
		errs = append(errs, fmt.Errorf("unit %s: user %q is not a valid user name", s.Name, s.User))
	}
	if s.Group != "" && !userNameRE.MatchString(s.Group) {
		errs = append(errs, fmt.Errorf("unit %s: group %q is not a valid group name", s.Name, s.Group))
	}
	if strings.ContainsAny(s.Description, "\n\r") {
		errs = append(errs, fmt.Errorf("unit %s: description must be one line", s.Name))
	}
	return errors.Join(errs...)
}

// RenderUnit returns the unit file for one redis-server instance. The result
// depends only on spec, so comparing bytes tells whether a reload is needed.
// Call spec.Validate first: RenderUnit escapes what it can but has no way to
// report a spec systemd would reject.
func RenderUnit(spec UnitSpec) []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	desc := spec.Description
	if desc == "" {
		desc = "redis-server instance " + strings.TrimSuffix(strings.TrimPrefix(spec.Name, UnitPrefix), ".service")
	}

	w("# Written by redis-appliance; local edits are overwritten. Use a drop-in")
	w("# (systemctl edit %s) for site-specific settings.", escapeSpecifiers(spec.Name))
	w("[Unit]")
	w("Description=%s", escapeSpecifiers(oneLine(desc)))
	w("Documentation=man:redis-server(1)")
	// network-online rather than network.target: a replica must reach its
	// primary, and a bind to a specific address fails before it exists.
	w("Wants=network-online.target")
	w("After=network-online.target")
	w("StartLimitIntervalSec=%s", unitStartLimitInterval)
	w("StartLimitBurst=%s", unitStartLimitBurst)
	w("")
	w("[Service]")
	// redis-server sends READY=1 itself when started with
	// "supervised systemd", after loading its data: "active" then means
	// "answers commands", which is what Start promises.
	w("Type=notify")
	w("ExecStart=%s", quoteExec(spec.ExecStart))
	if spec.NoRestart {
		w("Restart=no")
	} else {
		w("Restart=always")
	}
	w("RestartSec=%s", unitRestartSec)
	w("TimeoutStartSec=%s", unitTimeoutStartSec)
	w("TimeoutStopSec=%s", unitTimeoutStopSec)
	// mixed: SIGTERM goes to redis-server alone, which stops its own
	// BGSAVE/AOF-rewrite child and writes the final snapshot; anything
	// left over gets SIGKILL.
	w("KillMode=mixed")
	if spec.User != "" {
		w("User=%s", escapeSpecifiers(spec.User))
	}
	if spec.Group != "" {
		w("Group=%s", escapeSpecifiers(spec.Group))
	}
	w("WorkingDirectory=%s", escapeSpecifiers(spec.Dir))
	// Files redis creates (RDB, AOF, rewritten config) hold the dataset
	// and the password: owner only.
	w("UMask=0077")
	// maxclients 10000 plus redis's own descriptors; redis lowers maxclients
	// when it cannot raise the limit itself.
	w("LimitNOFILE=65535")
	w("")
	w("# Hardening: everything Debian's redis-server.service sets, and more.")
	w("NoNewPrivileges=yes")
	// The whole file system is read-only except the instance directory.
	w("ProtectSystem=strict")
	w("ReadWritePaths=%s", quoteWord(spec.Dir))
	// Every instance runs as the same user, so file modes cannot keep one
	// from reading another's redis.conf (its password) or data: the
	// directory that holds the instances is an empty read-only tmpfs
	// here, with only this instance's own directory mounted back into it.
	w("TemporaryFileSystem=%s", quoteWord(filepath.Dir(spec.Dir)+":ro"))
	w("BindPaths=%s", quoteWord(spec.Dir))
	w("ProtectHome=yes")
	w("PrivateTmp=yes")
	w("PrivateDevices=yes")
	// Redis never uses SysV IPC; an own IPC namespace hides the host's.
	w("PrivateIPC=yes")
	// Only root and the service user are mapped, so even a compromised
	// redis-server running as root holds no capability over the host.
	w("PrivateUsers=yes")
	// No capability at all: redis binds ports above 1024 and its files
	// belong to its own user.
	w("CapabilityBoundingSet=")
	w("AmbientCapabilities=")
	w("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX")
	w("MemoryDenyWriteExecute=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	// Other processes are invisible and only /proc/<pid> entries remain:
	// redis reads /proc/self/stat and /proc/self/smaps, nothing else.
	w("ProtectProc=invisible")
	w("ProcSubset=pid")
	w("RestrictRealtime=yes")
	w("RestrictNamespaces=yes")
	w("RestrictSUIDSGID=yes")
	w("LockPersonality=yes")
	w("RemoveIPC=yes")
	w("KeyringMode=private")
	w("SystemCallArchitectures=native")
	// @system-service keeps fork/clone for BGSAVE and BGREWRITEAOF; the
	// second line removes what Debian removes too.
	w("SystemCallFilter=@system-service")
	w("SystemCallFilter=~@privileged @resources")
	// EPERM instead of SIGSYS: a filtered call in a rare code path (for
	// example setrlimit when the limit is already high enough) must fail
	// softly instead of killing a primary that holds the only copy of the
	// data.
	w("SystemCallErrorNumber=EPERM")
	// Only redis-server and shared libraries may be executed: a compromised
	// instance cannot start a shell, and nothing written into its
	// directory can be executed.
	w("NoExecPaths=/")
	execPaths := []string{"/usr/lib", "/lib"}
	if len(spec.ExecStart) > 0 && spec.ExecStart[0] != "" {
		execPaths = append([]string{spec.ExecStart[0]}, execPaths...)
	}
	w("ExecPaths=%s", quoteWords(execPaths))
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.Bytes()
}

// oneLine replaces line breaks, which would end the directive early.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}

// escapeSpecifiers doubles %, which systemd expands as a specifier (%n, %h)
// in nearly every directive.
func escapeSpecifiers(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// quoteExec renders an ExecStart= command line. Beyond quoting, "$" becomes
// "$$" because systemd substitutes environment variables in ExecStart=, and
// "%" becomes "%%" for specifiers.
func quoteExec(args []string) string {
	words := make([]string, len(args))
	for i, a := range args {
		words[i] = quoteWord(strings.ReplaceAll(a, "$", "$$"))
	}
	return strings.Join(words, " ")
}

func quoteWords(ws []string) string {
	out := make([]string, len(ws))
	for i, s := range ws {
		out[i] = quoteWord(s)
	}
	return strings.Join(out, " ")
}

// quoteWord returns s as one word of a systemd command line or path list:
// bare when it only holds safe characters, otherwise in double quotes with
// C-style escapes, which systemd undoes (EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE).
// A bare ";" would separate commands, so it is quoted too.
func quoteWord(s string) string {
	s = escapeSpecifiers(s)
	if s != "" && s != ";" && !strings.ContainsFunc(s, needsQuote) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func needsQuote(r rune) bool {
	switch {
	case r <= ' ', r == 0x7f:
		return true
	case r == '"', r == '\'', r == '\\', r == ';':
		return true
	}
	return false
}
