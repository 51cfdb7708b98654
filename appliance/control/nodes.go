package control

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/forward"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Node reports this node's hardware and allocations.
func (c *Controller) Node(_ context.Context) (api.Node, error) {
	f, err := c.facts(c.cfg.NodeName)
	if err != nil {
		return api.Node{}, err
	}
	st := raftstate.NewState()
	if s := c.store(); s != nil {
		st = s.View()
	}
	n := c.nodeView(st, c.cfg.NodeName, f.hw)
	n.Supervisor = c.supervisor
	n.Versions, n.AgentVersion, n.FeatureLevel = c.local.Versions(), c.cfg.AgentVersion, raftstate.FeatureLevel
	return n, nil
}

func (c *Controller) nodeView(st *raftstate.State, name string, hw sizing.Hardware) api.Node {
	p := sizing.DefaultPolicy(hw)
	alloc := sizing.Allocated(st, name, "")
	n := api.Node{
		Name: name, Hardware: apiHardware(hw), LastContactSeconds: -1,
		ReservedMemory: p.ReserveMemory, ReservedDisk: p.ReserveDisk,
		AllocatedMemory: alloc.Memory, AllocatedDisk: alloc.Disk,
		FreeMemory: max(0, hw.MemTotal-p.ReserveMemory-alloc.Memory),
		FreeDisk:   max(0, hw.DiskFree-p.ReserveDisk-alloc.Disk),
		Databases:  len(st.InstancesOn(name)),
	}
	if rn, ok := st.Nodes[name]; ok {
		n.Address, n.Draining = rn.Address, rn.Draining
		n.Versions, n.AgentVersion, n.FeatureLevel = rn.Versions, rn.AgentVersion, rn.FeatureLevel
	}
	return n
}

// apiHardware is the API's copy of what sizing measured.
func apiHardware(hw sizing.Hardware) api.Hardware {
	return api.Hardware{
		MemTotal: hw.MemTotal, MemAvailable: hw.MemAvailable, SwapTotal: hw.SwapTotal, SwapFree: hw.SwapFree,
		CPUs: hw.CPUs, DiskPath: hw.DiskPath, DiskTotal: hw.DiskTotal, DiskFree: hw.DiskFree,
	}
}

// Nodes lists every node with its hardware (from its reports), what is
// allocated there and how long ago the leader heard from it.
func (c *Controller) Nodes(ctx context.Context) ([]api.Node, error) {
	st := c.store().State()
	servers, err := c.store().Servers()
	if err != nil {
		return nil, err
	}
	role := map[string]raftstate.Server{}
	for _, s := range servers {
		role[s.ID] = s
	}
	var out []api.Node
	for _, name := range st.NodeNames() {
		var hw sizing.Hardware
		age := time.Duration(-1)
		if name == c.cfg.NodeName {
			if f, err := c.facts(name); err == nil {
				hw, age = f.hw, 0
			}
		} else if e, ok := c.live.Node(name); ok {
			hw, age = e.Heartbeat.Hardware, e.Age()
		}
		n := c.nodeView(st, name, hw)
		n.Voter, n.Leader = role[name].Voter, role[name].IsLeader
		if age >= 0 {
			n.LastContactSeconds = age.Seconds()
			n.Healthy = age <= health.StaleAfter
		}
		out = append(out, n)
	}
	return out, nil
}

// DrainNode stops new placements on a node and moves what it can: every
// primary there with a healthy replica elsewhere is switched over. What is
// left (replicas, and primaries with nowhere to go) is listed.
func (c *Controller) DrainNode(ctx context.Context, name string) (api.DrainResponse, error) {
	st := c.store().State()
	if _, ok := st.Nodes[name]; !ok {
		return api.DrainResponse{}, &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown node %q; see redis-appliance node list", name)}
	}
	others := 0
	for _, n := range st.Nodes {
		if n.Name != name && !n.Draining {
			others++
		}
	}
	if others == 0 {
		return api.DrainResponse{}, conflict("node %s is the only node that takes databases; add a node before draining it", name)
	}
	if err := c.store().Apply(ctx, raftstate.CmdSetNodeDraining, raftstate.SetNodeDraining{Name: name, Draining: true}); err != nil {
		return api.DrainResponse{}, err
	}
	resp := api.DrainResponse{Node: name, Remaining: []string{}, Moved: []string{}}
	for _, pi := range st.InstancesOn(name) {
		if instance.HAPrimary(pi.Database, pi.Instance) {
			_, err := c.FailoverDatabase(ctx, pi.Database.Name, api.FailoverRequest{})
			if err == nil {
				resp.Moved = append(resp.Moved, pi.Database.Name)
				continue
			}
			c.log.Warn("drain: cannot move a primary off the node", "node", name, "database", pi.Database.Name, "err", err)
		}
		resp.Remaining = append(resp.Remaining, pi.Database.Name)
	}
	return resp, nil
}

// RemoveNode removes a node from Raft and from the state. It is refused for
// the last voter, and while the node holds the only copy of a database
// unless force.
func (c *Controller) RemoveNode(ctx context.Context, name string, force bool) error {
	st := c.store().State()
	servers, err := c.store().Servers()
	if err != nil {
		return err
	}
	if _, ok := st.Nodes[name]; !ok {
		// A removal cut short between its two writes (leadership moved)
		// left the node in the Raft configuration: finish it.
		for _, s := range servers {
			if s.ID == name {
				c.log.Warn("finishing the removal of a node already gone from the state", "node", name)
				return c.store().RemoveServer(ctx, name)
			}
		}
		return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown node %q; see redis-appliance node list", name)}
	}
	voters := 0
	for _, s := range servers {
		if s.Voter && s.ID != name {
			voters++
		}
	}
	if voters == 0 {
		return conflict("node %s is the last voter; a cluster cannot remove its last node", name)
	}
	var hosted []string
	for _, pi := range st.InstancesOn(name) {
		hosted = append(hosted, pi.Database.Name)
	}
	if len(hosted) > 0 && !force {
		return conflict("node %s holds the only copy of %v; delete them first, or pass --force to remove the node and DELETE these databases", name, hosted)
	}
	if name == c.cfg.NodeName {
		// The leader removing itself: hand leadership over; not being
		// leader any more, the request goes on to the new leader, which
		// removes this node.
		if err := c.store().TransferLeadership(); err != nil {
			return fmt.Errorf("hand over leadership before removing %s: %w", name, err)
		}
		return forward.ErrHandedOver
	}
	if err := c.store().Apply(ctx, raftstate.CmdRemoveNode, raftstate.RemoveNode{Name: name, Force: force}); err != nil {
		return err
	}
	if err := c.store().RemoveServer(ctx, name); err != nil {
		return err
	}
	c.live.Forget(name)
	c.log.Warn("node removed", "node", name, "deleted_databases", hosted)
	return nil
}
