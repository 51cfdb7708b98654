// Package dblist is the databases view: every database with its version,
// flavor, plan, primary node, replicas, what it follows (a linked replica)
// or that it is read-only, state, memory, and its primary's ops/s and
// connected clients, filtered with `/` and sorted with `s`/`S`.
//
// Filtering and sorting happen when the data, the filter or the order
// change, never while drawing, and only the rows on screen are drawn, so a
// list of hundreds of databases scrolls as fast as a short one.
package dblist

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/components/gauge"
	"github.com/redis-appliance/redis-appliance/tui/components/table"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// SortKey is what the list is sorted by.
type SortKey int

// The sort keys, in the order `s` cycles through them.
const (
	ByName SortKey = iota
	ByState
	ByMemory
	ByOps
	ByPlan
	ByVersion
	ByNode
	sortKeys
)

var sortNames = [...]string{"name", "state", "memory used", "ops/s", "plan", "version", "node"}

// String names the key for the title line.
func (k SortKey) String() string { return sortNames[k] }

// Column indexes.
const (
	colName = iota
	colVersion
	colFlavor
	colPlan
	colNode
	colReplicas
	colFollows
	colState
	colMemory
	colOps
	colClients
)

// The columns give way, as the screen narrows, in this order: clients
// (the least telling: the agent's own connection counts, so an idle
// database shows 1; the detail has it), flavor, version, ops/s, replicas,
// node, what it follows. Everything fits from 108 columns, ops/s from 84;
// at 80 the replication columns stay and the live figures go (the detail
// has them); at 60 the replicas and the node go too, and what a linked or
// read-only database follows stays: writing to it would fail. The column
// the list is sorted by never goes (see applyOrder).
var columns = []table.Column{
	colName:     {Title: "NAME", Width: 12, Flex: true},
	colVersion:  {Title: "VERSION", Width: 8, Drop: 6},
	colFlavor:   {Title: "FLAVOR", Width: 6, Drop: 7},
	colPlan:     {Title: "PLAN", Width: 10, Right: true},
	colNode:     {Title: "NODE", Width: 8, Drop: 3},
	colReplicas: {Title: "REPL", Width: 4, Right: true, Drop: 4},
	colFollows:  {Title: "FOLLOWS", Width: 9, Drop: 2},
	colState:    {Title: "STATE", Width: 8},
	colMemory:   {Title: "MEMORY", Width: 11},
	colOps:      {Title: "OPS/S", Width: 6, Right: true, Drop: 5},
	colClients:  {Title: "CLI", Width: 4, Right: true, Drop: 8},
}

var sortColumn = [...]int{
	ByName: colName, ByState: colState, ByMemory: colMemory, ByOps: colOps,
	ByPlan: colPlan, ByVersion: colVersion, ByNode: colNode,
}

// Model is the databases view.
type Model struct {
	ctx    *uictx.Context
	all    []api.Database
	rows   []int // indexes into all: filtered, then sorted
	table  table.Model
	filter components.Filter
	sort   SortKey
	desc   bool
	width  int
	height int
}

// New returns an empty databases view.
func New(ctx *uictx.Context) Model {
	m := Model{
		ctx:    ctx,
		table:  table.New(ctx, columns),
		filter: components.NewFilter(ctx.Styles, "name, state, node, version, flavor or source"),
	}
	m.applyOrder()
	return m
}

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.table.SetSize(w, h-2)
}

// SetDatabases replaces the data. The cursor stays on the same database,
// wherever it moves in the order.
func (m *Model) SetDatabases(dbs []api.Database) {
	sel, ok := m.Selected()
	m.all = dbs
	m.recompute()
	if ok {
		m.Select(sel.Name)
	}
}

// Databases returns every database (unfiltered).
func (m Model) Databases() []api.Database { return m.all }

// Selected returns the database under the cursor.
func (m Model) Selected() (api.Database, bool) {
	if len(m.rows) == 0 {
		return api.Database{}, false
	}
	return m.all[m.rows[m.table.Cursor()]], true
}

// Select moves the cursor to the database called name, if it is listed.
func (m *Model) Select(name string) {
	for i, r := range m.rows {
		if m.all[r].Name == name {
			m.table.SetCursor(i)
			return
		}
	}
}

// Capturing says the filter has the keyboard: keys are text, not commands.
func (m Model) Capturing() bool { return m.filter.Active() }

// Filter returns the filter text.
func (m Model) Filter() string { return m.filter.Value() }

// Sort returns the sort key and whether it is descending.
func (m Model) Sort() (SortKey, bool) { return m.sort, m.desc }

// Update handles the filter, sort and list keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	km := m.ctx.Keys
	if m.filter.Active() {
		cmd, change := m.filter.Update(k)
		switch change {
		case components.FilterCleared:
			m.recompute()
		case components.FilterEdited:
			m.recompute()
			m.table.SetCursor(0)
		}
		return m, cmd
	}
	switch {
	case key.Matches(k, km.Filter):
		return m, m.filter.Start()
	case key.Matches(k, km.Sort):
		m.sort = (m.sort + 1) % sortKeys
		// Most used, busiest and largest first: that is what one looks
		// for.
		m.desc = m.sort == ByMemory || m.sort == ByOps || m.sort == ByPlan
		m.resort()
		return m, nil
	case key.Matches(k, km.Reverse):
		m.desc = !m.desc
		m.resort()
		return m, nil
	case key.Matches(k, km.Back) && m.filter.Value() != "":
		m.filter.Clear()
		m.resort()
		return m, nil
	}
	var cmd tea.Cmd
	m.table, cmd = m.table.Update(msg)
	return m, cmd
}

// resort recomputes the rows and keeps the cursor on its database.
func (m *Model) resort() {
	sel, ok := m.Selected()
	m.recompute()
	if ok {
		m.Select(sel.Name)
	}
}

// recompute filters and sorts.
func (m *Model) recompute() {
	terms := strings.Fields(strings.ToLower(m.filter.Value()))
	// A new slice: copies of the model made by Update must not share it.
	rows := make([]int, 0, len(m.all))
	for i, db := range m.all {
		if matches(db, terms) {
			rows = append(rows, i)
		}
	}
	m.rows = rows
	by := compareBy(m.sort)
	slices.SortStableFunc(m.rows, func(a, b int) int {
		c := by(m.all[a], m.all[b])
		if m.desc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(m.all[a].Name, m.all[b].Name)
		}
		return c
	})
	m.table.SetRows(len(m.rows))
	m.applyOrder()
}

// applyOrder marks the sorted column in the header and keeps it on
// screen whatever the width (another optional column gives way): an order
// by figures one cannot see would be no use.
func (m *Model) applyOrder() {
	cols := slices.Clone(columns)
	arrow := "▲"
	if m.desc {
		arrow = "▼"
	}
	c := sortColumn[m.sort]
	cols[c].Title += arrow
	cols[c].Drop = 0
	m.table.SetColumns(cols)
}

// matches says whether every term is found in the database's name,
// version, flavor, state, primary node or what it follows (so a source's
// name lists its linked replicas too).
func matches(db api.Database, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(db.Name, t) && !strings.Contains(db.Version, t) && !strings.Contains(db.Flavor, t) &&
			!strings.Contains(db.State, t) && !strings.Contains(strings.ToLower(PrimaryNode(db)), t) &&
			!strings.Contains(strings.ToLower(db.Follows), t) {
			return false
		}
	}
	return true
}

// stateRank orders states worst first, so sorting by state puts what needs
// attention on top.
func stateRank(s string) int {
	switch s {
	case api.StateFailed:
		return 0
	case api.StateUnknown:
		return 1
	case api.StateStopped:
		return 2
	case api.StateStarting:
		return 3
	case api.StateRunning:
		return 4
	}
	return 1
}

func compareBy(k SortKey) func(a, b api.Database) int {
	switch k {
	case ByState:
		return func(a, b api.Database) int { return cmp.Compare(stateRank(a.State), stateRank(b.State)) }
	case ByMemory:
		return func(a, b api.Database) int { return cmp.Compare(usedFraction(a), usedFraction(b)) }
	case ByOps:
		return func(a, b api.Database) int { return cmp.Compare(opsKey(a), opsKey(b)) }
	case ByPlan:
		return func(a, b api.Database) int { return cmp.Compare(a.MemoryBytes, b.MemoryBytes) }
	case ByVersion:
		return func(a, b api.Database) int { return CompareVersions(a.Version, b.Version) }
	case ByNode:
		return func(a, b api.Database) int { return strings.Compare(PrimaryNode(a), PrimaryNode(b)) }
	}
	return func(a, b api.Database) int { return strings.Compare(a.Name, b.Name) }
}

// opsKey is what sorting by ops/s compares: a database that is not
// running has no figures (they read 0) and sorts below an idle one.
func opsKey(db api.Database) int64 {
	if !observed(db.State) {
		return -1
	}
	return db.OpsPerSec
}

// observed says the agent reads a primary's ops/s and clients in this
// state: only a running redis-server answers INFO, and otherwise the API
// says 0 for "unknown".
func observed(state string) bool { return state == api.StateRunning }

func usedFraction(db api.Database) float64 {
	if db.MemoryBytes <= 0 {
		return 0
	}
	return float64(db.MemoryUsedBytes) / float64(db.MemoryBytes)
}

// CompareVersions orders dotted versions by number, so 7.10 comes after 7.2.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

// The roles of instances as the API reports them (api.Instance.Role).
const (
	rolePrimary = "primary"
	roleReplica = "replica"
)

// PrimaryNode returns the node of a database's primary instance.
func PrimaryNode(db api.Database) string {
	for _, in := range db.Instances {
		if in.Role == rolePrimary {
			return in.Node
		}
	}
	return ""
}

// Replicas returns a database's replica instances (not its linked
// replicas, which are databases of their own).
func Replicas(db api.Database) []api.Instance {
	var out []api.Instance
	for _, in := range db.Instances {
		if in.Role == roleReplica {
			out = append(out, in)
		}
	}
	return out
}

// replicasCell says how many replicas a database has ("2"), and how many
// of them have their link up when not all do ("1/2"), or "-".
func replicasCell(db api.Database) (text string, degraded bool) {
	reps := Replicas(db)
	if len(reps) == 0 {
		return "-", false
	}
	up := 0
	for _, in := range reps {
		if in.Replication != nil && in.Replication.LinkStatus == "up" {
			up++
		}
	}
	if up == len(reps) {
		return strconv.Itoa(len(reps)), false
	}
	return fmt.Sprintf("%d/%d", up, len(reps)), true
}

// View draws the title line, the table and the filter hint.
func (m Model) View() string {
	st := m.ctx.Styles
	title := st.Title.Render("DATABASES") + " "
	if len(m.rows) != len(m.all) {
		title += fmt.Sprintf("%d of %d", len(m.rows), len(m.all))
	} else {
		title += strconv.Itoa(len(m.all))
	}
	arrow := "ascending"
	if m.desc {
		arrow = "descending"
	}
	title += st.Faint.Render(fmt.Sprintf(" · by %s, %s", m.sort, arrow))
	right := m.table.Position()
	if m.ctx.Stale && !m.ctx.DataAt.IsZero() {
		right = strings.TrimSpace(st.Warn.Render("as of "+uictx.FormatAge(m.ctx.Age())+" ago") + "  " + right)
	}
	empty := "No databases yet. Press n to create one."
	if len(m.all) > 0 {
		empty = fmt.Sprintf("No database matches %q. Press esc to clear the filter.", m.filter.Value())
	}
	// Styled once a frame, not once a row: most rows of a long list are
	// drawn at every refresh.
	dash := st.Faint.Render("-")
	body := m.table.View(func(i int) []string { return m.cells(i, dash) }, empty)
	out := layout.Spread(title, right, m.width) + "\n" + body
	// The filter line sits at the bottom, where the eye looks for input.
	out = layout.Fit(out, m.width, m.height-1)
	return out + "\n" + m.filter.View(st)
}

// cells are row i's cells; dash is what stands for a figure not observed.
func (m Model) cells(i int, dash string) []string {
	st := m.ctx.Styles
	db := m.all[m.rows[i]]
	state := st.State(db.State).Render(db.State)
	if m.ctx.Stale {
		state = st.Faint.Render(db.State)
	}
	reps, degraded := replicasCell(db)
	if degraded && !m.ctx.Stale {
		reps = st.Warn.Render(reps)
	}
	// A linked replica names its source; an unlinked one says it takes
	// no writes. Both refuse writes.
	follows := ""
	switch {
	case db.Follows != "":
		follows = "→ " + db.Follows
	case db.ReadOnly:
		follows = st.Warn.Render("read-only")
	}
	ops, clients := dash, dash
	if observed(db.State) {
		ops, clients = uictx.FormatCount(db.OpsPerSec), uictx.FormatCount(int64(db.Clients))
	}
	return []string{
		colName:     db.Name,
		colVersion:  db.Version,
		colFlavor:   db.Flavor,
		colPlan:     sizing.FormatSize(db.MemoryBytes),
		colNode:     PrimaryNode(db),
		colReplicas: reps,
		colFollows:  follows,
		colState:    state,
		colMemory:   gauge.Render(st, columns[colMemory].Width, db.MemoryUsedBytes, db.MemoryBytes),
		colOps:      ops,
		colClients:  clients,
	}
}
