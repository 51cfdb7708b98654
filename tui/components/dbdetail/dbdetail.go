// Package dbdetail is one database in full: its plan and memory, its
// connection URL with the password masked until `r` reveals it, and its
// instances with their node, role, state, pid, restarts and redis-server
// version.
package dbdetail

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/tui/components/gauge"
	"github.com/redis-appliance/redis-appliance/tui/components/table"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

const (
	colID = iota
	colNode
	colRole
	colState
	colPID
	colRestarts
	colVersion
	colMemory
)

// Columns for what replicas will add (link, lag, epoch) go at the end with
// a Drop, so a narrow screen loses them first.
var columns = []table.Column{
	colID:       {Title: "ID", Width: 10, Flex: true},
	colNode:     {Title: "NODE", Width: 7},
	colRole:     {Title: "ROLE", Width: 7},
	colState:    {Title: "STATE", Width: 8},
	colPID:      {Title: "PID", Width: 7, Right: true, Drop: 2},
	colRestarts: {Title: "RESTARTS", Width: 8, Right: true, Drop: 3},
	colVersion:  {Title: "VERSION", Width: 7, Drop: 1},
	colMemory:   {Title: "MEMORY", Width: 10, Right: true},
}

// Flavors describes each flavor in a few words.
var Flavors = map[string]string{
	"aof":   "AOF + RDB",
	"rdb":   "RDB snapshots only",
	"nordb": "memory only, nothing on disk",
}

// summaryLines is the height of the part above the instances.
const summaryLines = 9

// Model is the detail of one database.
type Model struct {
	ctx      *uictx.Context
	db       api.Database
	gone     bool
	url      string
	urlErr   error
	revealed bool
	table    table.Model
	width    int
	height   int
}

// New returns the detail of db; its URL is fetched by the caller and set
// with SetURL.
func New(ctx *uictx.Context, db api.Database) Model {
	m := Model{ctx: ctx, db: db, table: table.New(ctx, columns)}
	m.table.SetRows(len(db.Instances))
	return m
}

// Name returns the database's name.
func (m Model) Name() string { return m.db.Name }

// Database returns the database as last seen.
func (m Model) Database() api.Database { return m.db }

// Gone says the database is no longer listed.
func (m Model) Gone() bool { return m.gone }

// Revealed says the password is shown.
func (m Model) Revealed() bool { return m.revealed }

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.table.SetSize(w, max(h-summaryLines-len(m.revealedLines()), 2))
}

// revealedLines is the URL, whole, on lines of its own: cut, it could not
// be copied, and next to a label it would rarely fit in 80 columns.
func (m Model) revealedLines() []string {
	if !m.revealed || m.url == "" || m.urlErr != nil || m.width <= 0 {
		return nil
	}
	var lines []string
	r := []rune(m.url)
	for len(r) > 0 {
		n := min(len(r), m.width)
		lines = append(lines, string(r[:n]))
		r = r[n:]
	}
	return lines
}

// SetDatabases updates the database from a new list.
func (m *Model) SetDatabases(dbs []api.Database) {
	for _, db := range dbs {
		if db.Name == m.db.Name {
			m.db, m.gone = db, false
			m.table.SetRows(len(db.Instances))
			return
		}
	}
	m.gone = true
}

// SetURL sets the connection URL, or why it could not be read.
func (m *Model) SetURL(u string, err error) {
	m.url, m.urlErr = u, err
	m.SetSize(m.width, m.height)
}

// Update toggles the password and moves in the instances.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok && key.Matches(k, m.ctx.Keys.Reveal) {
		m.revealed = !m.revealed
		m.SetSize(m.width, m.height)
		return m, nil
	}
	var cmd tea.Cmd
	m.table, cmd = m.table.Update(msg)
	return m, cmd
}

// Mask hides the password of a redis:// URL. A URL it cannot read is
// hidden whole, since it may hold the password anywhere.
func Mask(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(hidden)"
	}
	if u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); !ok {
		return raw
	}
	return fmt.Sprintf("%s://%s:%s@%s%s", u.Scheme, u.User.Username(), "••••••••", u.Host, u.EscapedPath())
}

func (m Model) label(s string) string { return m.ctx.Styles.Label.Render(layout.Pad(s, 10)) }

// View draws the detail.
func (m Model) View() string {
	st := m.ctx.Styles
	db := m.db
	title := st.Title.Render("DATABASE "+db.Name) + "  " + st.State(db.State).Render(db.State)
	if m.gone {
		title = st.Title.Render("DATABASE "+db.Name) + "  " + st.Err.Render("no longer exists")
	}
	right := ""
	if m.ctx.Stale && !m.ctx.DataAt.IsZero() {
		right = st.Warn.Render("as of " + uictx.FormatAge(m.ctx.Age()) + " ago")
	}
	var b strings.Builder
	b.WriteString(layout.Spread(title, right, m.width) + "\n")
	if m.gone {
		b.WriteString("\n" + st.Faint.Render(fmt.Sprintf("%s is not in the list any more (deleted?). Press esc to go back.", db.Name)))
		return layout.Fit(b.String(), m.width, m.height)
	}

	version := db.Version
	var sv []string
	for _, in := range db.Instances {
		if in.ServerVersion != "" && !slices.Contains(sv, in.ServerVersion) {
			sv = append(sv, in.ServerVersion)
		}
	}
	if len(sv) > 0 {
		version += st.Faint.Render(" (redis-server " + strings.Join(sv, ", ") + ")")
	}
	b.WriteString(m.label("version") + version + "\n")
	b.WriteString(m.label("flavor") + db.Flavor + st.Faint.Render(" ("+Flavors[db.Flavor]+")") + "\n")
	b.WriteString(m.label("memory") + gauge.Render(st, 17, db.MemoryUsedBytes, db.MemoryBytes) +
		fmt.Sprintf("  %s used of %s", sizing.FormatSize(db.MemoryUsedBytes), sizing.FormatSize(db.MemoryBytes)) + "\n")
	b.WriteString(m.label("url") + m.urlLine() + "\n")
	for _, l := range m.revealedLines() {
		b.WriteString(l + "\n")
	}
	b.WriteString(m.label("unit") + orDash(db.Unit) + st.Faint.Render(" · port "+strconv.Itoa(db.Port)) + "\n")
	created := "-"
	if !db.CreatedAt.IsZero() {
		created = db.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")
		if !m.ctx.Now.IsZero() {
			created += st.Faint.Render(" (" + uictx.FormatAge(m.ctx.Now.Sub(db.CreatedAt)) + " ago)")
		}
	}
	b.WriteString(m.label("created") + created + "\n\n")

	b.WriteString(st.Title.Render("INSTANCES") + fmt.Sprintf(" %d", len(db.Instances)) + "\n")
	b.WriteString(m.table.View(m.cells, "No instances."))
	for _, in := range db.Instances {
		if in.Error != "" {
			b.WriteString("\n" + st.Err.Width(m.width).Render(in.ID+": "+in.Error))
		}
	}
	return layout.Fit(b.String(), m.width, m.height)
}

func (m Model) urlLine() string {
	st := m.ctx.Styles
	switch {
	case m.urlErr != nil:
		return st.Err.Render("cannot read the URL: " + m.urlErr.Error())
	case m.url == "":
		return st.Faint.Render("loading…")
	case m.revealed:
		return st.Faint.Render("below, whole, to copy · r hides it")
	}
	return Mask(m.url) + st.Faint.Render("  r reveals")
}

func (m Model) cells(i int) []string {
	st := m.ctx.Styles
	in := m.db.Instances[i]
	pid := "-"
	if in.PID > 0 {
		pid = strconv.Itoa(in.PID)
	}
	state := st.State(in.State).Render(in.State)
	if m.ctx.Stale {
		state = st.Faint.Render(in.State)
	}
	return []string{
		colID:       in.ID,
		colNode:     in.Node,
		colRole:     in.Role,
		colState:    state,
		colPID:      pid,
		colRestarts: strconv.Itoa(in.Restarts),
		colVersion:  orDash(in.ServerVersion),
		colMemory:   sizing.FormatSize(in.MemoryUsedBytes),
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
