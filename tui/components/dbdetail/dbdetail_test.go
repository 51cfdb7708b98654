package dbdetail_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/muesli/termenv"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/dbdetail"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/theme"
)

const (
	password = "s3cr3t-Pa55word-that-must-not-show"
	url      = "redis://default:" + password + "@10.0.0.1:6405/0"
)

func newDetail(db api.Database) dbdetail.Model {
	return sized(db, 80, 16)
}

func sized(db api.Database, w, h int) dbdetail.Model {
	ctx := tuitest.Context(w, h)
	m := dbdetail.New(ctx, db)
	m.SetSize(w, h)
	m.SetURL(url, nil)
	return m
}

// named returns the database called name among n fixtures.
func named(t *testing.T, n int, name string) api.Database {
	t.Helper()
	for _, db := range tuitest.Databases(n) {
		if db.Name == name {
			return db
		}
	}
	t.Fatalf("no database %s", name)
	return api.Database{}
}

// line returns the line of v that starts with prefix (after the cursor
// mark), or "".
func line(v, prefix string) string {
	for _, l := range strings.Split(v, "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, "▸ "), prefix) {
			return l
		}
	}
	return ""
}

// TestMasked: the URL shows with the password masked until `r`.
func TestMasked(t *testing.T) {
	m := dbdetail.New(tuitest.Context(80, 16), tuitest.Databases(1)[0])
	m.SetSize(80, 16)
	if !strings.Contains(m.View(), "loading…") {
		t.Fatal("no loading state before the URL arrives")
	}
	m.SetURL(url, nil)
	v := m.View()
	if strings.Contains(v, password) {
		t.Fatal("password shown before r")
	}
	tuitest.Golden(t, v)
}

// TestRevealed: `r` shows the whole URL, ready to copy, and `r` again
// hides it.
func TestRevealed(t *testing.T) {
	m := newDetail(tuitest.Databases(1)[0])
	m.SetURL(url, nil)
	m, _ = m.Update(tuitest.Key("r"))
	v := m.View()
	if !strings.Contains(v, url) {
		t.Fatalf("r did not reveal the URL:\n%s", v)
	}
	tuitest.Golden(t, v)
	m, _ = m.Update(tuitest.Key("r"))
	if strings.Contains(m.View(), password) {
		t.Fatal("second r did not hide the password")
	}
}

// TestFailed: a failed instance says why, under the instances.
func TestFailed(t *testing.T) {
	db := tuitest.Database("ratelimit", "7.0", "nordb", api.StateFailed, "n3", 64<<20, 0)
	m := newDetail(db)
	m.SetURL("", errors.New(`database "ratelimit" has no primary right now`))
	tuitest.Golden(t, m.View())
}

// TestGone: a database deleted elsewhere says so instead of showing what
// it was as if it still existed.
func TestGone(t *testing.T) {
	m := newDetail(tuitest.Databases(2)[1])
	m.SetDatabases(tuitest.Databases(1))
	if !m.Gone() {
		t.Fatal("not gone")
	}
	tuitest.Golden(t, m.View())
	m.SetDatabases(tuitest.Databases(2))
	if m.Gone() {
		t.Fatal("still gone once listed again")
	}
}

// TestMask never lets the password through, whatever the URL looks like.
func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		url:                               "redis://default:••••••••@10.0.0.1:6405/0",
		"rediss://u:p%40ss@[::1]:7000/0":  "rediss://u:••••••••@[::1]:7000/0",
		"redis://10.0.0.1:6400/0":         "redis://10.0.0.1:6400/0",
		"redis://default:pw@host:1/0\x7f": "(hidden)",
	} {
		if got := dbdetail.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReplicas: a database with replicas says where its primary is, its
// epoch, its primary's ops/s and clients, and where its replicas are; each replica's row has its link, sync,
// lag and last IO; the line under the table has the address, what it
// follows and the offset of the instance under the cursor, which the
// table has no room for at 80 columns.
func TestReplicas(t *testing.T) {
	m := sized(named(t, 2, "sessions"), 80, 18)
	m, _ = m.Update(tuitest.Key("down"))
	m, _ = m.Update(tuitest.Key("down"))
	v := m.View()
	tuitest.Golden(t, v)
	if l := line(v, "primary"); !strings.Contains(l, "n2 (epoch 3) · 9870 ops/s · 156 clients · 2 replicas on n3, n1") {
		t.Errorf("primary line: %q", l)
	}
	for id, want := range map[string][]string{
		"sessions-0": {"primary", "-"},
		"sessions-1": {"replica", "up", "no", "0 B", "0s"},
		"sessions-2": {"replica", "up", "no", "1.5 KiB", "1s"},
	} {
		l := line(v, id)
		for _, w := range want {
			if !strings.Contains(l, " "+w+" ") && !strings.HasSuffix(l, " "+w) {
				t.Errorf("%s: %q lacks %q", id, l, w)
			}
		}
	}
	in, _ := m.Selected()
	if in.ID != "sessions-2" || !strings.Contains(v, "sessions-2 10.0.0.1:6408 follows 10.0.0.2:6408 · offset") {
		t.Errorf("the line under the table is not about %s:\n%s", in.ID, v)
	}
}

// TestLinkDown: a replica whose link is down says so, that it is
// syncing, and that its lag is unknown rather than zero.
func TestLinkDown(t *testing.T) {
	m := sized(named(t, 12, "db-010"), 80, 18)
	l := line(m.View(), "db-010-1")
	for _, w := range []string{"down", "yes", "unknown"} {
		if !strings.Contains(l, w) {
			t.Errorf("%q lacks %q", l, w)
		}
	}
}

// TestWide: with room, the table has every column, address, offset, ops/s
// and clients included.
func TestWide(t *testing.T) {
	m := sized(named(t, 2, "sessions"), 160, 18)
	v := m.View()
	for _, col := range []string{"ADDRESS", "OFFSET", "OPS/S", "CLIENTS", "PID", "RESTARTS", "VERSION", "MEMORY"} {
		if !strings.Contains(v, col) {
			t.Errorf("no %s at 160 columns:\n%s", col, v)
		}
	}
	if l := line(v, "sessions-1"); !strings.Contains(l, "10.0.0.3:6408") {
		t.Errorf("no address: %q", l)
	}
}

// TestLinkedReplica: a linked replica names what it follows and how to
// promote or unlink it; its source lists it.
func TestLinkedReplica(t *testing.T) {
	v := sized(named(t, 8, "orders-copy"), 80, 18).View()
	tuitest.Golden(t, v)
	if l := line(v, "follows"); !strings.Contains(l, "orders") || !strings.Contains(l, "P promotes it, U unlinks it") {
		t.Errorf("follows line: %q", l)
	}
	if l := line(sized(named(t, 8, "orders"), 80, 18).View(), "linked"); !strings.Contains(l, "orders-copy") {
		t.Errorf("the source does not list it: %q", l)
	}
}

// TestReadOnlyAndPromoted: an unlinked database says it refuses writes; a
// promoted one says when, and what it followed.
func TestReadOnlyAndPromoted(t *testing.T) {
	if l := line(sized(named(t, 8, "search-index"), 80, 18).View(), "read-only"); !strings.Contains(l, "refuses writes") {
		t.Errorf("read-only line: %q", l)
	}
	l := line(sized(named(t, 8, "carts"), 80, 18).View(), "promoted")
	if !strings.Contains(l, "2025-06-01 09:00 UTC (3h00m ago) · followed 10.0.0.9:6379") {
		t.Errorf("promoted line: %q", l)
	}
}

// TestPromotedInPlace: when a refresh shows the database promoted, the
// follows line goes and the table takes the room back.
func TestPromotedInPlace(t *testing.T) {
	dbs := tuitest.Databases(8)
	m := sized(named(t, 8, "orders-copy"), 80, 18)
	for i := range dbs {
		if dbs[i].Name == "orders-copy" {
			dbs[i].Follows, dbs[i].PromotedFrom, dbs[i].Epoch = "", "orders", 1
			at := tuitest.Now
			dbs[i].PromotedAt = &at
			dbs[i].Instances[0].Replication = nil
		}
	}
	m.SetDatabases(dbs)
	v := m.View()
	if line(v, "follows") != "" || !strings.Contains(line(v, "promoted"), "followed orders") || !strings.Contains(line(v, "primary"), "epoch 1") {
		t.Fatalf("after the promote:\n%s", v)
	}
}

// TestFailoverStatus: when the agent says why a failed primary is not
// being replaced, the detail shows it under the primary.
func TestFailoverStatus(t *testing.T) {
	db := named(t, 2, "sessions")
	db.FailoverStatus = "no replica qualifies: the replica on n3 is 80 MiB behind (max_lag 64 MiB)"
	v := sized(db, 80, 18).View()
	if l := line(v, "failover"); !strings.Contains(l, "no replica qualifies") || !strings.Contains(strings.Join(strings.Fields(v), " "), "(max_lag 64 MiB)") {
		t.Fatalf("failover status not shown whole:\n%s", v)
	}
}

// TestEvents: the detail lists the database's newest events, newest first,
// one a line in columns, under its replication, at 80×24 (20 lines of
// content) with every instance still on screen; the other databases'
// events are not there.
func TestEvents(t *testing.T) {
	m := sized(named(t, 2, "sessions"), 80, 20)
	m.SetEvents(tuitest.Events(), nil)
	v := m.View()
	tuitest.Golden(t, v)
	for _, want := range []string{"events    11:59:17     promoted    n2  sessions-0 on n2", "          05-31 16:42  switchover  n3", "sessions-2"} {
		if !strings.Contains(v, want) {
			t.Errorf("no %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "failover-refused") || strings.Contains(v, "node-lost") {
		t.Errorf("another database's or a node's event:\n%s", v)
	}
}

// TestEventsOnAShortScreen: with a failover status and a short screen,
// the newest event stays and the instances keep their rows.
func TestEventsOnAShortScreen(t *testing.T) {
	db := named(t, 2, "sessions")
	db.FailoverStatus = "primary failed (node n2 silent for 1.5s) and no replica qualifies: the replica on n3 is 80 MiB behind (max_lag 1 MiB)"
	m := sized(db, 80, 16)
	m.SetEvents(tuitest.Events(), nil)
	v := m.View()
	if !strings.Contains(v, "events    11:59:17  promoted  n2") || strings.Contains(v, "switchover") {
		t.Fatalf("short screen, want only the newest event:\n%s", v)
	}
	for _, id := range []string{"sessions-0", "sessions-1", "sessions-2"} {
		if line(v, id) == "" {
			t.Errorf("%s not on screen:\n%s", id, v)
		}
	}
}

// TestEventsMayBeOld: events that could not be read again are drawn
// without the colours of live data.
func TestEventsMayBeOld(t *testing.T) {
	ctx := tuitest.Context(80, 20)
	ctx.Styles = theme.New(tuitest.Renderer(termenv.ANSI))
	m := dbdetail.New(ctx, named(t, 2, "sessions"))
	m.SetSize(80, 20)
	m.SetEvents(tuitest.Events(), nil)
	if v := m.View(); !strings.Contains(v, "\x1b[33mpromoted") {
		t.Fatalf("live events not coloured:\n%q", v)
	}
	m.SetEvents(tuitest.Events(), errors.New("the agent did not answer within 3s"))
	if v := m.View(); strings.Contains(v, "\x1b[33mpromoted") || !strings.Contains(v, "promoted") {
		t.Fatalf("old events coloured:\n%q", v)
	}
}

// header returns the instances' table header in v.
func header(v string) string { return line(v, "ID ") }

// TestLoad: the primary line has the primary's ops/s and connected
// clients in full; with room (from 89 and 98 columns) each instance has
// its own in OPS/S and CLIENTS columns, compact; at 80 and 60 columns the
// columns give way (the instance IDs keep their room) and the line under
// the table has the figures of the instance under the cursor.
func TestLoad(t *testing.T) {
	db := named(t, 2, "sessions")
	wide := sized(db, 120, 18).View()
	if h := header(wide); !strings.Contains(h, "OPS/S") || !strings.Contains(h, "CLIENTS") {
		t.Fatalf("120 columns: %q", h)
	}
	for id, want := range map[string]string{
		"sessions-0": " 9.8k      156", // the primary
		"sessions-1": " 2.4k        2", // replicas: the writes they apply, few clients
		"sessions-2": " 2.4k        3",
	} {
		if l := line(wide, id); !strings.Contains(l, want) {
			t.Errorf("120 columns, %s: %q lacks %q", id, l, want)
		}
	}
	for _, tc := range []struct {
		width      int
		want, gone []string
	}{
		{98, []string{"OFFSET", "OPS/S", "CLIENTS"}, []string{"ADDRESS"}},
		{97, []string{"OFFSET", "OPS/S"}, []string{"CLIENTS", "ADDRESS"}},
		{89, []string{"OFFSET", "OPS/S"}, []string{"CLIENTS"}},
		{88, []string{"OFFSET", "LAST IO"}, []string{"OPS/S", "CLIENTS"}},
		{80, []string{"LINK", "SYNC", "LAG", "LAST IO"}, []string{"OFFSET", "OPS/S", "CLIENTS"}},
		{60, []string{"ID", "NODE", "ROLE", "STATE", "LINK"}, []string{"OPS/S", "CLIENTS"}},
	} {
		m := sized(db, tc.width, 20)
		v := m.View()
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
		if tc.width > 80 {
			continue
		}
		if l := line(v, "sessions-0 "); !strings.Contains(l, "sessions-0") {
			t.Errorf("%d columns: the ID is cut: %q", tc.width, l)
		}
		m, _ = m.Update(tuitest.Key("down"))
		if p := strings.Join(strings.Fields(m.View()), " "); !strings.Contains(p, "offset 3434652 · 2467 ops/s · 2 clients ·") {
			t.Errorf("%d columns: the line under the table lacks the replica's figures:\n%s", tc.width, m.View())
		}
	}
	if l := line(sized(named(t, 8, "cache"), 80, 18).View(), "primary"); !strings.Contains(l, "n1 (epoch 0) · 4 ops/s · 1 client · no replicas") {
		t.Errorf("an idle database: %q", l)
	}
}

// TestLoadNotObserved: a database whose primary is not running has no
// figures (the API's zeros mean unknown): none on the primary line, "-"
// in the columns, none under the table.
func TestLoadNotObserved(t *testing.T) {
	db := tuitest.Database("ratelimit", "7.0", "nordb", api.StateFailed, "n3", 64<<20, 0)
	v := sized(db, 80, 16).View()
	if l := line(v, "primary"); strings.Contains(l, "ops/s") || strings.Contains(l, "client") {
		t.Errorf("primary line: %q", l)
	}
	if strings.Contains(v, "ops/s") {
		t.Errorf("figures for an instance that is not running:\n%s", v)
	}
	wide := sized(db, 160, 16).View()
	if l := line(wide, "ratelimit-0"); !strings.Contains(l, "failed") || strings.Count(l, " - ") < 5 {
		t.Errorf("160 columns: %q", l)
	}
}
