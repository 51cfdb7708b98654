// Package control is the agent's control plane: it turns API requests into
// Raft commands after validating them, checking them against the hardware
// and placing them, and it assembles what users see of databases from the
// state and from this node's observations. It implements api.Backend.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Store is the part of raftstate.Store the controller uses.
type Store interface {
	Apply(ctx context.Context, t raftstate.CommandType, payload any) error
	State() *raftstate.State
	Status() raftstate.Status
	HasState() (bool, error)
	Bootstrap(ctx context.Context) error
}

// Controller implements api.Backend for one node.
type Controller struct {
	cfg        *config.Config
	store      Store
	keys       *secrets.Keyring
	rec        *reconcile.Reconciler
	supervisor string
	log        *slog.Logger
	// Now is the clock for CreatedAt and version deprecation; tests set it.
	Now func() time.Time
	// ProcRoot is where hardware facts are read (a fixture in tests).
	ProcRoot string
	// WaitTimeout bounds how long create, restart and delete wait for the
	// instance to converge.
	WaitTimeout time.Duration

	// placeMu serialises placement so two creates never pick one port.
	placeMu sync.Mutex

	verMu     sync.Mutex
	installed []versions.Installed

	// ready is closed once the state has been replayed; database requests
	// wait for it so that a restarting agent never answers from a state
	// that is still being rebuilt.
	ready     chan struct{}
	readyOnce sync.Once
}

// readyWait bounds how long a request waits for the state to be replayed.
const readyWait = 15 * time.Second

// MarkReady lets database requests through; the agent calls it once the
// Raft log has been replayed.
func (c *Controller) MarkReady() { c.readyOnce.Do(func() { close(c.ready) }) }

func (c *Controller) waitReady(ctx context.Context) error {
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return &api.Error{Status: http.StatusServiceUnavailable, Message: "the agent has not replayed its state yet (no Raft leader?); see redis-appliance cluster status and try again"}
	}
}

// New returns a controller. installed is the result of version discovery.
func New(cfg *config.Config, store Store, keys *secrets.Keyring, rec *reconcile.Reconciler, supervisorKind string, installed []versions.Installed, log *slog.Logger) *Controller {
	return &Controller{
		cfg: cfg, store: store, keys: keys, rec: rec, supervisor: supervisorKind,
		installed: installed, log: log, Now: time.Now, ProcRoot: "/proc",
		WaitTimeout: 60 * time.Second, ready: make(chan struct{}),
	}
}

var _ api.Backend = (*Controller)(nil)

func badRequest(format string, args ...any) error {
	return &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func notFound(name string) error {
	return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("database %q does not exist; see redis-appliance db list", name)}
}

// CreateDatabase validates, sizes and places a new database, commits it and
// waits for its instance to run.
func (c *Controller) CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	if !raftstate.NameRE.MatchString(req.Name) {
		return api.Database{}, badRequest("invalid database name %q: use 1 to 40 lowercase letters, digits and hyphens, starting with a letter", req.Name)
	}
	flavor := raftstate.Flavor(req.Flavor)
	if flavor == "" {
		flavor = raftstate.FlavorAOF
	}
	if !flavor.Valid() {
		return api.Database{}, badRequest("unknown flavor %q: use aof (AOF+RDB), rdb (RDB only) or nordb (memory only)", req.Flavor)
	}
	if req.Memory == "" {
		return api.Database{}, badRequest("a memory plan is required, e.g. --memory 256mb")
	}
	mem, err := sizing.ParseSize(req.Memory)
	if err != nil {
		return api.Database{}, badRequest("%v", err)
	}
	inst, err := c.resolveVersion(ctx, req.Version)
	if err != nil {
		return api.Database{}, badRequest("%v", err)
	}

	c.placeMu.Lock()
	defer c.placeMu.Unlock()
	st := c.store.State()
	if _, ok := st.Databases[req.Name]; ok {
		return api.Database{}, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("database %q already exists; pick another name or delete it first", req.Name)}
	}
	hw, err := sizing.Read(c.ProcRoot, c.cfg.DataDir)
	if err != nil {
		return api.Database{}, fmt.Errorf("read this node's hardware: %w", err)
	}
	if err := sizing.Check(hw, sizing.DefaultPolicy(hw), sizing.Allocated(st, c.cfg.NodeName, ""), flavor, mem, c.cfg.NodeName); err != nil {
		if errors.Is(err, sizing.ErrBelowMinimum) {
			return api.Database{}, badRequest("%v", err)
		}
		return api.Database{}, err
	}
	port, err := c.freePort(st)
	if err != nil {
		return api.Database{}, err
	}
	pw, err := secrets.NewPassword()
	if err != nil {
		return api.Database{}, err
	}
	sealed, err := c.keys.Seal([]byte(pw))
	if err != nil {
		return api.Database{}, err
	}
	db := raftstate.Database{
		Name: req.Name, Version: inst.Version, Flavor: flavor, MemoryBytes: mem,
		Password: sealed, CreatedAt: c.Now().UTC(),
		Instances: []raftstate.Instance{{ID: req.Name + "-0", Node: c.cfg.NodeName, Port: port, Role: raftstate.RolePrimary}},
	}
	if err := c.store.Apply(ctx, raftstate.CmdCreateDatabase, raftstate.CreateDatabase{Database: db}); err != nil {
		return api.Database{}, err
	}
	c.log.Info("database created", "database", db.Name, "version", db.Version, "flavor", db.Flavor, "memory", db.MemoryBytes, "port", port)
	return c.waitFor(ctx, db.Name, func(v api.Database) bool { return v.State == api.StateRunning })
}

// freePort returns the lowest port in the range that no instance on this node
// holds and that nothing else on the host listens on.
func (c *Controller) freePort(st *raftstate.State) (int, error) {
	used := st.PortsInUse(c.cfg.NodeName)
	for p := c.cfg.PortMin; p <= c.cfg.PortMax; p++ {
		if _, ok := used[p]; ok {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(c.cfg.Bind, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("no free port in port_range %s on node %s; widen port_range in the config or delete a database", c.cfg.PortRange, c.cfg.NodeName)}
}

// waitFor triggers passes until the database satisfies done, the instance
// fails, or the wait times out; it returns the last view either way.
func (c *Controller) waitFor(ctx context.Context, name string, done func(api.Database) bool) (api.Database, error) {
	ctx, cancel := context.WithTimeout(ctx, c.WaitTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		passed := c.rec.Passed()
		c.rec.Trigger()
		v, err := c.GetDatabase(ctx, name)
		if err != nil {
			return v, err
		}
		if done(v) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, nil
		case <-passed:
		case <-tick.C:
		}
	}
}

// ListDatabases lists every database with its observed state.
func (c *Controller) ListDatabases(ctx context.Context) ([]api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	st := c.store.State()
	out := make([]api.Database, 0, len(st.Databases))
	for _, name := range st.DatabaseNames() {
		out = append(out, c.view(ctx, st.Databases[name]))
	}
	return out, nil
}

// GetDatabase returns one database with its observed state.
func (c *Controller) GetDatabase(ctx context.Context, name string) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	db, ok := c.store.State().Databases[name]
	if !ok {
		return api.Database{}, notFound(name)
	}
	return c.view(ctx, db), nil
}

func (c *Controller) view(ctx context.Context, db *raftstate.Database) api.Database {
	v := api.Database{
		Name: db.Name, Version: db.Version, Flavor: string(db.Flavor),
		MemoryBytes: db.MemoryBytes, CreatedAt: db.CreatedAt, State: api.StateUnknown,
	}
	for _, in := range db.Instances {
		iv := api.Instance{
			ID: in.ID, Node: in.Node, Host: c.host(), Port: in.Port, Role: string(in.Role),
			Unit: reconcile.UnitName(in.ID), State: api.StateUnknown,
		}
		if in.Node == c.cfg.NodeName {
			o := c.rec.Observe(ctx, db, in)
			iv.State, iv.PID, iv.Restarts, iv.Error = o.State, o.PID, o.Restarts, o.Error
			iv.MemoryUsedBytes, iv.ServerVersion = o.MemoryUsed, o.ServerVersion
		}
		if in.Role == raftstate.RolePrimary {
			v.Port, v.Unit, v.State, v.MemoryUsedBytes = iv.Port, iv.Unit, iv.State, iv.MemoryUsedBytes
		}
		v.Instances = append(v.Instances, iv)
	}
	return v
}

// host is the address clients use to reach this node's instances.
func (c *Controller) host() string {
	switch c.cfg.Bind {
	case "0.0.0.0", "::", "":
		return "127.0.0.1"
	}
	return c.cfg.Bind
}

// DatabaseURL returns redis://default:PASSWORD@HOST:PORT/0 for the primary.
// The user is named because redis-cli 7.0 sends "AUTH ” PASSWORD" for an
// empty one, which the server refuses; "default" works with every client.
func (c *Controller) DatabaseURL(ctx context.Context, name string) (api.URL, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.URL{}, err
	}
	db, ok := c.store.State().Databases[name]
	if !ok {
		return api.URL{}, notFound(name)
	}
	p, ok := db.Primary()
	if !ok {
		return api.URL{}, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("database %q has no primary right now", name)}
	}
	pw, err := c.keys.Open(db.Password)
	if err != nil {
		return api.URL{}, err
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword("default", string(pw)), Host: net.JoinHostPort(c.host(), strconv.Itoa(p.Port)), Path: "/0"}
	return api.URL{URL: u.String()}, nil
}

// RestartDatabase restarts every instance and waits until they run again.
func (c *Controller) RestartDatabase(ctx context.Context, name string) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	if _, ok := c.store.State().Databases[name]; !ok {
		return api.Database{}, notFound(name)
	}
	if err := c.store.Apply(ctx, raftstate.CmdRestartDatabase, raftstate.RestartDatabase{Name: name, At: c.Now().UTC()}); err != nil {
		return api.Database{}, err
	}
	db := c.store.State().Databases[name]
	if db == nil {
		return api.Database{}, notFound(name)
	}
	want := db.RestartGeneration
	v, err := c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range db.Instances {
			if in.Node == c.cfg.NodeName && c.rec.AppliedGeneration(in.ID) < want {
				return false
			}
		}
		return v.State == api.StateRunning
	})
	if err == nil && v.State != api.StateRunning {
		err = fmt.Errorf("database %q did not come back within %s (state %s); see redis-appliance db show %s", name, c.WaitTimeout, v.State, name)
	}
	return v, err
}

// DeleteDatabase removes a database and waits until its units and data on
// this node are gone.
func (c *Controller) DeleteDatabase(ctx context.Context, name string) error {
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	db, ok := c.store.State().Databases[name]
	if !ok {
		return notFound(name)
	}
	if err := c.store.Apply(ctx, raftstate.CmdDeleteDatabase, raftstate.DeleteDatabase{Name: name}); err != nil {
		return err
	}
	c.log.Info("database deleted", "database", name)
	ctx, cancel := context.WithTimeout(ctx, c.WaitTimeout)
	defer cancel()
	for {
		passed := c.rec.Passed()
		c.rec.Trigger()
		select {
		case <-ctx.Done():
			return fmt.Errorf("database %q is deleted but its instance is still being removed: %w", name, ctx.Err())
		case <-passed:
		}
		if c.rec.Removed(ctx, db) {
			return nil
		}
	}
}

// Versions lists the catalogue against what is installed.
func (c *Controller) Versions(ctx context.Context) ([]api.Version, error) {
	return versions.List(c.discover(ctx), c.Now()), nil
}

// discover re-reads installed versions so a newly installed one shows up
// without restarting the agent.
func (c *Controller) discover(ctx context.Context) []versions.Installed {
	inst, err := versions.Discover(ctx, c.cfg.RedisPaths)
	c.verMu.Lock()
	defer c.verMu.Unlock()
	if err != nil {
		c.log.Warn("version discovery skipped some binaries", "err", err)
	}
	if len(inst) == 0 && err != nil {
		return c.installed
	}
	c.installed = inst
	return inst
}

func (c *Controller) resolveVersion(ctx context.Context, requested string) (versions.Installed, error) {
	return versions.Resolve(requested, c.discover(ctx), c.Now())
}

// Binary returns the redis-server path for a catalogue version; the
// reconciler calls it for every instance.
func (c *Controller) Binary(version string) (string, error) {
	c.verMu.Lock()
	inst := c.installed
	c.verMu.Unlock()
	for _, i := range inst {
		if i.Version == version {
			return i.Path, nil
		}
	}
	return "", fmt.Errorf("redis-server %s is not installed on node %s; install it or add its path to redis_paths", version, c.cfg.NodeName)
}

// Node reports this node's hardware and allocations.
func (c *Controller) Node(_ context.Context) (api.Node, error) {
	hw, err := sizing.Read(c.ProcRoot, c.cfg.DataDir)
	if err != nil {
		return api.Node{}, fmt.Errorf("read this node's hardware: %w", err)
	}
	p := sizing.DefaultPolicy(hw)
	st := c.store.State()
	alloc := sizing.Allocated(st, c.cfg.NodeName, "")
	n := api.Node{
		Name: c.cfg.NodeName, Supervisor: c.supervisor, Hardware: hw,
		ReservedMemory: p.ReserveMemory, ReservedDisk: p.ReserveDisk,
		AllocatedMemory: alloc.Memory, AllocatedDisk: alloc.Disk,
		FreeMemory: max(0, hw.MemTotal-p.ReserveMemory-alloc.Memory),
		FreeDisk:   max(0, hw.DiskFree-p.ReserveDisk-alloc.Disk),
		Databases:  len(st.InstancesOn(c.cfg.NodeName)),
	}
	return n, nil
}

// ClusterStatus reports this node's Raft view.
func (c *Controller) ClusterStatus(_ context.Context) (api.ClusterStatus, error) {
	s := c.store.Status()
	has, err := c.store.HasState()
	if err != nil {
		return api.ClusterStatus{}, err
	}
	return api.ClusterStatus{
		Node: s.Node, RaftState: s.State, Leader: s.Leader, Voters: s.Voters,
		LastIndex: s.LastIndex, AppliedIndex: s.AppliedIndex, Bootstrapped: has,
	}, nil
}

// ClusterInit bootstraps a new cluster with this node as its only voter.
func (c *Controller) ClusterInit(ctx context.Context) (api.ClusterStatus, error) {
	if err := c.store.Bootstrap(ctx); err != nil {
		if errors.Is(err, raftstate.ErrAlreadyBootstrapped) {
			return api.ClusterStatus{}, &api.Error{Status: http.StatusConflict, Message: "this node already belongs to a cluster; see redis-appliance cluster status"}
		}
		return api.ClusterStatus{}, err
	}
	return c.ClusterStatus(ctx)
}
