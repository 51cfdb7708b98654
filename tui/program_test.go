package tui_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

// TestProgram runs the whole UI as bubbletea runs it (teatest: a real
// tea.Program on a virtual 80×24 terminal, its clock ticking, its
// commands on their goroutines) over the fake agent: it shows the data,
// creates a database from the form, sees it listed, deletes it by name,
// and quits.
func TestProgram(t *testing.T) {
	f := newFake(5)
	ctx := tuitest.Context(80, 24)
	ctx.DataAt, ctx.Refresh = time.Time{}, 100*time.Millisecond
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tm := teatest.NewTestModel(t, tui.New(ctx, source.New(cctx, f, time.Second)), teatest.WithInitialTermSize(80, 24))
	wait := func(what string) {
		t.Helper()
		teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(what)) },
			teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	}
	press := func(ks ...string) {
		for _, k := range ks {
			if msg := tuitest.Key(k); msg.Type != tea.KeyRunes {
				tm.Send(msg)
			} else {
				tm.Type(k)
			}
		}
	}

	wait("● live")
	press("2")
	wait("leaderboard")
	press("n")
	wait("NEW DATABASE")
	press("fresh", "tab", "48mb", "ctrl+s")
	wait("created fresh")
	press("D")
	wait("Type fresh and press enter")
	press("fresh", "enter")
	wait("deleted fresh")
	press("q")
	tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))

	f.mu.Lock()
	defer f.mu.Unlock()
	want := api.CreateDatabaseRequest{Name: "fresh", Memory: "48mb", Flavor: "aof", Version: "7.2"}
	if !slices.Equal(f.created, []api.CreateDatabaseRequest{want}) || !slices.Equal(f.deleted, []string{"fresh"}) {
		t.Fatalf("created %+v, deleted %v", f.created, f.deleted)
	}
	if f.lists < 3 {
		t.Fatalf("%d refreshes: the clock did not drive them", f.lists)
	}
}
