package tui_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/muesli/termenv"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/source"
	"github.com/redis-appliance/redis-appliance/tui/theme"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// newRoot returns the root model at w×h over f, before any data.
func newRoot(tb testing.TB, f *fakeAPI, w, h int) tui.Model {
	tb.Helper()
	ctx := tuitest.Context(w, h)
	ctx.DataAt = time.Time{}
	m := tui.New(ctx, source.New(context.Background(), f, time.Second))
	return update(m, tea.WindowSizeMsg{Width: w, Height: h})
}

func update(m tui.Model, msgs ...tea.Msg) tui.Model {
	for _, msg := range msgs {
		next, _ := m.Update(msg)
		m = next.(tui.Model)
	}
	return m
}

// keys sends keys: names such as "enter", or text typed one key at a time.
func keys(m tui.Model, ks ...string) (tui.Model, []tea.Cmd) {
	var cmds []tea.Cmd
	for _, k := range ks {
		in := []tea.KeyMsg{tuitest.Key(k)}
		if len(k) > 1 && tuitest.Key(k).Type == tea.KeyRunes {
			in = tuitest.Type(k)
		}
		for _, key := range in {
			next, cmd := m.Update(key)
			m = next.(tui.Model)
			cmds = append(cmds, cmd)
		}
	}
	return m, cmds
}

// run executes commands as bubbletea would and feeds their messages back
// to m, until none is left. A command that does not answer within a
// second is the clock's tick, left out so the test stays deterministic.
func run(t *testing.T, m tui.Model, cmds ...tea.Cmd) tui.Model {
	t.Helper()
	for len(cmds) > 0 {
		c := cmds[0]
		cmds = cmds[1:]
		if c == nil {
			continue
		}
		ch := make(chan tea.Msg, 1)
		go func() { ch <- c() }()
		var msg tea.Msg
		select {
		case msg = <-ch:
		case <-time.After(time.Second):
			continue
		}
		switch msg := msg.(type) {
		case tea.BatchMsg:
			cmds = append(cmds, msg...)
		case tui.TickMsg, nil:
		default:
			next, cmd := m.Update(msg)
			m = next.(tui.Model)
			cmds = append(cmds, cmd)
		}
	}
	return m
}

// refreshed is m after a full refresh from f that started at the test
// clock's Now.
func refreshed(t *testing.T, m tui.Model, f *fakeAPI, at time.Time) tui.Model {
	t.Helper()
	msg := source.New(context.Background(), f, time.Second).Refresh()().(source.SnapshotMsg)
	msg.Started, msg.At = at, at.Add(20*time.Millisecond)
	return update(m, msg)
}

// live is the root model after its first refresh and versions.
func live(t *testing.T, f *fakeAPI, w, h int) tui.Model {
	m := refreshed(t, newRoot(t, f, w, h), f, tuitest.Now)
	return update(m, source.VersionsMsg{Versions: tuitest.Versions()})
}

// tick sends the clock's tick at and runs what it starts.
func tick(t *testing.T, m tui.Model, at time.Time) tui.Model {
	t.Helper()
	next, cmd := m.Update(tui.TickMsg(at))
	return run(t, next.(tui.Model), cmd)
}

// checkFrame fails unless the frame is exactly the terminal's size: a
// longer line would wrap and a longer frame scroll, garbling the screen.
func checkFrame(t *testing.T, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) != h {
		t.Fatalf("frame has %d lines, terminal %d:\n%s", len(lines), h, v)
	}
	for i, l := range lines {
		if layout.Width(l) > w {
			t.Fatalf("line %d is %d wide, terminal %d: %q", i, layout.Width(l), w, l)
		}
	}
}

// TestScreens are the main screens at 80×24 over a three-node cluster
// with 30 databases; they are also the captures in the README.
func TestScreens(t *testing.T) {
	f := newFake(30)
	for _, s := range []struct {
		name string
		keys []string
	}{
		{"cluster", nil},
		{"databases", []string{"2"}},
		{"databases-end", []string{"2", "G"}},
		{"databases-by-ops", []string{"2", "s", "s", "s", "home"}},
		{"detail", []string{"2", "G", "enter", "down"}},
		{"create", []string{"2", "n", "orders-eu", "tab", "1gb", "tab"}},
		{"delete", []string{"2", "D", "cac"}},
		{"restart", []string{"2", "down", "down", "R"}},
		{"failover", []string{"2", "G", "F", "down"}},
		{"replica", []string{"2", "/", "orders", "enter", "L", "orders-eu"}},
		{"events", []string{"3"}},
		{"keys", []string{"?"}},
	} {
		t.Run(s.name, func(t *testing.T) {
			m, cmds := keys(live(t, f, 80, 24), s.keys...)
			m = run(t, m, cmds...)
			v := m.View()
			checkFrame(t, v, 80, 24)
			tuitest.Golden(t, v)
		})
	}
}

// TestResize: the layout follows the terminal: more columns and rows show
// more, and every frame fits the new size.
func TestResize(t *testing.T) {
	m, _ := keys(live(t, newFake(200), 80, 24), "2")
	for _, size := range [][2]int{{120, 40}, {80, 24}, {60, 16}, {200, 50}} {
		m = update(m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		checkFrame(t, m.View(), size[0], size[1])
	}
	m = update(m, tea.WindowSizeMsg{Width: 120, Height: 30})
	tuitest.Golden(t, m.View())
}

// TestTooSmall says what size is needed instead of drawing a broken frame.
func TestTooSmall(t *testing.T) {
	m := update(live(t, newFake(3), 80, 24), tea.WindowSizeMsg{Width: 50, Height: 12})
	v := m.View()
	checkFrame(t, v, 50, 12)
	tuitest.Golden(t, v)
}

// TestConnecting: before the first answer nothing is shown as data, not
// even an empty list.
func TestConnecting(t *testing.T) {
	m, _ := keys(newRoot(t, newFake(3), 80, 24), "2")
	v := m.View()
	if !strings.Contains(v, "○ connecting") || !strings.Contains(v, "Waiting for the agent at /run/redis-appliance/api.sock") || strings.Contains(v, "No databases") {
		t.Fatalf("before any data:\n%s", v)
	}
}

// TestUnreachable: an agent that cannot be reached gets a banner, and the
// UI keeps retrying (the next tick refreshes again).
func TestUnreachable(t *testing.T) {
	f := newFake(3)
	f.down = errors.New("no agent is listening on /run/redis-appliance/api.sock: start it (make run, or systemctl start redis-appliance) or pass --socket")
	m := refreshed(t, newRoot(t, f, 80, 24), f, tuitest.Now)
	checkFrame(t, m.View(), 80, 24)
	tuitest.Golden(t, m.View())
	m = refreshed(t, update(m, tui.TickMsg(tuitest.Now.Add(time.Second))), f, tuitest.Now.Add(time.Second))
	if f.lists != 2 {
		t.Fatalf("%d refreshes, want a retry", f.lists)
	}
	f.set(func(f *fakeAPI) { f.down = nil })
	m = refreshed(t, update(m, tui.TickMsg(tuitest.Now.Add(2*time.Second))), f, tuitest.Now.Add(2*time.Second))
	if v := m.View(); !strings.Contains(v, "● live") || strings.Contains(v, "!!") {
		t.Fatalf("after the agent came back:\n%s", v)
	}
}

// TestNeverStaleAsLive: data the agent stopped confirming is marked stale
// with its age at once on an error, and after three missed refreshes when
// the agent just does not answer; it is live again with the next answer.
func TestNeverStaleAsLive(t *testing.T) {
	f := newFake(5)
	m, _ := keys(live(t, f, 80, 24), "2")
	if v := m.View(); !strings.Contains(v, "● live updated 0.0s ago") {
		t.Fatalf("fresh data not live:\n%s", v)
	}
	// No answer (the refresh hangs): live for 3s, then stale.
	m = update(m, tui.TickMsg(tuitest.Now.Add(2900*time.Millisecond)))
	if v := m.View(); !strings.Contains(v, "● live updated 2.9s ago") {
		t.Fatalf("at 2.9s:\n%s", v)
	}
	m = update(m, tui.TickMsg(tuitest.Now.Add(4*time.Second)))
	checkFrame(t, m.View(), 80, 24)
	tuitest.Golden(t, m.View())

	// An error: stale at once, with the error.
	m = live(t, f, 80, 24)
	f.set(func(f *fakeAPI) { f.down = errors.New("the agent did not answer within 3s") })
	m = refreshed(t, update(m, tui.TickMsg(tuitest.Now.Add(time.Second))), f, tuitest.Now.Add(time.Second))
	if v := m.View(); !strings.Contains(v, "○ STALE data from 1.0s ago") || !strings.Contains(v, "did not answer within 3s") {
		t.Fatalf("after a failed refresh:\n%s", v)
	}
}

// TestNoLeader: a node that lost its leader keeps showing its last data,
// marked stale, under a banner that says why.
func TestNoLeader(t *testing.T) {
	f := newFake(5)
	m := live(t, f, 80, 24)
	f.set(func(f *fakeAPI) {
		f.status = api.ClusterStatus{Node: "n1", RaftState: "candidate", Voters: 3, LastIndex: 1050, AppliedIndex: 1050, LastContactSeconds: 7.5}
	})
	// Without a leader the agent cannot answer for the nodes or databases.
	nl := &fakeAPI{status: f.status, down: nil}
	msg := source.New(context.Background(), nl, time.Second).Refresh()().(source.SnapshotMsg)
	msg.NodesErr = errors.New("no leader: the cluster has no leader right now; retry in a few seconds")
	msg.DatabasesErr = msg.NodesErr
	msg.Started, msg.At = tuitest.Now.Add(8*time.Second), tuitest.Now.Add(8*time.Second)
	m = update(m, tui.TickMsg(tuitest.Now.Add(8*time.Second)), msg)
	checkFrame(t, m.View(), 80, 24)
	tuitest.Golden(t, m.View())
}

// TestCreateFromForm: the form's request reaches the agent, and on success
// the form closes on the databases with the new one under the cursor.
func TestCreateFromForm(t *testing.T) {
	f := newFake(5)
	m, cmds := keys(live(t, f, 80, 24), "n", "fresh", "enter", "48mb", "enter", "right", "right", "enter", "enter", "enter", "enter", "enter")
	m = run(t, m, cmds...)
	want := api.CreateDatabaseRequest{Name: "fresh", Memory: "48mb", Flavor: "nordb", Version: "7.2"}
	if !slices.Equal(f.created, []api.CreateDatabaseRequest{want}) {
		t.Fatalf("created %+v, want %+v", f.created, want)
	}
	v := m.View()
	if !strings.Contains(v, "[2 Databases 6]") || !strings.Contains(v, "▸ fresh") || !strings.Contains(v, "✓ created fresh on n1") {
		t.Fatalf("after create:\n%s", v)
	}
}

// TestCreateRefused: the agent's check is not the last word: a create it
// accepted when asked, and refuses when sent (someone took the name in
// between), shows the create's refusal in the form, which stays open with
// what was typed.
func TestCreateRefused(t *testing.T) {
	f := newFake(5)
	m := act(t, live(t, f, 80, 24), "n", "fresh", "tab", "32mb", "tab")
	seeing(t, m, "✓ on n1")
	f.set(func(f *fakeAPI) {
		f.dbs = append(f.dbs, tuitest.Database("fresh", "7.2", "aof", "running", "n1", 1<<25, 0))
	})
	m = act(t, m, "ctrl+s")
	if len(f.created) != 1 {
		t.Fatalf("created %+v, want the create sent on the agent's earlier yes", f.created)
	}
	v := seeing(t, m, `The agent refused: database "fresh" already exists`, "NEW DATABASE", "▸ Flavor")
	if strings.Contains(v, "✓") {
		t.Fatalf("the check's yes still shows beside the create's no:\n%s", v)
	}
}

// TestDeleteNeedsTheName: D asks for the name; only the exact name
// deletes, and the list no longer shows the database.
func TestDeleteNeedsTheName(t *testing.T) {
	f := newFake(5)
	m, cmds := keys(live(t, f, 80, 24), "2", "D", "cach", "enter")
	m = run(t, m, cmds...)
	if len(f.deleted) != 0 {
		t.Fatalf("deleted %v with a wrong name", f.deleted)
	}
	m, cmds = keys(m, "e", "enter")
	m = run(t, m, cmds...)
	if !slices.Equal(f.deleted, []string{"cache"}) {
		t.Fatalf("deleted %v", f.deleted)
	}
	if v := m.View(); strings.Contains(v, " cache ") || !strings.Contains(v, "✓ deleted cache") {
		t.Fatalf("after delete:\n%s", v)
	}
}

// TestRestartAndDrain: both ask first; n backs out; y goes on; an error
// from the agent is shown in full until dismissed.
func TestRestartAndDrain(t *testing.T) {
	f := newFake(5)
	m, cmds := keys(live(t, f, 80, 24), "2", "R", "n", "R", "y")
	m = run(t, m, cmds...)
	if !slices.Equal(f.restarts, []string{"cache"}) {
		t.Fatalf("restarted %v", f.restarts)
	}
	m, cmds = keys(m, "1", "d", "y")
	m = run(t, m, cmds...)
	v := m.View()
	checkFrame(t, v, 80, 24)
	if !slices.Equal(f.drained, []string{"n1"}) || !strings.Contains(v, "✗ drain n1: node n1 is the only node that takes databases; add a node") {
		t.Fatalf("drained %v:\n%s", f.drained, v)
	}
	m, _ = keys(m, "esc")
	if strings.Contains(m.View(), "✗ drain") {
		t.Fatal("esc did not dismiss the error")
	}
}

// TestFastTyping: keys that arrive together ("2n" in one read, as in a
// terminal under load) act one by one.
func TestFastTyping(t *testing.T) {
	m := update(live(t, newFake(5), 80, 24), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("2nabc")})
	if v := m.View(); !strings.Contains(v, "[2 Databases 5]") || !strings.Contains(v, "▸ Name     abc") {
		t.Fatalf("view:\n%s", v)
	}
}

// TestRefreshesDoNotPileUp: a tick while a refresh is in flight starts no
// other; the next tick after its answer does.
func TestRefreshesDoNotPileUp(t *testing.T) {
	f := newFake(5)
	m := newRoot(t, f, 80, 24) // Init's refresh is in flight
	m = tick(t, m, tuitest.Now)
	if f.lists != 0 {
		t.Fatalf("a tick during a refresh refreshed (%d)", f.lists)
	}
	m = refreshed(t, m, f, tuitest.Now)
	tick(t, m, tuitest.Now.Add(time.Second))
	if f.lists != 2 {
		t.Fatalf("%d lists, want the first and the tick's", f.lists)
	}
}

// TestColoursDegrade: with NO_COLOR (or a terminal without colours) the
// frame has no escape sequence at all and stays readable; with colours it
// has them.
func TestColoursDegrade(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want termenv.Profile
	}{
		{map[string]string{"TERM": "xterm-256color"}, termenv.ANSI256},
		{map[string]string{"TERM": "xterm-256color", "NO_COLOR": "1"}, termenv.Ascii},
		{map[string]string{"TERM": "dumb"}, termenv.Ascii},
	} {
		r := tuitest.RendererFor(c.env)
		if p := r.ColorProfile(); p != c.want {
			t.Errorf("%v: profile %v, want %v", c.env, p, c.want)
		}
		ctx := uictx.New(theme.New(r), time.Second)
		ctx.Now, ctx.Width, ctx.Height = tuitest.Now, 80, 24
		f := newFake(5)
		m := update(tui.New(ctx, source.New(context.Background(), f, time.Second)), tea.WindowSizeMsg{Width: 80, Height: 24})
		m, _ = keys(refreshed(t, m, f, tuitest.Now), "2")
		v := m.View()
		if hasEsc := strings.Contains(v, "\x1b["); hasEsc != (c.want != termenv.Ascii) {
			t.Errorf("%v: escape sequences %v", c.env, hasEsc)
		}
		if !strings.Contains(layout.Plain(v), "▸ cache") {
			t.Errorf("%v: the cursor is not marked:\n%s", c.env, v)
		}
	}
}

func ExampleStaleAfter() {
	fmt.Println(tui.StaleAfter(time.Second), tui.StaleAfter(5*time.Second))
	// Output: 3s 15s
}
