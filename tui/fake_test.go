package tui_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
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
}

var _ source.API = (*fakeAPI)(nil)

func newFake(n int) *fakeAPI {
	return &fakeAPI{dbs: tuitest.Databases(n), nodes: tuitest.Nodes(), status: tuitest.Status()}
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
			return api.URL{URL: fmt.Sprintf("redis://default:Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5@10.0.0.1:%d/0", db.Port)}, nil
		}
	}
	return api.URL{}, &api.Error{Status: 404, Message: fmt.Sprintf("database %q does not exist", name)}
}

func (f *fakeAPI) Versions(context.Context) ([]api.Version, error) { return tuitest.Versions(), nil }

func (f *fakeAPI) CreateDatabase(_ context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, req)
	for _, db := range f.dbs {
		if db.Name == req.Name {
			return api.Database{}, &api.Error{Status: 409, Message: fmt.Sprintf("database %q already exists", req.Name)}
		}
	}
	node := req.Node
	if node == "" {
		node = "n1"
	}
	db := tuitest.Database(req.Name, "7.2", req.Flavor, api.StateRunning, node, 64<<20, 1<<20)
	db.CreatedAt = time.Now()
	f.dbs = append(f.dbs, db)
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
	return api.DrainResponse{}, &api.Error{Status: 409, Message: "node " + name + " is the only node that takes databases; add a node before draining it"}
}

func (f *fakeAPI) set(fn func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}
