// Package tuitest holds what the terminal UI's tests share: a context with
// a fixed clock and no colours (so golden files are plain, readable text
// that does not depend on the terminal running the tests), fixtures shaped
// like what the agent's API returns, and key messages.
//
// Golden files live in each package's testdata/, named after the test;
// `go test ./tui/... -update` rewrites them (the flag comes from
// charmbracelet/x/exp/golden, which teatest uses too).
package tuitest

import (
	"fmt"
	"hash/fnv"
	"io"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/muesli/termenv"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/tui/theme"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// Now is the fixed time of every test's clock.
var Now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func init() {
	// Components that fall back to lipgloss's default renderer must not
	// depend on the terminal running the tests either.
	lipgloss.SetColorProfile(termenv.Ascii)
}

// Renderer returns a renderer with the given colour profile.
func Renderer(p termenv.Profile) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(p)
	return r
}

// Context returns a w×h context without colours whose data was fetched
// 0.4s before Now and is live.
func Context(w, h int) *uictx.Context {
	c := uictx.New(theme.New(Renderer(termenv.Ascii)), time.Second)
	c.Width, c.Height = w, h
	c.Now = Now
	c.DataAt = Now.Add(-400 * time.Millisecond)
	c.Endpoint = "/run/redis-appliance/api.sock"
	return c
}

// Golden compares view with testdata/<test name>.golden.
func Golden(t testing.TB, view string) {
	t.Helper()
	golden.RequireEqual(t, []byte(view+"\n"))
}

// Key returns the message of a key as bubbletea reports it: "enter",
// "esc", "tab", "shift+tab", "up", "down", "left", "right", "pgdown",
// "pgup", "home", "end", "backspace", "ctrl+c", "ctrl+s", or text.
func Key(s string) tea.KeyMsg {
	types := map[string]tea.KeyType{
		"enter": tea.KeyEnter, "esc": tea.KeyEsc, "tab": tea.KeyTab, "shift+tab": tea.KeyShiftTab,
		"up": tea.KeyUp, "down": tea.KeyDown, "left": tea.KeyLeft, "right": tea.KeyRight,
		"pgdown": tea.KeyPgDown, "pgup": tea.KeyPgUp, "home": tea.KeyHome, "end": tea.KeyEnd,
		"backspace": tea.KeyBackspace, "ctrl+c": tea.KeyCtrlC, "ctrl+s": tea.KeyCtrlS, " ": tea.KeySpace,
	}
	if t, ok := types[s]; ok {
		return tea.KeyMsg{Type: t}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// Type returns one key message per character of s, as typed by hand.
func Type(s string) []tea.KeyMsg {
	var out []tea.KeyMsg
	for _, r := range s {
		out = append(out, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	return out
}

// Database returns a database as the API lists it, with one primary
// instance on node. A running one has the load of Load(name); any other
// has none observed (the API's zeros).
func Database(name, version, flavor, state, node string, plan, used int64) api.Database {
	port := 6400 + len(name)
	pid := 0
	if state == api.StateRunning {
		pid = 4000 + int(plan%997)
	}
	in := api.Instance{
		ID: name + "-0", Node: node, Host: Host(node), Port: port, Role: "primary",
		Unit: "redis-appliance-db-" + name + "-0.service", State: state, PID: pid,
		MemoryUsedBytes: used, ServerVersion: version + ".15", Offset: 3_000_000 + plan%1_000_003,
	}
	if state == api.StateFailed {
		in.Error = "redis-server exited with status 1: see journalctl -u " + in.Unit
		in.Restarts = 5
	}
	if state == api.StateRunning {
		in.OpsPerSec, in.Clients = Load(name)
	}
	return api.Database{
		Name: name, Version: version, Flavor: flavor, MemoryBytes: plan,
		CreatedAt: Now.Add(-26 * time.Hour), Port: port, Unit: in.Unit, State: state,
		MemoryUsedBytes: used, OpsPerSec: in.OpsPerSec, Clients: in.Clients, Instances: []api.Instance{in},
		AccessControl: true,
	}
}

// load is the hand-picked ops/s and connected clients of the named
// fixtures of Databases.
var load = map[string]struct {
	ops     int64
	clients int
}{
	"cache": {4, 1}, "sessions": {9_870, 156}, "orders": {2_315, 48}, "carts": {640, 22},
	"leaderboard": {48_213, 412}, "orders-copy": {1_204, 3},
}

// Load returns the ops/s and connected clients a running database called
// name reports, as the agent observes them: a few hand-picked (leaderboard
// the busiest, cache idle as its empty memory says), the others spread
// from idle (a few ops/s and one client: the agent's INFO and its
// connection) to tens of thousands of ops/s, deterministically from the
// name.
func Load(name string) (ops int64, clients int) {
	if l, ok := load[name]; ok {
		return l.ops, l.clients
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	x := int64(h.Sum32())
	switch x % 5 {
	case 0:
		return 1 + x%3, 1
	case 1, 2:
		return 40 + x%900, 2 + int(x%12)
	case 3:
		return 1000 + x%9000, 10 + int(x%90)
	}
	return 10_000 + x%30_000, 50 + int(x%300)
}

// Host returns the address of node nN: 10.0.0.N.
func Host(node string) string {
	if len(node) > 1 && node[0] == 'n' {
		return "10.0.0." + node[1:]
	}
	return "10.0.0.1"
}

// Lagging describes a replica for WithReplicas: its node, and how it
// stands with its primary.
type Lagging struct {
	Node string
	// Lag is in bytes; Down is a link that is down (then the lag and the
	// last IO are unknown, and a sync is in progress).
	Lag  int64
	Down bool
}

// WithReplicas returns db with a replica on each node of rs, following
// its primary (the first instance) as the agent reports it.
func WithReplicas(db api.Database, rs ...Lagging) api.Database {
	p := db.Instances[0]
	for i, r := range rs {
		in := p
		in.ID = fmt.Sprintf("%s-%d", db.Name, i+1)
		in.Node, in.Host, in.Role = r.Node, Host(r.Node), "replica"
		in.Unit = "redis-appliance-db-" + in.ID + ".service"
		in.PID = p.PID + 11*(i+1)
		in.Offset = p.Offset - r.Lag
		// A replica applies the primary's writes (a fraction of its
		// ops) and serves few clients: the agent, and a reader or two.
		in.OpsPerSec, in.Clients = p.OpsPerSec/4+int64(i), 2+i
		in.Replication = &api.Replication{
			Primary: fmt.Sprintf("%s:%d", p.Host, p.Port), LinkStatus: "up", LagBytes: r.Lag, LastIOSeconds: i,
		}
		if r.Down {
			in.Replication.LinkStatus, in.Replication.SyncInProgress = "down", true
			in.Replication.LagBytes, in.Replication.LastIOSeconds = -1, -1
			in.Offset = 0
			in.OpsPerSec, in.Clients = 1, 1
		}
		db.Instances = append(db.Instances, in)
	}
	return db
}

// Databases returns n databases with a deterministic mix of versions,
// flavors, states, nodes, plans and memory use. The first few have
// hand-picked names and replication: sessions has two replicas, orders
// one, db-010 one whose link is down; orders-copy is a linked replica of
// orders, search-index an unlinked (read-only) one, and carts was
// promoted from an external Redis it followed. Every one has access
// control but ratelimit (from before it); leaderboard has two application
// users (Users).
func Databases(n int) []api.Database {
	names := []string{"cache", "sessions", "orders", "carts", "leaderboard", "ratelimit", "orders-copy", "search-index"}
	versions := []string{"7.0", "7.2", "7.4", "6.2", "7.10"}
	flavors := []string{"aof", "rdb", "nordb"}
	plans := []int64{64 * sizing.MiB, 256 * sizing.MiB, 1 * sizing.GiB, 32 * sizing.MiB, 512 * sizing.MiB}
	out := make([]api.Database, 0, n)
	for i := range n {
		name := fmt.Sprintf("db-%03d", i)
		if i < len(names) {
			name = names[i]
		}
		state := api.StateRunning
		switch {
		case i%13 == 5:
			state = api.StateFailed
		case i%11 == 7:
			state = api.StateStarting
		}
		plan := plans[i%len(plans)]
		used := plan / 100 * int64((i*37)%97)
		version, flavor := versions[i%len(versions)], flavors[(i/3)%len(flavors)]
		if name == "orders-copy" {
			// A linked replica takes its source's version, flavor and plan.
			src := out[2]
			version, flavor, plan = src.Version, src.Flavor, src.MemoryBytes
			used = src.MemoryUsedBytes
		}
		out = append(out, Database(name, version, flavor, state, fmt.Sprintf("n%d", i%3+1), plan, used))
	}
	for i := range out {
		db := &out[i]
		switch db.Name {
		case "sessions":
			*db = WithReplicas(*db, Lagging{Node: "n3"}, Lagging{Node: "n1", Lag: 1536})
			db.Epoch = 3
		case "orders":
			*db = WithReplicas(*db, Lagging{Node: "n1"})
			db.Epoch = 1
			if n > 6 {
				db.LinkedReplicas = []string{"orders-copy"}
			}
		case "db-010":
			*db = WithReplicas(*db, Lagging{Node: "n3", Down: true})
		case "orders-copy":
			src := out[2].Instances[0]
			db.Follows = "orders"
			db.Instances[0].Offset = src.Offset - 512
			db.Instances[0].Replication = &api.Replication{
				Primary: fmt.Sprintf("%s:%d", src.Host, src.Port), LinkStatus: "up", LagBytes: 512, LastIOSeconds: 1,
			}
		case "search-index":
			db.ReadOnly = true
		case "leaderboard":
			db.Users = Users()
		case "ratelimit":
			// From before access control, on a cluster not upgraded yet.
			db.AccessControl = false
		case "carts":
			at := Now.Add(-3 * time.Hour)
			db.PromotedAt, db.PromotedFrom, db.Epoch = &at, "10.0.0.9:6379", 1
		}
	}
	return out
}

// Users returns the application users of leaderboard, as the agent lists
// them: game, a writer limited to its keys and channels, rotated an hour
// ago (its old password works 23 hours more); stats, a reader of
// everything.
func Users() []api.DatabaseUser {
	until := Now.Add(23 * time.Hour)
	return []api.DatabaseUser{
		{Name: "game", Role: "write", Keys: []string{"lb:*", "scores:*"}, Channels: []string{"lb-events"},
			CreatedAt: Now.Add(-50 * time.Hour), RotatedAt: Now.Add(-time.Hour), PreviousValidUntil: &until},
		{Name: "stats", Role: "read", Keys: []string{"*"}, Channels: []string{"*"}, CreatedAt: Now.Add(-30 * time.Hour)},
	}
}

// Nodes returns three nodes: n1 the leader, n2 a healthy follower, n3 a
// draining follower the leader lost contact with. Their reserves are what
// the agent keeps by default on such hardware (16 GiB of memory, 200 GiB of
// disk): a tenth of the memory and a twentieth of the disk, and their free
// room is what is left of it, as the agent reports them.
func Nodes() []api.Node {
	hw := func(memAvail, diskFree int64) api.Hardware {
		return api.Hardware{
			MemTotal: 16 * sizing.GiB, MemAvailable: memAvail, SwapTotal: 2 * sizing.GiB, SwapFree: 2 * sizing.GiB,
			CPUs: 4, DiskPath: "/var/lib/redis-appliance", DiskTotal: 200 * sizing.GiB, DiskFree: diskFree,
		}
	}
	node := func(name string, leader, healthy bool, contact float64, h api.Hardware, alloc int64, dbs int) api.Node {
		reserveMem, reserveDisk := h.MemTotal/10, h.DiskTotal/20
		return api.Node{
			Name: name, Address: "10.0.0." + name[1:], Voter: true, Leader: leader, Healthy: healthy,
			LastContactSeconds: contact, Hardware: h, ReservedMemory: reserveMem, ReservedDisk: reserveDisk,
			AllocatedMemory: alloc, AllocatedDisk: alloc * 2,
			FreeMemory: max(0, h.MemTotal-reserveMem-alloc), FreeDisk: max(0, h.DiskFree-reserveDisk-alloc*2),
			Databases: dbs,
		}
	}
	n3 := node("n3", false, false, 42, hw(2*sizing.GiB, 20*sizing.GiB), 9*sizing.GiB, 7)
	n3.Draining = true
	return []api.Node{
		node("n1", true, true, 0, hw(12*sizing.GiB, 150*sizing.GiB), 3*sizing.GiB, 12),
		node("n2", false, true, 0.3, hw(9*sizing.GiB, 120*sizing.GiB), 5*sizing.GiB, 9),
		n3,
	}
}

// Status returns n1's view of a healthy three-node cluster.
func Status() api.ClusterStatus {
	return api.ClusterStatus{
		Node: "n1", RaftState: "leader", Leader: "n1", Voters: 3, LastIndex: 1042, AppliedIndex: 1042, Bootstrapped: true,
	}
}

// Versions returns a catalogue with 7.0 and 7.2 installed, 7.2 the default.
func Versions() []api.Version {
	return []api.Version{
		{Version: "6.2", Status: "eol"},
		{Version: "7.0", Status: "supported", Installed: true, Full: "7.0.15"},
		{Version: "7.2", Status: "supported", Installed: true, Full: "7.2.4", Default: true},
		{Version: "7.4", Status: "supported"},
	}
}

// environ is an environment for termenv.
type environ map[string]string

func (e environ) Environ() []string {
	var out []string
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

func (e environ) Getenv(k string) string { return e[k] }

// RendererFor returns the renderer that lipgloss makes for a terminal
// with the environment env, as Run does for the real one.
func RendererFor(env map[string]string) *lipgloss.Renderer {
	return lipgloss.NewRenderer(io.Discard, termenv.WithEnvironment(environ(env)), termenv.WithTTY(true))
}

// Events returns what the cluster of Databases and Nodes recorded, oldest
// first, as the agent words it: yesterday a planned switchover of
// sessions to n3; this morning n1 briefly fenced (a lease lost for a
// second) and then lost and back; a minute ago n3 lost, sessions failed
// over to n2 and orders refused, its only replica being too far behind.
func Events() []api.Event {
	at := func(day, h, m, s, ms int) time.Time {
		return time.Date(2025, 6, day, h, m, s, ms*int(time.Millisecond), time.UTC)
	}
	return []api.Event{
		{At: at(0, 16, 42, 10, 250), Kind: "switchover", Database: "sessions", Node: "n3",
			Message: "planned switchover of sessions from n1 to n3 (epoch 2); writes paused 10ms"},
		{At: at(1, 10, 2, 44, 100), Kind: "fenced", Node: "n1",
			Message: "no word from the leader for 1s: 2 primaries refuse writes until contact returns"},
		{At: at(1, 10, 2, 45, 350), Kind: "unfenced", Node: "n1",
			Message: "the leader is reachable again: 2 primaries take writes"},
		{At: at(1, 10, 41, 7, 20), Kind: "node-lost", Node: "n1", Message: "node n1 silent for more than 1.5s"},
		{At: at(1, 10, 41, 39, 480), Kind: "node-back", Node: "n1", Message: "node n1 reports again"},
		{At: at(1, 11, 59, 17, 812), Kind: "node-lost", Node: "n3", Message: "node n3 silent for more than 1.5s"},
		{At: at(1, 11, 59, 17, 815), Kind: "detected", Database: "sessions", Node: "n3",
			Message: "primary sessions-1 of sessions failed: node n3 silent for 1.503s; replicas confirm"},
		{At: at(1, 11, 59, 17, 840), Kind: "promoted", Database: "sessions", Node: "n2",
			Message: "sessions-0 on n2 is the primary of sessions (epoch 3) after node n3 silent for 1.503s"},
		{At: at(1, 11, 59, 17, 846), Kind: "failover-refused", Database: "orders",
			Message: "primary failed (node n3 silent for 1.506s) and no replica qualifies: the replica on n1 is 3145728 bytes behind (failover.max_lag 1048576)"},
	}
}

// ManyEvents returns n events, oldest first, one a second up to Now, of
// every kind the agent records, over the databases of Databases and the
// nodes of Nodes; event i's message starts with "event i:".
func ManyEvents(n int) []api.Event {
	kinds := []string{"node-lost", "fenced", "detected", "promoted", "failover-refused", "unfenced", "node-back", "switchover"}
	dbs := []string{"sessions", "orders", "db-010", "cache"}
	out := make([]api.Event, n)
	for i := range out {
		e := api.Event{
			At:   Now.Add(-time.Duration(n-i) * time.Second),
			Kind: kinds[i%len(kinds)],
			Node: fmt.Sprintf("n%d", i%3+1),
		}
		e.Message = fmt.Sprintf("event %d: %s on %s", i, e.Kind, e.Node)
		switch e.Kind {
		case "node-lost", "node-back", "fenced", "unfenced":
		default:
			e.Database = dbs[i%len(dbs)]
			e.Message = fmt.Sprintf("event %d: %s of %s on %s", i, e.Kind, e.Database, e.Node)
		}
		out[i] = e
	}
	return out
}
