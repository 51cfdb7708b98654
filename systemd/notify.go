package systemd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// The helpers below are for the agent's own unit (Type=notify with
// WatchdogSec=). Each is a no-op returning nil when NOTIFY_SOCKET is unset,
// as when the agent runs in a terminal or under the process supervisor's
// own parent.

// Ready tells systemd the agent has finished starting.
func Ready() error { return notify(daemon.SdNotifyReady) }

// Stopping tells systemd the agent is shutting down, so a slow shutdown is
// not mistaken for a hang.
func Stopping() error { return notify(daemon.SdNotifyStopping) }

// Status sets the free-form status line systemctl status shows.
func Status(s string) error {
	// A newline would start a new KEY=VALUE assignment.
	return notify("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

func notify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("sd_notify %q to %s: %w", state, os.Getenv("NOTIFY_SOCKET"), err)
	}
	return nil
}

// WatchdogLoop pings systemd's watchdog at half of WATCHDOG_USEC until ctx
// ends, so that one late ping never kills the agent. It returns nil at once
// when the watchdog is not enabled for this process, and an error only for
// settings it cannot read. A failed ping is retried at the next tick rather
// than ending the loop: giving up would let the watchdog kill a healthy
// agent. Run it from the agent's main loop, so that a stuck agent stops
// pinging.
func WatchdogLoop(ctx context.Context) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return fmt.Errorf("read watchdog settings: %w", err)
	}
	if interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		_ = notify(daemon.SdNotifyWatchdog)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}
