package control

import (
	"context"
	"slices"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// RecordEvents commits events to the state; only the leader can.
func (c *Controller) RecordEvents(ctx context.Context, evs ...raftstate.Event) error {
	for i := range evs {
		if evs[i].At.IsZero() {
			evs[i].At = c.Now().UTC()
		}
	}
	return c.store().Apply(ctx, raftstate.CmdRecordEvents, raftstate.RecordEvents{Events: evs})
}

// event records one event from the leader's own decisions, logging it too;
// a failure to record is logged, never fatal to the decision.
func (c *Controller) event(kind, db, node, msg string) {
	c.log.Info("event: "+msg, "kind", kind, "database", db, "node", node)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.RecordEvents(ctx, raftstate.Event{Kind: kind, Database: db, Node: node, Message: msg}); err != nil {
		c.log.Warn("cannot record an event", "kind", kind, "err", err)
	}
}

// Events lists the recorded events, oldest first, from this node's copy of
// the state (every node has them all, a moment after the leader).
func (c *Controller) Events(ctx context.Context) ([]api.Event, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	evs := c.store().View().Events
	// Oldest first by when they happened: a cut-off node's fence arrives
	// (and is appended) only once it can reach the leader again.
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b raftstate.Event) int { return a.At.Compare(b.At) })
	out := make([]api.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, api.Event{At: e.At, Kind: e.Kind, Database: e.Database, Node: e.Node, Message: e.Message})
	}
	return out, nil
}
