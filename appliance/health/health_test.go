package health

import (
	"errors"
	"testing"
)

// TestView_SameHeartbeatKeepsTheLastFullReport: a "same" heartbeat only
// refreshes the node's age, and is refused when there is no full report to
// keep (a new leader), so the node sends one.
func TestView_SameHeartbeatKeepsTheLastFullReport(t *testing.T) {
	v := NewView()
	if err := v.Record(Heartbeat{Node: "n2", Same: true}); !errors.Is(err, ErrNoBaseline) {
		t.Fatalf("same without a baseline: %v, want ErrNoBaseline", err)
	}
	full := Heartbeat{Node: "n2", PortMin: 6400, Instances: []InstanceReport{{ID: "a-0", Installed: true, State: "running"}}}
	if err := v.Record(full); err != nil {
		t.Fatal(err)
	}
	first, _ := v.Node("n2")
	if err := v.Record(Heartbeat{Node: "n2", Same: true}); err != nil {
		t.Fatal(err)
	}
	e, _ := v.Node("n2")
	if !e.Received.After(first.Received) || e.Heartbeat.PortMin != 6400 || len(e.Heartbeat.Instances) != 1 {
		t.Fatalf("after same: %+v, want the full report with a newer time", e)
	}
	if r, _, ok := v.Instance("n2", "a-0"); !ok || r.State != "running" {
		t.Fatalf("instance after same: %+v %v", r, ok)
	}
	if r, _, ok := v.Instance("n2", "gone-0"); !ok || r.Installed {
		t.Fatalf("unknown instance on a reporting node: %+v %v, want not installed", r, ok)
	}
	v.Forget("n2")
	if _, ok := v.Node("n2"); ok {
		t.Fatal("forgotten node still in the view")
	}
}
