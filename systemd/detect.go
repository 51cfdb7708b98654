package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// Supervisor kinds accepted by New.
const (
	KindAuto    = "auto"
	KindSystemd = "systemd"
	KindProcess = "process"
)

// Booted reports whether systemd is the init system, the same test as
// sd_booted(3): /run/systemd/system is a directory only when systemd is
// PID 1 (containers without systemd and plain chroots lack it).
func Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// New opens the supervisor of the given kind: "systemd" (units over D-Bus),
// "process" (child processes) or "auto", which picks systemd when it is PID
// 1 and otherwise falls back to child processes with a warning. unitDir is
// used by the systemd supervisor ("" for DefaultUnitDir), stateDir by the
// process supervisor.
func New(ctx context.Context, kind, unitDir, stateDir string, log *slog.Logger) (Supervisor, error) {
	if log == nil {
		log = slog.Default()
	}
	switch kind {
	case KindAuto, "":
		if Booted() {
			return NewDBus(ctx, unitDir, log)
		}
		log.Warn("systemd is not PID 1 on this host: redis-server instances run as child processes of the agent, without systemd's sandboxing, and do not start at boot unless the agent does; run the agent under systemd in production",
			"supervisor", KindProcess, "state_dir", stateDir)
		return NewProcess(stateDir, log)
	case KindSystemd:
		if !Booted() {
			return nil, fmt.Errorf("supervisor %q requested but systemd is not PID 1 on this host (no /run/systemd/system); use %q or %q", KindSystemd, KindProcess, KindAuto)
		}
		return NewDBus(ctx, unitDir, log)
	case KindProcess:
		return NewProcess(stateDir, log)
	}
	return nil, fmt.Errorf("unknown supervisor kind %q: use %q, %q or %q", kind, KindAuto, KindSystemd, KindProcess)
}
