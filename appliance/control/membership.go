package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// ClusterStatus reports this node's view of the cluster.
func (c *Controller) ClusterStatus(_ context.Context) (api.ClusterStatus, error) {
	st := c.store()
	if st == nil {
		return api.ClusterStatus{Node: c.cfg.NodeName, RaftState: "none", AgentVersion: c.cfg.AgentVersion, FeatureLevel: raftstate.FeatureLevel}, nil
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
		AgentVersion:       c.cfg.AgentVersion, FeatureLevel: raftstate.FeatureLevel,
	}
	if level, _, err := st.ClusterLevel(); err == nil {
		out.ClusterFeatureLevel = level
	}
	recent, total := st.ApplyErrors()
	out.UndecodableTotal = total
	for _, e := range recent {
		out.ApplyErrors = append(out.ApplyErrors, api.ApplyError{Index: e.Index, Command: e.Command, PayloadVersion: e.PayloadVersion, Error: e.Err})
	}
	servers, err := st.Servers()
	if err != nil {
		return out, nil
	}
	nodes := st.View().Nodes
	for _, srv := range servers {
		m := api.Member{Name: srv.ID, Address: srv.Address, Voter: srv.Voter, Leader: srv.IsLeader, LastContactSeconds: -1}
		if n, ok := nodes[srv.ID]; ok {
			m.AgentVersion, m.FeatureLevel = n.AgentVersion, n.FeatureLevel
		}
		switch {
		case srv.ID == c.cfg.NodeName:
			m.LastContactSeconds, m.Healthy = 0, true
			m.AgentVersion, m.FeatureLevel = c.cfg.AgentVersion, raftstate.FeatureLevel
		case st.IsLeader():
			if e, ok := c.live.Node(srv.ID); ok {
				m.LastContactSeconds, m.Healthy = e.Age().Seconds(), e.Age() <= health.StaleAfter
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
			return api.ClusterStatus{}, conflict("this node already belongs to a cluster; see redis-appliance cluster status (cluster token makes a join token)")
		}
		return api.ClusterStatus{}, err
	}
	if err := c.Ready(ctx); err != nil {
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
	return c.cl.NewToken(ctx, ttl)
}

// ClusterJoin makes this fresh node join the cluster a token belongs to.
func (c *Controller) ClusterJoin(ctx context.Context, req api.JoinClusterRequest) (api.ClusterStatus, error) {
	if req.Token == "" {
		return api.ClusterStatus{}, badRequest("a join token is required: --token (make one with redis-appliance cluster token on a member)")
	}
	if err := c.cl.Join(ctx, req.Addr, req.Token); err != nil {
		if errors.Is(err, raftstate.ErrAlreadyBootstrapped) {
			return api.ClusterStatus{}, conflict("this node already belongs to a cluster; see redis-appliance cluster status (to move it, remove it from its cluster and re-install it)")
		}
		return api.ClusterStatus{}, err
	}
	return c.ClusterStatus(ctx)
}

// Admit handles a joining host's request (on the leader).
func (c *Controller) Admit(ctx context.Context, req api.JoinRequest) (api.JoinResponse, error) {
	return c.cl.Admit(ctx, req)
}

// firstReportWait bounds how long completing a join waits for the new
// node's first report: a join answers only once the leader can place
// instances there. Shorter than the joining node's own wait for the
// answer (cluster.completeJoin, 15 s an attempt), so that it hears why.
const firstReportWait = 10 * time.Second

// JoinComplete makes an admitted node a voter, then waits for its first
// report, so that a create right after the join can place on it. The
// caller must be that node (directly, or through a member that forwarded
// its call).
func (c *Controller) JoinComplete(ctx context.Context, req api.JoinCompleteRequest) error {
	if caller, known := api.Caller(ctx); known && caller != req.Node {
		return &api.Error{Status: http.StatusForbidden, Message: fmt.Sprintf("node %s cannot complete the join of %s", caller, req.Node)}
	}
	if err := c.cl.AddVoter(ctx, req.Node); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, firstReportWait)
	defer cancel()
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		if e, ok := c.live.Node(req.Node); ok && !e.Heartbeat.Same {
			return nil
		}
		select {
		case <-wctx.Done():
			return &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("node %s is a voter, but its first report has not reached the leader within %s; see redis-appliance node list", req.Node, firstReportWait)}
		case <-t.C:
		}
	}
}

// Heartbeat records a node's report on the leader (it arrives over the
// cluster API).
func (c *Controller) Heartbeat(ctx context.Context, body []byte) (api.HeartbeatAck, error) {
	var hb health.Heartbeat
	if err := json.Unmarshal(body, &hb); err != nil {
		return api.HeartbeatAck{}, badRequest("invalid heartbeat: %v", err)
	}
	if caller, known := api.Caller(ctx); known && caller != hb.Node {
		return api.HeartbeatAck{}, &api.Error{Status: http.StatusForbidden, Message: fmt.Sprintf("node %s cannot report for %s", caller, hb.Node)}
	}
	index, err := c.RecordHeartbeat(ctx, hb)
	return api.HeartbeatAck{AppliedIndex: index}, err
}

// RecordHeartbeat records a node's report on the leader (this node's own
// comes straight from its reporter): in the live view, and its events in
// the state. It returns the leader's applied index, acknowledged only once
// both are recorded: the node resends its events otherwise. What the
// report says of the node's agent and binaries is recorded beside it
// (recordFacts), never holding up the acknowledgement, on which the
// node's lease rides.
func (c *Controller) RecordHeartbeat(ctx context.Context, hb health.Heartbeat) (uint64, error) {
	st := c.store()
	if st == nil {
		return 0, cluster.ErrNotMember
	}
	if !st.IsLeader() {
		return 0, raftstate.ErrNotLeader
	}
	if err := c.live.Record(hb); err != nil {
		return 0, conflict("%v", err)
	}
	if len(hb.Events) > 0 {
		evs := slices.Clone(hb.Events)
		for i := range evs {
			if evs[i].At.IsZero() {
				evs[i].At = c.Now().UTC()
			}
		}
		if err := st.Apply(ctx, raftstate.CmdRecordEvents, raftstate.RecordEvents{Events: evs}); err != nil {
			return 0, err
		}
	}
	c.recordFacts(st, hb)
	return st.AppliedIndex(), nil
}

// factsRetry is how long after a failed write of a node's facts the next
// is tried (a report comes several times a second).
const factsRetry = 10 * time.Second

// factsTimeout bounds one write of a node's facts.
const factsTimeout = 5 * time.Second

// recordFacts keeps a node's record in step with what its reports say of
// its agent (release, feature level) and its redis-server versions, in the
// background: at most one write per node in flight, and none for
// factsRetry after a failure. RegisterNode is how: agents before feature
// level 2 apply it too, ignoring the fields they do not know. This node's
// own record is written by Register, from its configuration, so that a
// change of its addresses is never undone by a write of old ones.
func (c *Controller) recordFacts(st *raftstate.Store, hb health.Heartbeat) {
	if hb.Same {
		return
	}
	n, ok := st.Node(hb.Node)
	if !ok {
		return
	}
	want := raftstate.RegisterNode{
		Name: n.Name, RaftAddr: n.RaftAddr, APIAddr: n.APIAddr, Address: n.Address, SentinelPort: n.SentinelPort, At: n.JoinedAt,
		AgentVersion: hb.AgentVersion, FeatureLevel: hb.FeatureLevel, Versions: hb.Versions,
	}
	switch {
	case hb.FeatureLevel == 0 && n.FeatureLevel <= 1:
		return // an older agent, recorded as one: nothing to say
	case hb.FeatureLevel == 0:
		// Downgraded to an agent from before levels: it is level 1 again,
		// and what it has installed is unknown.
		want.AgentVersion, want.Versions = "", nil
	case want.Versions == nil:
		want.Versions = []string{} // it reports, and has none
	}
	if n.AgentVersion == want.AgentVersion && n.FeatureLevel == want.FeatureLevel &&
		(n.Versions == nil) == (want.Versions == nil) && slices.Equal(n.Versions, want.Versions) {
		return
	}
	c.factsMu.Lock()
	defer c.factsMu.Unlock()
	if c.factsBusy[hb.Node] || time.Since(c.factsFailed[hb.Node]) < factsRetry {
		return
	}
	c.factsBusy[hb.Node] = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), factsTimeout)
		defer cancel()
		var err error
		if hb.Node == c.cfg.NodeName {
			err = c.cl.Register(ctx)
		} else {
			err = st.Apply(ctx, raftstate.CmdRegisterNode, want)
		}
		c.factsMu.Lock()
		defer c.factsMu.Unlock()
		delete(c.factsBusy, hb.Node)
		if err != nil {
			c.factsFailed[hb.Node] = time.Now()
			c.log.Warn("cannot record a node's agent release and redis-server versions; retrying later", "node", hb.Node, "err", err)
			return
		}
		delete(c.factsFailed, hb.Node)
	}()
}
