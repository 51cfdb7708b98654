// Package events is the events view: what the cluster recorded (failures
// detected, promotions, refusals to fail over, fences and un-fences, nodes
// lost and back, switchovers), newest first, with the time, the kind
// (coloured by severity), the database, the node and the message, filtered
// with `/`. The message is cut to the width of its column; the event under
// the cursor is shown whole under the list.
//
// The agent lists the events oldest first and keeps the last 1000; they
// come with every refresh. New events are added at the top. While the
// cursor is on the newest event the view follows the feed, as tail -f
// does; once the operator moves down, the cursor stays on its event and
// the rows on screen stay where they are, however many events arrive, and
// the title counts the new ones above.
package events

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/components/table"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// Column indexes.
const (
	colTime = iota
	colKind
	colDatabase
	colNode
	colMessage
)

// At 80 columns every column fits and the message gets about 25 cells; at
// 60 the node goes first (the line under the list has it).
var columns = []table.Column{
	colTime:     {Title: "TIME (UTC)", Width: 11},
	colKind:     {Title: "KIND", Width: 16},
	colDatabase: {Title: "DATABASE", Width: 12, Drop: 1},
	colNode:     {Title: "NODE", Width: 6, Drop: 2},
	colMessage:  {Title: "MESSAGE", Width: 12, Flex: true},
}

// Lines kept at most for an error, and for the event under the cursor.
const (
	errLines    = 2
	detailLines = 3
)

// Model is the events view.
type Model struct {
	ctx *uictx.Context
	// all is every event, oldest first, as the agent lists them.
	all []api.Event
	// rows are indexes into all, newest first, filtered.
	rows []int
	// loaded says the events were read at least once; at is when the
	// events on screen were asked for; err is why the last read failed.
	loaded bool
	at     time.Time
	err    error
	// newAbove counts the events that arrived above the window while
	// the cursor stayed on an older one.
	newAbove int
	table    table.Model
	filter   components.Filter
	width    int
	height   int
}

// New returns the events view, empty until SetEvents or SetError.
func New(ctx *uictx.Context) Model {
	m := Model{
		ctx:    ctx,
		table:  table.New(ctx, columns),
		filter: components.NewFilter(ctx.Styles, "kind, database, node or message"),
	}
	return m
}

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, h
	m.layout()
}

// layout gives the table what the title, the error, the event under the
// cursor and the filter line leave.
func (m *Model) layout() {
	m.table.SetSize(m.width, m.height-1-len(m.errorLines())-m.detailRoom()-1)
}

// detailRoom is the lines under the list for the event under the cursor:
// its time in full and its message on two lines, or only the message on
// a screen so short that the rows need the room more.
func (m Model) detailRoom() int {
	if m.height-1-len(m.errorLines())-1-1-detailLines < 3 {
		return 1
	}
	return detailLines
}

// SetEvents replaces the events with a new read, asked for at at, oldest
// first. The cursor stays on its event (see the package comment).
func (m *Model) SetEvents(evs []api.Event, at time.Time) {
	cursor := m.table.Cursor()
	from, _ := m.table.Window()
	sel, selIdx, ok := m.selected()
	m.all, m.at, m.err, m.loaded = evs, at, nil, true
	m.recompute()
	m.layout()
	if !ok || cursor == 0 {
		m.table.SetCursor(0)
		m.newAbove = 0
		return
	}
	r := len(m.rows) - 1
	if i := find(evs, sel, selIdx); i >= 0 {
		// rows is in descending order of index.
		r = sort.Search(len(m.rows), func(k int) bool { return m.rows[k] <= i })
	}
	m.newAbove += max(0, r-cursor)
	m.table.Pin(r, cursor-from)
	m.seen()
}

// find returns the index in evs of the event e, which was at hint: events
// are only added after it or dropped before it, so it is at hint or
// before. -1 says it was dropped.
func find(evs []api.Event, e api.Event, hint int) int {
	for i := min(hint, len(evs)-1); i >= 0; i-- {
		if same(evs[i], e) {
			return i
		}
	}
	return -1
}

func same(a, b api.Event) bool {
	return a.At.Equal(b.At) && a.Kind == b.Kind && a.Database == b.Database && a.Node == b.Node && a.Message == b.Message
}

// SetError records that the events could not be read; those on screen
// stay, marked with their age.
func (m *Model) SetError(err error) {
	m.err = err
	m.layout()
}

// Loaded says the events were read at least once.
func (m Model) Loaded() bool { return m.loaded }

// Err returns why the last read failed, or nil.
func (m Model) Err() error { return m.err }

// Events returns every event, oldest first (unfiltered).
func (m Model) Events() []api.Event { return m.all }

// Selected returns the event under the cursor.
func (m Model) Selected() (api.Event, bool) {
	e, _, ok := m.selected()
	return e, ok
}

func (m Model) selected() (api.Event, int, bool) {
	if len(m.rows) == 0 {
		return api.Event{}, 0, false
	}
	i := m.rows[m.table.Cursor()]
	return m.all[i], i, true
}

// NewAbove returns how many events arrived above the window while the
// cursor stayed on an older one.
func (m Model) NewAbove() int { return m.newAbove }

// Capturing says the filter has the keyboard: keys are text, not commands.
func (m Model) Capturing() bool { return m.filter.Active() }

// Filter returns the filter text.
func (m Model) Filter() string { return m.filter.Value() }

// Update handles the filter and list keys.
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
			m.refilter()
		case components.FilterEdited:
			m.recompute()
			m.table.SetCursor(0)
			m.seen()
		}
		return m, cmd
	}
	switch {
	case key.Matches(k, km.Filter):
		return m, m.filter.Start()
	case key.Matches(k, km.Back) && m.filter.Value() != "":
		m.filter.Clear()
		m.refilter()
		return m, nil
	}
	var cmd tea.Cmd
	m.table, cmd = m.table.Update(msg)
	m.seen()
	return m, cmd
}

// refilter recomputes the rows and keeps the cursor on its event.
func (m *Model) refilter() {
	_, i, ok := m.selected()
	m.recompute()
	if ok {
		m.table.SetCursor(sort.Search(len(m.rows), func(k int) bool { return m.rows[k] <= i }))
	}
	m.seen()
}

// seen forgets the new events once the top of the list is on screen.
func (m *Model) seen() {
	if from, _ := m.table.Window(); from == 0 {
		m.newAbove = 0
	}
}

// recompute filters, newest first.
func (m *Model) recompute() {
	terms := strings.Fields(strings.ToLower(m.filter.Value()))
	// A new slice: copies of the model made by Update must not share it.
	rows := make([]int, 0, len(m.all))
	for i := len(m.all) - 1; i >= 0; i-- {
		if matches(m.all[i], terms) {
			rows = append(rows, i)
		}
	}
	m.rows = rows
	m.table.SetRows(len(rows))
}

// matches says whether every term is found in the event's kind, database,
// node or message.
func matches(e api.Event, terms []string) bool {
	if len(terms) == 0 {
		return true
	}
	text := strings.ToLower(e.Kind + "\x00" + e.Database + "\x00" + e.Node + "\x00" + e.Message)
	for _, t := range terms {
		if !strings.Contains(text, t) {
			return false
		}
	}
	return true
}

// Time is an event's time in a list: the time of day for an event of the
// same day as now, the date and the minute for an older one; UTC, as
// every time the UI shows.
func Time(at, now time.Time) string {
	at, now = at.UTC(), now.UTC()
	if y, m, d := at.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return at.Format("15:04:05")
	}
	return at.Format("01-02 15:04")
}

// stale says the events on screen may not be the latest: the last read
// failed, or the whole refresh stopped answering.
func (m Model) stale() bool { return m.err != nil || m.ctx.Stale }

// View draws the title line, the error, the list, the event under the
// cursor and the filter line.
func (m Model) View() string {
	st := m.ctx.Styles
	title := st.Title.Render("EVENTS")
	var right []string
	if m.loaded {
		if len(m.rows) != len(m.all) {
			title += fmt.Sprintf(" %d of %d", len(m.rows), len(m.all))
		} else {
			title += " " + strconv.Itoa(len(m.all))
		}
		title += st.Faint.Render(" · newest first")
		if m.newAbove > 0 {
			right = append(right, st.Info.Render(fmt.Sprintf("↑ %d new", m.newAbove)))
		}
		if m.stale() {
			right = append(right, st.Warn.Render("as of "+uictx.FormatAge(m.ctx.Now.Sub(m.at))+" ago"))
		}
		if p := m.table.Position(); p != "" {
			right = append(right, p)
		}
	}
	lines := []string{layout.Spread(title, strings.Join(right, "  "), m.width)}
	lines = append(lines, m.errorLines()...)
	if !m.loaded {
		msg := "Waiting for the agent…"
		if m.err != nil {
			msg = fmt.Sprintf("The events show once the agent lists them; retrying every %s.", m.ctx.Refresh)
		}
		lines = append(lines, "", st.Faint.Render(msg))
		return layout.Fit(strings.Join(lines, "\n"), m.width, m.height)
	}
	empty := "No events yet. Failures, failovers, fences and lost nodes are listed here."
	if len(m.all) > 0 {
		empty = fmt.Sprintf("No event matches %q. Press esc to clear the filter.", m.filter.Value())
	}
	list := m.table.View(m.cells, empty)
	out := layout.Fit(strings.Join(lines, "\n")+"\n"+list, m.width, m.height-1-m.detailRoom())
	out += "\n" + strings.Join(m.detailView(), "\n")
	// The filter line sits at the bottom, where the eye looks for input.
	return out + "\n" + m.filter.View(st)
}

// errorLines says why the events could not be read, wrapped, at most
// errLines lines.
func (m Model) errorLines() []string {
	if m.err == nil || m.width <= 0 {
		return nil
	}
	return wrap(m.ctx, "cannot read the events: "+m.err.Error(), m.width, errLines, m.ctx.Styles.Err.Render)
}

// detailView is exactly detailRoom lines: the event under the cursor, its
// time in full, and its message whole (cut only past two lines).
func (m Model) detailView() []string {
	room := m.detailRoom()
	out := make([]string, room)
	e, ok := m.Selected()
	if !ok {
		return out
	}
	st := m.ctx.Styles
	msg := strings.Join(strings.Fields(e.Message), " ")
	if room < detailLines {
		out[0] = layout.Truncate(msg, m.width)
		return out
	}
	kind := e.Kind
	if !m.stale() {
		kind = st.Event(e.Kind).Render(kind)
	}
	// What it is about before how long ago: a narrow screen cuts the end.
	head := st.Faint.Render(e.At.UTC().Format("2006-01-02 15:04:05.000 UTC")+" · ") + kind
	for _, s := range []string{e.Database, e.Node} {
		if s != "" {
			head += st.Faint.Render(" · ") + s
		}
	}
	head += st.Faint.Render(" · " + uictx.FormatAge(m.ctx.Now.Sub(e.At)) + " ago")
	out[0] = layout.Truncate(head, m.width)
	copy(out[1:], wrap(m.ctx, msg, m.width, room-1, nil))
	return out
}

// wrap breaks s into lines of width w, at most n of them, the last cut
// with "…" if s is longer; style, if set, draws each line.
func wrap(ctx *uictx.Context, s string, w, n int, style func(...string) string) []string {
	lines := strings.Split(ctx.Styles.Renderer.NewStyle().Width(w).Render(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
		lines[n-1] = layout.Truncate(strings.TrimRight(lines[n-1], " ")+" …", w)
	}
	for i, l := range lines {
		l = strings.TrimRight(l, " ")
		if style != nil {
			l = style(l)
		}
		lines[i] = l
	}
	return lines
}

func (m Model) cells(i int) []string {
	st := m.ctx.Styles
	e := m.all[m.rows[i]]
	kind := e.Kind
	if !m.stale() {
		kind = st.Event(e.Kind).Render(kind)
	}
	return []string{
		colTime:     Time(e.At, m.ctx.Now),
		colKind:     kind,
		colDatabase: orDash(e.Database),
		colNode:     orDash(e.Node),
		// One line: the table cuts it with "…" to the column.
		colMessage: strings.Join(strings.Fields(e.Message), " "),
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
