package control

import (
	"context"
	"slices"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Events lists the recorded events, oldest first, from this node's copy of
// the state (every node has them all, a moment after the leader).
func (c *Controller) Events(ctx context.Context) ([]api.Event, error) {
	// Oldest first by when they happened: a cut-off node's fence arrives
	// (and is appended) only once it can reach the leader again.
	evs := slices.Clone(c.store().View().Events)
	slices.SortStableFunc(evs, func(a, b raftstate.Event) int { return a.At.Compare(b.At) })
	out := make([]api.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, api.Event{At: e.At, Kind: e.Kind, Database: e.Database, Node: e.Node, Message: e.Message})
	}
	return out, nil
}
