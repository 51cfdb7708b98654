// Package createform is the form that creates a database: name, memory
// plan, flavor, version and, optionally, the node.
//
// It checks what it can before anything is sent, with the rules the agent
// applies: the name against raftstate.NameRE, the plan with
// sizing.ParseSize and the minimum plan, and the fit with sizing.Check
// against the nodes' last reported hardware and allocations. The agent
// stays the judge: whatever it answers is shown in the form, which stays
// open so the user can correct it.
package createform

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// SubmitMsg asks for the database the form describes.
type SubmitMsg struct{ Request api.CreateDatabaseRequest }

// CancelMsg asks to close the form. Pending says a create is still
// waiting for the agent: it goes on, only the form goes away.
type CancelMsg struct{ Pending bool }

type field int

const (
	fName field = iota
	fMemory
	fFlavor
	fVersion
	fNode
	fSubmit
	nFields
)

type choice struct{ value, label, detail string }

var flavors = []choice{
	{"aof", "aof", "AOF + RDB: every write logged, fsync every second"},
	{"rdb", "rdb", "RDB snapshots only: may lose the last minutes"},
	{"nordb", "nordb", "memory only: a restart empties it"},
}

// Model is the form.
type Model struct {
	ctx      *uictx.Context
	focus    field
	name     textinput.Model
	memory   textinput.Model
	flavor   int
	versions []choice
	version  int
	nodes    []api.Node
	node     int // 0 is "auto"
	existing map[string]bool
	// tried is set by a submit that failed validation: from then on every
	// error shows, not only those of fields already typed in.
	tried   bool
	pending bool
	since   time.Time
	apiErr  error
	width   int
	height  int
}

// New returns an empty form with the name focused.
func New(ctx *uictx.Context) Model {
	st := ctx.Styles
	m := Model{
		ctx: ctx,
		// No placeholders: without colours they would look typed in. The
		// hints under the fields say what to type.
		name:   components.NewInput(st, "", "", 40),
		memory: components.NewInput(st, "", "", 20),
	}
	m.name.Width, m.memory.Width = 40, 20
	m.name.Focus()
	m.SetVersions(nil, nil)
	return m
}

// SetSize sets the area the form is centred in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetVersions sets the versions offered: those installed, with the
// default selected. Until they are known (or when they cannot be read) the
// only choice is the agent's default.
func (m *Model) SetVersions(vs []api.Version, err error) {
	cur := ""
	if m.version < len(m.versions) {
		cur = m.versions[m.version].value
	}
	m.versions, m.version = nil, 0
	for _, v := range vs {
		if !v.Installed {
			continue
		}
		detail := v.Full
		if v.Status != "supported" {
			detail += ", " + string(v.Status)
		}
		if v.Default {
			detail += ", the default"
		}
		m.versions = append(m.versions, choice{v.Version, v.Version, strings.TrimPrefix(detail, ", ")})
		if v.Version == cur || (cur == "" && v.Default) {
			m.version = len(m.versions) - 1
		}
	}
	if len(m.versions) == 0 {
		def := choice{"", "default", "the newest version installed"}
		if err != nil {
			def.detail = "versions unknown: " + err.Error()
		}
		m.versions = []choice{def}
	}
}

// SetNodes sets the nodes offered and checked against.
func (m *Model) SetNodes(nodes []api.Node) {
	cur := m.nodeName()
	m.nodes = nodes
	m.node = 0
	for i, n := range nodes {
		if n.Name == cur {
			m.node = i + 1
		}
	}
}

// SetDatabases sets the names already taken.
func (m *Model) SetDatabases(dbs []api.Database) {
	m.existing = make(map[string]bool, len(dbs))
	for _, db := range dbs {
		m.existing[db.Name] = true
	}
}

// SetPending marks the create as sent at since.
func (m *Model) SetPending(since time.Time) { m.pending, m.since, m.apiErr = true, since, nil }

// SetResult records the agent's answer: nil, or the error to show.
func (m *Model) SetResult(err error) { m.pending, m.apiErr = false, err }

// Pending says a create is waiting for the agent.
func (m Model) Pending() bool { return m.pending }

// Name returns the name typed in.
func (m Model) Name() string { return strings.TrimSpace(m.name.Value()) }

func (m Model) nodeName() string {
	if m.node == 0 || m.node > len(m.nodes) {
		return ""
	}
	return m.nodes[m.node-1].Name
}

// Request returns the request the form describes.
func (m Model) Request() api.CreateDatabaseRequest {
	return api.CreateDatabaseRequest{
		Name:    m.Name(),
		Memory:  strings.TrimSpace(m.memory.Value()),
		Flavor:  flavors[m.flavor].value,
		Version: m.versions[m.version].value,
		Node:    m.nodeName(),
	}
}

// nameErr checks the name with the agent's rule.
func (m Model) nameErr() error {
	n := m.Name()
	switch {
	case n == "":
		return errors.New("a name is required")
	case !raftstate.NameRE.MatchString(n):
		return errors.New("lowercase letters, digits, hyphens; a letter first; 40 at most")
	case m.existing[n]:
		return fmt.Errorf("a database called %s already exists", n)
	}
	return nil
}

// plan parses the memory plan with the agent's rules.
func (m Model) plan() (int64, error) {
	s := strings.TrimSpace(m.memory.Value())
	if s == "" {
		return 0, errors.New("a memory plan is required, e.g. 256mb")
	}
	n, err := sizing.ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n < sizing.MinPlan {
		return 0, fmt.Errorf("%s is below the minimum plan of %s", sizing.FormatSize(n), sizing.FormatSize(sizing.MinPlan))
	}
	return n, nil
}

// fitErr runs the agent's fit check against the nodes as last reported:
// the chosen node, or with automatic placement every node that takes new
// databases (an error only when none fits). It says nothing while the data
// is stale or a node has not reported its hardware, rather than guess.
func (m Model) fitErr(plan int64) error {
	if m.ctx.Stale || len(m.nodes) == 0 {
		return nil
	}
	flavor := raftstate.Flavor(flavors[m.flavor].value)
	// check reports whether n's hardware is known, and if so whether the
	// plan fits there.
	check := func(n api.Node) (bool, error) {
		if n.Hardware.MemTotal == 0 {
			return false, nil
		}
		alloc := sizing.Allocation{Memory: n.AllocatedMemory, Disk: n.AllocatedDisk}
		return true, sizing.Check(n.Hardware, sizing.DefaultPolicy(n.Hardware), alloc, flavor, plan, n.Name)
	}
	if m.node > 0 {
		_, err := check(m.nodes[m.node-1])
		return err
	}
	var first error
	for _, n := range m.nodes {
		if n.Draining {
			continue
		}
		known, err := check(n)
		if !known || err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// problems returns every reason the form cannot be sent, by field.
func (m Model) problems() map[field]error {
	p := map[field]error{}
	if err := m.nameErr(); err != nil {
		p[fName] = err
	}
	plan, err := m.plan()
	if err != nil {
		p[fMemory] = err
	} else if err := m.fitErr(plan); err != nil {
		p[fNode] = err
	}
	return p
}

// Update edits the fields and submits or cancels.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	km := m.ctx.Keys
	if key.Matches(k, km.Back) {
		pending := m.pending
		return m, func() tea.Msg { return CancelMsg{Pending: pending} }
	}
	if m.pending {
		return m, nil
	}
	switch {
	case key.Matches(k, km.Submit), k.Type == tea.KeyEnter && m.focus == fSubmit:
		return m.submit()
	case k.Type == tea.KeyEnter, key.Matches(k, km.NextField):
		m.move(+1)
		return m, nil
	case key.Matches(k, km.PrevField):
		m.move(-1)
		return m, nil
	}
	switch m.focus {
	case fName, fMemory:
		in := &m.name
		if m.focus == fMemory {
			in = &m.memory
		}
		var cmd tea.Cmd
		*in, cmd = in.Update(msg)
		return m, cmd
	case fFlavor, fVersion, fNode:
		d := 0
		switch {
		case key.Matches(k, km.Left):
			d = -1
		case key.Matches(k, km.Right):
			d = +1
		}
		m.cycle(d)
	}
	return m, nil
}

func (m *Model) cycle(d int) {
	wrap := func(i, n int) int { return ((i+d)%n + n) % n }
	switch m.focus {
	case fFlavor:
		m.flavor = wrap(m.flavor, len(flavors))
	case fVersion:
		m.version = wrap(m.version, len(m.versions))
	case fNode:
		m.node = wrap(m.node, len(m.nodes)+1)
	}
}

func (m *Model) move(d int) {
	m.setFocus(field((int(m.focus) + d + int(nFields)) % int(nFields)))
}

func (m *Model) setFocus(f field) {
	m.focus = f
	m.name.Blur()
	m.memory.Blur()
	switch f {
	case fName:
		m.name.Focus()
	case fMemory:
		m.memory.Focus()
	}
}

func (m Model) submit() (Model, tea.Cmd) {
	p := m.problems()
	if len(p) > 0 {
		m.tried = true
		for f := fName; f < nFields; f++ {
			if p[f] != nil {
				m.setFocus(f)
				break
			}
		}
		return m, nil
	}
	req := m.Request()
	return m, func() tea.Msg { return SubmitMsg{Request: req} }
}

// View draws the form in a frame centred in its area.
func (m Model) View() string {
	st := m.ctx.Styles
	inner := min(m.width-4, 74)
	p := m.problems()
	var b strings.Builder
	b.WriteString(st.Title.Render("NEW DATABASE") + "\n\n")

	row := func(f field, label, value string) {
		mark := "  "
		lbl := st.Label.Render(layout.Pad(label, 9))
		if m.focus == f {
			mark = st.Focused.Render("▸ ")
			lbl = st.Focused.Render(layout.Pad(label, 9))
		}
		b.WriteString(mark + lbl + value + "\n")
	}
	// note shows an error once the field was typed in or a submit was
	// tried, or else a hint.
	note := func(f field, typed bool, hint string) {
		line := st.Faint.Render(layout.Truncate(hint, inner-11))
		if err := p[f]; err != nil && (typed || m.tried) {
			line = st.Err.Width(inner - 11).Render(err.Error())
		}
		for _, l := range strings.Split(line, "\n") {
			b.WriteString(strings.Repeat(" ", 11) + l + "\n")
		}
	}
	pick := func(c choice, focused bool) string {
		v := c.label
		if focused {
			v = "‹ " + v + " ›"
		}
		return layout.Pad(v, 12) + st.Faint.Render(c.detail)
	}

	row(fName, "Name", m.name.View())
	note(fName, m.name.Value() != "", "e.g. cache: lowercase letters, digits and hyphens")
	row(fMemory, "Memory", m.memory.View())
	hint := "e.g. 256mb or 2gb: the plan (maxmemory), at least " + sizing.FormatSize(sizing.MinPlan)
	if plan, err := m.plan(); err == nil {
		mem, disk := sizing.Need(raftstate.Flavor(flavors[m.flavor].value), plan)
		hint = fmt.Sprintf("= %s; needs %s memory, %s disk on its node", sizing.FormatSize(plan), sizing.FormatSize(mem), sizing.FormatSize(disk))
	}
	note(fMemory, m.memory.Value() != "", hint)
	row(fFlavor, "Flavor", pick(flavors[m.flavor], m.focus == fFlavor))
	row(fVersion, "Version", pick(m.versions[m.version], m.focus == fVersion))
	row(fNode, "Node", pick(m.nodeChoice(), m.focus == fNode))
	if err := p[fNode]; err != nil && p[fMemory] == nil {
		b.WriteString(st.Err.Width(inner).Render(err.Error()) + "\n")
	}
	b.WriteString("\n")
	button := "[ Create ]"
	if m.focus == fSubmit {
		b.WriteString(st.Focused.Render("▸ ") + st.Selected.Render(button) + "\n")
	} else {
		b.WriteString("  " + button + "\n")
	}

	switch {
	case m.pending:
		elapsed := max(0, m.ctx.Now.Sub(m.since))
		b.WriteString("\n" + st.Info.Width(inner).Render(fmt.Sprintf("Creating %s… %s. The agent answers once redis-server runs; esc hides this form, the creation goes on.", m.Name(), uictx.FormatAge(elapsed))))
	case m.apiErr != nil:
		b.WriteString("\n" + st.Err.Width(inner).Render("The agent refused: "+m.apiErr.Error()))
	}
	b.WriteString("\n" + st.Faint.Render("enter next · ←/→ choose · ctrl+s or enter on Create · esc cancel"))
	box := st.Dialog.Width(inner + 2).Render(b.String())
	return layout.Center(box, m.width, m.height)
}

func (m Model) nodeChoice() choice {
	if m.node == 0 || m.node > len(m.nodes) {
		return choice{"", "auto", "the node with the most free memory"}
	}
	n := m.nodes[m.node-1]
	detail := sizing.FormatSize(n.FreeMemory) + " free for plans"
	if n.Hardware.MemTotal == 0 {
		detail = "no hardware report yet"
	}
	if n.Draining {
		detail += ", draining"
	}
	return choice{n.Name, n.Name, detail}
}
