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

// TestSort: `s` cycles the sort column (state puts failed first; memory
// and plan start with the largest), `S` reverses it, and the header marks
// the column and direction.
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
	for _, want := range []dblist.SortKey{dblist.ByPlan, dblist.ByVersion, dblist.ByNode, dblist.ByName} {
		m = press(m, "s")
		if k, _ := m.Sort(); k != want {
			t.Fatalf("s cycled to %v, want %v", k, want)
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
