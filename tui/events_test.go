package tui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

// TestEventsEveryRefresh: each refresh, the first and every tick's, reads
// the events with the rest, and what the agent recorded since shows up.
func TestEventsEveryRefresh(t *testing.T) {
	f := newFake(5)
	f.events = nil
	m, _ := keys(live(t, f, 80, 24), "3")
	if v := m.View(); !strings.Contains(v, "EVENTS 0") || !strings.Contains(v, "No events yet.") {
		t.Fatalf("no events:\n%s", v)
	}
	f.set(func(f *fakeAPI) { f.events = tuitest.Events() })
	m = refreshed(t, update(m, tui.TickMsg(tuitest.Now.Add(time.Second))), f, tuitest.Now.Add(time.Second))
	if f.eventReads != 2 || f.lists != 2 {
		t.Fatalf("%d reads of the events in %d refreshes", f.eventReads, f.lists)
	}
	if v := m.View(); !strings.Contains(v, "EVENTS 9") || !strings.Contains(v, "▸ 11:59:17     failover-refused") {
		t.Fatalf("after the next refresh:\n%s", v)
	}
}

// TestEventsUnreadable: an agent that cannot list the events (an older
// one, say) gets its answer inline in the events view, while the cluster
// stays live: no banner, no stale marker.
func TestEventsUnreadable(t *testing.T) {
	f := newFake(5)
	f.eventsErr = &api.Error{Status: 404, Message: "no route GET /v1/events: the agent is older than this UI; upgrade it"}
	m, _ := keys(live(t, f, 80, 24), "3")
	v := m.View()
	checkFrame(t, v, 80, 24)
	tuitest.Golden(t, v)
	if !strings.Contains(v, "● live") || strings.Contains(v, "!!") || !strings.Contains(v, "cannot read the events: no route GET /v1/events") {
		t.Fatalf("view:\n%s", v)
	}
	// The databases are unaffected.
	m, _ = keys(m, "2")
	if v := m.View(); !strings.Contains(v, "● live") || !strings.Contains(v, "▸ cache") {
		t.Fatalf("databases:\n%s", v)
	}
}

// TestEventsStaleWhenTheAgentStops: events read before the agent stopped
// answering stay on screen with their age and the error, never as live.
func TestEventsStaleWhenTheAgentStops(t *testing.T) {
	f := newFake(5)
	m, _ := keys(live(t, f, 80, 24), "3")
	f.set(func(f *fakeAPI) { f.down = context.DeadlineExceeded })
	m = refreshed(t, update(m, tui.TickMsg(tuitest.Now.Add(2*time.Second))), f, tuitest.Now.Add(2*time.Second))
	v := m.View()
	checkFrame(t, v, 80, 24)
	if !strings.Contains(v, "○ STALE") || !strings.Contains(v, "as of 2.0s ago") || !strings.Contains(v, "cannot read the events") ||
		!strings.Contains(v, "failover-refused") {
		t.Fatalf("view:\n%s", v)
	}
}

// TestEventsWaiting: before the first answer the events view waits, as
// the others do, rather than say nothing happened.
func TestEventsWaiting(t *testing.T) {
	m, _ := keys(newRoot(t, newFake(3), 80, 24), "3")
	if v := m.View(); !strings.Contains(v, "Waiting for the agent") || strings.Contains(v, "No events") {
		t.Fatalf("view:\n%s", v)
	}
}

// TestEventsFilterHasTheKeyboard: while the filter is typed, keys are
// text (n does not open the form, 2 does not switch views); esc clears
// it, and esc again dismisses a message as in every view.
func TestEventsFilterHasTheKeyboard(t *testing.T) {
	m, _ := keys(live(t, newFake(5), 80, 24), "3", "/", "n2")
	v := m.View()
	if !strings.Contains(v, "[3 Events]") || !strings.Contains(v, "EVENTS 1 of 9") || !strings.Contains(v, "/n2") ||
		!strings.Contains(v, "enter keep the filter") {
		t.Fatalf("typing the filter:\n%s", v)
	}
	m, _ = keys(m, "enter", "esc")
	if v := m.View(); !strings.Contains(v, "EVENTS 9 ") || strings.Contains(v, "/n2") {
		t.Fatalf("esc did not clear the filter:\n%s", v)
	}
}

// TestEventsSelectionSurvivesRefreshes: the operator reads an older event
// while the agent records new ones; refresh after refresh, the cursor
// stays on it.
func TestEventsSelectionSurvivesRefreshes(t *testing.T) {
	all := tuitest.ManyEvents(1020)
	f := newFake(5)
	f.events = all[:1000]
	m, _ := keys(live(t, f, 80, 24), "3", "j", "j", "j", "j")
	want := strings.Fields(lineWith(m.View(), "▸ "))
	for i := 1; i <= 4; i++ {
		f.set(func(f *fakeAPI) { f.events = all[5*i : 1000+5*i] })
		at := tuitest.Now.Add(time.Duration(i) * time.Second)
		m = refreshed(t, update(m, tui.TickMsg(at)), f, at)
		if got := strings.Fields(lineWith(m.View(), "▸ ")); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("refresh %d: cursor on %v, was on %v:\n%s", i, got, want, m.View())
		}
	}
	if v := m.View(); !strings.Contains(v, "↑ 20 new") {
		t.Fatalf("new events not counted:\n%s", v)
	}
}

// TestDetailListsTheDatabasesEvents: the detail of a database lists its
// newest events, and follows new ones.
func TestDetailListsTheDatabasesEvents(t *testing.T) {
	f := newFake(5)
	f.events = nil
	m, _ := keys(live(t, f, 80, 24), "2", "/", "sessions", "enter", "enter")
	if v := m.View(); strings.Contains(v, "events ") {
		t.Fatalf("events line with no event:\n%s", v)
	}
	f.set(func(f *fakeAPI) { f.events = tuitest.Events() })
	m = refreshed(t, update(m, tui.TickMsg(tuitest.Now.Add(time.Second))), f, tuitest.Now.Add(time.Second))
	v := m.View()
	checkFrame(t, v, 80, 24)
	if !strings.Contains(lineWith(v, "events "), "promoted") || strings.Contains(v, "orders") {
		t.Fatalf("sessions' events:\n%s", v)
	}
}

func lineWith(v, s string) string {
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// BenchmarkRefresh1000Events is a refresh's cost on the events view with
// the most events the cluster keeps: taking them in (filter, keep the
// cursor) and drawing the frame.
func BenchmarkRefresh1000Events(b *testing.B) {
	f := newFake(200)
	f.events = tuitest.ManyEvents(1000)
	ctx := tuitest.Context(80, 24)
	m := update(tui.New(ctx, source.New(context.Background(), f, time.Second)))
	snap := source.New(context.Background(), f, time.Second).Refresh()().(source.SnapshotMsg)
	snap.Started, snap.At = tuitest.Now, tuitest.Now
	m = update(m, snap, tuitest.Key("3"), tuitest.Key("G"))
	b.ReportAllocs()
	for b.Loop() {
		next, _ := m.Update(snap)
		_ = next.View()
	}
}
