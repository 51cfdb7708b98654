package clusterview_test

import (
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/clusterview"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
)

func newView(w, h int) clusterview.Model {
	m := clusterview.New(tuitest.Context(w, h))
	m.SetSize(w, h)
	m.SetStatus(tuitest.Status())
	m.SetNodes(tuitest.Nodes())
	m.SetDatabases(tuitest.Databases(28))
	return m
}

// TestView is the overview of a three-node cluster at 80 columns: Raft,
// databases by state, each node's role, health and last contact, memory
// and disk gauges, allocated and free, and the leader's hardware.
func TestView(t *testing.T) {
	tuitest.Golden(t, newView(80, 20).View())
}

// TestSelectedNodePanel: moving the cursor shows that node's hardware; a
// draining node that the leader lost says both.
func TestSelectedNodePanel(t *testing.T) {
	m := newView(80, 20)
	m, _ = m.Update(tuitest.Key("down"))
	m, _ = m.Update(tuitest.Key("down"))
	if n, _ := m.Selected(); n.Name != "n3" {
		t.Fatalf("selected %s", n.Name)
	}
	tuitest.Golden(t, m.View())
}

// TestCursorFollowsItsNode across a refresh that reorders the nodes.
func TestCursorFollowsItsNode(t *testing.T) {
	m := newView(80, 20)
	m, _ = m.Update(tuitest.Key("down"))
	nodes := tuitest.Nodes()
	m.SetNodes([]api.Node{nodes[2], nodes[1], nodes[0]})
	if n, _ := m.Selected(); n.Name != "n2" {
		t.Fatalf("selected %s after a reorder, want n2", n.Name)
	}
}

// TestNoLeader: a follower that lost its leader says so on the Raft line.
func TestNoLeader(t *testing.T) {
	m := newView(80, 6)
	s := tuitest.Status()
	s.Node, s.RaftState, s.Leader, s.LastContactSeconds = "n2", "candidate", "", 12.5
	m.SetStatus(s)
	if !strings.Contains(m.View(), "n2 is candidate · no leader") {
		t.Fatalf("no leader not shown:\n%s", m.View())
	}
}

// TestShortScreenDropsThePanel: with little height the nodes keep the
// room and the panel goes.
func TestShortScreenDropsThePanel(t *testing.T) {
	v := newView(80, 9).View()
	if !strings.Contains(v, "n3") || strings.Contains(v, "reserved") {
		t.Fatalf("at 9 lines:\n%s", v)
	}
}
