package confirm_test

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/tui/components/confirm"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
)

func send(m confirm.Model, keys ...tea.KeyMsg) (confirm.Model, tea.Msg) {
	var last tea.Msg
	for _, k := range keys {
		var cmd tea.Cmd
		m, cmd = m.Update(k)
		if cmd != nil {
			last = cmd()
		}
	}
	return m, last
}

func typed() confirm.Model {
	m := confirm.NewTyped(tuitest.Context(80, 14), "Delete cache?", "This deletes cache and ALL ITS DATA. It cannot be undone.", "cache", "tag")
	m.SetSize(80, 14)
	return m
}

// TestTypedNeedsTheExactName: a delete goes ahead only once the exact
// name is typed; anything else says so and waits.
func TestTypedNeedsTheExactName(t *testing.T) {
	m, msg := send(typed(), tuitest.Type("cach")...)
	m, msg2 := send(m, tuitest.Key("enter"))
	if msg != nil || msg2 != nil {
		t.Fatalf("confirmed with a wrong name: %v %v", msg, msg2)
	}
	tuitest.Golden(t, m.View())
	_, msg = send(m, append(tuitest.Type("e"), tuitest.Key("enter"))...)
	if msg != (confirm.ConfirmedMsg{Tag: "tag"}) {
		t.Fatalf("got %#v", msg)
	}
	// y, which confirms a yes/no dialog, is only a letter here.
	if _, msg = send(typed(), tuitest.Key("y")); msg != nil {
		t.Fatalf("y confirmed a typed dialog: %v", msg)
	}
	if _, msg = send(typed(), tuitest.Key("esc")); msg != (confirm.CancelledMsg{Tag: "tag"}) {
		t.Fatalf("esc: %#v", msg)
	}
}

// TestYesNo: y confirms, n and esc cancel, other keys do nothing.
func TestYesNo(t *testing.T) {
	m := confirm.NewYesNo(tuitest.Context(80, 10), "Restart cache?", "Every instance of cache restarts.", 7)
	m.SetSize(80, 10)
	if !strings.Contains(m.View(), "y yes   n/esc no") {
		t.Fatalf("view:\n%s", m.View())
	}
	for k, want := range map[string]tea.Msg{"y": confirm.ConfirmedMsg{Tag: 7}, "n": confirm.CancelledMsg{Tag: 7}, "esc": confirm.CancelledMsg{Tag: 7}, "x": nil, "enter": nil} {
		if _, got := send(m, tuitest.Key(k)); got != want {
			t.Errorf("%s: got %#v, want %#v", k, got, want)
		}
	}
}

func choice(h int) confirm.Model {
	m := confirm.NewChoice(tuitest.Context(80, h), "Fail over sessions?",
		"Writes to sessions pause until the chosen replica has every one; it then becomes the primary.", "fail over",
		[]confirm.Choice{{Value: "", Label: "most up-to-date", Detail: "the agent picks"}, {Value: "n3", Label: "n3", Detail: "link up · lag 0 B"}, {Value: "n1", Label: "n1", Detail: "link down"}}, "tag")
	m.SetSize(80, h)
	return m
}

// TestChoice: ↑↓ (or j k, tab) move the pick, which stays in range; y or
// enter confirm with the value picked; n and esc cancel.
func TestChoice(t *testing.T) {
	m, msg := send(choice(16), tuitest.Key("down"), tuitest.Key("down"), tuitest.Key("down"), tuitest.Key("up"))
	if msg != nil || m.Picked() != "n3" {
		t.Fatalf("picked %q, msg %v", m.Picked(), msg)
	}
	tuitest.Golden(t, m.View())
	for k, want := range map[string]tea.Msg{
		"y": confirm.ConfirmedMsg{Tag: "tag", Choice: "n3"}, "enter": confirm.ConfirmedMsg{Tag: "tag", Choice: "n3"},
		"n": confirm.CancelledMsg{Tag: "tag"}, "esc": confirm.CancelledMsg{Tag: "tag"}, "x": nil,
	} {
		if _, got := send(m, tuitest.Key(k)); got != want {
			t.Errorf("%s: got %#v, want %#v", k, got, want)
		}
	}
	if _, got := send(choice(16), tuitest.Key("k"), tuitest.Key("enter")); got != (confirm.ConfirmedMsg{Tag: "tag"}) {
		t.Errorf("up from the first: %#v", got)
	}
}

// TestShortScreen: when the dialog does not fit, its explanation is cut,
// never the choices or the keys that answer it.
func TestShortScreen(t *testing.T) {
	v := choice(11).View()
	lines := strings.Split(v, "\n")
	if len(lines) != 11 {
		t.Fatalf("%d lines:\n%s", len(lines), v)
	}
	for _, w := range []string{"Fail over sessions?", "most up-to-date", "n1", "y/enter fail over", "…", "╰"} {
		if !strings.Contains(v, w) {
			t.Fatalf("no %q:\n%s", w, v)
		}
	}
}
