package failover

import (
	"time"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Every fixed timing of failover, in one place: what each is for, and
// (TestTimings_Inequalities) the inequalities that keep them safe with
// every setting Settings.Validate accepts. The operator's settings are
// in Settings.

// Heartbeats: how often a node reports, and so renews its lease.
const (
	// HeartbeatInterval is how often an agent reports to the leader:
	// often enough that the shortest lease (Settings.Validate) survives
	// two reports lost or late in a row, and detection needs several.
	HeartbeatInterval = 200 * time.Millisecond
	// LeaderFallback is how long the leader's heartbeat loop waits for a
	// round of confirmation (raftstate.BeatInterval) before it runs
	// anyway: a leader cut off from the majority still observes.
	LeaderFallback = 2 * raftstate.BeatInterval
	// FollowerFallback is how long a follower waits for the leader's
	// heartbeat before it reports anyway: a little longer than the
	// leader's period, so that the heartbeat, not the timer, sets the
	// pace.
	FollowerFallback = HeartbeatInterval + 20*time.Millisecond
	// ReportGap is the least time between two reports that the leader's
	// traffic starts (its appends arrive between its heartbeats).
	ReportGap = 3 * HeartbeatInterval / 4
	// ReportTimeout bounds one report's round trip to the leader.
	ReportTimeout = time.Second
	// FullReportEvery bounds how long reports may say "same" before a
	// full one goes out anyway.
	FullReportEvery = 5 * time.Second
)

// Observation: what the reports say of the instances, and how fresh.
const (
	// ObserveHAInterval is how often the instances of databases with
	// replicas are observed (unit state, INFO): what failover reads.
	// Reports in between repeat the last observation, except for
	// instances on their way up or down (observed every report).
	ObserveHAInterval = 2 * time.Second
	// ObserveAllInterval is how often every instance is observed: one
	// without replicas has nothing to fail over to, so its figures are
	// only shown (a unit that fails is observed at once anyway, after
	// the reconciler's pass).
	ObserveAllInterval = 10 * time.Second
	// ObserveWait bounds how long a report waits for the observation
	// started with it; a slow one (systemd busy, an instance loading)
	// goes out with a later report, and the lease does not wait for it.
	ObserveWait = HeartbeatInterval / 2
	// ObserveTimeout bounds one observation of every local instance.
	ObserveTimeout = 3 * time.Second
	// HardwareInterval is how often the hardware facts are re-read.
	HardwareInterval = 5 * time.Second
)

// Fencing: how fast a node without a lease stops its primaries' writes.
const (
	// FenceSlack is what an agent needs past its lease to have fenced
	// its primaries (its fencer wakes when the lease runs out, and
	// setting the fence takes a round trip per primary, in parallel),
	// and the room between the lease and detection for a report's trip
	// between two clocks. The lease must be at least FenceSlack shorter
	// than detection; a new leader counts its predecessor's node silent
	// from no earlier than that node's lease plus FenceSlack.
	FenceSlack = 300 * time.Millisecond
	// FenceTick is how often the fencer looks while fenced or retrying;
	// while the lease is held it sleeps until the lease runs out.
	FenceTick = 100 * time.Millisecond
	// FenceTimeout bounds setting the fence of one instance.
	FenceTimeout = time.Second
	// FenceRefresh re-asserts every local primary's fence this often, a
	// safety net for an instance restarted behind the agent's back.
	FenceRefresh = 10 * time.Second
	// StartCatchUp is what a restarted agent gets on top of the lease
	// before it fences the primaries it finds running: a restarted
	// follower learns the cluster's state only when the leader next
	// tells it the commit index, up to twice raftstate.CommitTimeout
	// later.
	StartCatchUp = 2 * raftstate.CommitTimeout
)

// Confirmation: a replica's node checks that the primary answers.
const (
	// ProbeEvery is how often a node PINGs the primary of each replica
	// it hosts.
	ProbeEvery = 250 * time.Millisecond
	// ProbeLost is how long without an answer before the primary counts
	// as unreachable from that node.
	ProbeLost = 3 * ProbeEvery
	// ProbeIdle is how long the probes sleep while no replica is placed
	// on the node (a state change wakes them at once).
	ProbeIdle = 5 * time.Second
)

// Detection and promotion on the leader.
const (
	// DetectTick is how often the leader looks for failed primaries while
	// some database has replicas.
	DetectTick = 100 * time.Millisecond
	// DetectIdleTick bounds how long it waits while none has: it looks
	// after each round of leadership confirmation anyway.
	DetectIdleTick = 500 * time.Millisecond
	// UnconfirmedEvent is how long, as a multiple of detection, replicas
	// may still reach a primary the leader sees failed before a
	// failover-refused event says so (a report not yet updated is the
	// usual reason, and is not worth an event).
	UnconfirmedEvent = 2
	// OffsetTimeout bounds asking a candidate replica its offset directly.
	OffsetTimeout = 300 * time.Millisecond
)

// Planned switchover.
const (
	// SwitchoverPause is the CLIENT PAUSE on the old primary: redis's own
	// safety net, so that if the leader dies mid-way the old primary
	// takes writes again after it (and Raft still names it primary
	// unless the switchover was committed).
	SwitchoverPause = 10 * time.Second
	// CatchUpWait is how long the target may take to reach the paused
	// primary's offset before the switchover is called off.
	CatchUpWait = 2 * time.Second
	// SettleWait is how long the nodes may take to apply the new roles.
	SettleWait = 8 * time.Second
	// DirectTimeout bounds each command the leader sends to an instance.
	DirectTimeout = 2 * time.Second
)
