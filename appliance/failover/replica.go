package failover

import (
	"fmt"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
)

// replicaFacts are what decides whether a replica may take over, however
// they were learned: from its node's report (automatic failover) or from
// INFO asked directly (planned switchover).
type replicaFacts struct {
	// State is the instance's state (api.StateRunning, ...).
	State string
	// Replicating: it follows a primary (role slave).
	Replicating bool
	LinkUp      bool
	Syncing     bool
	// Synced: seen with its link up and no sync in progress since it
	// started following its current primary. A replica that never synced
	// holds nothing worth promoting.
	Synced bool
	Offset int64
}

// fromReport reads a replica's facts from its node's report.
func fromReport(r health.InstanceReport) replicaFacts {
	f := replicaFacts{State: r.State, Offset: r.ReplOffset}
	if l := r.Link; l != nil {
		f.Replicating, f.LinkUp, f.Syncing, f.Synced = true, l.Up, l.SyncInProgress, l.Synced
	}
	return f
}

// fromInfo reads a replica's facts from INFO replication asked of it now.
func fromInfo(i instance.Info) replicaFacts {
	return replicaFacts{
		State: api.StateRunning, Replicating: i.Replica(), LinkUp: i.LinkUp, Syncing: i.SyncInProgress,
		Synced: i.LinkUp && !i.SyncInProgress, Offset: i.Offset,
	}
}

// disqualified is the one rule for a replica taking over: it says why the
// replica may not ("" if it may), given the primary's offset (-1 when
// unknown). A planned switchover needs the replica's link up, since the
// primary is alive, and bounds its lag by SwitchoverMaxLag; an automatic
// failover follows a dead primary, whose replicas' links are down, and
// bounds the lag by MaxLag.
func (s Settings) disqualified(f replicaFacts, primaryOffset int64, planned bool) string {
	maxLag, key := s.MaxLag, "max_lag"
	if planned {
		maxLag, key = s.SwitchoverMaxLag, "switchover_max_lag"
	}
	lag := primaryOffset - f.Offset
	switch {
	case f.State != api.StateRunning:
		return "is " + f.State
	case !f.Replicating:
		return "is not replicating"
	case planned && !f.LinkUp:
		return "has its replication link down"
	case f.Syncing:
		return "is still syncing"
	case !f.Synced:
		return "never completed a sync with this primary"
	case primaryOffset >= 0 && lag > maxLag:
		return fmt.Sprintf("is %d bytes behind (failover.%s %d)", lag, key, maxLag)
	}
	return ""
}
