package failover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Switched is how a planned switchover went.
type Switched struct {
	// From and To are the nodes of the old and the new primary.
	From, To string
	// Target is the promoted instance; Epoch the database's new epoch.
	Target raftstate.Instance
	Epoch  uint64
	// Pause runs from CLIENT PAUSE on the old primary to its demotion and
	// CLIENT UNPAUSE.
	Pause time.Duration
}

func conflict(format string, args ...any) error {
	return &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

// Switchover is a planned switchover of database name to its replica on
// node to (or the most up-to-date one): pause writes on the primary, wait
// until the target has everything the primary acknowledged, commit the new
// primary with a new epoch, let every node apply the roles (the old
// primary drops its clients as it is demoted), then resume. No write the
// old primary acknowledged is lost: it acknowledged nothing after the
// pause, and the target had everything before it. Run it on the leader.
//
// A switchover refused before the commit changes nothing. One committed
// whose roles were not seen applied in time returns its result and an
// error saying so: the nodes keep converging.
func Switchover(ctx context.Context, c Cluster, name, to string) (Switched, error) {
	st := c.Store.State()
	db, ok := st.Databases[name]
	if !ok {
		return Switched{}, &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("database %q does not exist; see redis-appliance db list", name)}
	}
	old, ok := db.Primary()
	if !ok {
		return Switched{}, conflict("database %s has no primary right now", name)
	}
	target, err := c.switchoverTarget(ctx, st, db, old, to)
	if err != nil {
		return Switched{}, err
	}
	pc, err := c.dial(ctx, st, db, old, instance.NameSwitchover, DirectTimeout)
	if err != nil {
		return Switched{}, err
	}
	defer pc.Close()
	tc, err := c.dial(ctx, st, db, target, instance.NameSwitchover, DirectTimeout)
	if err != nil {
		return Switched{}, err
	}
	defer tc.Close()

	dctx, cancel := context.WithTimeout(ctx, SwitchoverPause)
	defer cancel()
	start := time.Now()
	if err := pc.Do(dctx, "CLIENT", "PAUSE", SwitchoverPause.Milliseconds(), "WRITE").Err(); err != nil {
		return Switched{}, conflict("cannot pause writes on the primary %s on %s: %v; no change", old.ID, old.Node, err)
	}
	unpause := func() {
		uctx, cancel := context.WithTimeout(context.Background(), DirectTimeout)
		defer cancel()
		if err := pc.Do(uctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			c.Log.Warn("cannot resume writes on the old primary; its pause expires by itself", "instance", old.ID, "err", err, "within", SwitchoverPause)
		}
	}
	if err := catchUp(dctx, pc, tc, target); err != nil {
		unpause()
		return Switched{}, err
	}
	err = c.Store.Apply(ctx, raftstate.CmdSetPrimary, raftstate.SetPrimary{
		Name: name, Instance: target.ID, Epoch: db.Epoch, Reason: "planned switchover", At: c.Now().UTC(),
	})
	if err != nil {
		unpause()
		return Switched{}, fmt.Errorf("switchover of %s not committed, nothing changed: %w", name, err)
	}
	c.Local.Trigger()
	settled := awaitRoles(dctx, pc, tc, instance.Addr(st, target, c.Fallback))
	unpause()
	res := Switched{From: old.Node, To: target.Node, Target: target, Epoch: db.Epoch + 1, Pause: time.Since(start)}
	c.Event("switchover", name, target.Node, fmt.Sprintf("planned switchover of %s from %s to %s (epoch %d); writes paused %s", name, old.Node, target.Node, res.Epoch, res.Pause.Round(time.Millisecond)))
	if settled != nil {
		return res, fmt.Errorf("switchover of %s to %s committed (epoch %d), but %v; the nodes keep converging, see redis-appliance db show %s", name, target.Node, res.Epoch, settled, name)
	}
	return res, nil
}

// switchoverTarget picks the replica to promote: the one on node to, or
// the most up-to-date one; it refuses one that is down, lagging beyond
// failover.switchover_max_lag, or on a node without the database's
// version. Replicas are asked directly, not through reports that may be
// seconds old: one that is down must be refused before writes pause.
func (c Cluster) switchoverTarget(ctx context.Context, st *raftstate.State, db *raftstate.Database, old raftstate.Instance, to string) (raftstate.Instance, error) {
	var replicas []raftstate.Instance
	var nodes []string
	for _, in := range db.Instances {
		if in.Role == raftstate.RoleReplica {
			replicas, nodes = append(replicas, in), append(nodes, in.Node)
		}
	}
	if len(replicas) == 0 {
		return raftstate.Instance{}, conflict("database %s has no replica to switch over to; create it with --replicas N", db.Name)
	}
	if to == old.Node {
		return raftstate.Instance{}, conflict("the primary of %s is already on %s", db.Name, to)
	}
	pi, err := c.info(ctx, st, db, old, instance.NameSwitchover, DirectTimeout)
	switch {
	case err != nil:
		return raftstate.Instance{}, conflict("the primary of %s on %s does not answer (%v); a planned switchover needs a running primary", db.Name, old.Node, err)
	case !pi.Primary():
		return raftstate.Instance{}, conflict("the primary of %s on %s is not a primary yet (role %s); a planned switchover needs a running primary", db.Name, old.Node, pi.Role)
	}
	var best raftstate.Instance
	var bestOffset int64 = -1
	var why []string
	for _, in := range replicas {
		if to != "" && in.Node != to {
			continue
		}
		ri, err := c.info(ctx, st, db, in, instance.NameSwitchover, DirectTimeout)
		problem := ""
		switch {
		case err != nil:
			problem = fmt.Sprintf("does not answer (%v)", err)
		case !st.Nodes[in.Node].HasVersion(db.Version):
			problem = fmt.Sprintf("is on a node without %s installed", db.Version)
		default:
			problem = c.Settings.disqualified(fromInfo(ri), pi.Offset, true)
		}
		switch {
		case problem != "":
			why = append(why, fmt.Sprintf("the replica on %s %s", in.Node, problem))
		case ri.Offset > bestOffset:
			best, bestOffset = in, ri.Offset
		}
	}
	if bestOffset >= 0 {
		return best, nil
	}
	if to != "" && len(why) == 0 {
		return raftstate.Instance{}, &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("database %s has no replica on node %q; its replicas are on %s", db.Name, to, strings.Join(nodes, ", "))}
	}
	return raftstate.Instance{}, conflict("no replica of %s can take over: %s; no change", db.Name, strings.Join(why, "; "))
}

// catchUpPoll is how often the switchover looks at the target's offset
// while writes are paused: every millisecond of the pause counts.
const catchUpPoll = 2 * time.Millisecond

// catchUp waits until the target's offset reaches the paused primary's.
func catchUp(ctx context.Context, pc, tc *redis.Client, target raftstate.Instance) error {
	pi, err := instance.ReadInfo(ctx, pc, "replication")
	if err != nil {
		return conflict("cannot read the primary's replication offset: %v; no change", err)
	}
	deadline := time.Now().Add(CatchUpWait)
	for {
		ti, err := instance.ReadInfo(ctx, tc, "replication")
		if err == nil && ti.LinkUp && ti.Offset >= pi.Offset {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return conflict("the replica on %s stopped answering (%v); writes resumed, no change", target.Node, err)
			}
			link := "down"
			if ti.LinkUp {
				link = "up"
			}
			return conflict("the replica on %s did not catch up within %s (%d bytes behind, link %s); writes resumed, no change", target.Node, CatchUpWait, pi.Offset-ti.Offset, link)
		}
		time.Sleep(catchUpPoll)
	}
}

// awaitRoles waits until the target is a primary and the old primary
// replicates it, as the nodes' reconcilers make them.
func awaitRoles(ctx context.Context, pc, tc *redis.Client, targetAddr string) error {
	host, port, _ := net.SplitHostPort(targetAddr)
	ctx, cancel := context.WithTimeout(ctx, SettleWait)
	defer cancel()
	for {
		ti, terr := instance.ReadInfo(ctx, tc, "replication")
		pi, perr := instance.ReadInfo(ctx, pc, "replication")
		if terr == nil && perr == nil && ti.Primary() && pi.Follows(host, port) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the old primary was not seen replicating the new one in time")
		case <-time.After(catchUpPoll):
		}
	}
}
