package tui_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

// The application users of a database, driven through the root model over
// the fake agent: the detail lists them (never a password) and says
// whether the database has access control; a adds one with a form, p
// rotates one after asking which; a password the agent gives is shown
// once, and forgotten when dismissed.

// logged is the root model, live over f at 80×24, whose diagnostics go
// to the returned buffer at the debug level: what --log-file would get.
func logged(t *testing.T, f *fakeAPI) (tui.Model, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	ctx := tuitest.Context(80, 24)
	ctx.DataAt = time.Time{}
	ctx.Log = slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := update(tui.New(ctx, source.New(context.Background(), f, time.Second)), tea.WindowSizeMsg{Width: 80, Height: 24})
	m = refreshed(t, m, f, tuitest.Now)
	return update(m, source.VersionsMsg{Versions: tuitest.Versions()}), &log
}

// holds says the model holds s anywhere in its values, on screen or not.
func holds(m tui.Model, s string) bool { return strings.Contains(fmt.Sprintf("%+v", m), s) }

// usersOf returns the users the fake agent has for database name.
func usersOf(f *fakeAPI, name string) []api.DatabaseUser {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, db := range f.dbs {
		if db.Name == name {
			return db.Users
		}
	}
	return nil
}

// TestDetailListsUsers: the detail lists each user with its role, key and
// channel patterns, when it was rotated and until when its old password
// works, and says the database has access control; one from before
// access control says its default user still has every command.
func TestDetailListsUsers(t *testing.T) {
	f := newFake(30)
	m := act(t, live(t, f, 80, 24), "2", "/", "leaderboard", "enter", "enter")
	v := seeing(t, m, "DATABASE leaderboard",
		"users     2 · access control on · a adds one, p rotates one",
		"USER   ROLE   KEYS           CHANNELS   ROTATED    OLD PASSWORD UNTIL",
		"game   write  lb:* scores:*  lb-events  1h00m ago  06-02 11:00 UTC",
		"stats  read   *              *          -          -")
	if !strings.Contains(footer(m), "a add user") {
		t.Errorf("footer: %q", footer(m))
	}
	// On a short screen the table gives way to a line, the instances keep
	// their rows.
	short := update(m, tea.WindowSizeMsg{Width: 60, Height: 16})
	checkFrame(t, short.View(), 60, 16)
	if v := short.View(); !strings.Contains(v, "users     2: game (write), stats (read)") || !strings.Contains(v, "leaderboard-0") {
		t.Errorf("at 60×16:\n%s", v)
	}
	m = update(m, tea.WindowSizeMsg{Width: 80, Height: 24})

	m = act(t, m, "esc", "esc", "/", "ratelimit", "enter", "enter")
	seeing(t, m, "DATABASE ratelimit", "users     off: the default user has every command until every node is upgraded")
	// A cluster not upgraded refuses users: the agent says why.
	m = act(t, m, "p")
	seeing(t, m, "✗ cannot rotate a password of ratelimit: it has no access control yet, until every node is upgraded")
	if strings.Contains(v, "redis://game") || strings.Contains(v, "Pw") {
		t.Fatalf("a password on screen:\n%s", v)
	}
}

// TestCreateUserShowsThePasswordOnce: a adds a user with the form's name,
// role and patterns; the agent's password and URL are shown once, in a
// panel that says so, until enter; then they are gone from the screen and
// from the model, were never logged, and the detail lists the user.
func TestCreateUserShowsThePasswordOnce(t *testing.T) {
	f := newFake(5)
	m, log := logged(t, f)
	m = act(t, m, "2", "enter", "a")
	seeing(t, m, "NEW USER OF cache", "▸ Name", "Role     read", "[ Create ]", "› new user of cache")
	m = act(t, m, "app", "tab", "right", "tab", "app:* jobs:*", "ctrl+s")
	want := api.CreateUserRequest{Name: "app", Role: "write", Keys: []string{"app:*", "jobs:*"}}
	if len(f.userCreates) != 1 || !equalUserRequest(f.userCreates[0], want) {
		t.Fatalf("created %+v, want %+v", f.userCreates, want)
	}
	pw := fakePassword(1)
	v := seeing(t, m, "NEW USER app OF cache", "This password is not shown again: copy it now.", pw,
		"redis://app:"+pw+"@10.0.0.1:6405/0", "enter/esc copied: close it", "› password, shown once", "✓ created user app of cache")
	if strings.Count(v, pw) != 2 {
		t.Fatalf("the password is not shown exactly in the password and the URL:\n%s", v)
	}
	if !holds(m, pw) {
		t.Fatal("holds cannot see the password the panel shows: the check below would prove nothing")
	}
	// Keys meant for the view underneath do not close it.
	m = act(t, m, "q", "2", "D")
	seeing(t, m, pw)

	m = act(t, m, "enter")
	v = seeing(t, m, "DATABASE cache", "users     1 · access control on", "app   write  app:* jobs:*  *         -        -")
	if strings.Contains(v, pw) || holds(m, pw) {
		t.Fatalf("the password stayed after it was dismissed:\n%s", v)
	}
	if strings.Contains(log.String(), pw) || !strings.Contains(log.String(), `"action":"user create"`) {
		t.Fatalf("log:\n%s", log.String())
	}
}

// TestRotateUser: p asks which user gets a new password, says the old one
// works a day; n backs out; y rotates the one picked, whose new password
// is shown once with until when the old one works.
func TestRotateUser(t *testing.T) {
	f := newFake(30)
	m, log := logged(t, f)
	m = act(t, m, "2", "/", "leaderboard", "enter", "enter", "p")
	seeing(t, m, "Rotate a password of leaderboard?", "▸ game", "write · rotated 1h00m ago", "stats", "read · never rotated",
		"Its old password keeps working for a day", "y/enter rotate")
	m = act(t, m, "n")
	if len(f.rotations) != 0 {
		t.Fatalf("rotated %v after n", f.rotations)
	}
	m = act(t, m, "p", "down", "y")
	if !slices.Equal(f.rotations, []string{"leaderboard/stats"}) {
		t.Fatalf("rotated %v", f.rotations)
	}
	pw := fakePassword(1)
	until := *usersOf(f, "leaderboard")[1].PreviousValidUntil
	seeing(t, m, "NEW PASSWORD OF stats OF leaderboard", "This password is not shown again", pw,
		"The old password works until "+until.Format("2006-01-02 15:04 UTC"), "from now): give the applications the new one before then.",
		"✓ rotated the password of user stats of leaderboard")
	m = act(t, m, "esc")
	v := seeing(t, m, "stats  read   *              *", "s ago  "+until.Format("01-02 15:04 UTC"))
	if strings.Contains(v, pw) || holds(m, pw) || strings.Contains(log.String(), pw) {
		t.Fatalf("the password stayed after it was dismissed, or was logged:\n%s\n%s", v, log.String())
	}
	// A second rotation shows the second password, not the first.
	m = act(t, m, "p", "y")
	seeing(t, m, "NEW PASSWORD OF game OF leaderboard", fakePassword(2))
	if holds(m, pw) {
		t.Fatal("the first password came back")
	}
}

// TestCreateUserRefused: a name that is not ACL-safe or is Redis's own, a
// pattern Redis cannot take, a role the agent does not know: the agent's
// words are shown in the form, which stays open with what was typed,
// nothing is created and no password is shown; corrected, the create goes
// through.
func TestCreateUserRefused(t *testing.T) {
	for _, c := range []struct {
		keys   []string
		refuse error
		want   string
		// fix corrects the request from where the focus is.
		fix []string
	}{
		{[]string{"bad name"}, nil, `user name "bad name" is not usable: 1-64 letters, digits, '_', '.' and '-'`, []string{"left", "left", "left", "left", "backspace", "_"}},
		{[]string{"default"}, nil, `user name "default" is Redis's own default user`, []string{"-app"}},
		{[]string{"app", "tab", "tab", `app:"x`}, nil, `user app: key pattern "app:\"x" has a character Redis patterns cannot take here`, []string{"backspace", "backspace", "x"}},
		// The form offers only the roles the agent knows; an agent that
		// knows fewer says so.
		{[]string{"app", "tab", "right", "right"}, &api.Error{Status: 400, Message: `user app: unknown role "admin": use read, write or admin`}, `user app: unknown role "admin"`, nil},
	} {
		f := newFake(5)
		f.refuse = c.refuse
		m := act(t, live(t, f, 80, 24), "2", "enter", "a")
		m = act(t, m, append(c.keys, "ctrl+s")...)
		v := seeing(t, m, "NEW USER OF cache", "The agent refused, nothing was created: "+c.want)
		if len(f.userCreates) != 1 || len(usersOf(f, "cache")) != 0 || strings.Contains(v, "not shown again") {
			t.Fatalf("%v: creates %+v, users %+v:\n%s", c.keys, f.userCreates, usersOf(f, "cache"), v)
		}
		if c.fix == nil {
			continue
		}
		// Corrected: the refusal goes with the change, and the create
		// goes through.
		m = act(t, m, c.fix...)
		if strings.Contains(m.View(), "The agent refused") {
			t.Fatalf("%v: the refusal stayed after a change:\n%s", c.keys, m.View())
		}
		m = act(t, m, "ctrl+s")
		seeing(t, m, "This password is not shown again", fakePassword(1))
		if len(f.userCreates) != 2 || len(usersOf(f, "cache")) != 1 {
			t.Fatalf("%v: creates %+v, users %+v", c.keys, f.userCreates, usersOf(f, "cache"))
		}
	}
}

// TestUserCreateInTheBackground: esc while the agent works leaves the
// create to go on; its password is still shown when it is done, since it
// cannot be shown later.
func TestUserCreateInTheBackground(t *testing.T) {
	f := newFake(5)
	m := act(t, live(t, f, 80, 24), "2", "enter", "a", "app")
	m, cmds := keys(m, "ctrl+s")
	// The submit, then the create it starts: answered later.
	next, create := m.Update(cmds[0]())
	m = next.(tui.Model)
	seeing(t, m, "Creating user app…")
	m = act(t, m, "esc")
	seeing(t, m, "creating user app of cache goes on in the background", "⋯ creating user app of cache")
	m = run(t, m, create)
	seeing(t, m, "NEW USER app OF cache", fakePassword(1))
}

func equalUserRequest(a, b api.CreateUserRequest) bool {
	return a.Name == b.Name && a.Role == b.Role && slices.Equal(a.Keys, b.Keys) && slices.Equal(a.Channels, b.Channels)
}
