package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Node reports this node's hardware and allocations.
func (c *Controller) Node(_ context.Context) (api.Node, error) {
	f, err := c.facts(c.cfg.NodeName)
	if err != nil {
		return api.Node{}, err
	}
	n := c.nodeView(c.stateOrEmpty(), c.cfg.NodeName, f.hw)
	n.Supervisor = c.supervisor
	return n, nil
}

func (c *Controller) stateOrEmpty() *raftstate.State {
	if st := c.store(); st != nil {
		return st.State()
	}
	return raftstate.NewState()
}

func (c *Controller) nodeView(st *raftstate.State, name string, hw sizing.Hardware) api.Node {
	p := sizing.DefaultPolicy(hw)
	alloc := sizing.Allocated(st, name, "")
	n := api.Node{
		Name: name, Hardware: hw, LastContactSeconds: -1,
		ReservedMemory: p.ReserveMemory, ReservedDisk: p.ReserveDisk,
		AllocatedMemory: alloc.Memory, AllocatedDisk: alloc.Disk,
		FreeMemory: max(0, hw.MemTotal-p.ReserveMemory-alloc.Memory),
		FreeDisk:   max(0, hw.DiskFree-p.ReserveDisk-alloc.Disk),
		Databases:  len(st.InstancesOn(name)),
	}
	if rn, ok := st.Nodes[name]; ok {
		n.Address, n.Draining = rn.Address, rn.Draining
	}
	return n
}

// Nodes lists every node with its hardware (from its heartbeats), what is
// allocated there and how long ago the leader heard from it.
func (c *Controller) Nodes(ctx context.Context) ([]api.Node, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return nil, err
		}
		v, err := f.lc.Nodes(f.ctx)
		return v, f.done(err)
	}
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
			n.Healthy = age <= staleAfter
		}
		out = append(out, n)
	}
	return out, nil
}

// DrainNode stops new placements on a node and moves what it can: every
// primary there with a healthy replica elsewhere is switched over. What is
// left (replicas, and primaries with nowhere to go) is listed.
func (c *Controller) DrainNode(ctx context.Context, name string) (api.DrainResponse, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.DrainResponse{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.DrainResponse{}, err
		}
		v, err := f.lc.DrainNode(f.ctx, name)
		return v, f.done(err)
	}
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
		return api.DrainResponse{}, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("node %s is the only node that takes databases; add a node before draining it", name)}
	}
	if err := c.store().Apply(ctx, raftstate.CmdSetNodeDraining, raftstate.SetNodeDraining{Name: name, Draining: true}); err != nil {
		return api.DrainResponse{}, err
	}
	resp := api.DrainResponse{Node: name, Remaining: []string{}, Moved: []string{}}
	for _, pi := range st.InstancesOn(name) {
		if pi.Instance.Role == raftstate.RolePrimary && len(pi.Database.Instances) > 1 {
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
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return err
		}
		return f.done(f.lc.RemoveNode(f.ctx, name, force))
	}
	st := c.store().State()
	if _, ok := st.Nodes[name]; !ok {
		return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("unknown node %q; see redis-appliance node list", name)}
	}
	servers, err := c.store().Servers()
	if err != nil {
		return err
	}
	voters := 0
	for _, s := range servers {
		if s.Voter && s.ID != name {
			voters++
		}
	}
	if voters == 0 {
		return &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("node %s is the last voter; a cluster cannot remove its last node", name)}
	}
	var hosted []string
	for _, pi := range st.InstancesOn(name) {
		hosted = append(hosted, pi.Database.Name)
	}
	if len(hosted) > 0 && !force {
		return &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("node %s holds the only copy of %v; delete them first, or pass --force to remove the node and DELETE these databases", name, hosted)}
	}
	if name == c.cfg.NodeName {
		// The leader removing itself: hand leadership over, then let the new
		// leader remove this node.
		if err := c.store().TransferLeadership(); err != nil {
			return fmt.Errorf("hand over leadership before removing %s: %w", name, err)
		}
		return c.forwardOnceLeaderMoves(ctx, func(lc *api.Client) error { return lc.RemoveNode(ctx, name, force) })
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

// ClusterStatus reports this node's view of the cluster.
func (c *Controller) ClusterStatus(_ context.Context) (api.ClusterStatus, error) {
	st := c.store()
	if st == nil {
		return api.ClusterStatus{Node: c.cfg.NodeName, RaftState: "none"}, nil
	}
	s := st.Status()
	has, err := st.HasState()
	if err != nil {
		return api.ClusterStatus{}, err
	}
	out := api.ClusterStatus{
		Node: s.Node, RaftState: s.State, Leader: s.Leader, Voters: s.Voters,
		LastIndex: s.LastIndex, AppliedIndex: s.AppliedIndex, Bootstrapped: has,
		LastContactSeconds: max(-1, st.LastContact().Seconds()),
	}
	servers, err := st.Servers()
	if err != nil {
		return out, nil
	}
	for _, srv := range servers {
		m := api.Member{Name: srv.ID, Address: srv.Address, Voter: srv.Voter, Leader: srv.IsLeader, LastContactSeconds: -1}
		switch {
		case srv.ID == c.cfg.NodeName:
			m.LastContactSeconds, m.Healthy = 0, true
		case st.IsLeader():
			if e, ok := c.live.Node(srv.ID); ok {
				m.LastContactSeconds, m.Healthy = e.Age().Seconds(), e.Age() <= staleAfter
			}
		}
		out.Members = append(out.Members, m)
	}
	return out, nil
}

// ClusterInit makes this node a new cluster and returns a first join token.
func (c *Controller) ClusterInit(ctx context.Context) (api.ClusterStatus, error) {
	if err := c.cl.Init(ctx); err != nil {
		if errors.Is(err, raftstate.ErrAlreadyBootstrapped) {
			return api.ClusterStatus{}, &api.Error{Status: http.StatusConflict, Message: "this node already belongs to a cluster; see redis-appliance cluster status (cluster token makes a join token)"}
		}
		return api.ClusterStatus{}, err
	}
	if err := c.waitReady(ctx); err != nil {
		return api.ClusterStatus{}, err
	}
	if err := c.cl.Register(ctx); err != nil {
		return api.ClusterStatus{}, err
	}
	tok, err := c.cl.NewToken(ctx, cluster.DefaultTokenTTL)
	if err != nil {
		return api.ClusterStatus{}, err
	}
	st, err := c.ClusterStatus(ctx)
	st.Token = &tok
	return st, err
}

// ClusterToken creates a single-use join token (on the leader).
func (c *Controller) ClusterToken(ctx context.Context, req api.TokenRequest) (api.TokenResponse, error) {
	ttl := cluster.DefaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > 7*24*time.Hour {
			return api.TokenResponse{}, badRequest("invalid --ttl %q: use a duration between 1s and 168h, e.g. 30m or 2h", req.TTL)
		}
		ttl = d
	}
	if err := c.waitReady(ctx); err != nil {
		return api.TokenResponse{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.TokenResponse{}, err
		}
		v, err := f.lc.ClusterToken(f.ctx, req)
		return v, f.done(err)
	}
	return c.cl.NewToken(ctx, ttl)
}

// ClusterJoin makes this fresh node join the cluster a token belongs to.
func (c *Controller) ClusterJoin(ctx context.Context, req api.JoinClusterRequest) (api.ClusterStatus, error) {
	if req.Token == "" {
		return api.ClusterStatus{}, badRequest("a join token is required: --token (make one with redis-appliance cluster token on a member)")
	}
	if err := c.cl.Join(ctx, req.Addr, req.Token); err != nil {
		if errors.Is(err, raftstate.ErrAlreadyBootstrapped) {
			return api.ClusterStatus{}, &api.Error{Status: http.StatusConflict, Message: "this node already belongs to a cluster; see redis-appliance cluster status (to move it, remove it from its cluster and re-install it)"}
		}
		return api.ClusterStatus{}, err
	}
	return c.ClusterStatus(ctx)
}

// ClusterLeave removes this node from its cluster through the leader.
func (c *Controller) ClusterLeave(ctx context.Context) error {
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if c.store().IsLeader() {
		return c.RemoveNode(ctx, c.cfg.NodeName, false)
	}
	f, err := c.leader(ctx)
	if err != nil || f == nil {
		return err
	}
	return f.done(f.lc.RemoveNode(f.ctx, c.cfg.NodeName, false))
}

// forwardOnceLeaderMoves waits (bounded) until another node leads, then
// sends it the call.
func (c *Controller) forwardOnceLeaderMoves(ctx context.Context, call func(*api.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if lc, leader, err := c.cl.LeaderClient(); err == nil && leader != c.cfg.NodeName {
			return call(lc.Forwarding())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no other node took over leadership: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Admit handles a joining host's request (forwarded to the leader).
func (c *Controller) Admit(ctx context.Context, req api.JoinRequest) (api.JoinResponse, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.JoinResponse{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.JoinResponse{}, err
		}
		v, err := f.lc.Join(f.ctx, req)
		return v, f.done(err)
	}
	return c.cl.Admit(ctx, req)
}

// JoinComplete makes an admitted node a voter. The caller must be that
// node, or a member forwarding its call.
func (c *Controller) JoinComplete(ctx context.Context, req api.JoinCompleteRequest) error {
	if peer := api.PeerNode(ctx); !api.IsForwarded(ctx) && peer != req.Node {
		return &api.Error{Status: http.StatusForbidden, Message: fmt.Sprintf("node %s cannot complete the join of %s", peer, req.Node)}
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return err
		}
		return f.done(f.lc.JoinComplete(f.ctx, req))
	}
	return c.cl.AddVoter(ctx, req.Node)
}

// Heartbeat records a node's report on the leader.
func (c *Controller) Heartbeat(ctx context.Context, body []byte) (api.HeartbeatAck, error) {
	var hb health.Heartbeat
	if err := json.Unmarshal(body, &hb); err != nil {
		return api.HeartbeatAck{}, badRequest("invalid heartbeat: %v", err)
	}
	if peer := api.PeerNode(ctx); peer != "" && peer != hb.Node && !api.IsForwarded(ctx) {
		return api.HeartbeatAck{}, &api.Error{Status: http.StatusForbidden, Message: fmt.Sprintf("node %s cannot report for %s", peer, hb.Node)}
	}
	st := c.store()
	if st == nil {
		return api.HeartbeatAck{}, cluster.ErrNotMember
	}
	if !st.IsLeader() {
		f, err := c.leader(ctx)
		if err != nil || f == nil {
			return api.HeartbeatAck{}, err
		}
		ack, err := f.lc.Heartbeat(f.ctx, hb)
		return ack, f.done(err)
	}
	if err := c.live.Record(hb); err != nil {
		return api.HeartbeatAck{}, &api.Error{Status: http.StatusConflict, Message: err.Error()}
	}
	// Acknowledged only once recorded: the node resends them otherwise.
	if len(hb.Events) > 0 {
		if err := c.RecordEvents(ctx, hb.Events...); err != nil {
			return api.HeartbeatAck{}, err
		}
	}
	return api.HeartbeatAck{AppliedIndex: st.AppliedIndex()}, nil
}
