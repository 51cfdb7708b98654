package userform_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/userform"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
)

func newForm() userform.Model {
	m := userform.New(tuitest.Context(80, 20), "cache")
	m.SetSize(80, 20)
	return m
}

// fill sends keys, names ("tab") or text typed one key at a time, and
// returns the messages their commands give.
func fill(m userform.Model, ks ...string) (userform.Model, []tea.Msg) {
	var msgs []tea.Msg
	for _, k := range ks {
		in := []tea.KeyMsg{tuitest.Key(k)}
		if len(k) > 1 && tuitest.Key(k).Type == tea.KeyRunes {
			in = tuitest.Type(k)
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

// TestRequest: the fields make the request: patterns separated by
// spaces, none for every key or channel; ←/→ pick the role, which stays
// among the three; enter moves on, and on Create sends.
func TestRequest(t *testing.T) {
	m, msgs := fill(newForm(), " app ", "enter", "right", "right", "right", "left", "enter", "app:*  jobs:*", "enter", "enter")
	if len(msgs) != 0 {
		t.Fatalf("sent before Create: %v", msgs)
	}
	tuitest.Golden(t, m.View())
	_, msgs = fill(m, "enter")
	want := api.CreateUserRequest{Name: "app", Role: "write", Keys: []string{"app:*", "jobs:*"}}
	if len(msgs) != 1 {
		t.Fatalf("msgs %v", msgs)
	}
	got := msgs[0].(userform.SubmitMsg)
	if got.Database != "cache" || got.Request.Name != want.Name || got.Request.Role != want.Role || !slices.Equal(got.Request.Keys, want.Keys) || got.Request.Channels != nil {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// In a text field, h, l and space are text, not a change of role.
	if m, _ := fill(newForm(), "h l"); m.Request().Name != "h l" || m.Request().Role != "read" {
		t.Fatalf("request %+v", m.Request())
	}
}

// TestPendingThenRefused: while the agent works the form takes no keys
// but esc, which leaves the create to go on; the refusal shows in the
// form, and goes at the next change.
func TestPendingThenRefused(t *testing.T) {
	m, _ := fill(newForm(), "Bad!")
	m.SetPending(tuitest.Now)
	if m, msgs := fill(m, "x", "ctrl+s"); len(msgs) != 0 || m.Request().Name != "Bad!" {
		t.Fatalf("keys taken while pending: %v", msgs)
	}
	if !strings.Contains(m.View(), "Creating user Bad!…") {
		t.Fatalf("view:\n%s", m.View())
	}
	if _, msgs := fill(m, "esc"); len(msgs) != 1 || msgs[0] != (userform.CancelMsg{Pending: true}) {
		t.Fatalf("esc: %v", msgs)
	}
	m.SetResult(errors.New(`user name "Bad!" is not usable`))
	if v := m.View(); !strings.Contains(v, `The agent refused, nothing was created: user name "Bad!" is not usable`) {
		t.Fatalf("view:\n%s", v)
	}
	if m, _ = fill(m, "backspace"); strings.Contains(m.View(), "refused") {
		t.Fatalf("the refusal stayed:\n%s", m.View())
	}
}

// TestShortScreen: on the smallest screen the hints go first; the fields,
// the button and the frame stay.
func TestShortScreen(t *testing.T) {
	m := userform.New(tuitest.Context(60, 12), "cache")
	m.SetSize(60, 12)
	m.SetResult(errors.New("database cache has no users yet: upgrade the agent on n3 first"))
	v := m.View()
	if n := len(strings.Split(v, "\n")); n != 12 {
		t.Fatalf("%d lines:\n%s", n, v)
	}
	for _, w := range []string{"NEW USER OF cache", "▸ Name", "Role", "Keys", "Channels", "[ Create ]", "The agent refused", "╰"} {
		if !strings.Contains(v, w) {
			t.Fatalf("no %q:\n%s", w, v)
		}
	}
}
