package control

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// monitorTick is how often the leader looks for failed primaries.
const monitorTick = 100 * time.Millisecond

// monitorIdleTick bounds how long it waits while no database has a
// replica. There is nothing to fail over then, only nodes to report lost
// or back: it looks right after each round of leadership confirmation
// (raftstate.BeatInterval), when the leader is awake anyway, rather than
// on a timer of its own (a tick ten times a second was a tenth of an idle
// leader's wake-ups). A database created with replicas is seen within a
// round.
const monitorIdleTick = 500 * time.Millisecond

// monitor is the leader's failure detector. All its clocks are monotonic
// and its own: a new leader starts afresh, counting silence from the
// moment it took over (from earlier for the previous leader's node, see
// seedPrevious), and finishes whatever the old one had decided (the state
// in Raft is the only thing that carries over).
type monitor struct {
	c *Controller

	leaderSince time.Time
	// silentSince: node → when its silence began as far as this leader
	// can prove, when that is before leaderSince.
	silentSince map[string]time.Time
	// down: database → when its primary was first seen failed.
	down map[string]time.Time
	// lost: node → whether it is currently counted lost (for events).
	lost map[string]bool
	// ran: primary instance ID → seen running by this leader. A primary
	// never seen running is being created or started, not failed.
	ran map[string]bool

	mu sync.Mutex
	// why: database → why it is not being failed over, shown by db show.
	why map[string]string
	// refusal: database → the kind of the last refusal recorded as an
	// event, so one refusal is one event, however its figures change.
	refusal map[string]string
}

func newMonitor(c *Controller) *monitor {
	return &monitor{c: c, silentSince: map[string]time.Time{}, down: map[string]time.Time{}, lost: map[string]bool{}, ran: map[string]bool{}, why: map[string]string{}, refusal: map[string]string{}}
}

// fenceSlack is what an agent needs, past its lease, to have fenced its
// primaries: its fencer wakes when the lease runs out (or within 100 ms,
// its tick while fenced or retrying), and setting the fence and the
// network round trips take a little more.
const fenceSlack = 250 * time.Millisecond

// seedPrevious lets a new leader count the previous leader's node silent
// from before the election, so that losing the host that ran both the
// Raft leader and a primary costs an election plus little more, not the
// election plus the detection window counted from scratch.
//
// How early is safe: the old leader's agent renews its lease only from
// rounds of confirmation a majority answered (raftstate.Store.Confirmed),
// and any such majority shares a node with the majority that elected us.
// That node heard the old leader's last confirmed round after the round
// began, and had then heard nothing from it for raftstate.HeartbeatTimeout
// before it voted for us: hashicorp/raft refuses votes while it knows a
// leader, and a node that just started holds its vote back as long
// (raftstate.holdVotes). So that round began no later than a heartbeat
// timeout before we took over; the old leader's agent lost its lease one
// lease window after it and fenced within fenceSlack. Silence counted from
// the seed passes the detection window only after that.
//
// The one exception is a handover (raftstate.Store.TransferLeadership):
// voters answer it at once, so the old leader may have been confirmed
// until the moment we took over. We can tell, because we heard from it
// within a heartbeat timeout of taking over, which an election proper
// rules out (we too waited that long before standing).
func (m *monitor) seedPrevious(node string, contact time.Time) {
	if node == "" || node == m.c.cfg.NodeName || contact.IsZero() {
		return
	}
	if since, ok := previousSilentSince(m.leaderSince, contact, m.c.cfg.Failover); ok {
		m.silentSince[node] = since
	}
}

// previousSilentSince is seedPrevious's figure: from when a leader that
// took over at leaderSince, having last heard from its predecessor at
// contact, may count the predecessor's node silent; ok is false when that
// is not before leaderSince.
func previousSilentSince(leaderSince, contact time.Time, f config.Failover) (time.Time, bool) {
	// The latest its last confirmed round can have begun.
	lastWord := leaderSince.Add(-raftstate.HeartbeatTimeout)
	if contact.After(lastWord) {
		lastWord = leaderSince // a handover
	}
	since := lastWord.Add(f.Lease + fenceSlack - f.Detection)
	return since, since.Before(leaderSince)
}

// RunFailover runs the failure detector until ctx ends; it acts only while
// this node is the leader.
func (c *Controller) RunFailover(ctx context.Context) {
	t := time.NewTimer(monitorTick)
	defer t.Stop()
	var m *monitor
	for {
		st := c.store()
		var changed <-chan struct{}
		if st != nil {
			// Taken before asking IsLeader, so that a change in between
			// still wakes the wait below.
			changed = st.LeadershipChanged()
		}
		if st == nil || !st.IsLeader() {
			m = nil
			c.setMonitor(nil)
			// A follower has nothing to watch: it waits for leadership
			// instead of ticking; a node with no store yet looks again
			// within followerRecheck.
			wait := followerRecheck
			if st != nil {
				wait = followerSafetyNet
			}
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
			continue
		}
		if m == nil {
			m = newMonitor(c)
			m.leaderSince = time.Now()
			m.seedPrevious(st.PreviousLeader(), st.LeaderContact())
			c.setMonitor(m)
		}
		wait := monitorTick
		var beat <-chan struct{}
		if !m.tick(ctx) {
			wait = monitorIdleTick
			_, beat = st.Confirmed()
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-beat:
		case <-changed:
		}
	}
}

// followerRecheck bounds how long the failure detector of a node with no
// store yet waits before it looks again.
const followerRecheck = time.Second

// followerSafetyNet bounds how long a follower's failure detector waits
// for a leadership change (which wakes it at once) before it looks again.
const followerSafetyNet = 10 * time.Second

func (c *Controller) setMonitor(m *monitor) {
	c.monMu.Lock()
	c.mon = m
	c.monMu.Unlock()
}

// failoverStatus says why a database's failed primary is not being
// replaced, if it is not; "" otherwise.
func (c *Controller) failoverStatus(name string) string {
	c.monMu.Lock()
	m := c.mon
	c.monMu.Unlock()
	if m == nil {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.why[name]
}

func (m *monitor) setWhy(db, why string) (changed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.why[db] == why {
		return false
	}
	if why == "" {
		delete(m.why, db)
	} else {
		m.why[db] = why
	}
	return true
}

// silence is how long node has not been heard from, counted from when
// this node became leader at most (earlier for a seeded node).
func (m *monitor) silence(node string) time.Duration {
	if node == m.c.cfg.NodeName {
		return 0
	}
	since := m.leaderSince
	if s, ok := m.silentSince[node]; ok {
		since = s
	}
	if e, ok := m.c.live.Node(node); ok && e.Received.After(since) {
		since = e.Received
	}
	return time.Since(since)
}

func (m *monitor) report(in raftstate.Instance) (health.InstanceReport, bool) {
	r, age, ok := m.c.live.Instance(in.Node, in.ID)
	return r, ok && age <= staleAfter
}

// tick reports whether any database has replicas (something to fail
// over).
func (m *monitor) tick(ctx context.Context) bool {
	cfg := m.c.cfg.Failover
	st := m.c.store().View()
	for _, name := range st.NodeNames() {
		lost := m.silence(name) > cfg.Detection
		if lost != m.lost[name] {
			m.lost[name] = lost
			if lost {
				m.c.event("node-lost", "", name, fmt.Sprintf("node %s silent for more than %s", name, cfg.Detection))
			} else {
				m.c.event("node-back", "", name, fmt.Sprintf("node %s reports again", name))
			}
		}
	}
	ha := false
	for _, name := range st.DatabaseNames() {
		db := st.Databases[name]
		if len(db.Instances) < 2 {
			continue
		}
		ha = true
		m.check(ctx, st, db)
	}
	for name := range m.down {
		if _, ok := st.Databases[name]; !ok {
			delete(m.down, name)
			m.setWhy(name, "")
		}
	}
	return ha
}

// primaryFailed says whether db's primary has failed as far as the leader
// can tell, and why.
func (m *monitor) primaryFailed(db *raftstate.Database, p raftstate.Instance) (bool, string) {
	cfg := m.c.cfg.Failover
	r, fresh := m.report(p)
	if fresh && r.State == api.StateRunning {
		m.ran[p.ID] = true
	}
	if s := m.silence(p.Node); s > cfg.Detection {
		return true, fmt.Sprintf("node %s silent for %s", p.Node, s.Round(time.Millisecond))
	}
	if !fresh || !m.ran[p.ID] {
		return false, ""
	}
	switch r.State {
	case "failed":
		return true, fmt.Sprintf("its redis-server on %s failed and is not restarted in place", p.Node)
	case "starting":
		if strings.Contains(r.Error, "does not answer") {
			return true, fmt.Sprintf("its redis-server on %s does not answer", p.Node)
		}
	}
	return false, ""
}

// check fails db over if its primary has failed for the detection window,
// every replica on a live node confirms it cannot reach the primary, the
// cooldown has passed and a replica qualifies.
func (m *monitor) check(ctx context.Context, st *raftstate.State, db *raftstate.Database) {
	cfg := m.c.cfg.Failover
	p, ok := db.Primary()
	if !ok {
		return
	}
	failed, reason := m.primaryFailed(db, p)
	if !failed {
		delete(m.down, db.Name)
		delete(m.refusal, db.Name)
		m.setWhy(db.Name, "")
		return
	}
	first, ok := m.down[db.Name]
	if !ok {
		m.down[db.Name] = time.Now()
		first = time.Now()
	}
	// Node silence is already a window; other failures get one here.
	if !strings.Contains(reason, "silent") && time.Since(first) < cfg.Detection && !strings.Contains(reason, "not restarted") {
		return
	}
	var live []raftstate.Instance
	var unconfirmed []string
	for _, in := range db.Instances {
		if in.Role != raftstate.RoleReplica || m.silence(in.Node) > cfg.Detection {
			continue
		}
		r, ok := m.report(in)
		if !ok {
			continue
		}
		live = append(live, in)
		if r.Link != nil && r.Link.Up && r.Link.PrimaryReachable {
			unconfirmed = append(unconfirmed, in.Node)
		}
	}
	if len(unconfirmed) > 0 {
		// Often only a report not yet updated; an event only if it lasts.
		why := fmt.Sprintf("primary seems failed (%s) but the replicas on %s still reach it; not failing over", reason, strings.Join(unconfirmed, ", "))
		if time.Since(first) > 2*cfg.Detection {
			m.refuse(db, "unconfirmed", why)
		} else {
			m.setWhy(db.Name, why)
		}
		return
	}
	if since := m.c.Now().Sub(db.FailedOverAt); !db.FailedOverAt.IsZero() && since < cfg.Cooldown {
		m.refuse(db, "cooldown", fmt.Sprintf("primary failed (%s) but the last automatic failover was %s ago, within the %s cooldown; not failing over", reason, since.Round(time.Second), cfg.Cooldown))
		return
	}
	target, why := m.candidate(ctx, st, db, p, live)
	if target == nil {
		m.refuse(db, "no-candidate", fmt.Sprintf("primary failed (%s) and no replica qualifies: %s", reason, why))
		return
	}
	m.c.event("detected", db.Name, p.Node, fmt.Sprintf("primary %s of %s failed: %s; replicas confirm", p.ID, db.Name, reason))
	err := m.c.store().Apply(ctx, raftstate.CmdSetPrimary, raftstate.SetPrimary{
		Name: db.Name, Instance: target.ID, Epoch: db.Epoch, Reason: "failover: " + reason, At: m.c.Now().UTC(), Automatic: true,
	})
	if err != nil {
		m.c.log.Warn("failover not committed; retrying", "database", db.Name, "err", err)
		return
	}
	delete(m.down, db.Name)
	delete(m.refusal, db.Name)
	m.setWhy(db.Name, "")
	m.c.event("promoted", db.Name, target.Node, fmt.Sprintf("%s on %s is the primary of %s (epoch %d) after %s", target.ID, target.Node, db.Name, db.Epoch+1, reason))
	m.c.reconciler().Trigger()
}

// refuse records why db is not failed over: the reason db show displays,
// kept current, and an event when the kind of refusal changes (not every
// tick, though the figures in the reason move).
func (m *monitor) refuse(db *raftstate.Database, kind, why string) {
	m.setWhy(db.Name, why)
	if m.refusal[db.Name] != kind {
		m.refusal[db.Name] = kind
		m.c.event("failover-refused", db.Name, "", why)
	}
}

// offsetNow asks a replica for its offset directly: the heartbeats'
// figures are up to a few seconds old, and comparing two replicas seen at
// different moments could prefer the one that is behind.
func (m *monitor) offsetNow(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance, reported int64) int64 {
	c, err := m.c.dial(st, db, in)
	if err != nil {
		return reported
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	info, err := replInfo(ctx, c)
	if err != nil {
		return reported
	}
	return offsetOf(info)
}

// candidate picks the running replica with the highest offset within
// max_lag of the primary's last reported offset.
func (m *monitor) candidate(ctx context.Context, st *raftstate.State, db *raftstate.Database, p raftstate.Instance, live []raftstate.Instance) (*raftstate.Instance, string) {
	var primaryOffset int64 = -1
	if r, _, ok := m.c.live.Instance(p.Node, p.ID); ok {
		primaryOffset = r.ReplOffset
	}
	type cand struct {
		in     raftstate.Instance
		offset int64
	}
	var ok []cand
	var why []string
	for _, in := range live {
		r, _ := m.report(in)
		lag := primaryOffset - r.ReplOffset
		switch {
		case r.State != api.StateRunning:
			why = append(why, fmt.Sprintf("the replica on %s is %s", in.Node, r.State))
		case r.Link == nil || !r.Link.Synced:
			why = append(why, fmt.Sprintf("the replica on %s never completed a sync with this primary", in.Node))
		case r.Link.SyncInProgress:
			why = append(why, fmt.Sprintf("the replica on %s was still syncing", in.Node))
		case primaryOffset >= 0 && lag > m.c.cfg.Failover.MaxLag:
			why = append(why, fmt.Sprintf("the replica on %s is %d bytes behind (max_lag %d)", in.Node, lag, m.c.cfg.Failover.MaxLag))
		default:
			ok = append(ok, cand{in, m.offsetNow(ctx, st, db, in, r.ReplOffset)})
		}
	}
	if len(live) == 0 {
		why = append(why, "no replica is on a node that reports")
	}
	if len(ok) == 0 {
		return nil, strings.Join(why, "; ")
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].offset > ok[j].offset })
	return &ok[0].in, ""
}
