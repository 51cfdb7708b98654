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
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Controller implements api.Backend for one node. Requests about databases
// and nodes are answered by the Raft leader: a follower forwards them over
// mutual TLS, so every node answers with the leader's fresh view.
type Controller struct {
	cfg        *config.Config
	cl         *cluster.Manager
	live       *health.View
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

	recMu sync.Mutex
	rec   *reconcile.Reconciler

	// mon is the failure detector while this node leads.
	monMu sync.Mutex
	mon   *monitor

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
func New(cfg *config.Config, cl *cluster.Manager, live *health.View, supervisorKind string, installed []versions.Installed, log *slog.Logger) *Controller {
	return &Controller{
		cfg: cfg, cl: cl, live: live, supervisor: supervisorKind,
		installed: installed, log: log, Now: time.Now, ProcRoot: "/proc",
		WaitTimeout: 60 * time.Second, ready: make(chan struct{}),
	}
}

// Attach gives the controller this node's reconciler; call it before
// MarkReady.
func (c *Controller) Attach(rec *reconcile.Reconciler) {
	c.recMu.Lock()
	c.rec = rec
	c.recMu.Unlock()
}

func (c *Controller) reconciler() *reconcile.Reconciler {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	return c.rec
}

func (c *Controller) store() *raftstate.Store { return c.cl.Store() }
func (c *Controller) keys() *secrets.Keyring  { return c.cl.Keys() }

// forward is a request on its way to the leader. Its context is cancelled
// when this node sees the leadership move, so a call to a leader that died
// fails in a moment instead of waiting on a dead connection.
type forward struct {
	lc     *api.Client
	ctx    context.Context
	parent context.Context
	cancel context.CancelFunc
}

// done translates a call cut short by a leadership change into a 503 the
// caller can retry, and releases the watch.
func (f *forward) done(err error) error {
	moved := f.ctx.Err() != nil && f.parent.Err() == nil
	f.cancel()
	if err != nil && moved {
		return &api.Error{Status: http.StatusServiceUnavailable, Message: "the leader changed while the request was on its way; retry"}
	}
	return err
}

// leader returns a forward to the leader when this node is not the leader,
// or nil when it is. A request that was already forwarded is not forwarded
// again: leadership moved, and the caller retries.
func (c *Controller) leader(ctx context.Context) (*forward, error) {
	st := c.store()
	if st == nil {
		return nil, cluster.ErrNotMember
	}
	if st.IsLeader() {
		return nil, nil
	}
	if api.IsForwarded(ctx) {
		return nil, &api.Error{Status: http.StatusServiceUnavailable, Message: "leadership moved while the request was forwarded; retry"}
	}
	lc, leader, err := c.cl.LeaderClient()
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
				if st.Leader() != leader {
					cancel()
					return
				}
			}
		}
	}()
	return &forward{lc: lc.Forwarding(), ctx: fctx, parent: ctx, cancel: cancel}, nil
}

var _ api.Backend = (*Controller)(nil)

func badRequest(format string, args ...any) error {
	return &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func notFound(name string) error {
	return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("database %q does not exist; see redis-appliance db list", name)}
}

// staleAfter is how old a node's last heartbeat may be before what it
// reported is no longer shown as live.
const staleAfter = 3 * time.Second

// CreateDatabase validates, sizes and places a new database, commits it and
// waits for its instance to run.
func (c *Controller) CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.Database{}, err
		}
		v, err := f.lc.CreateDatabase(f.ctx, req)
		return v, f.done(err)
	}
	if !raftstate.NameRE.MatchString(req.Name) {
		return api.Database{}, badRequest("invalid database name %q: use 1 to 40 lowercase letters, digits and hyphens, starting with a letter", req.Name)
	}
	// Before the defaults below: a linked replica takes its source's.
	follows, err := c.linkedSource(ctx, c.store().State(), &req)
	if err != nil {
		return api.Database{}, err
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
	st := c.store().State()
	if _, ok := st.Databases[req.Name]; ok {
		return api.Database{}, &api.Error{Status: http.StatusConflict, Message: loopMessage(st, req.Name, req.Follows)}
	}
	instances, err := c.placeAll(st, req.Name, req.Node, req.Replicas, flavor, mem)
	if err != nil {
		return api.Database{}, err
	}
	pw, err := secrets.NewPassword()
	if err != nil {
		return api.Database{}, err
	}
	sealed, err := c.keys().Seal([]byte(pw))
	if err != nil {
		return api.Database{}, err
	}
	db := raftstate.Database{
		Name: req.Name, Version: inst.Version, Flavor: flavor, MemoryBytes: mem,
		Password: sealed, CreatedAt: c.Now().UTC(), Instances: instances, Follows: follows,
	}
	if err := c.store().Apply(ctx, raftstate.CmdCreateDatabase, raftstate.CreateDatabase{Database: db}); err != nil {
		return api.Database{}, err
	}
	node, port := instances[0].Node, instances[0].Port
	from := ""
	if follows != nil {
		from = follows.Describe()
	}
	c.log.Info("database created", "database", db.Name, "version", db.Version, "flavor", db.Flavor, "memory", db.MemoryBytes, "node", node, "port", port, "replicas", len(instances)-1, "follows", from)
	return c.waitFor(ctx, db.Name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.State != api.StateRunning {
				return false
			}
		}
		return true
	})
}

// nodeFacts are what placement knows of a node: its hardware and port range,
// from this process for the local node and from heartbeats for the others.
type nodeFacts struct {
	hw               sizing.Hardware
	portMin, portMax int
}

func (c *Controller) facts(node string) (nodeFacts, error) {
	if node == c.cfg.NodeName {
		hw, err := sizing.Read(c.ProcRoot, c.cfg.DataDir)
		if err != nil {
			return nodeFacts{}, fmt.Errorf("read this node's hardware: %w", err)
		}
		return nodeFacts{hw: hw, portMin: c.cfg.PortMin, portMax: c.cfg.PortMax}, nil
	}
	e, ok := c.live.Node(node)
	if !ok || e.Age() > staleAfter {
		return nodeFacts{}, fmt.Errorf("node %s has not reported for a while (no heartbeat); it cannot take new databases now", node)
	}
	hb := e.Heartbeat
	return nodeFacts{hw: hb.Hardware, portMin: hb.PortMin, portMax: hb.PortMax}, nil
}

// place picks the node with the most free memory that fits (or checks the
// pinned one) and a free port on it.
func (c *Controller) place(st *raftstate.State, pin string, exclude map[string]bool, flavor raftstate.Flavor, mem int64) (string, int, error) {
	candidates := st.NodeNames()
	if pin != "" {
		n, ok := st.Nodes[pin]
		if !ok {
			return "", 0, badRequest("unknown node %q; see redis-appliance node list", pin)
		}
		if n.Draining {
			return "", 0, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("node %s is draining and takes no new databases", pin)}
		}
		candidates = []string{pin}
	}
	var best string
	var bestFree int64
	var bestFacts nodeFacts
	var firstErr error
	for _, name := range candidates {
		if st.Nodes[name].Draining || exclude[name] {
			continue
		}
		f, err := c.facts(name)
		if err == nil {
			err = sizing.Check(f.hw, sizing.DefaultPolicy(f.hw), sizing.Allocated(st, name, ""), flavor, mem, name)
		}
		if err != nil {
			if errors.Is(err, sizing.ErrBelowMinimum) {
				return "", 0, badRequest("%v", err)
			}
			if firstErr == nil || pin != "" {
				firstErr = err
			}
			continue
		}
		free := f.hw.MemTotal - sizing.DefaultPolicy(f.hw).ReserveMemory - sizing.Allocated(st, name, "").Memory
		if best == "" || free > bestFree {
			best, bestFree, bestFacts = name, free, f
		}
	}
	if best == "" {
		if firstErr == nil {
			firstErr = &api.Error{Status: http.StatusConflict, Message: "no node can take new databases (all draining?); see redis-appliance node list"}
		}
		return "", 0, firstErr
	}
	port, err := c.freePort(st, best, bestFacts)
	return best, port, err
}

// freePort returns the lowest port in the node's range that no instance on
// it holds; on this node it must also be free on the host.
func (c *Controller) freePort(st *raftstate.State, node string, f nodeFacts) (int, error) {
	used := st.PortsInUse(node)
	for p := f.portMin; p <= f.portMax; p++ {
		if _, ok := used[p]; ok {
			continue
		}
		if node == c.cfg.NodeName && !c.bindable(p) {
			continue
		}
		return p, nil
	}
	return 0, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("no free port in the port range %d-%d on node %s; widen port_range or delete a database", f.portMin, f.portMax, node)}
}

func (c *Controller) bindable(port int) bool {
	for _, addr := range c.cfg.BindAddrs() {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// waitFor polls until the database satisfies done or the wait times out; it
// returns the last view either way.
func (c *Controller) waitFor(ctx context.Context, name string, done func(api.Database) bool) (api.Database, error) {
	ctx, cancel := context.WithTimeout(ctx, c.WaitTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	rec := c.reconciler()
	for {
		passed := rec.Passed()
		rec.Trigger()
		v, err := c.getLocal(ctx, name)
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
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return nil, err
		}
		v, err := f.lc.ListDatabases(f.ctx)
		return v, f.done(err)
	}
	st := c.store().State()
	out := make([]api.Database, 0, len(st.Databases))
	for _, name := range st.DatabaseNames() {
		out = append(out, c.view(ctx, st, st.Databases[name]))
	}
	return out, nil
}

// GetDatabase returns one database with its observed state.
func (c *Controller) GetDatabase(ctx context.Context, name string) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.Database{}, err
		}
		v, err := f.lc.GetDatabase(f.ctx, name)
		return v, f.done(err)
	}
	return c.getLocal(ctx, name)
}

func (c *Controller) getLocal(ctx context.Context, name string) (api.Database, error) {
	st := c.store().State()
	db, ok := st.Databases[name]
	if !ok {
		return api.Database{}, notFound(name)
	}
	return c.view(ctx, st, db), nil
}

// observe reports an instance: from the reconciler when it is here, from
// the node's last heartbeat otherwise.
func (c *Controller) observe(ctx context.Context, db *raftstate.Database, in raftstate.Instance) health.InstanceReport {
	if in.Node == c.cfg.NodeName {
		rec := c.reconciler()
		o := rec.Observe(ctx, db, in)
		return health.InstanceReport{
			ID: in.ID, Installed: true, State: o.State, PID: o.PID, Restarts: o.Restarts,
			MemoryUsed: o.MemoryUsed, ServerVersion: o.ServerVersion, Role: o.Role, Error: o.Error,
			AppliedGeneration: rec.AppliedGeneration(in.ID), ReplOffset: o.ReplOffset, Link: o.Link,
			OpsPerSec: o.OpsPerSec, Clients: o.Clients,
		}
	}
	r, age, ok := c.live.Instance(in.Node, in.ID)
	switch {
	case !ok:
		return health.InstanceReport{ID: in.ID, State: api.StateUnknown, Error: fmt.Sprintf("no heartbeat from node %s yet", in.Node)}
	case age > staleAfter:
		return health.InstanceReport{ID: in.ID, State: api.StateUnknown, Error: fmt.Sprintf("no heartbeat from node %s for %s", in.Node, age.Round(time.Second))}
	case !r.Installed && r.State == "":
		r.State = api.StateStarting
	}
	return r
}

func (c *Controller) view(ctx context.Context, st *raftstate.State, db *raftstate.Database) api.Database {
	v := api.Database{
		Name: db.Name, Version: db.Version, Flavor: string(db.Flavor),
		MemoryBytes: db.MemoryBytes, CreatedAt: db.CreatedAt, State: api.StateUnknown,
		Epoch: db.Epoch, ReadOnly: db.ReadOnly, LinkedReplicas: st.LinkedReplicas(db.Name), PromotedFrom: db.PromotedFrom,
		FailoverStatus: c.failoverStatus(db.Name),
	}
	if db.Follows != nil {
		v.Follows = db.Follows.Describe()
	}
	if !db.PromotedAt.IsZero() {
		at := db.PromotedAt
		v.PromotedAt = &at
	}
	obs := make([]health.InstanceReport, len(db.Instances))
	offsets := map[string]int64{}
	for i, in := range db.Instances {
		obs[i] = c.observe(ctx, db, in)
		offsets[in.ID] = obs[i].ReplOffset
	}
	if f := db.Follows; f != nil && f.Database != "" {
		if src, ok := st.Databases[f.Database]; ok {
			if p, ok := src.Primary(); ok {
				offsets[p.ID] = c.observe(ctx, src, p).ReplOffset
			}
		}
	}
	for i, in := range db.Instances {
		o := obs[i]
		iv := api.Instance{
			ID: in.ID, Node: in.Node, Host: c.host(st, in.Node), Port: in.Port, Role: string(in.Role),
			Unit: reconcile.UnitName(in.ID), State: o.State, PID: o.PID, Restarts: o.Restarts, Error: o.Error,
			MemoryUsedBytes: o.MemoryUsed, ServerVersion: o.ServerVersion, Offset: o.ReplOffset,
			OpsPerSec: o.OpsPerSec, Clients: o.Clients,
			Replication: replicationView(st, db, in, offsets, o),
		}
		if in.Role == raftstate.RolePrimary {
			v.Port, v.Unit, v.State, v.MemoryUsedBytes = iv.Port, iv.Unit, iv.State, iv.MemoryUsedBytes
			v.OpsPerSec, v.Clients = iv.OpsPerSec, iv.Clients
		}
		v.Instances = append(v.Instances, iv)
	}
	return v
}

// host is the address clients use to reach a node's instances.
func (c *Controller) host(st *raftstate.State, node string) string {
	if n, ok := st.Nodes[node]; ok && n.Address != "" {
		return n.Address
	}
	return c.cfg.AdvertiseAddr
}

// DatabaseURL returns redis://default:PASSWORD@HOST:PORT/0 for the primary.
// The user is named because redis-cli 7.0 sends "AUTH ” PASSWORD" for an
// empty one, which the server refuses; "default" works with every client.
func (c *Controller) DatabaseURL(ctx context.Context, name string) (api.URL, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.URL{}, err
	}
	// From the leader, so a node cut off from the cluster never hands out
	// the URL of a database that was deleted or moved meanwhile.
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.URL{}, err
		}
		v, err := f.lc.DatabaseURL(f.ctx, name)
		return v, f.done(err)
	}
	st := c.store().State()
	db, ok := st.Databases[name]
	if !ok {
		return api.URL{}, notFound(name)
	}
	p, ok := db.Primary()
	if !ok {
		return api.URL{}, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("database %q has no primary right now", name)}
	}
	pw, err := c.keys().Open(db.Password)
	if err != nil {
		return api.URL{}, err
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword("default", string(pw)), Host: net.JoinHostPort(c.host(st, p.Node), strconv.Itoa(p.Port)), Path: "/0"}
	return api.URL{URL: u.String()}, nil
}

// RestartDatabase restarts every instance and waits until they run again.
func (c *Controller) RestartDatabase(ctx context.Context, name string) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.Database{}, err
		}
		v, err := f.lc.RestartDatabase(f.ctx, name)
		return v, f.done(err)
	}
	if _, ok := c.store().State().Databases[name]; !ok {
		return api.Database{}, notFound(name)
	}
	if err := c.store().Apply(ctx, raftstate.CmdRestartDatabase, raftstate.RestartDatabase{Name: name, At: c.Now().UTC()}); err != nil {
		return api.Database{}, err
	}
	db := c.store().State().Databases[name]
	if db == nil {
		return api.Database{}, notFound(name)
	}
	want := db.RestartGeneration
	v, err := c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range db.Instances {
			if c.observe(ctx, db, in).AppliedGeneration < want {
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

// DeleteDatabase removes a database and waits until its units and data are
// gone from every node that hosted it.
func (c *Controller) DeleteDatabase(ctx context.Context, name string) error {
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return err
		}
		return f.done(f.lc.DeleteDatabase(f.ctx, name))
	}
	db, ok := c.store().State().Databases[name]
	if !ok {
		return notFound(name)
	}
	if err := c.store().Apply(ctx, raftstate.CmdDeleteDatabase, raftstate.DeleteDatabase{Name: name}); err != nil {
		return err
	}
	c.log.Info("database deleted", "database", name)
	ctx, cancel := context.WithTimeout(ctx, c.WaitTimeout)
	defer cancel()
	rec := c.reconciler()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		passed := rec.Passed()
		rec.Trigger()
		if c.removedEverywhere(ctx, db) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("database %q is deleted but its instances are still being removed: %w", name, ctx.Err())
		case <-passed:
		case <-tick.C:
		}
	}
}

func (c *Controller) removedEverywhere(ctx context.Context, db *raftstate.Database) bool {
	if !c.reconciler().Removed(ctx, db) {
		return false
	}
	for _, in := range db.Instances {
		if in.Node == c.cfg.NodeName {
			continue
		}
		r, age, ok := c.live.Instance(in.Node, in.ID)
		if ok && age <= staleAfter && r.Installed {
			return false
		}
	}
	return true
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
