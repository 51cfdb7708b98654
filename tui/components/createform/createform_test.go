package createform_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/createform"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

func newForm() createform.Model {
	ctx := tuitest.Context(80, 20)
	m := createform.New(ctx)
	m.SetSize(80, 20)
	m.SetVersions(tuitest.Versions(), nil)
	m.SetNodes(tuitest.Nodes())
	return m
}

// fill types into the form and returns it with the messages its commands
// produced.
func fill(m createform.Model, keys ...string) (createform.Model, []tea.Msg) {
	var msgs []tea.Msg
	for _, k := range keys {
		var in []tea.KeyMsg
		if len(k) > 1 && !strings.Contains("enter esc tab shift+tab up down left right ctrl+s backspace", k) {
			in = tuitest.Type(k)
		} else {
			in = []tea.KeyMsg{tuitest.Key(k)}
		}
		for _, key := range in {
			var cmd tea.Cmd
			m, cmd = m.Update(key)
			msgs = append(msgs, produce(cmd)...)
		}
	}
	return m, msgs
}

func produce(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	if msg := cmd(); msg != nil {
		return []tea.Msg{msg}
	}
	return nil
}

// asked returns the requests the form asked the agent to validate.
func asked(msgs []tea.Msg) []api.CreateDatabaseRequest {
	var out []api.CreateDatabaseRequest
	for _, msg := range msgs {
		if v, ok := msg.(createform.ValidateMsg); ok {
			out = append(out, v.Request)
		}
	}
	return out
}

// submitted returns the creates the form sent.
func submitted(msgs []tea.Msg) []api.CreateDatabaseRequest {
	var out []api.CreateDatabaseRequest
	for _, msg := range msgs {
		if s, ok := msg.(createform.SubmitMsg); ok {
			out = append(out, s.Request)
		}
	}
	return out
}

// last is the last request the form asked about; the test fails if it
// asked none.
func last(t *testing.T, msgs []tea.Msg) api.CreateDatabaseRequest {
	t.Helper()
	a := asked(msgs)
	if len(a) == 0 {
		t.Fatalf("the agent was not asked: %v", msgs)
	}
	return a[len(a)-1]
}

// reply gives the form the agent's answer to req, as the root model
// routes it, and returns the form with what that produced.
func reply(m createform.Model, req api.CreateDatabaseRequest, plan api.CreatePlan, err error) (createform.Model, []tea.Msg) {
	m, cmd := m.Update(source.ValidationMsg{Request: req, Plan: plan, Err: err})
	return m, produce(cmd)
}

// planned is the agent's plan: the primary on the first node, a replica
// on each of the others.
func planned(name string, port int, nodes ...string) api.CreatePlan {
	p := api.CreatePlan{Database: api.Database{Name: name, Port: port, State: api.StatePlanned}, NeedMemory: 1331 << 20, NeedDisk: 5 << 29}
	for i, n := range nodes {
		role := "primary"
		if i > 0 {
			role = "replica"
		}
		p.Database.Instances = append(p.Database.Instances, api.Instance{Node: n, Host: tuitest.Host(n), Port: port, Role: role, State: api.StatePlanned})
	}
	return p
}

// The agent's refusals, word for word.
var (
	badName  = &api.Error{Status: 400, Message: `invalid database name "Cache!": use 1 to 40 lowercase letters, digits and hyphens, starting with a letter`}
	tooSmall = &api.Error{Status: 400, Message: "memory 1 MiB is below the minimum plan of 16 MiB; use --memory 16mb or more"}
	noFit    = &api.Error{Status: 422, Message: "database needs 13.5 GiB of memory (9 GiB plan + 4.5 GiB fork headroom for aof + 16 MiB per-instance overhead) but node n1 has 11.4 GiB free (16 GiB total - 1.6 GiB reserved - 3 GiB allocated); try --memory 7.5gb or --flavor nordb, or add a node"}
)

// TestView is the empty form: the default version (7.2) preselected,
// automatic placement, and a word on when the agent checks it.
func TestView(t *testing.T) {
	tuitest.Golden(t, newForm().View())
}

// TestSubmit: name, memory, flavor, version, node and replicas end up in
// the request, through enter from field to field; the agent's plan says
// where each instance goes and what it needs, and enter on Create sends
// that request at once.
func TestSubmit(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "enter", "512mb", "enter", "right", "enter", "left", "enter", "right", "right", "enter", "1", "enter")
	if s := submitted(msgs); len(s) != 0 {
		t.Fatalf("sent before Create: %v", s)
	}
	want := api.CreateDatabaseRequest{Name: "cache-2", Memory: "512mb", Flavor: "rdb", Version: "7.0", Node: "n2", Replicas: 1}
	if got := last(t, msgs); got != want {
		t.Fatalf("asked about %+v, want %+v", got, want)
	}
	m, _ = reply(m, want, planned("cache-2", 6407, "n2", "n1"), nil)
	tuitest.Golden(t, m.View())
	_, msgs = fill(m, "enter")
	if s := submitted(msgs); len(s) != 1 || s[0] != want || len(asked(msgs)) != 0 {
		t.Fatalf("got %#v, want one create of %+v", msgs, want)
	}
}

// TestRefusedIsNotSent: the agent's refusal of a bad name, a plan below
// its minimum or a plan that does not fit is shown as the agent words it,
// and the create is not sent.
func TestRefusedIsNotSent(t *testing.T) {
	for _, c := range []struct {
		name string
		keys []string
		err  *api.Error
	}{
		{"name", []string{"Cache!", "tab", "256mb"}, badName},
		{"plan", []string{"cache-2", "tab", "1mb"}, tooSmall},
		{"fit", []string{"big", "tab", "9gb", "tab", "tab", "tab", "right"}, noFit},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, msgs := fill(newForm(), append(c.keys, "ctrl+s")...)
			if s := submitted(msgs); len(s) != 0 {
				t.Fatalf("sent before the agent answered: %v", s)
			}
			m, msgs = reply(m, last(t, msgs), api.CreatePlan{}, c.err)
			if s := submitted(msgs); len(s) != 0 {
				t.Fatalf("sent although the agent refused: %v", s)
			}
			if v := m.View(); !strings.Contains(squash(v), squash("The agent would refuse: "+c.err.Message)) {
				t.Fatalf("refusal not shown:\n%s", v)
			}
			if c.name == "fit" {
				tuitest.Golden(t, m.View())
			}
		})
	}
}

// TestNoValidationPerKey: typing asks the agent nothing; leaving a field
// that changed the request asks once, and leaving one that did not asks
// nothing more.
func TestNoValidationPerKey(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb")
	if a := asked(msgs); len(a) != 0 {
		t.Fatalf("asked while typing (no plan left yet): %v", a)
	}
	m, msgs = fill(m, "tab")
	if a := asked(msgs); len(a) != 1 || a[0].Memory != "256mb" {
		t.Fatalf("leaving the plan: asked %v", a)
	}
	m, msgs = fill(m, "tab", "tab", "tab", "2")
	if a := asked(msgs); len(a) != 0 {
		t.Fatalf("asked again with nothing changed, or while typing: %v", a)
	}
	_, msgs = fill(m, "tab")
	if a := asked(msgs); len(a) != 1 || a[0].Replicas != 2 {
		t.Fatalf("leaving the replicas: asked %v", a)
	}
}

// TestSubmitAsksFirst: a create never checked is checked first: the form
// says it is asking, then sends the create the agent accepts.
func TestSubmitAsksFirst(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "ctrl+s")
	req := last(t, msgs)
	if s := submitted(msgs); len(s) != 0 {
		t.Fatalf("sent before the agent answered: %v", s)
	}
	if v := m.View(); !strings.Contains(v, "Asking the agent, then creating cache-2…") {
		t.Fatalf("view:\n%s", v)
	}
	m, msgs = reply(m, req, planned("cache-2", 6407, "n1"), nil)
	if s := submitted(msgs); len(s) != 1 || s[0] != req {
		t.Fatalf("not sent after the agent accepted it: %v", msgs)
	}
	if !m.Pending() {
		t.Fatal("the form does not say the create is under way")
	}
}

// TestStaleRefusalDoesNotBlock: a refusal seen earlier does not hold a
// create back: Create asks the agent again, and sends what it now takes
// (a node came back, say).
func TestStaleRefusalDoesNotBlock(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab")
	req := last(t, msgs)
	m, _ = reply(m, req, api.CreatePlan{}, &api.Error{Status: 409, Message: "no node takes new databases: n1 is draining"})
	m, msgs = fill(m, "ctrl+s")
	if a := asked(msgs); len(a) != 1 || a[0] != req || len(submitted(msgs)) != 0 {
		t.Fatalf("Create did not ask again: %v", msgs)
	}
	_, msgs = reply(m, req, planned("cache-2", 6407, "n1"), nil)
	if s := submitted(msgs); len(s) != 1 {
		t.Fatalf("not sent: %v", msgs)
	}
}

// TestUncheckedIsSent: when the agent cannot say (no leader, no answer in
// time), the form says so and Create still sends the request: the
// create's own answer decides.
func TestUncheckedIsSent(t *testing.T) {
	noLeader := &api.Error{Status: 503, Message: "no leader: the cluster has no leader right now; retry in a few seconds"}
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab")
	req := last(t, msgs)
	m, _ = reply(m, req, api.CreatePlan{}, noLeader)
	if v := flat(m.View()); !strings.Contains(v, "Not checked: no leader") || !strings.Contains(v, "Create still sends it") {
		t.Fatalf("view:\n%s", m.View())
	}
	// Create asks once more, as the agent may be back; it is not.
	m, msgs = fill(m, "ctrl+s")
	if a := asked(msgs); len(a) != 1 || a[0] != req {
		t.Fatalf("Create did not ask again: %v", msgs)
	}
	_, msgs = reply(m, req, api.CreatePlan{}, errors.New("the agent did not answer within 3s"))
	if s := submitted(msgs); len(s) != 1 || s[0] != req {
		t.Fatalf("not sent: %v", msgs)
	}
}

// TestOlderAnswerIgnored: the answer to a request the form no longer
// describes is not shown as the answer to the current one.
func TestOlderAnswerIgnored(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab")
	old := last(t, msgs)
	m, msgs = fill(m, "shift+tab", "backspace", "backspace", "backspace", "backspace", "backspace", "9gb", "tab")
	cur := last(t, msgs)
	m, _ = reply(m, old, planned("cache-2", 6407, "n1"), nil)
	if v := m.View(); strings.Contains(v, "✓") || !strings.Contains(v, "Asking the agent…") {
		t.Fatalf("an older answer was shown:\n%s", v)
	}
	m, _ = reply(m, cur, api.CreatePlan{}, noFit)
	if v := flat(m.View()); !strings.Contains(v, "The agent would refuse: database needs 13.5 GiB") {
		t.Fatalf("view:\n%s", m.View())
	}
	// Typing in a field again: the answer is about what was there before.
	m, _ = fill(m, "shift+tab", "backspace")
	if v := m.View(); strings.Contains(v, "would refuse") || !strings.Contains(v, "The agent checks the request when you leave a field.") {
		t.Fatalf("an answer about another request stayed:\n%s", v)
	}
}

// TestPendingThenRefused: while the agent works the form says so; its
// refusal is shown in the form, which stays open to be corrected.
func TestPendingThenRefused(t *testing.T) {
	m, _ := fill(newForm(), "cache-2", "tab", "256mb")
	m.SetPending(tuitest.Now.Add(-3 * time.Second))
	if _, msgs := fill(m, "x", "ctrl+s"); len(msgs) != 0 {
		t.Fatal("keys were taken while pending")
	}
	if !strings.Contains(m.View(), "Creating cache-2… 3.0s") {
		t.Fatalf("pending not shown:\n%s", m.View())
	}
	m.SetResult(errors.New("version 6.2 is past its end of life (2024-07-31); pick 7.0 or later"))
	tuitest.Golden(t, m.View())
	if _, msgs := fill(m, "esc"); len(msgs) != 1 || msgs[0] != (createform.CancelMsg{}) {
		t.Fatalf("esc: %v", msgs)
	}
}

// TestNoVersions: when the catalogue cannot be read, the agent's default
// is the only choice and the form says why.
func TestNoVersions(t *testing.T) {
	m := newForm()
	m.SetVersions(nil, errors.New("agent unreachable"))
	if v := m.View(); !strings.Contains(v, "default") || !strings.Contains(v, "versions unknown: agent unreachable") {
		t.Fatalf("view:\n%s", v)
	}
	if got := m.Request().Version; got != "" {
		t.Fatalf("version %q, want the agent's default", got)
	}
}

// TestReplicasMustBeAWholeNumber: text that is not a number cannot be
// put in a request: the form says so next to the field, keeps the focus
// there, neither asks the agent nor sends anything, and no longer shows
// the agent's answer about the request without replicas.
func TestReplicasMustBeAWholeNumber(t *testing.T) {
	for _, typed := range []string{"two", "1.5"} {
		m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab")
		m, _ = reply(m, last(t, msgs), planned("cache-2", 6407, "n1"), nil)
		m, msgs = fill(m, "tab", "tab", "tab", typed, "tab", "ctrl+s")
		v := m.View()
		if len(asked(msgs)) != 0 || len(submitted(msgs)) != 0 || !strings.Contains(v, `replicas must be a whole number, not "`+typed+`"`) {
			t.Fatalf("%q: msgs %v, view:\n%s", typed, msgs, v)
		}
		if !strings.Contains(v, "▸ Replicas") || strings.Contains(v, "✓") {
			t.Fatalf("%q: the focus is not on the replicas, or an answer about none shows:\n%s", typed, v)
		}
	}
}

// TestCreateRefusedThenAskedAgain: the create's refusal replaces the
// agent's earlier yes; Create then asks the agent again rather than
// sending the same create on the strength of that yes.
func TestCreateRefusedThenAskedAgain(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab")
	req := last(t, msgs)
	m, _ = reply(m, req, planned("cache-2", 6407, "n1"), nil)
	m, msgs = fill(m, "ctrl+s")
	if s := submitted(msgs); len(s) != 1 {
		t.Fatalf("not sent: %v", msgs)
	}
	m.SetResult(&api.Error{Status: 409, Message: `database "cache-2" already exists`})
	if v := m.View(); !strings.Contains(v, `The agent refused: database "cache-2" already exists`) || strings.Contains(v, "✓") {
		t.Fatalf("view:\n%s", v)
	}
	m, msgs = fill(m, "ctrl+s")
	if a := asked(msgs); len(a) != 1 || len(submitted(msgs)) != 0 {
		t.Fatalf("Create did not ask again first: %v", msgs)
	}
	if v := m.View(); !strings.Contains(v, "Asking the agent, then creating cache-2…") || strings.Contains(v, "The agent refused") {
		t.Fatalf("view:\n%s", v)
	}
}

func newLinked() createform.Model {
	ctx := tuitest.Context(80, 20)
	src := tuitest.Databases(3)[2] // orders, on n3
	m := createform.NewLinked(ctx, src)
	m.SetSize(80, 20)
	m.SetVersions(tuitest.Versions(), nil)
	m.SetNodes(tuitest.Nodes())
	return m
}

// TestLinked: the linked replica form asks only the name and the node,
// says what the new database takes from its source, asks the agent once
// it has a name, and sends a create that follows the source, with
// version, flavor and plan left to the agent (the source's).
func TestLinked(t *testing.T) {
	m, msgs := fill(newLinked(), "orders-eu", "tab", "right", "right", "tab")
	if s := submitted(msgs); len(s) != 0 {
		t.Fatalf("sent before Create: %v", s)
	}
	want := api.CreateDatabaseRequest{Name: "orders-eu", Node: "n2", Follows: "orders"}
	if a := asked(msgs); len(a) != 2 || a[0].Node != "" || a[1] != want {
		t.Fatalf("asked %+v, want the name's then the node's", a)
	}
	m, _ = reply(m, want, planned("orders-eu", 6409, "n2"), nil)
	tuitest.Golden(t, m.View())
	m, msgs = fill(m, "enter")
	if s := submitted(msgs); len(s) != 1 || s[0] != want {
		t.Fatalf("got %#v, want %#v", msgs, want)
	}
	if m.Source() != "orders" {
		t.Fatalf("source %q", m.Source())
	}
}

// TestLinkedRefused: the agent's refusal shows in the form, which stays
// open to be corrected.
func TestLinkedRefused(t *testing.T) {
	m, _ := fill(newLinked(), "orders-eu")
	m.SetPending(tuitest.Now)
	m.SetResult(errors.New("source orders is itself a replica of 10.0.0.9:6379; replicate from 10.0.0.9:6379, or promote orders first"))
	if v := m.View(); !strings.Contains(v, "The agent refused: source orders is itself a replica") || !strings.Contains(v, "NEW LINKED REPLICA OF orders") {
		t.Fatalf("view:\n%s", v)
	}
}

// TestShortScreen: when everything does not fit (in the 13 rows the
// smallest terminal leaves it), the hints and blank lines go first; the
// fields, the agent's answer, the button and the frame stay.
func TestShortScreen(t *testing.T) {
	ctx := tuitest.Context(80, 13)
	m := createform.New(ctx)
	m.SetSize(80, 13)
	m.SetVersions(tuitest.Versions(), nil)
	m.SetNodes(tuitest.Nodes())
	m, msgs := fill(m, "cache-2", "tab", "256mb", "tab", "tab", "tab", "tab", "2", "ctrl+s")
	m, _ = reply(m, last(t, msgs), api.CreatePlan{}, &api.Error{Status: 409, Message: "cannot place replica 2 of 2 on a node other than n1, n2: node n3 is draining"})
	v := m.View()
	if n := len(strings.Split(v, "\n")); n != 13 {
		t.Fatalf("%d lines:\n%s", n, v)
	}
	for _, w := range []string{"NEW DATABASE", "▸ Replicas 2", "[ Create ]", "The agent would refuse: cannot place replica 2", "╰"} {
		if !strings.Contains(v, w) {
			t.Fatalf("no %q:\n%s", w, v)
		}
	}
	if strings.Contains(v, "e.g. cache") || strings.Contains(v, "e.g. 256mb") {
		t.Fatalf("a hint stayed while the frame was short:\n%s", v)
	}
}

// flat is the text of a view as one line: the frame's borders and runs of
// spaces gone, so that wrapped text can be looked for whole.
func flat(v string) string {
	var parts []string
	for _, l := range strings.Split(v, "\n") {
		parts = append(parts, strings.Trim(l, "│ "))
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// squash is the text of a view without the frame's borders or any space,
// for text that wrapping may have broken anywhere (after "--", say).
func squash(v string) string { return strings.ReplaceAll(flat(v), " ", "") }
