package events_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/muesli/termenv"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/events"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/theme"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// newView returns the view filling ctx's screen, with evs read at Now.
func newView(ctx *uictx.Context, evs []api.Event) events.Model {
	m := events.New(ctx)
	m.SetSize(ctx.Width, ctx.Height)
	m.SetEvents(evs, tuitest.Now)
	return m
}

func press(m events.Model, keys ...string) events.Model {
	for _, k := range keys {
		m, _ = m.Update(tuitest.Key(k))
	}
	return m
}

func typed(m events.Model, s string) events.Model {
	for _, k := range tuitest.Type(s) {
		m, _ = m.Update(k)
	}
	return m
}

// checkFits fails unless the view is exactly w×h.
func checkFits(t *testing.T, v string, w, h int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) != h {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), h, v)
	}
	for _, l := range lines {
		if layout.Width(l) > w {
			t.Fatalf("line wider than %d: %q", w, l)
		}
	}
}

// line returns the line of v that contains s.
func line(v, s string) string {
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestEmpty says that nothing happened yet, and what will be listed.
func TestEmpty(t *testing.T) {
	m := newView(tuitest.Context(80, 8), nil)
	tuitest.Golden(t, m.View())
}

// TestView lists the events of every kind newest first, at 80 columns
// (the content of an 80×24 terminal): the time of day for today's, the
// date for yesterday's, each message cut with "…" and the newest one, under
// the cursor, whole under the list.
func TestView(t *testing.T) {
	m := newView(tuitest.Context(80, 20), tuitest.Events())
	v := m.View()
	checkFits(t, v, 80, 20)
	tuitest.Golden(t, v)
	if e, _ := m.Selected(); e.Kind != "failover-refused" {
		t.Fatalf("selected %+v, want the newest", e)
	}
	if !strings.Contains(v, "EVENTS 9 · newest first") || !strings.Contains(line(v, "switchover"), "05-31 16:42") {
		t.Fatalf("view:\n%s", v)
	}
}

// TestKindsColouredBySeverity: failures and refusals are red, what the
// cluster did about them yellow, returns to normal and planned changes
// cyan; without colours the kind is the same word and nothing else
// changes.
func TestKindsColouredBySeverity(t *testing.T) {
	st := theme.New(tuitest.Renderer(termenv.ANSI))
	for kind, want := range map[string]string{
		"detected": "31", "failover-refused": "31", "node-lost": "31",
		"promoted": "33", "fenced": "33",
		"unfenced": "36", "node-back": "36", "switchover": "36", "promote": "36",
	} {
		if got := st.Event(kind).Render(kind); !strings.Contains(got, "\x1b["+want+"m"+kind) {
			t.Errorf("%s: %q, want colour %s", kind, got, want)
		}
	}
	if got := st.Event("something-new").Render("x"); got != "x" {
		t.Errorf("an unknown kind is styled: %q", got)
	}

	ctx := tuitest.Context(80, 20)
	ctx.Styles = st
	v := newView(ctx, tuitest.Events()).View()
	if !strings.Contains(line(v, "node n1 reports again"), "\x1b[36mnode-back") {
		t.Errorf("node-back not cyan: %q", line(v, "node n1 reports again"))
	}
	plain := newView(tuitest.Context(80, 20), tuitest.Events()).View()
	if strings.Contains(plain, "\x1b[") || layout.Plain(v) != plain {
		t.Errorf("without colours the view differs by more than its colours:\n%s\n%s", layout.Plain(v), plain)
	}
}

// TestFilter: `/` then typing narrows the list live to the events whose
// kind, database, node or message match every word; enter keeps the
// filter, esc clears it and the cursor stays on its event.
func TestFilter(t *testing.T) {
	m := press(newView(tuitest.Context(80, 20), tuitest.Events()), "/")
	if !m.Capturing() {
		t.Fatal("/ did not focus the filter")
	}
	m = typed(m, "sessions")
	tuitest.Golden(t, m.View())
	m = press(m, "enter", "down")
	if m.Capturing() || m.Filter() != "sessions" {
		t.Fatalf("after enter: capturing %v, filter %q", m.Capturing(), m.Filter())
	}
	if e, _ := m.Selected(); e.Kind != "detected" {
		t.Fatalf("second of sessions' events: %+v", e)
	}
	m = press(m, "esc")
	if e, _ := m.Selected(); m.Filter() != "" || e.Kind != "detected" || !strings.Contains(m.View(), "EVENTS 9 ") {
		t.Fatalf("esc: filter %q, selected %+v:\n%s", m.Filter(), e, m.View())
	}
	for filter, want := range map[string]int{
		"fence":           2, // the kind: fenced and unfenced
		"orders":          1, // the database
		"n1":              6, // the node, and messages that name it
		"BEHIND max_lag":  1, // words of the message, any case
		"node-lost n3":    1,
		"no-such-thing-x": 0,
	} {
		m := press(typed(press(newView(tuitest.Context(80, 20), tuitest.Events()), "/"), filter), "enter")
		v := m.View()
		if !strings.Contains(v, fmt.Sprintf("EVENTS %d of 9 ", want)) {
			t.Errorf("%q: want %d rows:\n%s", filter, want, v)
		}
		if want == 0 && !strings.Contains(v, `No event matches "no-such-thing-x". Press esc to clear the filter.`) {
			t.Errorf("no match:\n%s", v)
		}
	}
}

// TestNarrow: at 60 columns the node and then the database give way to
// the message; every line fits, and the line under the list still names
// both.
func TestNarrow(t *testing.T) {
	m := newView(tuitest.Context(60, 12), tuitest.Events())
	v := m.View()
	checkFits(t, v, 60, 12)
	tuitest.Golden(t, v)
	if !strings.Contains(v, "orders") {
		t.Fatalf("the selected event's database is not on screen:\n%s", v)
	}
}

// TestScroll1000: the most events the cluster keeps scroll page by page,
// the title saying which rows are on screen, and end reaches the oldest.
func TestScroll1000(t *testing.T) {
	m := newView(tuitest.Context(80, 20), tuitest.ManyEvents(1000))
	m = press(m, "pgdown", "pgdown", "down")
	v := m.View()
	checkFits(t, v, 80, 20)
	tuitest.Golden(t, v)
	m = press(m, "end")
	if e, _ := m.Selected(); !strings.HasPrefix(e.Message, "event 0:") {
		t.Fatalf("end selected %q, want the oldest", e.Message)
	}
	if v := m.View(); !strings.Contains(v, "of 1000") || !strings.Contains(v, "▸ 11:43:20     node-lost") || !strings.Contains(v, "event 0: node-lost on n1") {
		t.Fatalf("at the end:\n%s", v)
	}
}

// TestError: an events read that fails before any says so inline, and
// lists nothing (an empty list would say nothing happened); one that
// fails later keeps the events on screen, says how old they are and why,
// and draws their kinds without the colours of live data.
func TestError(t *testing.T) {
	ctx := tuitest.Context(80, 14)
	m := events.New(ctx)
	m.SetSize(80, 14)
	m.SetError(errors.New("no route GET /v1/events: the agent is older than this UI; upgrade it"))
	v := m.View()
	checkFits(t, v, 80, 14)
	if !strings.Contains(v, "cannot read the events: no route GET /v1/events") || strings.Contains(v, "No events yet") {
		t.Fatalf("first read failed:\n%s", v)
	}

	ctx.Styles = theme.New(tuitest.Renderer(termenv.ANSI))
	m = newView(ctx, tuitest.Events())
	ctx.Now = tuitest.Now.Add(7 * time.Second)
	m.SetError(errors.New("the agent did not answer within 3s"))
	v = m.View()
	checkFits(t, v, 80, 14)
	if strings.Contains(v, "\x1b[31mdetected") || !strings.Contains(v, "\x1b[31mcannot read the events") {
		t.Fatalf("stale kinds coloured, or the error not:\n%q", v)
	}
	tuitest.Golden(t, layout.Plain(v))

	// The next read that answers clears it.
	m.SetEvents(tuitest.Events(), ctx.Now)
	if v := m.View(); strings.Contains(v, "cannot read") || strings.Contains(v, "as of") {
		t.Fatalf("after a good read:\n%s", v)
	}
}

// TestNewEventsKeepSelection: while the operator reads an older event, new
// ones (and the oldest dropped, the cluster keeping 1000) do not move the
// cursor off it, nor the rows on screen; the title counts them, and going
// back to the top shows them and clears the count. On the newest event,
// the view follows the feed.
func TestNewEventsKeepSelection(t *testing.T) {
	all := tuitest.ManyEvents(1010)
	m := newView(tuitest.Context(80, 20), all[:1000])
	m = press(m, "pgdown", "down", "down")
	before, _ := m.Selected()
	list := func(v string) string {
		lines := strings.Split(v, "\n")
		return strings.Join(lines[1:], "\n")
	}
	was := m.View()

	m.SetEvents(all[5:1005], tuitest.Now.Add(time.Second))
	if after, _ := m.Selected(); after != before {
		t.Fatalf("cursor moved from %q to %q", before.Message, after.Message)
	}
	v := m.View()
	if list(v) != list(was) {
		t.Fatalf("the rows moved:\n%s\nwas:\n%s", v, was)
	}
	if m.NewAbove() != 5 || !strings.Contains(strings.Split(v, "\n")[0], "↑ 5 new") {
		t.Fatalf("new events not counted (%d):\n%s", m.NewAbove(), v)
	}
	tuitest.Golden(t, v)

	// With a filter too.
	m = press(m, "/")
	m = press(typed(m, "sessions"), "enter", "down", "down", "down")
	before, _ = m.Selected()
	m.SetEvents(all[10:1010], tuitest.Now.Add(2*time.Second))
	if after, _ := m.Selected(); after != before {
		t.Fatalf("filtered: cursor moved from %q to %q", before.Message, after.Message)
	}
	m = press(m, "esc", "home")
	if m.NewAbove() != 0 || strings.Contains(m.View(), "↑") {
		t.Fatalf("at the top, still counted (%d):\n%s", m.NewAbove(), m.View())
	}

	// On the newest, the next newest takes its place.
	m = newView(tuitest.Context(80, 20), all[:1000])
	m.SetEvents(all[1:1001], tuitest.Now.Add(time.Second))
	if e, _ := m.Selected(); e != all[1000] {
		t.Fatalf("at the top, selected %q, want the newest", e.Message)
	}

	// On the oldest, dropped: the oldest that is left.
	m = press(m, "end")
	m.SetEvents(all[3:1003], tuitest.Now.Add(2*time.Second))
	if e, _ := m.Selected(); e != all[3] {
		t.Fatalf("after the selected event was dropped: %q", e.Message)
	}
}

// TestTime: today's events show the time of day, older ones the date;
// always in UTC.
func TestTime(t *testing.T) {
	now := tuitest.Now
	cet := time.FixedZone("CET", 3600)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{now.Add(-time.Minute), "11:59:00"},
		{now.Add(-12 * time.Hour).In(cet), "00:00:00"},
		{now.Add(-12*time.Hour - time.Second), "05-31 23:59"},
	} {
		if got := events.Time(c.at, now); got != c.want {
			t.Errorf("Time(%v) = %q, want %q", c.at, got, c.want)
		}
	}
}
