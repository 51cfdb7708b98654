package control

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/failover"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// ListDatabases lists every database with its observed state.
func (c *Controller) ListDatabases(ctx context.Context) ([]api.Database, error) {
	st := c.store().State()
	out := make([]api.Database, 0, len(st.Databases))
	for _, name := range st.DatabaseNames() {
		out = append(out, c.view(ctx, st, st.Databases[name]))
	}
	return out, nil
}

// GetDatabase returns one database with its observed state.
func (c *Controller) GetDatabase(ctx context.Context, name string) (api.Database, error) {
	st := c.store().State()
	db, ok := st.Databases[name]
	if !ok {
		return api.Database{}, notFound(name)
	}
	return c.view(ctx, st, db), nil
}

// observe reports an instance: observed now when it is on this node, from
// its node's last report otherwise.
func (c *Controller) observe(ctx context.Context, db *raftstate.Database, in raftstate.Instance) health.InstanceReport {
	if in.Node == c.cfg.NodeName {
		return c.rec.Observe(ctx, db, in)
	}
	r, age, ok := c.live.Instance(in.Node, in.ID)
	switch {
	case !ok:
		return health.InstanceReport{ID: in.ID, State: api.StateUnknown, Error: fmt.Sprintf("no heartbeat from node %s yet", in.Node)}
	case age > health.StaleAfter:
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
		FailoverStatus: c.status.Why(db.Name),
		AccessControl:  db.Access != nil, Users: usersView(db, c.Now()), TLS: string(db.TLS),
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
			ID: in.ID, Node: in.Node, Host: instance.Host(st, in.Node, c.cfg.AdvertiseAddr), Port: in.Port, TLSPort: in.TLSPort, Role: string(in.Role),
			Unit: reconcile.UnitName(in.ID), State: o.State, PID: o.PID, Restarts: o.Restarts, Error: o.Error,
			MemoryUsedBytes: o.MemoryUsed, ServerVersion: o.ServerVersion, Offset: o.ReplOffset,
			OpsPerSec: o.OpsPerSec, Clients: o.Clients,
			Replication: replicationView(st, db, in, offsets, o),
		}
		if in.Role == raftstate.RolePrimary {
			v.Port, v.Unit, v.State, v.MemoryUsedBytes, v.TLSPort = iv.Port, iv.Unit, iv.State, iv.MemoryUsedBytes, iv.TLSPort
			v.OpsPerSec, v.Clients = iv.OpsPerSec, iv.Clients
		}
		v.Instances = append(v.Instances, iv)
	}
	return v
}

// replicationView says what an instance follows and how far behind it is,
// from its observation and the offsets observed of the primaries.
func replicationView(st *raftstate.State, db *raftstate.Database, in raftstate.Instance, offsets map[string]int64, o health.InstanceReport) *api.Replication {
	if o.Link == nil {
		return nil
	}
	r := &api.Replication{
		Primary:    net.JoinHostPort(o.Link.MasterHost, strconv.Itoa(o.Link.MasterPort)),
		LinkStatus: "down", SyncInProgress: o.Link.SyncInProgress, LastIOSeconds: o.Link.LastIOSeconds, LagBytes: -1,
	}
	if o.Link.Up {
		r.LinkStatus = "up"
	}
	// The primary it follows: its own database's, or the source's.
	src := db
	if in.Role == raftstate.RolePrimary && db.Follows != nil {
		src = st.Databases[db.Follows.Database]
	}
	if src != nil {
		if p, ok := src.Primary(); ok {
			if off, ok := offsets[p.ID]; ok {
				r.LagBytes = max(off-o.ReplOffset, 0)
			}
		}
	}
	return r
}

// DatabaseURL returns redis://default:PASSWORD@HOST:PORT/0 for the primary.
// The user is named because redis-cli 7.0 sends "AUTH ” PASSWORD" for an
// empty one, which the server refuses; "default" works with every client.
func (c *Controller) DatabaseURL(ctx context.Context, name string) (api.URL, error) {
	st := c.store().State()
	db, ok := st.Databases[name]
	if !ok {
		return api.URL{}, notFound(name)
	}
	p, ok := db.Primary()
	if !ok {
		return api.URL{}, conflict("database %q has no primary right now", name)
	}
	pw, err := c.keys().Open(db.Password)
	if err != nil {
		return api.URL{}, err
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword("default", string(pw)), Host: instance.Addr(st, p, c.cfg.AdvertiseAddr), Path: "/0"}
	return api.URL{URL: u.String()}, nil
}

// RestartDatabase restarts every instance and waits until they run again.
func (c *Controller) RestartDatabase(ctx context.Context, name string) (api.Database, error) {
	if _, ok := c.store().View().Databases[name]; !ok {
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
	db, ok := c.store().State().Databases[name]
	if !ok {
		return notFound(name)
	}
	if err := c.store().Apply(ctx, raftstate.CmdDeleteDatabase, raftstate.DeleteDatabase{Name: name}); err != nil {
		return err
	}
	c.log.Info("database deleted", "database", name)
	if !c.converge(ctx, func() bool { return c.removedEverywhere(ctx, db) }) {
		why := fmt.Sprintf("after %s", c.WaitTimeout)
		if ctx.Err() != nil {
			why = ctx.Err().Error()
		}
		return fmt.Errorf("database %q is deleted but its instances are still being removed (%s); see redis-appliance db list", name, why)
	}
	return nil
}

func (c *Controller) removedEverywhere(ctx context.Context, db *raftstate.Database) bool {
	if !c.rec.Removed(ctx, db) {
		return false
	}
	for _, in := range db.Instances {
		if in.Node == c.cfg.NodeName {
			continue
		}
		if r, ok := c.live.Fresh(in.Node, in.ID); ok && r.Installed {
			return false
		}
	}
	return true
}

// FailoverDatabase is a planned switchover (failover.Switchover), then a
// wait until the new primary runs in its role.
func (c *Controller) FailoverDatabase(ctx context.Context, name string, req api.FailoverRequest) (api.FailoverResult, error) {
	c.placeMu.Lock()
	defer c.placeMu.Unlock()
	sw, err := failover.Switchover(ctx, c.fo(), name, req.To)
	if sw.Target.ID == "" {
		return api.FailoverResult{}, err
	}
	v, _ := c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.ID == sw.Target.ID {
				return in.Role == string(raftstate.RolePrimary) && in.State == api.StateRunning
			}
		}
		return false
	})
	return api.FailoverResult{Database: v, From: sw.From, To: sw.To, WritePauseMs: float64(sw.Pause.Microseconds()) / 1000}, err
}

// PromoteDatabase makes a linked or unlinked replica a standalone, writable
// primary. The promotion is in Raft, so no restart makes it follow again.
func (c *Controller) PromoteDatabase(ctx context.Context, name string) (api.Database, error) {
	return c.changeLink(ctx, name, "promote", raftstate.CmdPromoteDatabase, raftstate.PromoteDatabase{Name: name, At: c.Now().UTC()})
}

// UnlinkDatabase stops a linked replica following its source; it keeps its
// data and refuses writes until promoted.
func (c *Controller) UnlinkDatabase(ctx context.Context, name string) (api.Database, error) {
	return c.changeLink(ctx, name, "unlink", raftstate.CmdUnlinkDatabase, raftstate.UnlinkDatabase{Name: name, At: c.Now().UTC()})
}

// changeLink commits a promote or unlink and waits until the database's
// primary no longer replicates anything.
func (c *Controller) changeLink(ctx context.Context, name, kind string, ct raftstate.CommandType, payload any) (api.Database, error) {
	if _, ok := c.store().View().Databases[name]; !ok {
		return api.Database{}, notFound(name)
	}
	if err := c.store().Apply(ctx, ct, payload); err != nil {
		return api.Database{}, err
	}
	c.fo().Event(kind, name, "", fmt.Sprintf("%s: %s", kind, name))
	v, err := c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.Role == string(raftstate.RolePrimary) {
				return in.State == api.StateRunning && in.Replication == nil
			}
		}
		return false
	})
	if err == nil && v.State != api.StateRunning {
		err = fmt.Errorf("%s of %s is committed but its primary is %s; see redis-appliance db show %s", ct, name, v.State, name)
	}
	return v, err
}
