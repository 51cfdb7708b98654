// Package dbdetail is one database in full: its plan and memory, its
// connection URL with the password masked until `r` reveals it, its
// replication (primary node and epoch, the primary's ops/s and connected
// clients, replicas, why a failed primary is not being replaced, what it
// follows, its linked replicas, read-only, when it was promoted), whether
// it has access control and its application users (never their
// passwords), its last few events, and its instances with their node, role, address, state,
// replication link, sync, lag, last IO and offset, ops/s, clients, pid,
// restarts and redis-server version. What the width leaves out of the
// table is on the line under it, for the instance under the cursor.
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
	"github.com/redis-appliance/redis-appliance/tui/components/events"
	"github.com/redis-appliance/redis-appliance/tui/components/gauge"
	"github.com/redis-appliance/redis-appliance/tui/components/table"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

const (
	colID = iota
	colNode
	colRole
	colAddress
	colState
	colLink
	colSync
	colLag
	colLastIO
	colOffset
	colOps
	colClients
	colPID
	colRestarts
	colVersion
	colMemory
)

// At 80 columns the table keeps who is where and how each replica keeps
// up (link, sync, lag, last IO), and the instance IDs their room; offset
// (from 82 columns), ops/s (89), clients (98), address and the rest come
// with more width, and are on the line under the table meanwhile.
var columns = []table.Column{
	colID:       {Title: "ID", Width: 10, Flex: true},
	colNode:     {Title: "NODE", Width: 6},
	colRole:     {Title: "ROLE", Width: 7},
	colAddress:  {Title: "ADDRESS", Width: 15, Drop: 7},
	colState:    {Title: "STATE", Width: 8},
	colLink:     {Title: "LINK", Width: 4},
	colSync:     {Title: "SYNC", Width: 4, Drop: 2},
	colLag:      {Title: "LAG", Width: 8, Right: true, Drop: 1},
	colLastIO:   {Title: "LAST IO", Width: 7, Right: true, Drop: 3},
	colOffset:   {Title: "OFFSET", Width: 10, Right: true, Drop: 4},
	colOps:      {Title: "OPS/S", Width: 5, Right: true, Drop: 5},
	colClients:  {Title: "CLIENTS", Width: 7, Right: true, Drop: 6},
	colPID:      {Title: "PID", Width: 7, Right: true, Drop: 10},
	colRestarts: {Title: "RESTARTS", Width: 8, Right: true, Drop: 11},
	colVersion:  {Title: "VERSION", Width: 7, Drop: 9},
	colMemory:   {Title: "MEMORY", Width: 10, Right: true, Drop: 8},
}

// Flavors describes each flavor in a few words.
var Flavors = map[string]string{
	"aof":   "AOF + RDB",
	"rdb":   "RDB snapshots only",
	"nordb": "memory only, nothing on disk",
}

// panelLines is the most the line about the selected instance takes.
const panelLines = 2

// userRows is the most users the users' table lists; the others are
// named on one line under it.
const userRows = 4

// userCellMax is the widest a user's name or patterns are drawn in the
// users' table.
const userCellMax = 20

// eventLines is the most events of the database the summary lists; on a
// short screen it lists the newest only, or none.
const eventLines = 3

// Model is the detail of one database.
type Model struct {
	ctx      *uictx.Context
	db       api.Database
	gone     bool
	url      string
	urlErr   error
	revealed bool
	// events are the database's last events, newest first; eventsErr
	// says they may not be the latest.
	events    []api.Event
	eventsErr error
	table     table.Model
	width     int
	height    int
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
	if m.ctx == nil {
		// The zero Model, laid out before any database is opened.
		return
	}
	m.table.SetSize(w, max(h-len(m.summary())-m.panelRoom(), 2))
}

// panelRoom is the lines kept under the table for the instance under the
// cursor: none when the table has every column, or when the screen is so
// short that the rows need them more.
func (m Model) panelRoom() int {
	t := m.table
	t.SetSize(m.width, 2)
	if !t.Dropped() || m.height-len(m.summary())-panelLines < 1+min(len(m.db.Instances), 3) {
		return 0
	}
	return panelLines
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
			// Its replication lines come and go with a promote or an
			// unlink: the table's height follows.
			m.SetSize(m.width, m.height)
			return
		}
	}
	m.gone = true
}

// SetEvents takes the cluster's events, oldest first, and keeps the
// database's last few; err says the last read of the events failed, so
// these may not be the latest.
func (m *Model) SetEvents(evs []api.Event, err error) {
	m.events, m.eventsErr = nil, err
	for i := len(evs) - 1; i >= 0 && len(m.events) < eventLines; i-- {
		if evs[i].Database == m.db.Name {
			m.events = append(m.events, evs[i])
		}
	}
	m.SetSize(m.width, m.height)
}

// SetURL sets the connection URL, or why it could not be read.
func (m *Model) SetURL(u string, err error) {
	m.url, m.urlErr = u, err
	m.SetSize(m.width, m.height)
}

// Selected returns the instance under the cursor.
func (m Model) Selected() (api.Instance, bool) {
	if len(m.db.Instances) == 0 {
		return api.Instance{}, false
	}
	return m.db.Instances[m.table.Cursor()], true
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
	if m.gone {
		title := st.Title.Render("DATABASE "+db.Name) + "  " + st.Err.Render("no longer exists")
		return layout.Fit(layout.Spread(title, "", m.width)+"\n\n"+
			st.Faint.Render(fmt.Sprintf("%s is not in the list any more (deleted?). Press esc to go back.", db.Name)), m.width, m.height)
	}
	var b strings.Builder
	b.WriteString(strings.Join(m.summary(), "\n") + "\n")
	b.WriteString(m.table.View(m.cells, "No instances."))
	if p := m.panel(); p != "" && m.panelRoom() > 0 {
		b.WriteString("\n" + p)
	}
	for _, in := range db.Instances {
		if in.Error != "" {
			b.WriteString("\n" + st.Err.Width(m.width).Render(in.ID+": "+in.Error))
		}
	}
	return layout.Fit(b.String(), m.width, m.height)
}

// summary returns the lines above the instances' table, its title
// included. On a short screen it leaves out the unit, the creation time,
// a blank line and all but the newest event, then the users' rows (their
// names stay on the users line), then that event too, so that the
// instances keep some rows.
func (m Model) summary() []string {
	var lines []string
	for _, c := range []struct {
		short          bool
		nEvents, users int
	}{{false, eventLines, userRows}, {true, 1, userRows}, {true, 1, 0}, {true, 0, 0}} {
		lines = m.summaryLines(c.short, c.nEvents, c.users)
		if m.height <= 0 || m.height-len(lines) >= 1+min(len(m.db.Instances), 3) {
			break
		}
	}
	return lines
}

func (m Model) summaryLines(short bool, nEvents, nUsers int) []string {
	st := m.ctx.Styles
	db := m.db
	title := st.Title.Render("DATABASE "+db.Name) + "  " + st.State(db.State).Render(db.State)
	right := ""
	if m.ctx.Stale && !m.ctx.DataAt.IsZero() {
		right = st.Warn.Render("as of " + uictx.FormatAge(m.ctx.Age()) + " ago")
	}
	lines := []string{layout.Spread(title, right, m.width)}
	add := func(label, value string) { lines = append(lines, m.label(label)+value) }

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
	add("version", version)
	add("flavor", db.Flavor+st.Faint.Render(" ("+Flavors[db.Flavor]+")"))
	add("memory", gauge.Render(st, 17, db.MemoryUsedBytes, db.MemoryBytes)+
		fmt.Sprintf("  %s used of %s", sizing.FormatSize(db.MemoryUsedBytes), sizing.FormatSize(db.MemoryBytes)))
	add("url", m.urlLine())
	lines = append(lines, m.revealedLines()...)
	if !short {
		add("unit", orDash(db.Unit)+st.Faint.Render(" · port "+strconv.Itoa(db.Port)))
		created := "-"
		if !db.CreatedAt.IsZero() {
			created = db.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")
			if !m.ctx.Now.IsZero() {
				created += st.Faint.Render(" (" + uictx.FormatAge(m.ctx.Now.Sub(db.CreatedAt)) + " ago)")
			}
		}
		add("created", created)
	}

	primary, busy, replicas := "-", "", []string(nil)
	for _, in := range db.Instances {
		switch in.Role {
		case "primary":
			primary = in.Node
			if observed(in.State) {
				busy = " · " + load(in)
			}
		case "replica":
			replicas = append(replicas, in.Node)
		}
	}
	reps := "no replicas"
	switch len(replicas) {
	case 0:
	case 1:
		reps = "1 replica on " + replicas[0]
	default:
		reps = fmt.Sprintf("%d replicas on %s", len(replicas), strings.Join(replicas, ", "))
	}
	add("primary", primary+st.Faint.Render(fmt.Sprintf(" (epoch %d)", db.Epoch))+busy+" · "+reps)
	if db.FailoverStatus != "" {
		// Why a failed primary is not being replaced: the operator's cue,
		// whole (wrapped under its label, at most three lines).
		ls := strings.Split(st.Warn.Width(max(m.width-10, 20)).Render(db.FailoverStatus), "\n")
		for i, l := range ls[:min(len(ls), 3)] {
			if i == 0 {
				add("failover", l)
			} else {
				lines = append(lines, strings.Repeat(" ", 10)+l)
			}
		}
	}
	switch {
	case db.Follows != "":
		add("follows", db.Follows+st.Faint.Render(" · a linked replica, read-only · P promotes it, U unlinks it"))
	case db.ReadOnly:
		add("read-only", st.Warn.Render("unlinked: follows nothing, refuses writes")+st.Faint.Render(" · P promotes it"))
	}
	if len(db.LinkedReplicas) > 0 {
		add("linked", strings.Join(db.LinkedReplicas, ", ")+st.Faint.Render(" · follow this database"))
	}
	if db.PromotedAt != nil {
		at := db.PromotedAt.UTC().Format("2006-01-02 15:04 UTC")
		if !m.ctx.Now.IsZero() {
			at += st.Faint.Render(" (" + uictx.FormatAge(m.ctx.Now.Sub(*db.PromotedAt)) + " ago)")
		}
		if db.PromotedFrom != "" {
			at += " · followed " + db.PromotedFrom
		}
		add("promoted", at)
	}
	lines = append(lines, m.userLines(nUsers)...)
	for i, l := range m.eventLines(m.events[:min(len(m.events), nEvents)]) {
		label := ""
		if i == 0 {
			label = "events"
		}
		add(label, l)
	}
	if !short {
		lines = append(lines, "")
	}
	return append(lines, st.Title.Render("INSTANCES")+fmt.Sprintf(" %d", len(db.Instances)))
}

// userLines say whether the database has access control and list its
// application users, never a password: with rows > 0, a table of up to
// that many users (name, role, key and channel patterns, when the
// password was last rotated, until when the one it replaced works), else
// their names and roles on one line.
func (m Model) userLines(rows int) []string {
	st := m.ctx.Styles
	db := m.db
	if !db.AccessControl {
		// A database from before access control, until every node runs a
		// release with it: the URL's user can still lift the fence.
		ls := strings.Split(st.Warn.Width(max(m.width-10, 20)).Render("off: the default user has every command until every node is upgraded"), "\n")
		out := []string{m.label("users") + ls[0]}
		for _, l := range ls[1:min(len(ls), 2)] {
			out = append(out, strings.Repeat(" ", 10)+l)
		}
		return out
	}
	us := db.Users
	keys := " · access control on · a adds one"
	if len(us) > 0 {
		keys += ", p rotates one"
	}
	if len(us) == 0 {
		return []string{m.label("users") + layout.Truncate("none"+st.Faint.Render(keys), m.width-10)}
	}
	if rows <= 0 {
		names := make([]string, len(us))
		for i, u := range us {
			names[i] = u.Name + st.Faint.Render(" ("+u.Role+")")
		}
		return []string{m.label("users") + layout.Truncate(fmt.Sprintf("%d: %s", len(us), strings.Join(names, ", "))+st.Faint.Render(keys), m.width-10)}
	}
	out := []string{m.label("users") + layout.Truncate(strconv.Itoa(len(us))+st.Faint.Render(keys), m.width-10)}
	shown, more := us, 0
	if len(us) > rows {
		shown, more = us[:rows-1], len(us)-(rows-1)
	}
	cells := [][]string{{"USER", "ROLE", "KEYS", "CHANNELS", "ROTATED", "OLD PASSWORD UNTIL"}}
	for _, u := range shown {
		rotated, until := "-", "-"
		if !u.RotatedAt.IsZero() {
			rotated = uictx.FormatAge(m.ctx.Now.Sub(u.RotatedAt)) + " ago"
		}
		if u.PreviousValidUntil != nil {
			until = u.PreviousValidUntil.UTC().Format("01-02 15:04 UTC")
		}
		cells = append(cells, []string{u.Name, u.Role, patterns(u.Keys), patterns(u.Channels), rotated, until})
	}
	// Each column as wide as its widest cell; names and patterns at most
	// userCellMax, cut with "…".
	widths := make([]int, len(cells[0]))
	for _, row := range cells {
		for i, c := range row {
			widths[i] = max(widths[i], min(layout.Width(c), userCellMax))
		}
	}
	for r, row := range cells {
		parts := make([]string, len(row))
		for i, c := range row {
			parts[i] = layout.Pad(layout.Truncate(c, widths[i]), widths[i])
		}
		l := strings.TrimRight(layout.Truncate(strings.Join(parts, "  "), m.width-10), " ")
		if r == 0 {
			l = st.Header.Render(l)
		}
		out = append(out, strings.Repeat(" ", 10)+l)
	}
	if more > 0 {
		var names []string
		for _, u := range us[len(shown):] {
			names = append(names, u.Name)
		}
		out = append(out, strings.Repeat(" ", 10)+st.Faint.Render(layout.Truncate(fmt.Sprintf("… %d more: %s", more, strings.Join(names, ", ")), m.width-10)))
	}
	return out
}

// patterns are a user's key or channel patterns as the agent lists them
// ("*" for all).
func patterns(ps []string) string {
	if len(ps) == 0 {
		return "*"
	}
	return strings.Join(ps, " ")
}

// eventLines are the events, one a line, in columns: the time, the kind
// (uncoloured when it may not be the latest), the node and the message,
// cut with "…".
func (m Model) eventLines(evs []api.Event) []string {
	st := m.ctx.Styles
	var tw, kw, nw int
	for _, e := range evs {
		tw = max(tw, layout.Width(events.Time(e.At, m.ctx.Now)))
		kw, nw = max(kw, layout.Width(e.Kind)), max(nw, layout.Width(e.Node))
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		kind := layout.Pad(e.Kind, kw)
		if !m.ctx.Stale && m.eventsErr == nil {
			kind = st.Event(e.Kind).Render(kind)
		}
		s := st.Faint.Render(layout.Pad(events.Time(e.At, m.ctx.Now), tw)) + "  " + kind + "  "
		if nw > 0 {
			s += layout.Pad(e.Node, nw) + "  "
		}
		out[i] = layout.Truncate(s+strings.Join(strings.Fields(e.Message), " "), m.width-10)
	}
	return out
}

// panel describes the instance under the cursor in full, for what the
// table has no room for at this width.
func (m Model) panel() string {
	if len(m.db.Instances) == 0 {
		return ""
	}
	st := m.ctx.Styles
	in := m.db.Instances[m.table.Cursor()]
	parts := []string{fmt.Sprintf("%s %s:%d", in.ID, in.Host, in.Port)}
	if r := in.Replication; r != nil {
		parts[0] += " follows " + r.Primary
	}
	parts = append(parts, "offset "+strconv.FormatInt(in.Offset, 10))
	if observed(in.State) {
		parts = append(parts, load(in))
	}
	if in.PID > 0 {
		parts = append(parts, "pid "+strconv.Itoa(in.PID))
	}
	parts = append(parts, fmt.Sprintf("%d restarts", in.Restarts))
	if in.ServerVersion != "" {
		parts = append(parts, "redis-server "+in.ServerVersion)
	}
	parts = append(parts, sizing.FormatSize(in.MemoryUsedBytes)+" used")
	lines := strings.Split(st.Renderer.NewStyle().Width(m.width).Render(strings.Join(parts, " · ")), "\n")
	if len(lines) > panelLines {
		lines = lines[:panelLines]
	}
	for i, l := range lines {
		lines[i] = st.Faint.Render(strings.TrimRight(l, " "))
	}
	return strings.Join(lines, "\n")
}

// observed says the agent reads an instance's ops/s and clients in this
// state: only a running redis-server answers INFO, and otherwise the API
// says 0 for "unknown".
func observed(state string) bool { return state == api.StateRunning }

// load is an instance's ops/s and connected clients in full: "9870 ops/s
// · 156 clients".
func load(in api.Instance) string {
	clients := fmt.Sprintf("%d clients", in.Clients)
	if in.Clients == 1 {
		clients = "1 client"
	}
	return fmt.Sprintf("%d ops/s · %s", in.OpsPerSec, clients)
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
	ops, clients := st.Faint.Render("-"), st.Faint.Render("-")
	if observed(in.State) {
		ops, clients = uictx.FormatCount(in.OpsPerSec), uictx.FormatCount(int64(in.Clients))
	}
	link, sync, lag, lastIO := "-", "-", "-", "-"
	if r := in.Replication; r != nil {
		link, sync = r.LinkStatus, "no"
		if r.LinkStatus != "up" {
			link = st.Err.Render(r.LinkStatus)
		}
		if r.SyncInProgress {
			sync = st.Warn.Render("yes")
		}
		lag = "unknown"
		if r.LagBytes >= 0 {
			lag = sizing.FormatSize(r.LagBytes)
		}
		if r.LastIOSeconds >= 0 {
			lastIO = strconv.Itoa(r.LastIOSeconds) + "s"
		}
	}
	return []string{
		colID:       in.ID,
		colNode:     in.Node,
		colRole:     in.Role,
		colAddress:  fmt.Sprintf("%s:%d", in.Host, in.Port),
		colState:    state,
		colLink:     link,
		colSync:     sync,
		colLag:      lag,
		colLastIO:   lastIO,
		colOffset:   strconv.FormatInt(in.Offset, 10),
		colOps:      ops,
		colClients:  clients,
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
