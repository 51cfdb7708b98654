package dblist_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/tui/components/dblist"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

func newList(ctx *uictx.Context, n int) dblist.Model {
	m := dblist.New(ctx)
	m.SetSize(ctx.Width, ctx.Height)
	m.SetDatabases(tuitest.Databases(n))
	return m
}

func press(m dblist.Model, keys ...string) dblist.Model {
	for _, k := range keys {
		m, _ = m.Update(tuitest.Key(k))
	}
	return m
}

// TestView is the list as it opens at 80 columns, sorted by name, the
// cursor on the first row: version and flavor give way to the replicas
// and what each database follows.
func TestView(t *testing.T) {
	m := newList(tuitest.Context(80, 18), 12)
	tuitest.Golden(t, m.View())
}

// TestNarrow is the same list at 60 columns: flavor, version, replicas
// and node go, in that order; name, plan, what it follows, state and
// memory stay.
func TestNarrow(t *testing.T) {
	m := newList(tuitest.Context(60, 12), 8)
	tuitest.Golden(t, m.View())
}

// TestFilter: `/` then typing narrows the list live to the databases whose
// name, state, node, version or flavor match every word; enter keeps the
// filter, esc clears it.
func TestFilter(t *testing.T) {
	m := newList(tuitest.Context(80, 14), 40)
	m = press(m, "/")
	if !m.Capturing() {
		t.Fatal("/ did not focus the filter")
	}
	for _, k := range tuitest.Type("n2 aof") {
		m, _ = m.Update(k)
	}
	tuitest.Golden(t, m.View())
	m = press(m, "enter")
	if m.Capturing() || m.Filter() != "n2 aof" {
		t.Fatalf("after enter: capturing %v, filter %q", m.Capturing(), m.Filter())
	}
	for i := 0; i < 20; i++ {
		db, ok := m.Selected()
		if !ok || dblist.PrimaryNode(db) != "n2" || db.Flavor != "aof" {
			t.Fatalf("row %d: %+v does not match the filter", i, db)
		}
		m = press(m, "down")
	}
	m = press(m, "esc")
	if m.Filter() != "" || !strings.Contains(m.View(), "DATABASES 40 ") {
		t.Fatalf("esc did not clear the filter:\n%s", m.View())
	}
}

// TestFilterNoMatch says that nothing matches rather than that there are
// no databases.
func TestFilterNoMatch(t *testing.T) {
	m := press(newList(tuitest.Context(80, 8), 5), "/")
	for _, k := range tuitest.Type("zzz") {
		m, _ = m.Update(k)
	}
	tuitest.Golden(t, m.View())
}

// TestEmpty invites to create the first database.
func TestEmpty(t *testing.T) {
	tuitest.Golden(t, newList(tuitest.Context(80, 6), 0).View())
}

// TestSort: `s` cycles the sort column (state puts failed first; memory,
// ops/s and plan start with the largest), `S` reverses it, and the header
// marks the column and direction, keeping it on screen.
func TestSort(t *testing.T) {
	m := newList(tuitest.Context(80, 16), 30)
	m = press(m, "s")
	if k, desc := m.Sort(); k != dblist.ByState || desc {
		t.Fatalf("after s: %v desc=%v", k, desc)
	}
	m = press(m, "home")
	if db, _ := m.Selected(); db.State != "failed" {
		t.Fatalf("by state, first is %s (%s), want a failed one", db.Name, db.State)
	}
	m = press(m, "s")
	tuitest.Golden(t, m.View())
	m = press(m, "S")
	if k, desc := m.Sort(); k != dblist.ByMemory || desc {
		t.Fatalf("after s s S: %v desc=%v", k, desc)
	}
	for _, want := range []dblist.SortKey{dblist.ByOps, dblist.ByPlan, dblist.ByVersion, dblist.ByNode, dblist.ByName} {
		m = press(m, "s")
		if k, _ := m.Sort(); k != want {
			t.Fatalf("s cycled to %v, want %v", k, want)
		}
		// The column sorted by stays on screen, even one that 80
		// columns leave out otherwise.
		if want == dblist.ByVersion && !strings.Contains(header(m.View()), "VERSION▲") {
			t.Errorf("sorted by version at 80 columns: %q", header(m.View()))
		}
	}
}

// TestVersionsSortByNumber: 7.10 is newer than 7.2.
func TestVersionsSortByNumber(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"7.10", "7.2", 1}, {"6.2", "7.0", -1}, {"7.2", "7.2", 0}, {"7.2.4", "7.2", 1}} {
		if got := dblist.CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestCursorFollowsItsDatabase: a refresh that changes the order or the
// rows keeps the cursor on the database it was on, so a live list does not
// move what the user is about to act on.
func TestCursorFollowsItsDatabase(t *testing.T) {
	m := newList(tuitest.Context(80, 20), 30)
	m = press(m, "down", "down", "down")
	before, _ := m.Selected()
	dbs := tuitest.Databases(30)
	// A new database sorts before it and another one goes.
	dbs = append(dbs[1:], tuitest.Database("aaa", "7.2", "aof", "starting", "n1", 1<<26, 0))
	m.SetDatabases(dbs)
	if after, _ := m.Selected(); after.Name != before.Name {
		t.Fatalf("cursor moved from %s to %s", before.Name, after.Name)
	}
}

// TestScroll200: with 200 databases the window follows the cursor page by
// page and the title says which rows are on screen.
func TestScroll200(t *testing.T) {
	m := newList(tuitest.Context(80, 20), 200)
	m = press(m, "pgdown", "pgdown", "down")
	tuitest.Golden(t, m.View())
	m = press(m, "end")
	if db, _ := m.Selected(); db.Name != "sessions" {
		t.Fatalf("end selected %s, want the last by name", db.Name)
	}
	for _, l := range strings.Split(m.View(), "\n") {
		if layout.Width(l) > 80 {
			t.Fatalf("line wider than the screen: %q", l)
		}
	}
}

// TestStale: data that is not live says how old it is and does not colour
// states as if they were current.
func TestStale(t *testing.T) {
	ctx := tuitest.Context(80, 8)
	ctx.Stale = true
	ctx.DataAt = ctx.Now.Add(-14 * time.Second)
	tuitest.Golden(t, newList(ctx, 4).View())
}

// row returns the line of the view that lists name.
func row(v, name string) string {
	for _, l := range strings.Split(v, "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "▸")); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

// TestReplicationAtAGlance: at 80 columns each row says how many replicas
// a database has (and how many are linked up, when not all are), on which
// node its primary is, and what a linked replica follows or that an
// unlinked one is read-only; at 120 columns version and flavor are back.
func TestReplicationAtAGlance(t *testing.T) {
	v := newList(tuitest.Context(80, 18), 12).View()
	for name, want := range map[string][]string{
		"sessions":     {"n2", " 2 "},
		"orders":       {"n3", " 1 "},
		"db-010":       {"n2", "0/1"},
		"orders-copy":  {"n1", "→ orders"},
		"search-index": {"read-only"},
		"cache":        {"n1", " - "},
	} {
		r := row(v, name)
		for _, w := range want {
			if !strings.Contains(r, w) {
				t.Errorf("%s: %q lacks %q", name, r, w)
			}
		}
	}
	wide := newList(tuitest.Context(120, 18), 12).View()
	for _, col := range []string{"VERSION", "FLAVOR", "NODE", "REPL", "FOLLOWS", "STATE", "MEMORY"} {
		if !strings.Contains(wide, col) {
			t.Errorf("120 columns: no %s column:\n%s", col, wide)
		}
	}
	if r := row(wide, "orders-copy"); !strings.Contains(r, "7.4") || !strings.Contains(r, "aof") {
		t.Errorf("120 columns: %q", r)
	}
}

// TestFilterBySource: typing a database's name also lists the databases
// that follow it.
func TestFilterBySource(t *testing.T) {
	dbs := tuitest.Databases(12)
	mirror := tuitest.Database("eu-mirror", "7.4", "aof", "running", "n2", 1<<30, 0)
	mirror.Follows = "orders"
	m := newList(tuitest.Context(80, 14), 0)
	m.SetDatabases(append(dbs, mirror))
	m = press(m, "/")
	for _, k := range tuitest.Type("orders") {
		m, _ = m.Update(k)
	}
	if v := m.View(); !strings.Contains(v, "DATABASES 3 of 13") || row(v, "orders-copy") == "" || row(v, "eu-mirror") == "" {
		t.Fatalf("view:\n%s", v)
	}
}

// header returns the header line of the table in v.
func header(v string) string { return strings.Split(v, "\n")[1] }

// TestLoadColumns: with room, each row has its primary's ops/s and
// connected clients (compact, "-" when it is not running and so not
// observed). As the screen narrows the clients go first (below 108
// columns), then flavor (102), version (94) and ops/s (84): at 80 and 60
// columns neither is there, what was there before is, and no line is
// wider than the screen.
func TestLoadColumns(t *testing.T) {
	for _, tc := range []struct {
		width      int
		want, gone []string
	}{
		{120, []string{"OPS/S", "CLI", "VERSION", "FLAVOR", "NODE", "REPL", "FOLLOWS", "MEMORY"}, nil},
		{108, []string{"OPS/S", "CLI", "VERSION", "FLAVOR"}, nil},
		{107, []string{"OPS/S", "VERSION", "FLAVOR"}, []string{"CLI"}},
		{102, []string{"OPS/S", "VERSION", "FLAVOR"}, []string{"CLI"}},
		{101, []string{"OPS/S", "VERSION"}, []string{"CLI", "FLAVOR"}},
		{94, []string{"OPS/S", "VERSION"}, []string{"CLI", "FLAVOR"}},
		{93, []string{"OPS/S"}, []string{"CLI", "FLAVOR", "VERSION"}},
		{84, []string{"OPS/S", "NODE", "REPL", "FOLLOWS"}, []string{"CLI", "VERSION", "FLAVOR"}},
		{83, []string{"NODE", "REPL", "FOLLOWS"}, []string{"OPS/S", "CLI", "VERSION", "FLAVOR"}},
		{80, []string{"NAME", "PLAN", "NODE", "REPL", "FOLLOWS", "STATE", "MEMORY"}, []string{"OPS/S", "CLI", "VERSION", "FLAVOR"}},
		{60, []string{"NAME", "PLAN", "FOLLOWS", "STATE", "MEMORY"}, []string{"OPS/S", "CLI", "NODE", "REPL"}},
	} {
		v := newList(tuitest.Context(tc.width, 18), 12).View()
		for _, w := range tc.want {
			if !strings.Contains(header(v), w) {
				t.Errorf("%d columns: no %s: %q", tc.width, w, header(v))
			}
		}
		for _, g := range tc.gone {
			if strings.Contains(header(v), g) {
				t.Errorf("%d columns: %s is still there: %q", tc.width, g, header(v))
			}
		}
		for _, l := range strings.Split(v, "\n") {
			if layout.Width(l) > tc.width {
				t.Errorf("%d columns: line %q is %d wide", tc.width, l, layout.Width(l))
			}
		}
	}
	v := newList(tuitest.Context(120, 18), 12).View()
	for name, want := range map[string]string{
		"leaderboard":  "  48k   412", // the busiest: 48213 ops/s, 412 clients
		"sessions":     " 9.8k   156",
		"cache":        "    4     1", // idle: the agent's own connection
		"ratelimit":    "failed",      // not observed
		"search-index": "starting",
	} {
		r := row(v, name)
		if !strings.Contains(r, want) {
			t.Errorf("%s: %q lacks %q", name, r, want)
		}
		if want == "failed" || want == "starting" {
			if !strings.HasSuffix(strings.TrimRight(r, " "), "-     -") {
				t.Errorf("%s, %s: figures shown as if observed: %q", name, want, r)
			}
		}
	}
}

// TestSortByOps: `s` three times sorts by ops/s, busiest first, the
// databases that are not running (no figures) last; `S` puts the idlest
// first. At 80 columns the OPS/S column, which the width would drop, stays
// (the replicas column gives way), and at 60 too.
func TestSortByOps(t *testing.T) {
	dbs := tuitest.Databases(30)
	m := newList(tuitest.Context(80, 16), 30)
	m = press(m, "s", "s", "s")
	if k, desc := m.Sort(); k != dblist.ByOps || !desc {
		t.Fatalf("after s s s: %v desc=%v, want ops/s descending", k, desc)
	}
	v := press(m, "home").View()
	tuitest.Golden(t, v)
	if h := header(v); !strings.Contains(h, "OPS/S▼") || strings.Contains(h, "REPL") || !strings.Contains(h, "NODE") {
		t.Errorf("sorted by ops/s at 80 columns: %q", h)
	}
	order := func(m dblist.Model) []string {
		var out []string
		m = press(m, "home")
		for range dbs {
			db, _ := m.Selected()
			out = append(out, db.Name)
			m = press(m, "down")
		}
		return out
	}
	byName := map[string]int{}
	for i, db := range dbs {
		byName[db.Name] = i
	}
	// rank is what the order must follow: running databases by their
	// ops/s, then the others.
	rank := func(name string) int64 {
		db := dbs[byName[name]]
		if db.State != "running" {
			return -1
		}
		return db.OpsPerSec
	}
	got := order(m)
	if got[0] != "leaderboard" {
		t.Errorf("busiest first: got %s, want leaderboard", got[0])
	}
	for i := 1; i < len(got); i++ {
		if rank(got[i-1]) < rank(got[i]) {
			t.Errorf("%s (%d ops/s) before %s (%d ops/s)", got[i-1], rank(got[i-1]), got[i], rank(got[i]))
		}
	}
	idle := 0
	for _, db := range dbs {
		if db.State != "running" {
			idle++
		}
	}
	if tail := got[len(got)-idle:]; idle == 0 || rank(tail[0]) != -1 || rank(got[len(got)-idle-1]) < 0 {
		t.Errorf("the %d databases not running are not last: %v", idle, got)
	}
	m = press(m, "S")
	rev := order(m)
	if rank(rev[0]) != -1 || rank(rev[len(rev)-1]) != rank("leaderboard") {
		t.Errorf("reversed: %v", rev)
	}
	for i := 1; i < len(rev); i++ {
		if rank(rev[i-1]) > rank(rev[i]) {
			t.Errorf("reversed: %s before %s", rev[i-1], rev[i])
		}
	}
	narrow := press(newList(tuitest.Context(60, 12), 8), "s", "s", "s").View()
	if h := header(narrow); !strings.Contains(h, "OPS/S▼") || !strings.Contains(h, "NAME") || !strings.Contains(h, "STATE") {
		t.Errorf("sorted by ops/s at 60 columns: %q", h)
	}
	for _, l := range strings.Split(narrow, "\n") {
		if layout.Width(l) > 60 {
			t.Errorf("60 columns: line %q is %d wide", l, layout.Width(l))
		}
	}
	if r := row(narrow, "leaderboard"); !strings.HasSuffix(strings.TrimRight(r, " "), "48k") {
		t.Errorf("60 columns, sorted by ops/s: %q", r)
	}
}
