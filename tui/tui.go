// Package tui is the terminal UI of redis-appliance (`redis-appliance
// tui`), built on bubbletea, bubbles and lipgloss.
//
// The root Model here routes messages to one package per component under
// components/ (cluster overview, databases, database detail, create form,
// confirmation, events), each of which returns its own concrete type from
// Update, as gh-dash does. They share a uictx.Context (size, styles, keys,
// clock, freshness). Everything the UI knows comes from the agent's API
// client, called only through package source, in commands: Update never
// blocks. Data is refreshed on a tick, and its age is always on screen, so
// stale data is never shown as live.
//
// The UI never writes logs to the terminal (they would tear the screen):
// diagnostics go to a file given with --log-file, or nowhere.
package tui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/redis-appliance/redis-appliance/tui/source"
	"github.com/redis-appliance/redis-appliance/tui/theme"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// Options configure Run.
type Options struct {
	// Refresh is how often the data is fetched; at least 100ms, 1s if zero.
	Refresh time.Duration
	// Endpoint names where the agent is, for messages (the socket path).
	Endpoint string
	// LogFile, if set, receives the UI's diagnostics (appended).
	LogFile string
}

// DefaultRefresh is how often the UI fetches the data unless told.
const DefaultRefresh = time.Second

// Run runs the UI on the terminal until the user quits, ctx ends, or the
// process gets SIGINT or SIGTERM.
func Run(ctx context.Context, a source.API, opts Options) error {
	if opts.Refresh == 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Refresh < 100*time.Millisecond {
		return fmt.Errorf("refresh interval %s is too short; use 100ms or more", opts.Refresh)
	}
	// The renderer reads the colour profile of the terminal and NO_COLOR
	// or CLICOLOR from the environment.
	uc := uictx.New(theme.New(lipgloss.NewRenderer(os.Stdout)), opts.Refresh)
	uc.Endpoint = opts.Endpoint
	uc.Now = time.Now()
	if opts.LogFile != "" {
		f, err := os.OpenFile(opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open the log file: %w", err)
		}
		defer f.Close()
		uc.Log = slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})).With("subsystem", "tui")
	}
	// SIGINT and SIGTERM end ctx, which ends the program and every call in
	// flight, and bubbletea restores the terminal. Its own signal handler
	// is off: when the signal has already ended the program it blocks
	// forever sending its quit message (bubbletea v1.3.10), and the
	// process never exits.
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	src := source.New(ctx, a, RefreshTimeout(opts.Refresh))
	p := tea.NewProgram(New(uc, src), tea.WithAltScreen(), tea.WithContext(ctx), tea.WithoutSignalHandler())
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		// Stopped by a signal through ctx: a normal way to end.
		return nil
	}
	return err
}

// RefreshTimeout bounds one refresh: long enough for a busy agent, short
// enough that an agent that stopped answering shows within seconds.
func RefreshTimeout(refresh time.Duration) time.Duration {
	return max(3*time.Second, refresh)
}

// StaleAfter is how old the data may be, with no error, before it is
// marked stale: three missed refreshes, and never less than 3s, so that
// one slow answer does not flash a warning.
func StaleAfter(refresh time.Duration) time.Duration {
	return max(3*refresh, 3*time.Second)
}
