package instance

import (
	"errors"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// Observed is what a node saw of one of its instances: the unit, the last
// failure to start it, and (when the unit runs) what redis-server said.
type Observed struct {
	ID string
	// Unit and UnitErr are the supervisor's answer about the unit.
	Unit    systemd.UnitState
	UnitErr error
	// StartErr is the reconciler's last failure to start or restart it.
	StartErr error
	// Info and InfoErr are INFO's answer; asked only of a running unit.
	Info    Info
	InfoErr error
	// Generation is the restart generation the instance has applied.
	Generation uint64
}

// Report turns an observation into the report the leader reads and users
// see: running only when the unit is active and redis-server answers
// with its data loaded.
func (o Observed) Report() health.InstanceReport {
	r := health.InstanceReport{ID: o.ID, Installed: true, AppliedGeneration: o.Generation}
	switch {
	case errors.Is(o.UnitErr, systemd.ErrUnitNotFound):
		r.State = api.StateStarting
	case o.UnitErr != nil:
		r.State, r.Error = api.StateUnknown, o.UnitErr.Error()
	default:
		r.PID, r.Restarts = o.Unit.MainPID, o.Unit.Restarts
		switch o.Unit.ActiveState {
		case "active":
			r.State = api.StateRunning
		case "activating", "reloading":
			r.State = api.StateStarting
		case "failed":
			r.State = api.StateFailed
		default:
			r.State = api.StateStopped
		}
	}
	if o.StartErr != nil && r.State != api.StateRunning {
		r.Error = o.StartErr.Error()
		if r.State == api.StateStopped {
			r.State = api.StateFailed
		}
	}
	if r.State != api.StateRunning {
		return r
	}
	if o.InfoErr != nil {
		// The unit is up but redis-server does not answer yet (loading the
		// data set, or wedged): not running as far as a client is
		// concerned.
		r.State, r.Error = api.StateStarting, DoesNotAnswer+o.InfoErr.Error()
		return r
	}
	i := o.Info
	r.MemoryUsed, r.ServerVersion, r.Role, r.ReplOffset = i.UsedMemory, i.Version, i.Role, i.Offset
	r.OpsPerSec, r.Clients, r.Link = i.OpsPerSec, i.Clients, i.Link()
	if i.Loading {
		r.State = api.StateStarting
	}
	return r
}

// DoesNotAnswer starts the error of a running unit whose redis-server
// does not answer: the failure detector tells a wedged primary by it.
const DoesNotAnswer = "redis-server does not answer: "
