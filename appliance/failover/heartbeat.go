package failover

import (
	"context"
	"log/slog"
	"reflect"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Reporter sends this node's reports to the leader several times a
// second, outside Raft: its hardware, its instances as observed, the
// events it has to tell. Every acknowledged report renews the lease; on
// the leader, every round of confirmation by a majority does. It is the
// failure detector's input and the fence's clock.
//
// Its parts, each in its own type: pacer (when to report), observer (when
// to observe which instances), and delta (a full report or a light "same"
// one).
type Reporter struct {
	// Node, PortMin and PortMax are this node's name and port range.
	Node             string
	PortMin, PortMax int
	// DataDir is measured for disk; ProcRoot is read for the rest.
	DataDir, ProcRoot string
	Local             Local
	Lease             *Lease
	Probes            *Probes
	Events            *health.EventQueue
	// Facts are the node's installed versions, agent release and feature
	// level (they ride on full reports).
	Facts func() (versions []string, agentVersion string, level uint32)
	// Deliver hands a report to the leader and returns the leader's
	// applied index: on the leader (local) it records it in place.
	Deliver func(ctx context.Context, hb health.Heartbeat, local bool) (uint64, error)
	Log     *slog.Logger
}

// Run reports until ctx ends; st returns the store, nil until this node
// has one.
func (r *Reporter) Run(ctx context.Context, st func() *raftstate.Store) {
	p := newPacer()
	defer p.stop()
	obs := newObserver(r.Node, r.Local)
	var d delta
	var hw sizing.Hardware
	var hwAt time.Time
	failing := false
	for {
		if o, ok := p.wait(ctx, st(), obs.pending); ok {
			obs.done(o)
		}
		if ctx.Err() != nil {
			return
		}
		s := st()
		if s == nil {
			continue
		}
		if s.IsLeader() {
			// Leading proves nothing (a cut-off leader stays leader for
			// the Raft leader lease): the leader's lease runs from the last
			// round a majority confirmed, renewed first thing so that
			// nothing below can hold it up.
			at, _ := s.Confirmed()
			r.Lease.Renew(at, s.AppliedIndex())
		}
		if time.Since(hwAt) > HardwareInterval {
			if h, err := sizing.Read(r.ProcRoot, r.DataDir); err == nil {
				hw, hwAt, d.changed = h, time.Now(), true
			}
		}
		obs.observe(ctx, s.View())
		// Whether each replica's primary answers this node changes between
		// observations and is what failover waits on: fresh every report.
		cur := r.Probes.Annotate(obs.reports)
		events := r.Events.Peek()
		hb := health.Heartbeat{Node: r.Node, Hardware: hw, PortMin: r.PortMin, PortMax: r.PortMax, Instances: cur, Events: events}
		hb.Versions, hb.AgentVersion, hb.FeatureLevel = r.Facts()
		leader := s.Leader()
		hb = d.next(hb, leader)
		// The lease runs from when the report left, not from when the
		// answer came back (see Lease.Renew).
		sent := time.Now()
		leading := s.IsLeader()
		index, err := r.Deliver(ctx, hb, leading)
		if err == nil && !leading {
			r.Lease.Renew(sent, index)
		}
		if err == nil {
			r.Events.Drop(len(events))
		}
		d.delivered(hb, leader, err)
		if err != nil && !failing {
			r.Log.Warn("cannot reach the leader with heartbeats", "err", err)
		} else if err == nil && failing {
			r.Log.Info("heartbeats reach the leader again")
		}
		failing = err != nil
	}
}

// pacer decides when to report: when this node is awake anyway. The leader
// reports (to itself) right after each round of confirmation, and renews
// its lease from that round. A follower reports right after the leader's
// heartbeat reaches it (every raftstate.BeatInterval), which also makes its
// report reach the leader while the leader is busy with the answers to that
// round. Each has a timer as a fallback for heartbeats or rounds that do
// not come: a leader cut off from the majority still observes, and sees
// itself step down; a follower that hears from no leader still reports.
type pacer struct {
	t    *time.Timer
	last time.Time
}

func newPacer() *pacer {
	return &pacer{t: time.NewTimer(HeartbeatInterval), last: time.Now()}
}

func (p *pacer) stop() { p.t.Stop() }

// wait returns when the next report is due, or with a slow observation
// that finished meanwhile (ok), which is then reported at once.
func (p *pacer) wait(ctx context.Context, s *raftstate.Store, pending <-chan observation) (observation, bool) {
	var beat, leadership, heard <-chan struct{}
	wait := HeartbeatInterval
	if s != nil {
		// Taken before asking IsLeader, so that a change in between still
		// wakes the wait below.
		ch := s.LeadershipChanged()
		if s.IsLeader() {
			leadership = ch
			_, beat = s.Confirmed()
			wait = LeaderFallback
		} else if heard = s.Heard(); heard != nil {
			wait = FollowerFallback
		}
	}
	p.t.Reset(max(time.Until(p.last.Add(wait)), 0))
	defer func() { p.last = time.Now() }()
	for {
		select {
		case <-ctx.Done():
			return observation{}, false
		case <-p.t.C:
			return observation{}, false
		case <-beat:
			return observation{}, false
		case <-leadership:
			return observation{}, false
		case <-heard:
			// The leader's appends arrive between its heartbeats: at most
			// one report per ReportGap.
			if time.Since(p.last) >= ReportGap {
				return observation{}, false
			}
		case o := <-pending:
			return o, true
		}
	}
}

// observation is what one round of observing found: of every local
// instance (all), or of those of databases with replicas.
type observation struct {
	all     bool
	reports []health.InstanceReport
}

// observer decides when to observe which local instances, runs each
// observation beside the reports (systemd in a daemon-reload, or an
// instance loading its data, can take seconds, and the lease must not wait
// for them), and keeps the latest reports.
type observer struct {
	node  string
	local Local
	// reports are the latest observations, to send.
	reports []health.InstanceReport
	// pending is the observation under way.
	pending <-chan observation
	// passed wakes a full observation after a reconcile pass (it may have
	// started or removed instances).
	passed       <-chan struct{}
	allDue       bool
	obsAt, allAt time.Time
	// ha caches the IDs of local instances of databases with replicas,
	// per state (a new pointer after every change).
	state *raftstate.State
	ha    map[string]bool
}

func newObserver(node string, local Local) *observer {
	return &observer{node: node, local: local, passed: local.Passed(), allDue: true}
}

// done takes a finished observation.
func (o *observer) done(obs observation) {
	o.pending = nil
	if obs.all {
		o.reports = obs.reports
	} else {
		o.reports = mergeReports(o.reports, obs.reports)
	}
}

// observe starts an observation if one is due, and waits for it up to
// ObserveWait: most take a few milliseconds, so a change (a failed unit)
// goes out in this report; a slow one goes out with a later report.
func (o *observer) observe(ctx context.Context, st *raftstate.State) {
	select {
	case <-o.passed:
		o.allDue, o.passed = true, o.local.Passed()
	default:
	}
	if st != o.state {
		o.state, o.ha = st, map[string]bool{}
		for _, pi := range st.InstancesOn(o.node) {
			if instance.HA(pi.Database) {
				o.ha[pi.Instance.ID] = true
			}
		}
	}
	haEvery := ObserveHAInterval
	if settling(o.reports, o.ha) {
		haEvery = HeartbeatInterval
	}
	o.allDue = o.allDue || time.Since(o.allAt) >= ObserveAllInterval
	if o.pending != nil || (!o.allDue && time.Since(o.obsAt) < haEvery) {
		return
	}
	all := o.allDue
	o.pending = o.start(ctx, st, all)
	if all {
		o.allAt, o.allDue = time.Now(), false
	}
	o.obsAt = time.Now()
	wait := time.NewTimer(ObserveWait)
	defer wait.Stop()
	select {
	case obs := <-o.pending:
		o.done(obs)
	case <-wait.C:
	}
}

// start observes the local instances of st (every one if all, else those
// of databases with replicas) in a goroutine of its own.
func (o *observer) start(ctx context.Context, st *raftstate.State, all bool) <-chan observation {
	ch := make(chan observation, 1)
	go func() {
		octx, cancel := context.WithTimeout(ctx, ObserveTimeout)
		defer cancel()
		ch <- observation{all: all, reports: o.run(octx, st, all)}
	}()
	return ch
}

// run reports the local instances (of databases with replicas unless all)
// and, for all, the units of deleted instances still being removed.
func (o *observer) run(ctx context.Context, st *raftstate.State, all bool) []health.InstanceReport {
	var placed []raftstate.PlacedInstance
	for _, pi := range st.InstancesOn(o.node) {
		if all || instance.HA(pi.Database) {
			placed = append(placed, pi)
		}
	}
	if len(placed) == 0 && !all {
		return nil
	}
	out := o.local.ObserveAll(ctx, placed)
	if !all {
		return out
	}
	wanted := map[string]bool{}
	for _, pi := range placed {
		wanted[pi.Instance.ID] = true
	}
	if present, err := o.local.Present(ctx); err == nil {
		for _, id := range present {
			if !wanted[id] {
				out = append(out, health.InstanceReport{ID: id, Installed: true, State: health.StateRemoving})
			}
		}
	}
	return out
}

// settling says whether an instance of a database with replicas was last
// seen on its way up (or its link down or syncing): the leader fails over
// only a primary it has seen running, and promotes only a replica seen
// synced, so those are observed at every report until they settle.
func settling(obs []health.InstanceReport, ha map[string]bool) bool {
	for _, r := range obs {
		if ha[r.ID] && (r.State == "starting" || (r.Link != nil && (!r.Link.Up || r.Link.SyncInProgress))) {
			return true
		}
	}
	return false
}

// mergeReports returns old with the reports in fresh put in place of those
// with the same ID (and any new ones added), keeping old's order.
func mergeReports(old, fresh []health.InstanceReport) []health.InstanceReport {
	byID := make(map[string]health.InstanceReport, len(fresh))
	for _, r := range fresh {
		byID[r.ID] = r
	}
	out := make([]health.InstanceReport, 0, len(old)+len(fresh))
	for _, r := range old {
		if f, ok := byID[r.ID]; ok {
			r = f
			delete(byID, r.ID)
		}
		out = append(out, r)
	}
	for _, r := range fresh {
		if _, ok := byID[r.ID]; ok {
			out = append(out, r)
		}
	}
	return out
}

// delta decides between a full report and a light "same" one: the leader
// reads nothing but the name from those, and sending every instance's
// report again made them most of its CPU.
type delta struct {
	changed bool // something in the report changed since the last full one
	sentObs []health.InstanceReport
	sentAt  time.Time
	sentTo  string // the leader the last full report reached ("" to resend)
}

// next returns hb, or the "same" report when nothing changed since the
// last full report leader received (within FullReportEvery).
func (d *delta) next(hb health.Heartbeat, leader string) health.Heartbeat {
	if !reflect.DeepEqual(hb.Instances, d.sentObs) {
		d.changed = true
	}
	if !d.changed && len(hb.Events) == 0 && leader == d.sentTo && time.Since(d.sentAt) < FullReportEvery {
		return health.Heartbeat{Node: hb.Node, Same: true}
	}
	return hb
}

// delivered records how a report went: after a failure the next report
// is a full one, whatever went wrong.
func (d *delta) delivered(hb health.Heartbeat, leader string, err error) {
	switch {
	case err != nil:
		d.sentTo = ""
	case !hb.Same:
		d.sentAt, d.sentTo, d.sentObs, d.changed = time.Now(), leader, hb.Instances, false
	}
}
