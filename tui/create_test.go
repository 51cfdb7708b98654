package tui_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// The new-database form over the fake agent: the form decides none of the
// agent's rules, asks the agent (a validate-only create) when a field is
// left and before a create, and shows its answer as it is.

// validations is how many validate-only creates f was asked.
func validations(f *fakeAPI) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.validated)
}

// TestCreateShowsThePlan: once the name and plan are in and a field is
// left, the form says where the agent would put the database and what
// each instance needs there; replicas too.
func TestCreateShowsThePlan(t *testing.T) {
	f := newFake(5)
	m := act(t, live(t, f, 80, 24), "n", "fresh", "tab", "48mb", "tab")
	seeing(t, m, "✓ on n1 :6405 · needs 1.5 GiB memory, 3 GiB disk")
	m = act(t, m, "tab", "tab", "tab", "1", "tab")
	// Too long for one line at 80 columns: broken at the "·".
	seeing(t, m, "✓ primary on n1 :6405, replica on n2 ", "│   each needs 1.5 GiB memory, 3 GiB disk")
	if len(f.created) != 0 {
		t.Fatalf("created %+v before Create", f.created)
	}
}

// TestCreateRefusedByTheAgentsCheck: a bad name, a plan too small, a plan
// that does not fit: the agent's words are shown in the form, and nothing
// is created.
func TestCreateRefusedByTheAgentsCheck(t *testing.T) {
	for _, refusal := range []*api.Error{
		{Status: 400, Message: `invalid database name "Fresh": use 1 to 40 lowercase letters, digits and hyphens, starting with a letter`},
		{Status: 400, Message: "memory 1 MiB is below the minimum plan of 16 MiB; use --memory 16mb or more"},
		{Status: 422, Message: "database needs 13.5 GiB of memory (9 GiB plan + 4.5 GiB fork headroom for aof + 16 MiB per-instance overhead) but node n1 has 11.4 GiB free"},
	} {
		f := newFake(5)
		f.refuseValidation = refusal
		m := act(t, live(t, f, 80, 24), "n", "Fresh", "tab", "1mb", "ctrl+s")
		seeing(t, m, "NEW DATABASE", "The agent would refuse: "+refusal.Message)
		// Create again: asked again, refused again, still nothing sent.
		m = act(t, m, "ctrl+s")
		seeing(t, m, "The agent would refuse: "+refusal.Message)
		if len(f.created) != 0 || validations(f) != 2 {
			t.Fatalf("%s: created %+v after %d validations", refusal.Message, f.created, validations(f))
		}
	}
}

// TestCreateDoesNotAskPerKey: typing a name and a plan asks the agent
// nothing until a field is left; moving through fields that did not
// change the request asks nothing more; Create after the agent's yes
// sends the create without asking again.
func TestCreateDoesNotAskPerKey(t *testing.T) {
	f := newFake(5)
	m := act(t, live(t, f, 80, 24), "n", "a-rather-long-name", "tab", "1536mb")
	if n := validations(f); n != 0 {
		t.Fatalf("%d validations while typing", n)
	}
	m = act(t, m, "tab", "tab", "tab", "tab", "shift+tab")
	if n := validations(f); n != 1 {
		t.Fatalf("%d validations, want one: leaving the plan", n)
	}
	act(t, m, "ctrl+s")
	want := api.CreateDatabaseRequest{Name: "a-rather-long-name", Memory: "1536mb", Flavor: "aof", Version: "7.2"}
	if n := validations(f); n != 1 || !slices.Equal(f.created, []api.CreateDatabaseRequest{want}) {
		t.Fatalf("%d validations, created %+v", n, f.created)
	}
}

// TestCreateRefusedOnSubmit: the create's own answer counts: the agent's
// refusal of the create itself (a leader lost between the check and the
// create) shows in the form, which stays open.
func TestCreateRefusedOnSubmit(t *testing.T) {
	f := newFake(5)
	m := act(t, live(t, f, 80, 24), "n", "fresh", "tab", "48mb", "tab")
	f.set(func(f *fakeAPI) {
		f.refuse = &api.Error{Status: 409, Message: "node n1 has not reported for a while (no heartbeat); it cannot take new databases now"}
	})
	m = act(t, m, "ctrl+s")
	v := seeing(t, m, "NEW DATABASE", "The agent refused: node n1 has not reported for a while")
	if len(f.created) != 1 || strings.Contains(v, "would refuse") {
		t.Fatalf("created %+v:\n%s", f.created, v)
	}
}
