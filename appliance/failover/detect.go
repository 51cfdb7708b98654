package failover

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Status says, per database, why its failed primary is not being replaced
// (no replica qualifies, cooldown, replicas still reach it): db show
// displays it. The leader's detector writes it; it is empty elsewhere.
type Status struct {
	mu  sync.Mutex
	why map[string]string
}

// NewStatus returns an empty status.
func NewStatus() *Status { return &Status{why: map[string]string{}} }

// Why is why db's primary is not being replaced, or "".
func (s *Status) Why(db string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why[db]
}

func (s *Status) set(db, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if why == "" {
		delete(s.why, db)
	} else {
		s.why[db] = why
	}
}

func (s *Status) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.why)
}

// Detect runs the leader's failure detector until ctx ends: run it for as
// long as this node leads (cluster.Manager.WhileLeader), with a ctx that
// ends when leadership is lost. Its clocks are monotonic and its own: a new
// leader starts afresh, counting silence from the moment it took over
// (from earlier for the previous leader's node, see previousSilentSince),
// and finishes whatever the old one had decided (the state in Raft is the
// only thing that carries over).
func Detect(ctx context.Context, c Cluster, status *Status) {
	defer status.clear()
	d := &detector{
		c: c, status: status, leaderSince: time.Now(),
		silentSince: map[string]time.Time{}, down: map[string]time.Time{}, lost: map[string]bool{},
		ran: map[string]bool{}, refusal: map[string]string{},
	}
	d.seedPrevious(c.Store.PreviousLeader(), c.Store.LeaderContact())
	t := time.NewTimer(DetectTick)
	defer t.Stop()
	for {
		wait := DetectTick
		var beat <-chan struct{}
		if !d.tick(ctx) {
			// Nothing to fail over, only nodes to report lost or back:
			// look right after each round of leadership confirmation,
			// when the leader is awake anyway.
			wait = DetectIdleTick
			_, beat = c.Store.Confirmed()
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-beat:
		}
	}
}

// detector is the leader's state of detection during one term.
type detector struct {
	c      Cluster
	status *Status

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
	// refusal: database → the kind of the last refusal recorded as an
	// event, so one refusal is one event, however its figures change.
	refusal map[string]string
}

// seedPrevious lets a new leader count the previous leader's node silent
// from before the election (see previousSilentSince), so that losing the
// host that ran both the Raft leader and a primary costs an election plus
// little more, not the election plus the detection window from scratch.
func (d *detector) seedPrevious(node string, contact time.Time) {
	if node == "" || node == d.c.Node || contact.IsZero() {
		return
	}
	if since, ok := previousSilentSince(d.leaderSince, contact, d.c.Settings); ok {
		d.silentSince[node] = since
	}
}

// previousSilentSince is from when a leader that took over at leaderSince,
// having last heard from its predecessor at contact, may count the
// predecessor's node silent; ok is false when that is not before
// leaderSince.
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
// lease window after it and fenced within FenceSlack. Silence counted from
// the seed passes the detection window only after that.
//
// The one exception is a handover (raftstate.Store.TransferLeadership):
// voters answer it at once, so the old leader may have been confirmed
// until the moment we took over. We can tell, because we heard from it
// within a heartbeat timeout of taking over, which an election proper
// rules out (we too waited that long before standing).
func previousSilentSince(leaderSince, contact time.Time, s Settings) (time.Time, bool) {
	// The latest its last confirmed round can have begun.
	lastWord := leaderSince.Add(-raftstate.HeartbeatTimeout)
	if contact.After(lastWord) {
		lastWord = leaderSince // a handover
	}
	since := lastWord.Add(s.Lease + FenceSlack - s.Detection)
	return since, since.Before(leaderSince)
}

// silence is how long node has not been heard from, counted from when
// this node became leader at most (earlier for a seeded node).
func (d *detector) silence(node string) time.Duration {
	if node == d.c.Node {
		return 0
	}
	since := d.leaderSince
	if s, ok := d.silentSince[node]; ok {
		since = s
	}
	if e, ok := d.c.Live.Node(node); ok && e.Received.After(since) {
		since = e.Received
	}
	return time.Since(since)
}

// tick looks once; it reports whether any database has replicas
// (something to fail over).
func (d *detector) tick(ctx context.Context) bool {
	window := d.c.Settings.Detection
	st := d.c.Store.View()
	for _, name := range st.NodeNames() {
		lost := d.silence(name) > window
		if lost != d.lost[name] {
			d.lost[name] = lost
			if lost {
				d.c.Event("node-lost", "", name, fmt.Sprintf("node %s silent for more than %s", name, window))
			} else {
				d.c.Event("node-back", "", name, fmt.Sprintf("node %s reports again", name))
			}
		}
	}
	ha := false
	for _, name := range st.DatabaseNames() {
		db := st.Databases[name]
		if !instance.HA(db) {
			continue
		}
		ha = true
		d.check(ctx, st, db)
	}
	for name := range d.down {
		if _, ok := st.Databases[name]; !ok {
			delete(d.down, name)
			d.status.set(name, "")
		}
	}
	return ha
}

// primaryFailed says whether db's primary has failed as far as the leader
// can tell, and why. immediate says the failure needs no window of its
// own: its node's silence is one already, and a failed unit is never
// restarted in place; a redis-server that does not answer gets the
// detection window here.
func (d *detector) primaryFailed(p raftstate.Instance) (failed bool, reason string, immediate bool) {
	r, fresh := d.c.Live.Fresh(p.Node, p.ID)
	if fresh && r.State == api.StateRunning {
		d.ran[p.ID] = true
	}
	if s := d.silence(p.Node); s > d.c.Settings.Detection {
		return true, fmt.Sprintf("node %s silent for %s", p.Node, s.Round(time.Millisecond)), true
	}
	if !fresh || !d.ran[p.ID] {
		return false, "", false
	}
	switch r.State {
	case api.StateFailed:
		// Never restarted in place: no window to wait.
		return true, fmt.Sprintf("its redis-server on %s failed and is not restarted in place", p.Node), true
	case api.StateStarting:
		if strings.HasPrefix(r.Error, instance.DoesNotAnswer) {
			return true, fmt.Sprintf("its redis-server on %s does not answer", p.Node), false
		}
	}
	return false, "", false
}

// check fails db over if its primary has failed for the detection window,
// every replica on a live node confirms it cannot reach the primary, the
// cooldown has passed and a replica qualifies.
func (d *detector) check(ctx context.Context, st *raftstate.State, db *raftstate.Database) {
	s := d.c.Settings
	p, ok := db.Primary()
	if !ok {
		return
	}
	failed, reason, immediate := d.primaryFailed(p)
	if !failed {
		delete(d.down, db.Name)
		delete(d.refusal, db.Name)
		d.status.set(db.Name, "")
		return
	}
	first, ok := d.down[db.Name]
	if !ok {
		first = time.Now()
		d.down[db.Name] = first
	}
	if !immediate && time.Since(first) < s.Detection {
		return
	}
	var live []raftstate.Instance
	var unconfirmed []string
	for _, in := range db.Instances {
		if in.Role != raftstate.RoleReplica || d.silence(in.Node) > s.Detection {
			continue
		}
		r, ok := d.c.Live.Fresh(in.Node, in.ID)
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
		if time.Since(first) > UnconfirmedEvent*s.Detection {
			d.refuse(db, "unconfirmed", why)
		} else {
			d.status.set(db.Name, why)
		}
		return
	}
	if since := d.c.Now().Sub(db.FailedOverAt); !db.FailedOverAt.IsZero() && since < s.Cooldown {
		d.refuse(db, "cooldown", fmt.Sprintf("primary failed (%s) but the last automatic failover was %s ago, within the %s cooldown; not failing over", reason, since.Round(time.Second), s.Cooldown))
		return
	}
	target, why := d.candidate(ctx, st, db, p, live)
	if target == nil {
		d.refuse(db, "no-candidate", fmt.Sprintf("primary failed (%s) and no replica qualifies: %s", reason, why))
		return
	}
	d.c.Event("detected", db.Name, p.Node, fmt.Sprintf("primary %s of %s failed: %s; replicas confirm", p.ID, db.Name, reason))
	err := d.c.Store.Apply(ctx, raftstate.CmdSetPrimary, raftstate.SetPrimary{
		Name: db.Name, Instance: target.ID, Epoch: db.Epoch, Reason: "failover: " + reason, At: d.c.Now().UTC(), Automatic: true,
	})
	if err != nil {
		d.c.Log.Warn("failover not committed; retrying", "database", db.Name, "err", err)
		return
	}
	delete(d.down, db.Name)
	delete(d.refusal, db.Name)
	d.status.set(db.Name, "")
	d.c.Event("promoted", db.Name, target.Node, fmt.Sprintf("%s on %s is the primary of %s (epoch %d) after %s", target.ID, target.Node, db.Name, db.Epoch+1, reason))
	d.c.Local.Trigger()
}

// refuse records why db is not failed over: the reason db show displays,
// kept current, and an event when the kind of refusal changes (not every
// tick, though the figures in the reason move).
func (d *detector) refuse(db *raftstate.Database, kind, why string) {
	d.status.set(db.Name, why)
	if d.refusal[db.Name] != kind {
		d.refusal[db.Name] = kind
		d.c.Event("failover-refused", db.Name, "", why)
	}
}

// candidate picks, among the replicas on live nodes, the one with the
// highest offset that qualifies (Settings.disqualified) against the
// primary's last reported offset, on a node that has the database's
// version.
func (d *detector) candidate(ctx context.Context, st *raftstate.State, db *raftstate.Database, p raftstate.Instance, live []raftstate.Instance) (*raftstate.Instance, string) {
	var primaryOffset int64 = -1
	if r, _, ok := d.c.Live.Instance(p.Node, p.ID); ok {
		primaryOffset = r.ReplOffset
	}
	type cand struct {
		in     raftstate.Instance
		offset int64
	}
	var ok []cand
	var why []string
	for _, in := range live {
		r, _ := d.c.Live.Fresh(in.Node, in.ID)
		if problem := d.c.Settings.disqualified(fromReport(r), primaryOffset, false); problem != "" {
			why = append(why, fmt.Sprintf("the replica on %s %s", in.Node, problem))
			continue
		}
		if n := st.Nodes[in.Node]; !n.HasVersion(db.Version) {
			why = append(why, fmt.Sprintf("the replica on %s cannot run %s (the node reports %s installed)", in.Node, db.Version, strings.Join(n.Versions, ", ")))
			continue
		}
		ok = append(ok, cand{in, d.offsetNow(ctx, st, db, in, r.ReplOffset)})
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

// offsetNow asks a replica for its offset directly: the reports' figures
// are up to a few seconds old, and comparing two replicas seen at
// different moments could prefer the one that is behind.
func (d *detector) offsetNow(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance, reported int64) int64 {
	i, err := d.c.info(ctx, st, db, in, instance.NameSwitchover, OffsetTimeout)
	if err != nil {
		return reported
	}
	return i.Offset
}
