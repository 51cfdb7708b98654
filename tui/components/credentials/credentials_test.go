package credentials_test

import (
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/credentials"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
)

const password = "e3Rb0Qk1vYxW8mPz4TnLc7Hs2JdGf9Au"

func creds() api.Credentials {
	until := tuitest.Now.Add(24 * time.Hour)
	return api.Credentials{Database: "cache", User: "app", Password: password,
		URL: "redis://app:" + password + "@10.0.0.1:6405/0", PreviousValidUntil: &until}
}

// TestRotated: the panel says the password is shown once, shows it and
// the URL whole even where they do not fit a line, and until when the old
// one works.
func TestRotated(t *testing.T) {
	m := credentials.New(tuitest.Context(60, 20), creds(), true)
	m.SetSize(60, 20)
	v := m.View()
	tuitest.Golden(t, v)
	flat := strings.Join(strings.Fields(strings.NewReplacer("│", "").Replace(v)), "")
	for _, w := range []string{password, "redis://app:" + password + "@10.0.0.1:6405/0", "notshownagain", "2025-06-0212:00UTC(24h00mfromnow)"} {
		if !strings.Contains(flat, w) {
			t.Errorf("no %q:\n%s", w, v)
		}
	}
}

// TestDismiss: enter and esc dismiss it; other keys do nothing.
func TestDismiss(t *testing.T) {
	m := credentials.New(tuitest.Context(80, 20), creds(), false)
	for k, want := range map[string]tea.Msg{"enter": credentials.DismissedMsg{}, "esc": credentials.DismissedMsg{}, "q": nil, "y": nil, " ": nil} {
		_, cmd := m.Update(tuitest.Key(k))
		var got tea.Msg
		if cmd != nil {
			got = cmd()
		}
		if got != want {
			t.Errorf("%q: got %#v, want %#v", k, got, want)
		}
	}
}
