// Package createform is the form that creates a database: name, memory
// plan, flavor, version and, optionally, the node and a number of
// replicas. Made with NewLinked, it creates a linked replica of a database
// instead: only the name and, optionally, the node are asked, the rest is
// the source's.
//
// The form decides none of the agent's rules: whether the name is allowed
// or taken, the plan readable and big enough, the version installed, the
// replicas placeable, each instance's fit on its node. Each is decided once,
// by the agent, and the form asks it (ValidateMsg, answered by the agent's
// validate-only request) when a field is left and before a create, then
// shows the answer as it is: the refusal, written for people, or where
// each instance would go and what it needs. Asking when a field is left,
// not on every key, keeps typing from sending a request per key; asking
// again before a create means a refusal seen earlier never blocks a create
// the agent would now take. The create's own answer is what counts in the
// end, and is shown in the form, which stays open to be corrected.
package createform

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/source"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// SubmitMsg asks for the database the form describes.
type SubmitMsg struct{ Request api.CreateDatabaseRequest }

// ValidateMsg asks the agent whether it would create Request, and where;
// its answer comes back to Update as a source.ValidationMsg.
type ValidateMsg struct{ Request api.CreateDatabaseRequest }

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
	fReplicas
	fSubmit
)

// The fields of each form, in the order tab visits them. Replicas come
// after the node: the node places the primary, each replica goes on
// another.
var (
	databaseFields = []field{fName, fMemory, fFlavor, fVersion, fNode, fReplicas, fSubmit}
	linkedFields   = []field{fName, fNode, fSubmit}
)

type choice struct{ value, label, detail string }

var flavors = []choice{
	{"aof", "aof", "AOF + RDB: every write logged, fsync every second"},
	{"rdb", "rdb", "RDB snapshots only: may lose the last minutes"},
	{"nordb", "nordb", "memory only: a restart empties it"},
}

// roleReplica is the role of a replica instance in the API.
const roleReplica = "replica"

// check is a request the agent was asked to validate, and its answer.
type check struct {
	asked bool
	req   api.CreateDatabaseRequest
	// done says the answer came: plan, or err.
	done bool
	plan api.CreatePlan
	err  error
}

// settled says the answer holds for its request: in flight, accepted or
// refused. An agent that could not answer is asked again.
func (c check) settled(req api.CreateDatabaseRequest) bool {
	return c.asked && c.req == req && (!c.done || c.err == nil || source.Refused(c.err))
}

// Model is the form.
type Model struct {
	ctx      *uictx.Context
	focus    field
	fields   []field
	name     textinput.Model
	memory   textinput.Model
	replicas textinput.Model
	// source is the database a linked replica follows; nil for a new
	// database.
	source   *api.Database
	flavor   int
	versions []choice
	version  int
	nodes    []api.Node
	node     int // 0 is "auto"
	// check is the last validation asked of the agent; submitting says a
	// create waits for its answer.
	check      check
	submitting bool
	// pending says a create was sent at since; sent is its request, and
	// apiErr the agent's refusal of it.
	pending bool
	since   time.Time
	sent    api.CreateDatabaseRequest
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
		fields:   databaseFields,
		name:     components.NewInput(st, "", "", 40),
		memory:   components.NewInput(st, "", "", 20),
		replicas: components.NewInput(st, "", "", 3),
	}
	m.name.Width, m.memory.Width, m.replicas.Width = 40, 20, 4
	m.name.Focus()
	m.SetVersions(nil, nil)
	return m
}

// NewLinked returns the form of a linked replica of src: a database of
// its own, with src's version, flavor and plan, that follows src.
func NewLinked(ctx *uictx.Context, src api.Database) Model {
	m := New(ctx)
	m.fields, m.source = linkedFields, &src
	for i, f := range flavors {
		if f.value == src.Flavor {
			m.flavor = i
		}
	}
	return m
}

// Source returns the database a linked replica follows, or "".
func (m Model) Source() string {
	if m.source == nil {
		return ""
	}
	return m.source.Name
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
			detail += ", " + v.Status
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

// SetNodes sets the nodes offered for the primary.
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

// SetPending marks the create as sent at since.
func (m *Model) SetPending(since time.Time) {
	m.pending, m.since, m.sent, m.apiErr = true, since, m.Request(), nil
}

// SetResult records the agent's answer: nil, or the error to show. A
// refusal stands for the request's check too: the create is the later
// answer, so a submit asks the agent again before sending it again.
func (m *Model) SetResult(err error) {
	m.pending, m.apiErr = false, err
	if source.Refused(err) && m.check.req == m.sent {
		m.check.done, m.check.err = true, err
	}
}

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

// Request returns the request the form describes. A linked replica's
// version, flavor and plan are left to the agent, which takes the
// source's. Replicas that are not a whole number count as none here; the
// form never sends such a request (see replicasErr).
func (m Model) Request() api.CreateDatabaseRequest {
	if m.source != nil {
		return api.CreateDatabaseRequest{Name: m.Name(), Node: m.nodeName(), Follows: m.source.Name}
	}
	n, _ := m.replicaCount()
	return api.CreateDatabaseRequest{
		Name:     m.Name(),
		Memory:   strings.TrimSpace(m.memory.Value()),
		Flavor:   flavors[m.flavor].value,
		Version:  m.versions[m.version].value,
		Node:     m.nodeName(),
		Replicas: n,
	}
}

// replicaCount reads the replicas field: empty is none.
func (m Model) replicaCount() (int, error) {
	s := strings.TrimSpace(m.replicas.Value())
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("replicas must be a whole number, not %q", s)
	}
	return n, nil
}

// replicasErr is the one check the form makes itself, and it is not one
// of the agent's rules: the request carries the replicas as a number, so
// text that is not one cannot be sent, to be validated or created. How
// many replicas are allowed (0 or more, one node each) is the agent's to
// say.
func (m Model) replicasErr() error {
	if m.source != nil {
		return nil
	}
	_, err := m.replicaCount()
	return err
}

// complete says the form has what a request needs before the agent is
// worth asking while the user fills it in: a name and, unless the plan is
// the source's, a plan. It refuses nothing (a submit asks the agent
// whatever is typed); it keeps the agent's "a memory plan is required"
// from showing before the user reached the field.
func (m Model) complete() bool {
	return m.Name() != "" && (m.source != nil || strings.TrimSpace(m.memory.Value()) != "")
}

// validate asks the agent about the request the form describes, unless
// its answer is on the way or holds already. The answer to come is newer
// than a create's refusal, which it replaces on screen.
func (m *Model) validate() tea.Cmd {
	req := m.Request()
	if m.check.settled(req) {
		return nil
	}
	m.check, m.submitting, m.apiErr = check{asked: true, req: req}, false, nil
	return func() tea.Msg { return ValidateMsg{Request: req} }
}

// Update edits the fields, asks the agent about them, and submits or
// cancels.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case source.ValidationMsg:
		return m.onValidation(msg)
	case tea.KeyMsg:
		return m.onKey(msg)
	}
	return m, nil
}

// onValidation records the agent's answer to the last request asked, and
// sends a create that waited for it unless the agent refused it. An
// agent that could not answer does not hold the create back: the create
// gets the agent's own answer.
func (m Model) onValidation(msg source.ValidationMsg) (Model, tea.Cmd) {
	if !m.check.asked || m.check.done || msg.Request != m.check.req {
		// The answer to a question since replaced by another.
		return m, nil
	}
	m.check.done, m.check.plan, m.check.err = true, msg.Plan, msg.Err
	if !m.submitting || m.pending || msg.Request != m.Request() || source.Refused(msg.Err) {
		m.submitting = false
		return m, nil
	}
	return m.send(msg.Request)
}

func (m Model) onKey(k tea.KeyMsg) (Model, tea.Cmd) {
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
		return m.move(+1)
	case key.Matches(k, km.PrevField):
		return m.move(-1)
	}
	switch m.focus {
	case fName, fMemory, fReplicas:
		in := &m.name
		switch m.focus {
		case fMemory:
			in = &m.memory
		case fReplicas:
			in = &m.replicas
		}
		var cmd tea.Cmd
		*in, cmd = in.Update(k)
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

// move goes to the next or previous field; leaving a field is when the
// agent is asked about what it now holds.
func (m Model) move(d int) (Model, tea.Cmd) {
	i := 0
	for j, f := range m.fields {
		if f == m.focus {
			i = j
		}
	}
	n := len(m.fields)
	m.setFocus(m.fields[((i+d)%n+n)%n])
	if !m.complete() || m.replicasErr() != nil {
		return m, nil
	}
	return m, m.validate()
}

func (m *Model) setFocus(f field) {
	m.focus = f
	m.name.Blur()
	m.memory.Blur()
	m.replicas.Blur()
	switch f {
	case fName:
		m.name.Focus()
	case fMemory:
		m.memory.Focus()
	case fReplicas:
		m.replicas.Focus()
	}
}

// submit sends the create at once if the agent accepted this very
// request; otherwise it asks the agent first (again, if it refused it
// before: the cluster may have changed since) and sends it unless the
// agent refuses.
func (m Model) submit() (Model, tea.Cmd) {
	if m.replicasErr() != nil {
		m.setFocus(fReplicas)
		return m, nil
	}
	req := m.Request()
	if c := m.check; c.asked && c.req == req && c.done && c.err == nil {
		return m.send(req)
	}
	if c := m.check; c.asked && c.req == req && !c.done {
		m.submitting = true
		return m, nil
	}
	// Forget the answer, so that validate asks again: a refusal may no
	// longer hold, and is not for the form to keep deciding on.
	m.check.asked = false
	cmd := m.validate()
	m.submitting = true
	return m, cmd
}

// send submits req, and marks the form pending at once so that a second
// key cannot send it twice before the root model records it.
func (m Model) send(req api.CreateDatabaseRequest) (Model, tea.Cmd) {
	m.submitting = false
	m.SetPending(m.ctx.Now)
	return m, func() tea.Msg { return SubmitMsg{Request: req} }
}

// View draws the form in a frame centred in its area.
func (m Model) View() string {
	st := m.ctx.Styles
	inner := min(m.width-4, 74)
	var b components.Lines
	if src := m.source; src != nil {
		b.Add(st.Title.Render("NEW LINKED REPLICA OF "+src.Name), components.Keep)
		b.Add(st.Faint.Width(inner).Render(fmt.Sprintf("A database of its own (name, password, URL) with the source's %s, %s and %s plan. It follows %s and refuses writes until promoted.",
			src.Version, src.Flavor, sizing.FormatSize(src.MemoryBytes), src.Name)), components.Keep)
	} else {
		b.Add(st.Title.Render("NEW DATABASE"), components.Keep)
	}
	b.Add("", components.Blank)

	row := func(f field, label, value string) {
		mark := "  "
		lbl := st.Label.Render(layout.Pad(label, 9))
		if m.focus == f {
			mark = st.Focused.Render("▸ ")
			lbl = st.Focused.Render(layout.Pad(label, 9))
		}
		b.Add(mark+lbl+value, components.Keep)
	}
	hint := func(text string) {
		b.Add(strings.Repeat(" ", 11)+st.Faint.Render(layout.Truncate(text, inner-11)), components.HintLine)
	}
	pick := func(c choice, focused bool) string {
		v := c.label
		if focused {
			v = "‹ " + v + " ›"
		}
		return layout.Pad(v, 12) + st.Faint.Render(c.detail)
	}

	row(fName, "Name", m.name.View())
	example := "cache"
	if m.source != nil {
		example = m.source.Name + "-copy"
	}
	hint("e.g. " + example + ": lowercase letters, digits and hyphens")
	if m.source == nil {
		row(fMemory, "Memory", m.memory.View())
		hint("e.g. 256mb or 2gb: the plan (maxmemory)")
		row(fFlavor, "Flavor", pick(flavors[m.flavor], m.focus == fFlavor))
		row(fVersion, "Version", pick(m.versions[m.version], m.focus == fVersion))
	}
	row(fNode, "Node", pick(m.nodeChoice(), m.focus == fNode))
	if m.source == nil {
		replicas, err := m.replicaCount()
		text := "none; or copies on other nodes, to fail over to"
		switch {
		case err != nil:
		case replicas == 1:
			text = "a read-only copy on another node"
		case replicas > 1:
			text = fmt.Sprintf("%d read-only copies, each on another node", replicas)
		}
		row(fReplicas, "Replicas", layout.Pad(m.replicas.View(), 12)+st.Faint.Render(layout.Truncate(text, inner-23)))
		if err != nil {
			b.Add(st.Err.Width(inner).Render(err.Error()), components.Keep)
		}
	}
	b.Add("", components.Blank)
	button := "[ Create ]"
	if m.focus == fSubmit {
		b.Add(st.Focused.Render("▸ ")+st.Selected.Render(button), components.Keep)
	} else {
		b.Add("  "+button, components.Keep)
	}
	b.Add("", components.Blank)
	m.answer(&b, inner)
	b.Add(st.Faint.Render("enter next · ←/→ choose · ctrl+s or enter on Create · esc cancel"), components.KeysLine)
	// The frame takes two lines.
	box := st.Dialog.Width(inner + 2).Render(b.Fit(m.height - 2))
	return layout.Center(box, m.width, m.height)
}

// answer draws what the agent said about the request on screen, under
// the button: the create under way or refused, or else the check of the
// request as it stands. An answer about another request is not shown: it
// would pass for this one's.
func (m Model) answer(b *components.Lines, inner int) {
	st := m.ctx.Styles
	wrap := func(s lipgloss.Style, text string, spare int) { b.Add(s.Width(inner).Render(text), spare) }
	req := m.Request()
	c := m.check
	switch {
	case m.pending:
		elapsed := max(0, m.ctx.Now.Sub(m.since))
		wrap(st.Info, fmt.Sprintf("Creating %s… %s. The agent answers once redis-server runs; esc hides this form, the creation goes on.", m.Name(), uictx.FormatAge(elapsed)), components.Keep)
	case m.apiErr != nil && req == m.sent:
		wrap(st.Err, "The agent refused: "+m.apiErr.Error(), components.Keep)
	case m.replicasErr() != nil:
		// Nothing can be asked until the replicas are a number, and the
		// error under the field says so; an answer would be about none.
	case !c.asked || c.req != req:
		if m.complete() {
			wrap(st.Faint, "The agent checks the request when you leave a field.", components.HintLine)
		} else {
			wrap(st.Faint, "The agent checks the request once it has "+m.wanted()+".", components.HintLine)
		}
	case !c.done && m.submitting:
		wrap(st.Info, "Asking the agent, then creating "+req.Name+"…", components.Keep)
	case !c.done:
		wrap(st.Faint, "Asking the agent…", components.Keep)
	case c.err == nil:
		where, needs := placement(c.plan)
		line := "✓ " + where + " · " + needs
		if layout.Width(line) > inner {
			// Broken where the sense breaks, not wherever the width ends.
			line = "✓ " + where + "\n  " + needs
		}
		wrap(st.OK, line, components.Keep)
	case source.Refused(c.err):
		wrap(st.Err, "The agent would refuse: "+c.err.Error(), components.Keep)
	default:
		wrap(st.Warn, "Not checked: "+c.err.Error()+". Create still sends it; the agent decides then.", components.Keep)
	}
}

// wanted says what the form lacks before the agent is asked.
func (m Model) wanted() string {
	if m.source != nil {
		return "a name"
	}
	return "a name and a plan"
}

// placement says where the agent would put each instance ("primary on n2
// :6401, replicas on n1, n3") and what each takes on its node ("each needs
// 1.3 GiB memory, 2.5 GiB disk").
func placement(p api.CreatePlan) (where, needs string) {
	var primary api.Instance
	var replicas []string
	for _, in := range p.Database.Instances {
		if in.Role == roleReplica {
			replicas = append(replicas, in.Node)
		} else {
			primary = in
		}
	}
	where, needs = fmt.Sprintf("on %s :%d", primary.Node, primary.Port), "needs"
	if len(replicas) > 0 {
		noun := "replica"
		if len(replicas) > 1 {
			noun = "replicas"
		}
		where = fmt.Sprintf("primary on %s :%d, %s on %s", primary.Node, primary.Port, noun, strings.Join(replicas, ", "))
		needs = "each needs"
	}
	return where, fmt.Sprintf("%s %s memory, %s disk", needs, sizing.FormatSize(p.NeedMemory), sizing.FormatSize(p.NeedDisk))
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
