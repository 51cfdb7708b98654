package failover

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Cluster is what the leader's failover code (detection, promotion,
// switchover) reads and acts on.
type Cluster struct {
	// Node is this node's name; Fallback the address of a node that
	// registered none (instance.Host).
	Node, Fallback string
	Store          *raftstate.Store
	Keys           Opener
	// Live is the leader's view of every node's reports.
	Live *health.View
	// Local is this node's reconciler: a decision is applied here at once
	// rather than at its next pass.
	Local    Local
	Settings Settings
	// Now is the wall clock of recorded times (events, epochs); every
	// wait and window uses the monotonic clock.
	Now func() time.Time
	Log *slog.Logger
}

// eventTimeout bounds recording one event.
const eventTimeout = 5 * time.Second

// Event records something the leader decided, logging it too; a failure
// to record is logged, never fatal to the decision.
func (c Cluster) Event(kind, db, node, msg string) {
	c.Log.Info("event: "+msg, "kind", kind, "database", db, "node", node)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	e := raftstate.Event{At: c.Now().UTC(), Kind: kind, Database: db, Node: node, Message: msg}
	if err := c.Store.Apply(ctx, raftstate.CmdRecordEvents, raftstate.RecordEvents{Events: []raftstate.Event{e}}); err != nil {
		c.Log.Warn("cannot record an event", "kind", kind, "err", err)
	}
}

// dial opens a short-lived connection from this node to an instance, as
// the agent's own user.
func (c Cluster) dial(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance, name string, timeout time.Duration) (*redis.Client, error) {
	creds, err := access.AgentCredentials(c.Keys, db)
	if err != nil {
		return nil, err
	}
	return instance.Dial(ctx, instance.Addr(st, in, c.Fallback), creds, name, timeout)
}

// info asks an instance directly for INFO replication.
func (c Cluster) info(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance, name string, timeout time.Duration) (instance.Info, error) {
	rc, err := c.dial(ctx, st, db, in, name, timeout)
	if err != nil {
		return instance.Info{}, err
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return instance.ReadInfo(ctx, rc, "replication")
}
