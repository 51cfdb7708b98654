package tui_test

import (
	"slices"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui"
)

// The replication actions, driven through the root model over the fake
// agent: planned failover, promote, unlink, a linked replica and a create
// with replicas. Each asks first where it is destructive, reaches the
// agent only through the API client, and shows the agent's refusal in the
// UI without breaking the frame.

// act sends keys to m and runs what they start, as bubbletea would.
func act(t *testing.T, m tui.Model, ks ...string) tui.Model {
	t.Helper()
	m, cmds := keys(m, ks...)
	return run(t, m, cmds...)
}

// footer is the last line of the frame: the key hints.
func footer(m tui.Model) string {
	lines := strings.Split(m.View(), "\n")
	return lines[len(lines)-1]
}

// seeing fails unless the frame fits the terminal and shows every want,
// wrapped over lines (in a dialog, say) or not.
func seeing(t *testing.T, m tui.Model, want ...string) string {
	t.Helper()
	v := m.View()
	checkFrame(t, v, 80, 24)
	for _, w := range want {
		if !strings.Contains(v, w) && !strings.Contains(flat(v), w) {
			t.Fatalf("no %q on screen:\n%s", w, v)
		}
	}
	return v
}

// flat is the text of a frame as one line: lines joined, the borders of
// dialogs and runs of spaces gone.
func flat(v string) string {
	var parts []string
	for _, l := range strings.Split(v, "\n") {
		parts = append(parts, strings.Trim(l, "│ "))
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// TestFailoverPicksTheTarget: F on a database with replicas asks which
// replica takes over, the most up-to-date one first; the pick reaches the
// agent, and the result says where the primary went and how long writes
// were paused.
func TestFailoverPicksTheTarget(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "G", "F")
	seeing(t, m, "Fail over sessions?", "▸ most up-to-date", "n3", "lag 1.5 KiB", "y/enter fail over")
	m = act(t, m, "down", "down", "y")
	if !slices.Equal(f.failovers, []api.FailoverRequest{{To: "n1"}}) {
		t.Fatalf("failovers %+v, want to n1", f.failovers)
	}
	seeing(t, m, "✓ failed over sessions from n2 to n1 in", "(epoch 4); writes paused 10.4 ms")

	// From the detail, enter takes the first choice: the agent picks.
	m = act(t, m, "enter", "F", "enter")
	if len(f.failovers) != 2 || f.failovers[1] != (api.FailoverRequest{}) {
		t.Fatalf("failovers %+v, want the agent's pick", f.failovers)
	}
	seeing(t, m, "✓ failed over sessions from n1 to n3")
}

// TestFailoverBackOut: n and esc leave the dialog; nothing is sent.
func TestFailoverBackOut(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "G", "F", "n", "F", "esc")
	if len(f.failovers) != 0 || strings.Contains(m.View(), "Fail over") {
		t.Fatalf("failovers %+v:\n%s", f.failovers, m.View())
	}
}

// TestFailoverRefused: the agent refuses a replica whose link is down; its
// reason is shown whole, in the frame, until dismissed.
func TestFailoverRefused(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "/", "db-010", "enter", "F")
	seeing(t, m, "n3", "link down · syncing")
	m = act(t, m, "down", "y")
	seeing(t, m, "✗ failover db-010: no replica of db-010 can take over: the replica on n3 has its replication link down; no change")
	// The first esc clears the filter, the second the error.
	m = act(t, m, "esc", "esc")
	if strings.Contains(m.View(), "✗ failover") {
		t.Fatal("esc did not dismiss the error")
	}
}

// TestFailoverWithoutReplicas says why nothing happens instead of asking.
func TestFailoverWithoutReplicas(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "F")
	seeing(t, m, "✗ cannot fail over cache: it has no replica")
	if len(f.failovers) != 0 {
		t.Fatalf("failovers %+v", f.failovers)
	}
}

// TestPromote: P on a linked replica asks first; n backs out; y promotes
// it, and the list no longer shows it following anything.
func TestPromote(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "/", "orders-copy", "enter", "P")
	seeing(t, m, "Promote orders-copy?", "stops following orders and takes writes, for good")
	m = act(t, m, "n")
	if len(f.promoted) != 0 {
		t.Fatalf("promoted %v after n", f.promoted)
	}
	m = act(t, m, "P", "y")
	if !slices.Equal(f.promoted, []string{"orders-copy"}) {
		t.Fatalf("promoted %v", f.promoted)
	}
	v := seeing(t, m, "✓ promoted orders-copy in", "a writable primary, for good (epoch 1)")
	if strings.Contains(v, "→ orders") {
		t.Fatalf("still shown following orders:\n%s", v)
	}
}

// TestPromoteFromTheDetail: the same keys act in the detail, which then
// shows the database promoted, what it followed and its new epoch.
func TestPromoteFromTheDetail(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "/", "orders-copy", "enter", "enter")
	seeing(t, m, "follows   orders", "P promote", "U unlink")
	m = act(t, m, "P", "y")
	v := seeing(t, m, "DATABASE orders-copy", "✓ promoted orders-copy", "followed orders", "(epoch 1)")
	if strings.Contains(v, "follows   orders") || strings.Contains(footer(m), "U unlink") {
		t.Fatalf("still shown following:\n%s", v)
	}
}

// TestDrainMovesPrimaries: draining a node says its primaries with a
// healthy replica elsewhere are switched over, and lists what stays.
func TestDrainMovesPrimaries(t *testing.T) {
	f := newFake(12)
	m := act(t, live(t, f, 80, 24), "1", "down", "d")
	seeing(t, m, "Drain node n2?", "switched over to it")
	m = act(t, m, "y")
	seeing(t, m, "✓ node n2 is draining", "primaries switched over to a replica elsewhere: sessions;", "still there (replicas, primaries with no healthy replica): leaderboard, search-index, db-010")
}

// TestHelpListsTheKeys: `?` lists the replication keys with the others.
func TestHelpListsTheKeys(t *testing.T) {
	m := act(t, live(t, newFake(5), 80, 24), "2", "?")
	seeing(t, m, "F         planned failover", "P U       promote, unlink", "L         linked replica", "F L P U   as in the list")
}

// TestPromoteRefused: the agent's error is shown in the frame.
func TestPromoteRefused(t *testing.T) {
	f := newFake(30)
	f.refuse = &api.Error{Status: 503, Message: "no leader: the cluster has no leader right now; retry in a few seconds"}
	m := act(t, live(t, f, 80, 24), "2", "/", "search-index", "enter", "P", "y")
	seeing(t, m, "✗ promote search-index: no leader: the cluster has no leader right now; retry in a few seconds")
}

// TestPromoteAPrimary says why nothing happens, without asking the agent.
func TestPromoteAPrimary(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "P")
	seeing(t, m, "✗ cannot promote cache: it is already a writable primary")
	if len(f.promoted) != 0 || strings.Contains(m.View(), "Promote cache?") {
		t.Fatalf("promoted %v", f.promoted)
	}
}

// TestUnlink: U asks first, says it cannot be undone, and once done the
// list marks the database read-only.
func TestUnlink(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "/", "orders-copy", "enter", "U")
	seeing(t, m, "Unlink orders-copy?", "This cannot be undone")
	m = act(t, m, "y")
	if !slices.Equal(f.unlinked, []string{"orders-copy"}) {
		t.Fatalf("unlinked %v", f.unlinked)
	}
	v := seeing(t, m, "✓ unlinked orders-copy in", "read-only")
	if strings.Contains(v, "→ orders") {
		t.Fatalf("still shown following orders:\n%s", v)
	}
	// Unlinked already: U says so, P is the way on.
	seeing(t, act(t, m, "U"), "✗ cannot unlink orders-copy: it is unlinked already; P promotes it")
}

// TestUnlinkRefused: the agent's error is shown in the frame.
func TestUnlinkRefused(t *testing.T) {
	f := newFake(30)
	f.refuse = &api.Error{Status: 409, Message: "database orders-copy follows nothing; unlink applies to a linked replica"}
	m := act(t, live(t, f, 80, 24), "2", "/", "orders-copy", "enter", "U", "y")
	seeing(t, m, "✗ unlink orders-copy: database orders-copy follows nothing; unlink applies to a linked replica")
}

// TestLinkedReplica: L on a database opens the linked replica form; the
// create follows the source, and the new database is listed, following.
func TestLinkedReplica(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "/", "orders", "enter", "L")
	seeing(t, m, "NEW LINKED REPLICA OF orders", "› new linked replica of orders")
	m = act(t, m, "orders-eu", "tab", "right", "right", "ctrl+s")
	want := api.CreateDatabaseRequest{Name: "orders-eu", Node: "n2", Follows: "orders"}
	if !slices.Equal(f.created, []api.CreateDatabaseRequest{want}) {
		t.Fatalf("created %+v, want %+v", f.created, want)
	}
	v := seeing(t, m, "✓ created orders-eu on n2", "following orders")
	if l := row(v, "orders-eu"); !strings.Contains(l, "→ orders") {
		t.Fatalf("orders-eu: %q", l)
	}
}

// TestLinkedReplicaRefused: the agent's refusal stays in the form, which
// stays open to be corrected.
func TestLinkedReplicaRefused(t *testing.T) {
	f := newFake(30)
	f.refuse = &api.Error{Status: 409, Message: "node n2 has not reported for a while (no heartbeat); it cannot take new databases now"}
	m := act(t, live(t, f, 80, 24), "2", "/", "orders", "enter", "L", "orders-eu", "ctrl+s")
	seeing(t, m, "NEW LINKED REPLICA OF orders", "The agent refused: node n2 has not reported for a while")
}

// TestLinkedReplicaOfAReplica: whether a source can be followed is the
// agent's rule; the form asks the agent once it has a name, shows its
// refusal as it is, and sends nothing.
func TestLinkedReplicaOfAReplica(t *testing.T) {
	f := newFake(30)
	f.refuseValidation = &api.Error{Status: 409, Message: "source orders-copy is itself a replica of orders; replicate from orders, or promote orders-copy first"}
	m := act(t, live(t, f, 80, 24), "2", "/", "orders-copy", "enter", "L", "copy-2", "tab", "ctrl+s")
	seeing(t, m, "NEW LINKED REPLICA OF orders-copy", "The agent would refuse: source orders-copy is itself a replica of orders; replicate from orders, or promote orders-copy first")
	if len(f.created) != 0 {
		t.Fatalf("created %+v", f.created)
	}
}

// TestCreateWithReplicas: the replicas field reaches the agent, and the
// list shows the new database's replicas.
func TestCreateWithReplicas(t *testing.T) {
	f := newFake(5)
	m := act(t, live(t, f, 80, 24), "n", "fresh", "tab", "48mb", "tab", "tab", "tab", "tab", "1", "ctrl+s")
	want := api.CreateDatabaseRequest{Name: "fresh", Memory: "48mb", Flavor: "aof", Version: "7.2", Replicas: 1}
	if !slices.Equal(f.created, []api.CreateDatabaseRequest{want}) {
		t.Fatalf("created %+v, want %+v", f.created, want)
	}
	v := seeing(t, m, "✓ created fresh on n1", "with 1 replica(s)")
	if l := row(v, "fresh"); !strings.Contains(l, " 1 ") {
		t.Fatalf("fresh: %q", l)
	}
}

// TestCreateTooManyReplicasRefused: the agent places the replicas on the
// nodes as they are now, not as the UI last saw them: n2 stopped
// reporting since the last refresh, and its refusal shows in the form
// before anything is created.
func TestCreateTooManyReplicasRefused(t *testing.T) {
	f := newFake(5)
	m := live(t, f, 80, 24)
	f.set(func(f *fakeAPI) { f.nodes[1].Healthy = false })
	m = act(t, m, "n", "fresh", "tab", "48mb", "tab", "tab", "tab", "tab", "1", "ctrl+s")
	seeing(t, m, "NEW DATABASE", "The agent would refuse: cannot place replica 1 of 1 on a node other than n1: node n2 has")
	if len(f.created) != 0 {
		t.Fatalf("created %+v", f.created)
	}
}

// TestFooterFollowsTheSelection: the footer offers the actions the
// database under the cursor can take, and at 80 columns it fits by
// leaving out keys `?` lists.
func TestFooterFollowsTheSelection(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2")
	for _, c := range []struct {
		keys     []string
		has, not []string
	}{
		{nil, []string{"enter open", "L replicate", "R restart", "D delete", "? keys"}, []string{"F failover", "P promote", "U unlink"}},
		{[]string{"G"}, []string{"F failover", "L replicate", "R restart", "D delete", "? keys"}, []string{"P promote"}},
		{[]string{"/", "orders-copy", "enter"}, []string{"P promote", "U unlink", "R restart", "D delete", "? keys"}, []string{"L replicate", "F failover"}},
		{[]string{"esc", "/", "search-index", "enter"}, []string{"P promote", "? keys"}, []string{"U unlink", "L replicate"}},
	} {
		m = act(t, m, c.keys...)
		l := footer(m)
		for _, w := range c.has {
			if !strings.Contains(l, w) {
				t.Errorf("after %v: %q lacks %q", c.keys, l, w)
			}
		}
		for _, w := range c.not {
			if strings.Contains(l, w) {
				t.Errorf("after %v: %q has %q", c.keys, l, w)
			}
		}
	}
	// Narrow: the keys that act on the database stay, `?` too.
	m = update(act(t, m, "esc", "G"), tea.WindowSizeMsg{Width: 60, Height: 16})
	checkFrame(t, m.View(), 60, 16)
	if l := footer(m); !strings.Contains(l, "F failover") || !strings.Contains(l, "? keys") {
		t.Errorf("at 60 columns: %q", l)
	}
}

// TestDialogsFitSmallScreens: at the smallest size the failover dialog
// cuts its explanation, not its choices or the keys that answer it.
func TestDialogsFitSmallScreens(t *testing.T) {
	m := act(t, live(t, newFake(30), 60, 16), "2", "G", "F")
	v := m.View()
	checkFrame(t, v, 60, 16)
	for _, w := range []string{"Fail over sessions?", "most up-to-date", "n3", "n1", "y/enter fail over"} {
		if !strings.Contains(v, w) {
			t.Fatalf("no %q:\n%s", w, v)
		}
	}
}

// row returns the screen line listing database name, or "".
func row(screen, name string) string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "▸")); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}
