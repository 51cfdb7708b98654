// Package control is the agent's control plane: it turns API requests into
// Raft commands after validating them, checking them against the hardware
// and placing them, and it assembles what users see of databases and nodes
// from the state and the nodes' reports. It implements api.Backend. Which
// node runs each request is not its business: the API server runs the
// leader's requests on the leader (package forward).
package control

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/failover"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Deps are what a controller works with, all made by the agent.
type Deps struct {
	Config  *config.Config
	Cluster *cluster.Manager
	// Live is the leader's view of every node's reports.
	Live *health.View
	// Reconciler is this node's: it observes the local instances and
	// applies a change here at once.
	Reconciler *reconcile.Reconciler
	// Versions are this node's redis-server binaries.
	Versions *versions.Local
	// Failover says why a failed primary is not being replaced, and
	// FailoverCluster is what a switchover acts on (built when needed:
	// the store exists only once this node has a cluster).
	Failover        *failover.Status
	FailoverCluster func() failover.Cluster
	// Supervisor names how instances run here (systemd or process).
	Supervisor string
	Log        *slog.Logger
}

// Controller implements api.Backend for one node.
type Controller struct {
	cfg        *config.Config
	cl         *cluster.Manager
	live       *health.View
	rec        *reconcile.Reconciler
	local      *versions.Local
	status     *failover.Status
	fo         func() failover.Cluster
	supervisor string
	log        *slog.Logger
	// Now is the clock for CreatedAt and version deprecation; tests set it.
	Now func() time.Time
	// ProcRoot is where hardware facts are read (a fixture in tests).
	ProcRoot string
	// WaitTimeout bounds how long create, restart and delete wait for the
	// instance to converge.
	WaitTimeout time.Duration

	// placeMu serialises placement and switchovers, so two creates never
	// pick one port and a create never lands mid-switchover.
	placeMu sync.Mutex

	// factsMu guards the writes of nodes' facts (recordFacts): one in
	// flight per node, none for a while after one failed.
	factsMu     sync.Mutex
	factsBusy   map[string]bool
	factsFailed map[string]time.Time

	// ready is closed once the state has been replayed; database requests
	// wait for it so that a restarting agent never answers from a state
	// that is still being rebuilt.
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a controller.
func New(d Deps) *Controller {
	return &Controller{
		cfg: d.Config, cl: d.Cluster, live: d.Live, rec: d.Reconciler, local: d.Versions,
		status: d.Failover, fo: d.FailoverCluster, supervisor: d.Supervisor, log: d.Log,
		Now: time.Now, ProcRoot: "/proc", WaitTimeout: 60 * time.Second, ready: make(chan struct{}),
		factsBusy: map[string]bool{}, factsFailed: map[string]time.Time{},
	}
}

var _ api.Backend = (*Controller)(nil)

// readyWait bounds how long a request waits for the state to be replayed.
const readyWait = 15 * time.Second

// MarkReady lets database requests through; the agent calls it once the
// Raft log has been replayed.
func (c *Controller) MarkReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// Ready implements api.Backend: it waits (bounded) until MarkReady.
func (c *Controller) Ready(ctx context.Context) error {
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

// NodeName implements api.Backend.
func (c *Controller) NodeName() string { return c.cfg.NodeName }

func (c *Controller) store() *raftstate.Store { return c.cl.Store() }
func (c *Controller) keys() *secrets.Keyring  { return c.cl.Keys() }

func badRequest(format string, args ...any) error {
	return &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

func notFound(name string) error {
	return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("database %q does not exist; see redis-appliance db list", name)}
}

// waitPoll is how often a wait for the instances to converge looks, when
// no reconcile pass here says sooner.
const waitPoll = 50 * time.Millisecond

// converge asks this node for a reconcile pass and looks again after
// each pass (or waitPoll) until done says so, ctx ends or WaitTimeout
// passes; it reports whether done said so.
func (c *Controller) converge(ctx context.Context, done func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, c.WaitTimeout)
	defer cancel()
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		passed := c.rec.Passed()
		c.rec.Trigger()
		if done() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-passed:
		case <-tick.C:
		}
	}
}

// waitFor waits until the database satisfies done or the wait times out;
// it returns the last view either way.
func (c *Controller) waitFor(ctx context.Context, name string, done func(api.Database) bool) (v api.Database, err error) {
	c.converge(ctx, func() bool {
		v, err = c.GetDatabase(ctx, name)
		return err != nil || done(v)
	})
	return v, err
}
