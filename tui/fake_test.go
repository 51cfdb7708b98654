package tui_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

// fakeAPI is a fake of the agent's API, in memory, so that the root
// model's wiring (ticks, refreshes, actions, errors) can be tested fast and
// deterministically. It is a fake, not the agent: the end-to-end test in
// e2e/tui_test.go drives the real binary against a real agent.
type fakeAPI struct {
	mu       sync.Mutex
	dbs      []api.Database
	nodes    []api.Node
	status   api.ClusterStatus
	down     error // when set, every call fails with it
	created  []api.CreateDatabaseRequest
	deleted  []string
	restarts []string
	drained  []string
	lists    int
	// failovers, promoted and unlinked record the replication calls.
	failovers []api.FailoverRequest
	promoted  []string
	unlinked  []string
	// refuse, when set, is what the agent answers every action with (a
	// leader lost, say), while reads still succeed.
	refuse error
	// validated records the validate-only creates asked of it;
	// refuseValidation, when set, is what it answers them all with.
	validated        []api.CreateDatabaseRequest
	refuseValidation error
	// events are the recorded events, oldest first; eventsErr, when
	// set, fails their read alone.
	events     []api.Event
	eventsErr  error
	eventReads int
	// userCreates and rotations record the user calls (every one, refused
	// or not); passwords counts the passwords made, each unique.
	userCreates []api.CreateUserRequest
	rotations   []string
	passwords   int
}

var _ source.API = (*fakeAPI)(nil)

func newFake(n int) *fakeAPI {
	return &fakeAPI{dbs: tuitest.Databases(n), nodes: tuitest.Nodes(), status: tuitest.Status(), events: tuitest.Events()}
}

func (f *fakeAPI) ClusterStatus(context.Context) (api.ClusterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.down
}

func (f *fakeAPI) Nodes(context.Context) ([]api.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return nil, f.down
	}
	return slices.Clone(f.nodes), nil
}

func (f *fakeAPI) ListDatabases(context.Context) ([]api.Database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.down != nil {
		return nil, f.down
	}
	return slices.Clone(f.dbs), nil
}

func (f *fakeAPI) DatabaseURL(_ context.Context, name string) (api.URL, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, db := range f.dbs {
		if db.Name == name {
			// The primary's address, as the agent gives it.
			host := "10.0.0.1"
			for _, in := range db.Instances {
				if in.Role == "primary" {
					host = in.Host
				}
			}
			return api.URL{URL: fmt.Sprintf("redis://default:Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5@%s:%d/0", host, db.Port)}, nil
		}
	}
	return api.URL{}, &api.Error{Status: 404, Message: fmt.Sprintf("database %q does not exist", name)}
}

func (f *fakeAPI) Events(context.Context) ([]api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eventReads++
	switch {
	case f.down != nil:
		return nil, f.down
	case f.eventsErr != nil:
		return nil, f.eventsErr
	}
	return slices.Clone(f.events), nil
}

func (f *fakeAPI) Versions(context.Context) ([]api.Version, error) { return tuitest.Versions(), nil }

func (f *fakeAPI) CreateDatabase(_ context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, req)
	if f.refuse != nil {
		return api.Database{}, f.refuse
	}
	db, err := f.place(req)
	if err != nil {
		return api.Database{}, err
	}
	db.CreatedAt = time.Now()
	f.dbs = append(f.dbs, db)
	return db, nil
}

// fakeNeed is what the fake says each instance needs on its node,
// whatever the plan: about what the agent answers for a 1 GiB aof plan.
// The fake does not size plans; the tests only need figures to show.
var fakeNeed = [2]int64{3 << 29, 3 << 30}

// ValidateDatabase is the fake's validate-only create: it records the
// request and answers with refuseValidation when a test set it, else with
// the fake's placement (the same as its create's), in state planned.
func (f *fakeAPI) ValidateDatabase(_ context.Context, req api.CreateDatabaseRequest) (api.CreatePlan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.validated = append(f.validated, req)
	switch {
	case f.down != nil:
		return api.CreatePlan{}, f.down
	case f.refuseValidation != nil:
		return api.CreatePlan{}, f.refuseValidation
	}
	db, err := f.place(req)
	if err != nil {
		return api.CreatePlan{}, err
	}
	db.State = api.StatePlanned
	for i := range db.Instances {
		in := &db.Instances[i]
		*in = api.Instance{ID: in.ID, Node: in.Node, Host: in.Host, Port: in.Port, Role: in.Role, State: api.StatePlanned}
	}
	return api.CreatePlan{Database: db, NeedMemory: fakeNeed[0], NeedDisk: fakeNeed[1]}, nil
}

// place is the fake's placement, for its create and its validation alike:
// each instance on a healthy node of its own that is not draining, the
// primary on the node asked for or the first such node. It checks no
// other rule but a name already taken.
func (f *fakeAPI) place(req api.CreateDatabaseRequest) (api.Database, error) {
	for _, db := range f.dbs {
		if db.Name == req.Name {
			return api.Database{}, &api.Error{Status: 409, Message: fmt.Sprintf("database %q already exists", req.Name)}
		}
	}
	var free []string
	why := "no other node takes new databases"
	for _, n := range f.nodes {
		switch {
		case n.Draining, n.Name == req.Node:
		case !n.Healthy:
			why = fmt.Sprintf("node %s has not reported for a while (no heartbeat); it cannot take new databases now", n.Name)
		default:
			free = append(free, n.Name)
		}
	}
	node := req.Node
	if node == "" && len(free) > 0 {
		node, free = free[0], free[1:]
	}
	if req.Replicas > len(free) {
		return api.Database{}, &api.Error{Status: 409, Message: fmt.Sprintf("cannot place replica %d of %d on a node other than %s: %s",
			len(free)+1, req.Replicas, strings.Join(append([]string{node}, free...), ", "), why)}
	}
	db := tuitest.Database(req.Name, "7.2", req.Flavor, api.StateRunning, node, 64<<20, 1<<20)
	var reps []tuitest.Lagging
	for _, n := range free[:req.Replicas] {
		reps = append(reps, tuitest.Lagging{Node: n})
	}
	db = tuitest.WithReplicas(db, reps...)
	db.Follows = req.Follows
	return db, nil
}

func (f *fakeAPI) RestartDatabase(_ context.Context, name string) (api.Database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restarts = append(f.restarts, name)
	return api.Database{Name: name, State: api.StateRunning}, nil
}

func (f *fakeAPI) DeleteDatabase(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, name)
	f.dbs = slices.DeleteFunc(f.dbs, func(db api.Database) bool { return db.Name == name })
	return nil
}

func (f *fakeAPI) DrainNode(_ context.Context, name string) (api.DrainResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = append(f.drained, name)
	if name == "n1" {
		return api.DrainResponse{}, &api.Error{Status: 409, Message: "node " + name + " is the only node that takes databases; add a node before draining it"}
	}
	// As the agent does: a primary with a replica linked up elsewhere is
	// switched over (the fake does not move it), the rest stays.
	resp := api.DrainResponse{Node: name}
	for _, db := range f.dbs {
		for _, in := range db.Instances {
			if in.Node != name {
				continue
			}
			moved := false
			if in.Role == "primary" {
				for _, r := range db.Instances {
					moved = moved || (r.Replication != nil && r.Replication.LinkStatus == "up" && r.Node != name)
				}
			}
			if moved {
				resp.Moved = append(resp.Moved, db.Name)
			} else {
				resp.Remaining = append(resp.Remaining, db.Name)
			}
		}
	}
	return resp, nil
}

func (f *fakeAPI) FailoverDatabase(_ context.Context, name string, req api.FailoverRequest) (api.FailoverResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failovers = append(f.failovers, req)
	if f.refuse != nil {
		return api.FailoverResult{}, f.refuse
	}
	i := slices.IndexFunc(f.dbs, func(db api.Database) bool { return db.Name == name })
	if i < 0 {
		return api.FailoverResult{}, &api.Error{Status: 404, Message: fmt.Sprintf("database %q does not exist", name)}
	}
	// The agent's choice: the replica on req.To, or the most up-to-date;
	// one whose link is down is refused.
	db := f.dbs[i]
	db.Instances = slices.Clone(db.Instances)
	old, best := -1, -1
	var why []string
	for j, in := range db.Instances {
		switch {
		case in.Role == "primary":
			old = j
		case req.To != "" && in.Node != req.To:
		case in.Replication == nil || in.Replication.LinkStatus != "up":
			why = append(why, fmt.Sprintf("the replica on %s has its replication link down", in.Node))
		case best < 0 || in.Offset > db.Instances[best].Offset:
			best = j
		}
	}
	if best < 0 {
		return api.FailoverResult{}, &api.Error{Status: 409, Message: fmt.Sprintf("no replica of %s can take over: %s; no change", name, strings.Join(why, "; "))}
	}
	db.Instances[old].Role, db.Instances[best].Role = "replica", "primary"
	db.Epoch++
	f.dbs[i] = db
	return api.FailoverResult{Database: db, From: db.Instances[old].Node, To: db.Instances[best].Node, WritePauseMs: 10.4}, nil
}

func (f *fakeAPI) PromoteDatabase(_ context.Context, name string) (api.Database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promoted = append(f.promoted, name)
	if f.refuse != nil {
		return api.Database{}, f.refuse
	}
	i := slices.IndexFunc(f.dbs, func(db api.Database) bool { return db.Name == name })
	db := f.dbs[i]
	at := time.Now()
	db.PromotedFrom, db.PromotedAt, db.Follows, db.ReadOnly = db.Follows, &at, "", false
	db.Epoch++
	f.dbs[i] = db
	return db, nil
}

func (f *fakeAPI) UnlinkDatabase(_ context.Context, name string) (api.Database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unlinked = append(f.unlinked, name)
	if f.refuse != nil {
		return api.Database{}, f.refuse
	}
	i := slices.IndexFunc(f.dbs, func(db api.Database) bool { return db.Name == name })
	db := f.dbs[i]
	db.Follows, db.ReadOnly = "", true
	f.dbs[i] = db
	return db, nil
}

func (f *fakeAPI) set(fn func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakePassword is the fake's nth password: unlike any other text on
// screen, so a test can tell where it shows.
func fakePassword(n int) string { return fmt.Sprintf("Pw%02dxQ7mZr4vK9tLw2sN8bY3cH6", n) }

// CreateUser checks the request with the agent's own rules (raftstate's,
// which the agent's control plane applies before writing anything), then
// adds the user to the database's list and gives it a new password.
func (f *fakeAPI) CreateUser(_ context.Context, name string, req api.CreateUserRequest) (api.Credentials, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userCreates = append(f.userCreates, req)
	if f.refuse != nil {
		return api.Credentials{}, f.refuse
	}
	u := raftstate.User{Name: req.Name, Role: raftstate.UserRole(req.Role), Keys: req.Keys, Channels: req.Channels, Password: raftstate.Sealed{0}}
	if err := raftstate.CheckUser(&u); err != nil {
		return api.Credentials{}, &api.Error{Status: 400, Message: strings.TrimSuffix(err.Error(), ": "+raftstate.ErrInvalid.Error())}
	}
	i := slices.IndexFunc(f.dbs, func(db api.Database) bool { return db.Name == name })
	switch {
	case i < 0:
		return api.Credentials{}, &api.Error{Status: 404, Message: fmt.Sprintf("database %q does not exist", name)}
	case !f.dbs[i].AccessControl:
		return api.Credentials{}, &api.Error{Status: 409, Message: fmt.Sprintf("database %s has no users yet: upgrade the agent on n3 first (every node must run a release with access control)", name)}
	case slices.ContainsFunc(f.dbs[i].Users, func(u api.DatabaseUser) bool { return u.Name == req.Name }):
		return api.Credentials{}, &api.Error{Status: 409, Message: fmt.Sprintf("database %s has a user %s already; rotate its password with redis-appliance db user rotate %s %s", name, req.Name, name, req.Name)}
	}
	db := f.dbs[i]
	db.Users = append(slices.Clone(db.Users), api.DatabaseUser{
		Name: req.Name, Role: req.Role, Keys: orAll(req.Keys), Channels: orAll(req.Channels), CreatedAt: time.Now().UTC(),
	})
	f.dbs[i] = db
	return f.credentials(db, req.Name, nil), nil
}

// RotateUser gives a user a new password; the old one works for the
// agent's default grace, a day.
func (f *fakeAPI) RotateUser(_ context.Context, name, user string, req api.RotateRequest) (api.Credentials, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotations = append(f.rotations, name+"/"+user)
	if f.refuse != nil {
		return api.Credentials{}, f.refuse
	}
	i := slices.IndexFunc(f.dbs, func(db api.Database) bool { return db.Name == name })
	if i < 0 {
		return api.Credentials{}, &api.Error{Status: 404, Message: fmt.Sprintf("database %q does not exist", name)}
	}
	db := f.dbs[i]
	db.Users = slices.Clone(db.Users)
	j := slices.IndexFunc(db.Users, func(u api.DatabaseUser) bool { return u.Name == user })
	if j < 0 {
		return api.Credentials{}, &api.Error{Status: 404, Message: fmt.Sprintf("database %s has no user %q; see redis-appliance db user list %s", name, user, name)}
	}
	now := time.Now().UTC()
	until := now.Add(24 * time.Hour)
	db.Users[j].RotatedAt, db.Users[j].PreviousValidUntil = now, &until
	f.dbs[i] = db
	return f.credentials(db, user, &until), nil
}

func (f *fakeAPI) credentials(db api.Database, user string, until *time.Time) api.Credentials {
	f.passwords++
	pw := fakePassword(f.passwords)
	return api.Credentials{
		Database: db.Name, User: user, Password: pw, PreviousValidUntil: until,
		URL: fmt.Sprintf("redis://%s:%s@%s:%d/0", user, pw, db.Instances[0].Host, db.Port),
	}
}

// orAll is the patterns as the agent lists them: none means all.
func orAll(ps []string) []string {
	if len(ps) == 0 {
		return []string{"*"}
	}
	return ps
}
