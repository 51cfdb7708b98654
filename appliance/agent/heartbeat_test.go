package agent

import (
	"reflect"
	"testing"

	"github.com/redis-appliance/redis-appliance/appliance/health"
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
