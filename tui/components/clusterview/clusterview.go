// Package clusterview is the cluster overview: this node's view of Raft
// (its role, the leader, voters, indexes), a count of the databases by
// state, and every node with its role, health, last contact, memory and
// disk gauges and what is allocated and free, with the hardware of the
// node under the cursor.
package clusterview

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/tui/components/gauge"
	"github.com/redis-appliance/redis-appliance/tui/components/table"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

const (
	colName = iota
	colRole
	colHealth
	colMemory
	colDisk
	colAllocated
	colFree
	colDBs
)

var columns = []table.Column{
	colName:      {Title: "NAME", Width: 13, Flex: true},
	colRole:      {Title: "ROLE", Width: 8},
	colHealth:    {Title: "HEALTH", Width: 9},
	colMemory:    {Title: "MEMORY", Width: 9},
	colDisk:      {Title: "DISK", Width: 9, Drop: 2},
	colAllocated: {Title: "ALLOCATED", Width: 9, Right: true, Drop: 3},
	colFree:      {Title: "FREE", Width: 9, Right: true},
	colDBs:       {Title: "DBS", Width: 3, Right: true, Drop: 4},
}

// panelLines is the height of the selected node's detail panel.
const panelLines = 5

// Model is the cluster overview.
type Model struct {
	ctx       *uictx.Context
	status    api.ClusterStatus
	hasStatus bool
	nodes     []api.Node
	dbs       []api.Database
	table     table.Model
	width     int
	height    int
}

// New returns an empty overview.
func New(ctx *uictx.Context) Model {
	return Model{ctx: ctx, table: table.New(ctx, columns)}
}

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.layout()
}

// SetStatus sets this node's view of Raft.
func (m *Model) SetStatus(s api.ClusterStatus) { m.status, m.hasStatus = s, true }

// SetNodes replaces the nodes, keeping the cursor on the same node.
func (m *Model) SetNodes(nodes []api.Node) {
	sel, ok := m.Selected()
	m.nodes = nodes
	m.table.SetRows(len(nodes))
	if ok {
		for i, n := range nodes {
			if n.Name == sel.Name {
				m.table.SetCursor(i)
			}
		}
	}
	m.layout()
}

// SetDatabases sets the databases counted in the summary.
func (m *Model) SetDatabases(dbs []api.Database) { m.dbs = dbs }

// Selected returns the node under the cursor.
func (m Model) Selected() (api.Node, bool) {
	if len(m.nodes) == 0 {
		return api.Node{}, false
	}
	return m.nodes[m.table.Cursor()], true
}

// Update moves the cursor.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	var cmd tea.Cmd
	m.table, cmd = m.table.Update(msg)
	return m, cmd
}

// top is the summary above the nodes: Raft, databases, a blank line and
// the nodes' title.
const top = 4

// layout gives the table the lines it needs, leaving room for the panel.
func (m *Model) layout() {
	room := m.height - top
	if room-(len(m.nodes)+1) >= panelLines+1 {
		room = len(m.nodes) + 1
	} else if room > 2*(panelLines+1) {
		room -= panelLines + 1
	}
	m.table.SetSize(m.width, room)
}

// View draws the overview.
func (m Model) View() string {
	st := m.ctx.Styles
	var b strings.Builder
	b.WriteString(m.raftLine() + "\n")
	b.WriteString(m.databasesLine() + "\n\n")

	healthy := 0
	for _, n := range m.nodes {
		if n.Healthy {
			healthy++
		}
	}
	title := st.Title.Render("NODES") + fmt.Sprintf(" %d · %d healthy", len(m.nodes), healthy)
	right := m.table.Position()
	if m.ctx.Stale && !m.ctx.DataAt.IsZero() {
		right = strings.TrimSpace(st.Warn.Render("as of "+uictx.FormatAge(m.ctx.Age())+" ago") + "  " + right)
	}
	b.WriteString(layout.Spread(title, right, m.width) + "\n")
	tbl := m.table.View(m.cells, "No nodes reported yet.")
	b.WriteString(tbl)
	used := top + layout.Lines(tbl)
	if n, ok := m.Selected(); ok && m.height-used >= panelLines+1 {
		b.WriteString("\n\n" + m.panel(n))
	}
	return layout.Fit(b.String(), m.width, m.height)
}

func (m Model) label(s string) string { return m.ctx.Styles.Label.Render(layout.Pad(s, 10)) }

func (m Model) raftLine() string {
	st := m.ctx.Styles
	s := m.status
	if !m.hasStatus {
		return m.label("RAFT") + st.Faint.Render("waiting for the agent")
	}
	parts := []string{fmt.Sprintf("%s is %s", s.Node, s.RaftState)}
	switch {
	case s.Leader == "":
		parts = append(parts, st.Err.Render("no leader"))
	case s.Leader != s.Node:
		parts = append(parts, fmt.Sprintf("leader %s (contact %.1fs ago)", s.Leader, s.LastContactSeconds))
	}
	voters := "voters"
	if s.Voters == 1 {
		voters = "voter"
	}
	parts = append(parts, fmt.Sprintf("%d %s", s.Voters, voters), fmt.Sprintf("index %d, applied %d", s.LastIndex, s.AppliedIndex))
	return m.label("RAFT") + strings.Join(parts, " · ")
}

func (m Model) databasesLine() string {
	st := m.ctx.Styles
	count := map[string]int{}
	var plans int64
	for _, db := range m.dbs {
		count[db.State]++
		plans += db.MemoryBytes
	}
	parts := []string{strconv.Itoa(len(m.dbs))}
	for _, s := range []string{api.StateRunning, api.StateStarting, api.StateFailed, api.StateStopped, api.StateUnknown} {
		if count[s] > 0 || s == api.StateRunning {
			parts = append(parts, st.State(s).Render(fmt.Sprintf("%d %s", count[s], s)))
		}
	}
	parts = append(parts, sizing.FormatSize(plans)+" planned")
	return m.label("DATABASES") + strings.Join(parts, " · ")
}

// Role returns a node's role word.
func Role(n api.Node) string {
	switch {
	case n.Leader:
		return "leader"
	case !n.Voter:
		return "nonvoter"
	}
	return "follower"
}

// health returns a node's health and the age of its last contact.
func (m Model) health(n api.Node) string {
	st := m.ctx.Styles
	switch {
	case n.Healthy:
		return st.OK.Render(fmt.Sprintf("ok %.1fs", n.LastContactSeconds))
	case n.LastContactSeconds < 0:
		return st.Faint.Render("unknown")
	}
	return st.Err.Render("lost " + uictx.FormatAge(secs(n.LastContactSeconds)))
}

func (m Model) cells(i int) []string {
	st := m.ctx.Styles
	n := m.nodes[i]
	hw := n.Hardware
	name := n.Name
	if n.Draining {
		name += st.Warn.Render(" draining")
	}
	free, alloc := sizing.FormatSize(n.FreeMemory), sizing.FormatSize(n.AllocatedMemory)
	if hw.MemTotal == 0 {
		free = "-"
	}
	return []string{
		colName:      name,
		colRole:      Role(n),
		colHealth:    m.health(n),
		colMemory:    gauge.Render(st, columns[colMemory].Width, hw.MemTotal-hw.MemAvailable, hw.MemTotal),
		colDisk:      gauge.Render(st, columns[colDisk].Width, hw.DiskTotal-hw.DiskFree, hw.DiskTotal),
		colAllocated: alloc,
		colFree:      free,
		colDBs:       strconv.Itoa(n.Databases),
	}
}

// panel describes the node under the cursor.
func (m Model) panel(n api.Node) string {
	st := m.ctx.Styles
	hw := n.Hardware
	f := sizing.FormatSize
	head := st.Title.Render(n.Name)
	if n.Address != "" {
		head += " " + n.Address
	}
	head += st.Faint.Render(fmt.Sprintf(" · %s · %d CPUs · %d instances", Role(n), hw.CPUs, n.Databases))
	if n.Supervisor != "" {
		head += st.Faint.Render(" · supervisor " + n.Supervisor)
	}
	if n.Draining {
		head += st.Warn.Render(" · draining: no new databases")
	}
	if hw.MemTotal == 0 {
		return head + "\n" + m.label("") + st.Faint.Render("no hardware report from this node yet")
	}
	lines := []string{
		head,
		m.label("memory") + fmt.Sprintf("%s total, %s available · swap %s, %s free", f(hw.MemTotal), f(hw.MemAvailable), f(hw.SwapTotal), f(hw.SwapFree)),
		m.label("disk") + fmt.Sprintf("%s total, %s free at %s", f(hw.DiskTotal), f(hw.DiskFree), hw.DiskPath),
		m.label("reserved") + fmt.Sprintf("%s memory, %s disk (OS and agent)", f(n.ReservedMemory), f(n.ReservedDisk)),
		m.label("for plans") + fmt.Sprintf("%s allocated, %s free · disk %s allocated, %s free", f(n.AllocatedMemory), f(n.FreeMemory), f(n.AllocatedDisk), f(n.FreeDisk)),
	}
	return strings.Join(lines, "\n")
}

// secs converts the API's float seconds.
func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
