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

// TestSubmit: name, memory, flavor, version and node end up in the
// request, through enter from field to field and enter on Create.
func TestSubmit(t *testing.T) {
	m, msgs := fill(newForm(), "cache-2", "enter", "512mb", "enter", "right", "enter", "left", "enter", "right", "right", "enter")
	if len(msgs) != 0 {
		t.Fatalf("sent before Create: %v", msgs)
	}
	tuitest.Golden(t, m.View())
	_, msgs = fill(m, "enter")
	want := api.CreateDatabaseRequest{Name: "cache-2", Memory: "512mb", Flavor: "rdb", Version: "7.0", Node: "n2"}
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
