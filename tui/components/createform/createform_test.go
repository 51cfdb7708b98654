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
)

func newForm() createform.Model {
	ctx := tuitest.Context(80, 20)
	m := createform.New(ctx)
	m.SetSize(80, 20)
	m.SetVersions(tuitest.Versions(), nil)
	m.SetNodes(tuitest.Nodes())
	m.SetDatabases(tuitest.Databases(3))
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
			if cmd != nil {
				if msg := cmd(); msg != nil {
					msgs = append(msgs, msg)
				}
			}
		}
	}
	return m, msgs
}

// TestView is the empty form: the default version (7.2) preselected,
// automatic placement.
func TestView(t *testing.T) {
	tuitest.Golden(t, newForm().View())
}

// TestSubmit: name, memory, flavor, version, node and replicas end up in
// the request, through enter from field to field and enter on Create.
func TestSubmit(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "enter", "512mb", "enter", "right", "enter", "left", "enter", "right", "right", "enter", "1", "enter")
	if len(msgs) != 0 {
		t.Fatalf("sent before Create: %v", msgs)
	}
	tuitest.Golden(t, m.View())
	_, msgs = fill(m, "enter")
	want := api.CreateDatabaseRequest{Name: "cache-2", Memory: "512mb", Flavor: "rdb", Version: "7.0", Node: "n2", Replicas: 1}
	if len(msgs) != 1 || msgs[0] != (createform.SubmitMsg{Request: want}) {
		t.Fatalf("got %#v, want %#v", msgs, want)
	}
}

// TestInvalid: the agent's rules are applied before anything is sent; the
// errors show next to their fields and the focus goes to the first one.
func TestInvalid(t *testing.T) {
	m, msgs := fill(newForm(), "Cache!", "tab", "12zb", "ctrl+s")
	if len(msgs) != 0 {
		t.Fatalf("an invalid form was sent: %v", msgs)
	}
	tuitest.Golden(t, m.View())
}

// TestTakenAndTooSmall: a name already used and a plan under the minimum.
func TestTakenAndTooSmall(t *testing.T) {
	m, msgs := fill(newForm(), "cache", "tab", "1mb", "ctrl+s")
	v := m.View()
	if len(msgs) != 0 || !strings.Contains(v, "a database called cache already exists") || !strings.Contains(v, "1 MiB is below the minimum plan of 16 MiB") {
		t.Fatalf("msgs %v, view:\n%s", msgs, v)
	}
}

// TestDoesNotFit: the plan is checked with the agent's sizing rules
// against the chosen node's last reported hardware.
func TestDoesNotFit(t *testing.T) {
	m, msgs := fill(newForm(), "big", "tab", "9gb", "tab", "tab", "tab", "right", "ctrl+s")
	if len(msgs) != 0 {
		t.Fatalf("a database that does not fit was sent: %v", msgs)
	}
	tuitest.Golden(t, m.View())
	// With automatic placement it fits elsewhere... but not 9gb: no node
	// has that much, and the form says so with the first node's figures.
	m, msgs = fill(m, "left", "ctrl+s")
	if len(msgs) != 0 || !strings.Contains(m.View(), "node n1") {
		t.Fatalf("auto placement: msgs %v\n%s", msgs, m.View())
	}
	// 6gb fits on n1 only: sent.
	_, msgs = fill(m, "up", "up", "up", "backspace", "backspace", "backspace", "6gb", "ctrl+s")
	if len(msgs) != 1 {
		t.Fatalf("6gb with auto placement was not sent:\n%s", m.View())
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

// TestReplicasMustBeAWholeNumber: the replicas field takes 0 or more, and
// anything else is refused before it is sent, next to the field.
func TestReplicasMustBeAWholeNumber(t *testing.T) {
	for _, typed := range []string{"-1", "two", "1.5"} {
		m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab", "tab", "tab", "tab", typed, "ctrl+s")
		v := m.View()
		if len(msgs) != 0 || !strings.Contains(v, "replicas must be a whole number, 0 or more") {
			t.Fatalf("%q: msgs %v, view:\n%s", typed, msgs, v)
		}
		if !strings.Contains(v, "▸ Replicas") {
			t.Fatalf("%q: the focus is not on the replicas:\n%s", typed, v)
		}
	}
	// Empty is none.
	_, msgs := fill(newForm(), "cache-2", "tab", "256mb", "ctrl+s")
	if len(msgs) != 1 || msgs[0].(createform.SubmitMsg).Request.Replicas != 0 {
		t.Fatalf("no replicas: %v", msgs)
	}
}

// TestTooManyReplicas: more replicas than the cluster has other nodes is
// refused before it is sent, with the agent's reasoning (each instance on
// its own node).
func TestTooManyReplicas(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab", "tab", "tab", "tab", "3", "ctrl+s")
	if len(msgs) != 0 || !strings.Contains(m.View(), "3 replicas need 4 nodes (each instance on its own node)") {
		t.Fatalf("msgs %v, view:\n%s", msgs, m.View())
	}
}

// TestReplicasDoNotFit: two replicas need three nodes that take new
// instances; n3 is draining, so the form says which nodes can and why the
// other cannot. One replica fits, and is sent.
func TestReplicasDoNotFit(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "tab", "256mb", "tab", "tab", "tab", "tab", "2", "ctrl+s")
	if len(msgs) != 0 {
		t.Fatalf("sent: %v", msgs)
	}
	tuitest.Golden(t, m.View())
	_, msgs = fill(m, "backspace", "1", "ctrl+s")
	if len(msgs) != 1 || msgs[0].(createform.SubmitMsg).Request.Replicas != 1 {
		t.Fatalf("one replica was not sent: %v", msgs)
	}
}

func newLinked() createform.Model {
	ctx := tuitest.Context(80, 20)
	src := tuitest.Databases(3)[2] // orders, on n3
	m := createform.NewLinked(ctx, src)
	m.SetSize(80, 20)
	m.SetVersions(tuitest.Versions(), nil)
	m.SetNodes(tuitest.Nodes())
	m.SetDatabases(tuitest.Databases(3))
	return m
}

// TestLinked: the linked replica form asks only the name and the node,
// says what the new database takes from its source, and sends a create
// that follows the source, with version, flavor and plan left to the
// agent (the source's).
func TestLinked(t *testing.T) {
	m, msgs := fill(newLinked(), "orders-eu", "tab", "right", "right")
	if len(msgs) != 0 {
		t.Fatalf("sent before Create: %v", msgs)
	}
	tuitest.Golden(t, m.View())
	m, msgs = fill(m, "tab", "enter")
	want := api.CreateDatabaseRequest{Name: "orders-eu", Node: "n2", Follows: "orders"}
	if len(msgs) != 1 || msgs[0] != (createform.SubmitMsg{Request: want}) {
		t.Fatalf("got %#v, want %#v", msgs, want)
	}
	if m.Source() != "orders" {
		t.Fatalf("source %q", m.Source())
	}
}

// TestLinkedChecks: the name is checked as for any database, and the
// source's plan against the chosen node: the draining n3 is refused.
func TestLinkedChecks(t *testing.T) {
	m, msgs := fill(newLinked(), "orders", "tab", "left", "ctrl+s")
	v := m.View()
	if len(msgs) != 0 || !strings.Contains(v, "a database called orders already exists") || !strings.Contains(v, "node n3 is draining and takes no new databases") {
		t.Fatalf("msgs %v, view:\n%s", msgs, v)
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

// TestShortScreen: when everything does not fit, the hints and blank
// lines go first; the fields, the errors, the agent's answer, the button
// and the frame stay.
func TestShortScreen(t *testing.T) {
	ctx := tuitest.Context(80, 15)
	m := createform.New(ctx)
	m.SetSize(80, 15)
	m.SetVersions(tuitest.Versions(), nil)
	m.SetNodes(tuitest.Nodes())
	m, _ = fill(m, "cache-2", "tab", "256mb", "tab", "tab", "tab", "tab", "2", "ctrl+s")
	m.SetResult(errors.New("cannot place replica 2 of 2 on a node other than n1, n2"))
	v := m.View()
	if n := len(strings.Split(v, "\n")); n != 15 {
		t.Fatalf("%d lines:\n%s", n, v)
	}
	for _, w := range []string{"NEW DATABASE", "▸ Replicas 2", "only n1, n2", "[ Create ]", "The agent refused: cannot place replica 2", "╰"} {
		if !strings.Contains(v, w) {
			t.Fatalf("no %q:\n%s", w, v)
		}
	}
	if strings.Contains(v, "e.g. cache") || strings.Contains(v, "= 256 MiB") {
		t.Fatalf("a hint stayed while the frame was short:\n%s", v)
	}
}

// TestOneNode: on a one-node cluster a replica has nowhere to go: the form
// says so instead of offering the field, and tab goes from the node
// straight to Create, as before replicas existed.
func TestOneNode(t *testing.T) {
	m := newForm()
	m.SetNodes(tuitest.Nodes()[:1])
	m, msgs := fill(m, "solo", "tab", "32mb", "tab", "tab", "tab", "tab")
	v := m.View()
	if len(msgs) != 0 || !strings.Contains(v, "▸ [ Create ]") || !strings.Contains(v, "none: each replica needs another node; this cluster has one") {
		t.Fatalf("msgs %v, view:\n%s", msgs, v)
	}
	_, msgs = fill(m, "enter")
	if len(msgs) != 1 || msgs[0].(createform.SubmitMsg).Request.Replicas != 0 {
		t.Fatalf("msgs %v", msgs)
	}
}
