package failover

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Observing only the instances of databases with replicas must leave the
// other reports as they were, in their place (heartbeats compare the list
// to decide whether anything changed), and add an instance seen first.
func TestMergeReports_ReplacesByIDAndKeepsTheRest(t *testing.T) {
	old := []health.InstanceReport{{ID: "a", State: "running"}, {ID: "b", State: "running"}, {ID: "c", State: "running"}}
	got := mergeReports(old, []health.InstanceReport{{ID: "b", State: "failed"}, {ID: "d", State: "starting"}})
	want := []health.InstanceReport{{ID: "a", State: "running"}, {ID: "b", State: "failed"}, {ID: "c", State: "running"}, {ID: "d", State: "starting"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged %+v, want %+v", got, want)
	}
	if old[1].State != "running" {
		t.Error("merging changed the previous reports in place; heartbeats compare against them")
	}
}

// An instance of a database with replicas on its way up, or a replica not
// (yet) linked, is observed at every heartbeat: the leader fails over only
// a primary it saw running and promotes only a replica it saw synced.
// Settled ones, and databases without replicas, wait for the slower pace.
func TestSettling_OnlyInstancesOfHADatabasesOnTheirWay(t *testing.T) {
	ha := map[string]bool{"ha-0": true, "ha-1": true}
	up := &health.Link{Up: true}
	for _, c := range []struct {
		name string
		obs  []health.InstanceReport
		want bool
	}{
		{"all settled", []health.InstanceReport{{ID: "ha-0", State: "running"}, {ID: "ha-1", State: "running", Link: up}}, false},
		{"HA primary starting", []health.InstanceReport{{ID: "ha-0", State: "starting"}}, true},
		{"HA replica link down", []health.InstanceReport{{ID: "ha-1", State: "running", Link: &health.Link{}}}, true},
		{"HA replica syncing", []health.InstanceReport{{ID: "ha-1", State: "running", Link: &health.Link{Up: true, SyncInProgress: true}}}, true},
		{"standalone starting", []health.InstanceReport{{ID: "solo-0", State: "starting"}}, false},
	} {
		if got := settling(c.obs, ha); got != c.want {
			t.Errorf("%s: settling = %t, want %t", c.name, got, c.want)
		}
	}
}

// A report goes out whole when something changed, when it goes to a new
// leader, after a failed delivery, and at least every FullReportEvery;
// otherwise it is the light "same" report the leader only notes.
func TestDelta_FullOnlyWhenTheLeaderNeedsIt(t *testing.T) {
	var d delta
	a := health.Heartbeat{Node: "n2", Instances: []health.InstanceReport{{ID: "x-0", State: "running"}}}
	if hb := d.next(a, "n1"); hb.Same {
		t.Fatal("the first report is light")
	}
	d.delivered(a, "n1", nil)
	if hb := d.next(a, "n1"); !hb.Same || hb.Node != "n2" || hb.Instances != nil {
		t.Fatalf("an unchanged report to the same leader: %+v, want a light one", hb)
	}
	d.delivered(health.Heartbeat{Node: "n2", Same: true}, "n1", nil)
	if hb := d.next(a, "n3"); hb.Same {
		t.Error("a report to a new leader is light; it knows nothing of this node")
	}
	b := health.Heartbeat{Node: "n2", Instances: []health.InstanceReport{{ID: "x-0", State: "failed"}}}
	if hb := d.next(b, "n1"); hb.Same {
		t.Error("a changed instance went out in a light report")
	}
	d.delivered(b, "n1", errors.New("timeout"))
	if hb := d.next(b, "n1"); hb.Same {
		t.Error("after a failed delivery the next report is light")
	}
	d.delivered(b, "n1", nil)
	withEvents := b
	withEvents.Events = []raftstate.Event{{Kind: "fenced"}}
	if hb := d.next(withEvents, "n1"); hb.Same {
		t.Error("events went out in a light report")
	}
	d.sentAt = time.Now().Add(-FullReportEvery)
	if hb := d.next(b, "n1"); hb.Same {
		t.Error("no full report for FullReportEvery")
	}
}
