package instance

import (
	"errors"
	"testing"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// INFO as redis-server 7.0 prints it (sections, CRLF), of a replica whose
// link is up, and of a primary.
const replicaInfo = "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\nconnected_clients:3\r\n\r\n# Memory\r\nused_memory:1048576\r\n\r\n# Stats\r\ninstantaneous_ops_per_sec:42\r\n\r\n# Replication\r\nrole:slave\r\nmaster_host:10.0.0.2\r\nmaster_port:6401\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:1\r\nmaster_sync_in_progress:0\r\nmaster_repl_offset:9000\r\n\r\n# Persistence\r\nloading:0\r\n"

func TestParseInfo_ReadsWhatTheAgentUses(t *testing.T) {
	i := ParseInfo(replicaInfo)
	if i.Version != "7.0.15" || i.Clients != 3 || i.UsedMemory != 1<<20 || i.OpsPerSec != 42 || i.Offset != 9000 || i.Loading {
		t.Errorf("parsed %+v", i)
	}
	if !i.Replica() || i.Primary() || !i.Follows("10.0.0.2", "6401") || i.Follows("10.0.0.2", "6402") {
		t.Errorf("role facts of a replica of 10.0.0.2:6401: %+v", i)
	}
	if l := i.Link(); l == nil || !l.Up || l.SyncInProgress || l.LastIOSeconds != 1 || l.MasterPort != 6401 {
		t.Errorf("link %+v", l)
	}
	p := ParseInfo("role:master\nmaster_repl_offset:77\n")
	if !p.Primary() || p.Link() != nil || p.Offset != 77 || p.Follows("", "0") {
		t.Errorf("a primary: %+v", p)
	}
	down := ParseInfo("role:slave\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n")
	if l := down.Link(); l == nil || l.Up || l.LastIOSeconds != -1 {
		t.Errorf("a link down: %+v", l)
	}
}

// A report says running only when the unit runs and redis-server answers
// with its data loaded; otherwise it says what it is and why.
func TestObserved_Report(t *testing.T) {
	active := systemd.UnitState{ActiveState: "active", MainPID: 7, Restarts: 2}
	for _, c := range []struct {
		name  string
		o     Observed
		state string
		err   string
	}{
		{"no unit yet", Observed{UnitErr: systemd.ErrUnitNotFound}, api.StateStarting, ""},
		{"systemd did not answer", Observed{UnitErr: errors.New("dbus gone")}, api.StateUnknown, "dbus gone"},
		{"activating", Observed{Unit: systemd.UnitState{ActiveState: "activating"}}, api.StateStarting, ""},
		{"failed", Observed{Unit: systemd.UnitState{ActiveState: "failed"}}, api.StateFailed, ""},
		{"stopped after a start failure", Observed{Unit: systemd.UnitState{ActiveState: "inactive"}, StartErr: errors.New("bad config")}, api.StateFailed, "bad config"},
		{"running but wedged", Observed{Unit: active, InfoErr: errors.New("i/o timeout")}, api.StateStarting, DoesNotAnswer + "i/o timeout"},
		{"running, loading", Observed{Unit: active, Info: ParseInfo("loading:1\r\n")}, api.StateStarting, ""},
		{"running", Observed{Unit: active, Info: ParseInfo(replicaInfo)}, api.StateRunning, ""},
	} {
		c.o.ID = "db-0"
		r := c.o.Report()
		if r.State != c.state || r.Error != c.err || r.ID != "db-0" || !r.Installed {
			t.Errorf("%s: %+v, want state %s error %q", c.name, r, c.state, c.err)
		}
	}
	r := Observed{ID: "db-1", Unit: active, Info: ParseInfo(replicaInfo), Generation: 3}.Report()
	want := health.InstanceReport{ID: "db-1", Installed: true, State: api.StateRunning, PID: 7, Restarts: 2, MemoryUsed: 1 << 20,
		ServerVersion: "7.0.15", Role: "slave", ReplOffset: 9000, AppliedGeneration: 3, OpsPerSec: 42, Clients: 3}
	if r.Link == nil || r.Link.MasterHost != "10.0.0.2" {
		t.Fatalf("link %+v", r.Link)
	}
	r.Link = nil
	if r != want {
		t.Errorf("report %+v\nwant   %+v", r, want)
	}
}

// The "is this an HA primary" question, answered once.
func TestHAPrimary(t *testing.T) {
	solo := &raftstate.Database{Instances: []raftstate.Instance{{ID: "s-0", Role: raftstate.RolePrimary}}}
	ha := &raftstate.Database{Instances: []raftstate.Instance{{ID: "h-0", Role: raftstate.RolePrimary}, {ID: "h-1", Role: raftstate.RoleReplica}}}
	if HA(solo) || HAPrimary(solo, solo.Instances[0]) {
		t.Error("a database without replicas is HA")
	}
	if !HA(ha) || !HAPrimary(ha, ha.Instances[0]) || HAPrimary(ha, ha.Instances[1]) {
		t.Error("the primary of a database with a replica is not its HA primary, or the replica is")
	}
}
