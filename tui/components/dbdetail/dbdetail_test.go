package dbdetail_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/dbdetail"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
)

const (
	password = "s3cr3t-Pa55word-that-must-not-show"
	url      = "redis://default:" + password + "@10.0.0.1:6405/0"
)

func newDetail(db api.Database) dbdetail.Model {
	ctx := tuitest.Context(80, 16)
	m := dbdetail.New(ctx, db)
	m.SetSize(80, 16)
	return m
}

// TestMasked: the URL shows with the password masked until `r`.
func TestMasked(t *testing.T) {
	m := newDetail(tuitest.Databases(1)[0])
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
