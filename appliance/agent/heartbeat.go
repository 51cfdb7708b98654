package agent

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// heartbeatInterval is how often an agent reports to the leader: several
// times a second, so the leader's view is never more than a moment old,
// and often enough that the default lease (700 ms) survives two reports
// lost or late in a row, and detection (1000 ms) needs five.
const heartbeatInterval = 200 * time.Millisecond

// leaderFallback is how long the leader's heartbeat loop waits for a round
// of confirmation (raftstate.BeatInterval) before it runs anyway.
const leaderFallback = 2 * raftstate.BeatInterval

// followerFallback is how long a follower waits for the leader's
// heartbeat before it reports anyway: a little longer than the leader's
// period, so that the heartbeat, not the timer, sets the pace, and short
// enough that three reports still fit in the default lease.
const followerFallback = heartbeatInterval + 20*time.Millisecond

// reportGap is the least time between two reports a heartbeat from the
// leader starts.
const reportGap = 3 * heartbeatInterval / 4

// hardwareInterval is how often the hardware facts are re-read.
const hardwareInterval = 5 * time.Second

// observeInterval is how often the instances of databases with replicas
// are observed (unit state over D-Bus, INFO over TCP): what failover reads.
// Heartbeats in between repeat the last observation: observing every
// instance five times a second costs more than it tells.
const observeInterval = 2 * time.Second

// observeAllInterval is how often every instance is observed. A database
// without replicas has nothing to fail over to, so its figures (memory,
// ops/s, clients) are only shown; a unit that fails or restarts is
// observed at once anyway (the reconciler's pass after the change).
// Observing 33 such instances every 2 s was a quarter of an idle agent's
// CPU.
const observeAllInterval = 10 * time.Second

// fullEvery bounds how long heartbeats may say "same" before a full report
// goes out anyway.
const fullEvery = 5 * time.Second

// heartbeats reports this node's observations to the leader until ctx ends.
// The leader records its own report directly.
func heartbeats(ctx context.Context, cfg *config.Config, cl *cluster.Manager, rec *reconcile.Reconciler, live *health.View, ls *lease, q *eventQueue, probes *primaryProbes, log *slog.Logger) {
	t := time.NewTimer(heartbeatInterval)
	defer t.Stop()
	last := time.Now()
	var hw sizing.Hardware
	var hwAt, obsAt, allAt time.Time
	var obs, sentObs []health.InstanceReport
	synced := map[string]string{} // replica ID → primary host:port it has synced with
	// What the leader last received in full, and from whom it was sent.
	var sentAt time.Time
	var sentTo string
	changed := true
	failing := false
	// A reconciler pass may have started or removed instances: observe
	// right after it rather than up to observeInterval later.
	passed := rec.Passed()
	// Observing runs beside this loop (see startObserve): pending is the
	// observation under way, allDue says a full one is wanted.
	var pending <-chan observation
	allDue := true
	local := localInstances{node: cfg.NodeName}
	var ha map[string]bool // IDs of local instances of databases with replicas
	for {
		// Report when this node is awake anyway. The leader reports (to
		// itself) right after each round of confirmation, and renews its
		// lease from that round. A follower reports right after the
		// leader's heartbeat reaches it (every raftstate.BeatInterval),
		// which also makes its report reach the leader while the leader
		// is busy with the answers to that round. Each has a timer as a
		// fallback for heartbeats or rounds that do not come: a leader
		// cut off from the majority still observes, and sees itself step
		// down; a follower that hears from no leader still reports.
		var beat, leadership, heard <-chan struct{}
		wait := heartbeatInterval
		if st := cl.Store(); st != nil {
			// Taken before asking IsLeader, so that a change in between
			// still wakes the wait below.
			ch := st.LeadershipChanged()
			if st.IsLeader() {
				leadership = ch
				_, beat = st.Confirmed()
				wait = leaderFallback
			} else if heard = st.Heard(); heard != nil {
				wait = followerFallback
			}
		}
		t.Reset(max(time.Until(last.Add(wait)), 0))
	waiting:
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				break waiting
			case <-beat:
				break waiting
			case <-leadership:
				break waiting
			case <-heard:
				// The leader's appends arrive between its heartbeats:
				// at most one report per reportGap.
				if time.Since(last) >= reportGap {
					break waiting
				}
			case o := <-pending:
				// A slow observation finished: report it now.
				obs, pending = o.merge(obs), nil
				break waiting
			}
		}
		last = time.Now()
		st := cl.Store()
		if st == nil {
			continue
		}
		if st.IsLeader() {
			// Leading proves nothing (a cut-off leader stays leader for
			// the Raft leader lease): the leader's lease runs from the
			// last round a majority confirmed, renewed first thing so
			// that nothing below can hold it up.
			at, _ := st.Confirmed()
			ls.renew(at, st.AppliedIndex())
		}
		if time.Since(hwAt) > hardwareInterval {
			if h, err := sizing.Read("/proc", cfg.DataDir); err == nil {
				hw, hwAt, changed = h, time.Now(), true
			}
		}
		select {
		case <-passed:
			allDue, passed = true, rec.Passed()
		default:
		}
		if placed, fresh := local.of(st.View()); fresh {
			ha = map[string]bool{}
			for _, pi := range placed {
				if inHADatabase(pi) {
					ha[pi.Instance.ID] = true
				}
			}
		}
		haEvery := observeInterval
		if settling(obs, ha) {
			haEvery = heartbeatInterval
		}
		allDue = allDue || time.Since(allAt) >= observeAllInterval
		if pending == nil && (allDue || time.Since(obsAt) >= haEvery) {
			pending = startObserve(ctx, cfg, st.View(), rec, allDue)
			if allDue {
				allAt, allDue = time.Now(), false
			}
			obsAt = time.Now()
			// Most observations take a few milliseconds: this report
			// waits that long for one, so that a change (a failed unit)
			// goes out in it, but no longer than observeWait. One that
			// systemd or a redis-server holds up (a daemon-reload, an
			// instance loading) goes out when it is done, while reports,
			// and so the lease, go on with the last observation.
			wait := time.NewTimer(observeWait)
			select {
			case o := <-pending:
				obs, pending = o.merge(obs), nil
			case <-wait.C:
			}
			wait.Stop()
		}
		// Whether each replica's primary answers this node changes between
		// observations and is what failover waits on: fresh every beat.
		cur := withProbes(obs, probes, synced)
		if !reflect.DeepEqual(cur, sentObs) {
			changed = true
		}
		events := q.peek()
		hb := health.Heartbeat{Node: cfg.NodeName, Hardware: hw, PortMin: cfg.PortMin, PortMax: cfg.PortMax, Instances: cur, Events: events}
		leader := st.Leader()
		if !changed && len(events) == 0 && leader == sentTo && time.Since(sentAt) < fullEvery {
			// The leader reads nothing but the name from these: sending
			// every instance's report again made them most of its CPU.
			hb = health.Heartbeat{Node: cfg.NodeName, Same: true}
		}
		// The lease runs from when the report left, not from when the
		// answer came back: the leader counts this node's silence from
		// when the report arrived, and a slow answer must not stretch the
		// lease past the moment the leader may fail this node over.
		sent := time.Now()
		var err error
		var ack api.HeartbeatAck
		leading := st.IsLeader()
		if leading {
			err = live.Record(hb)
			if err == nil && len(events) > 0 {
				err = st.Apply(ctx, raftstate.CmdRecordEvents, raftstate.RecordEvents{Events: events})
			}
		} else {
			var lc *api.Client
			lc, _, err = cl.LeaderClient()
			if err == nil {
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				ack, err = lc.Heartbeat(sctx, hb)
				cancel()
			}
		}
		if err != nil {
			// Whatever went wrong, the next report is a full one.
			sentTo = ""
		} else {
			if !leading {
				ls.renew(sent, ack.AppliedIndex)
			}
			q.drop(len(events))
			if !hb.Same {
				sentAt, sentTo, sentObs, changed = time.Now(), leader, cur, false
			}
		}
		if err != nil && !failing {
			log.Warn("cannot reach the leader with heartbeats", "err", err)
		} else if err == nil && failing {
			log.Info("heartbeats reach the leader again")
		}
		failing = err != nil
	}
}

// observeWait bounds how long a report waits for the observation started
// with it (see heartbeats).
const observeWait = heartbeatInterval / 2

// observeTimeout bounds one observation of every local instance.
const observeTimeout = 3 * time.Second

// observation is what one round of observing found: of every local
// instance (all), or of those of databases with replicas.
type observation struct {
	all     bool
	reports []health.InstanceReport
}

// merge returns the reports to send from now on, given the last ones.
func (o observation) merge(last []health.InstanceReport) []health.InstanceReport {
	if o.all {
		return o.reports
	}
	return mergeReports(last, o.reports)
}

// startObserve observes the local instances of st (every one if all, else
// those of databases with replicas) in a goroutine of its own, and
// delivers the result on the returned channel. Observing asks systemd and
// every redis-server: either can take seconds (systemd in the middle of a
// daemon-reload, an instance loading its data), and the heartbeats, on
// which the lease rides, must not wait for them.
func startObserve(ctx context.Context, cfg *config.Config, st *raftstate.State, rec *reconcile.Reconciler, all bool) <-chan observation {
	ch := make(chan observation, 1)
	go func() {
		octx, cancel := context.WithTimeout(ctx, observeTimeout)
		defer cancel()
		only := inHADatabase
		if all {
			only = nil
		}
		ch <- observation{all: all, reports: observe(octx, cfg, st, rec, only)}
	}()
	return ch
}

// withProbes returns the reports with each replica's PrimaryReachable
// from this node's own probes, and Synced from what this agent has seen of
// it (synced remembers, per replica, the primary it last synced with).
func withProbes(obs []health.InstanceReport, probes *primaryProbes, synced map[string]string) []health.InstanceReport {
	out := make([]health.InstanceReport, len(obs))
	for i, r := range obs {
		if r.Link != nil {
			l := *r.Link
			primary := net.JoinHostPort(l.MasterHost, strconv.Itoa(l.MasterPort))
			if l.Up && !l.SyncInProgress {
				synced[r.ID] = primary
			}
			l.PrimaryReachable = probes.reachable(r.ID)
			l.Synced = synced[r.ID] == primary
			r.Link = &l
		}
		out[i] = r
	}
	return out
}

// settling says whether an instance of a database with replicas was last
// seen on its way up (or down): the leader fails over only a primary it
// has seen running, and promotes only a replica seen synced, so those are
// observed at every heartbeat until they settle rather than every 2 s.
func settling(obs []health.InstanceReport, ha map[string]bool) bool {
	for _, r := range obs {
		if ha[r.ID] && (r.State == api.StateStarting || (r.Link != nil && (!r.Link.Up || r.Link.SyncInProgress))) {
			return true
		}
	}
	return false
}

// inHADatabase says whether an instance belongs to a database with
// replicas: one failover may act on.
func inHADatabase(pi raftstate.PlacedInstance) bool { return len(pi.Database.Instances) > 1 }

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

// observe reports the instances this node hosts (those only matches, if
// it is not nil) and, for all of them, the units of deleted instances that
// are still being removed.
func observe(ctx context.Context, cfg *config.Config, st *raftstate.State, rec *reconcile.Reconciler, only func(raftstate.PlacedInstance) bool) []health.InstanceReport {
	var out []health.InstanceReport
	wanted := map[string]bool{}
	var placed []raftstate.PlacedInstance
	for _, pi := range st.InstancesOn(cfg.NodeName) {
		if only == nil || only(pi) {
			placed = append(placed, pi)
		}
	}
	if len(placed) == 0 && only != nil {
		return nil
	}
	for i, o := range rec.ObserveAll(ctx, placed) {
		pi := placed[i]
		wanted[pi.Instance.ID] = true
		out = append(out, health.InstanceReport{
			ID: pi.Instance.ID, Installed: true, State: o.State, PID: o.PID, Restarts: o.Restarts,
			MemoryUsed: o.MemoryUsed, ServerVersion: o.ServerVersion, Role: o.Role, Error: o.Error,
			ReplOffset: o.ReplOffset, AppliedGeneration: rec.AppliedGeneration(pi.Instance.ID), Link: o.Link,
			OpsPerSec: o.OpsPerSec, Clients: o.Clients,
		})
	}
	if only != nil {
		return out
	}
	if present, err := rec.Present(ctx); err == nil {
		for _, id := range present {
			if !wanted[id] {
				out = append(out, health.InstanceReport{ID: id, Installed: true, State: "removing"})
			}
		}
	}
	return out
}
