// Package createform is the form that creates a database: name, memory
// plan, flavor, version and, optionally, the node and a number of
// replicas. Made with NewLinked, it creates a linked replica of a database
// instead: only the name and, optionally, the node are asked, the rest is
// the source's.
//
// It checks what it can before anything is sent, with the rules the agent
// applies: the name against raftstate.NameRE, the plan with
// sizing.ParseSize and the minimum plan, the replicas as a whole number,
// and the fit with sizing.Check against the nodes' last reported hardware
// and allocations: the primary's node, and as many other nodes with room as
// there are replicas. The agent stays the judge: whatever it answers is
// shown in the form, which stays open so the user can correct it.
package createform

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	fReplicas
	fSubmit
)

// The fields of each form, in the order tab visits them. Replicas come
// after the node: the node places the primary, each replica goes on
// another. On a one-node cluster there is no other node, and the field is
// left out (see replicasOffered).
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
	if m.focus == fReplicas && !m.replicasOffered() {
		m.setFocus(fNode)
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

// Request returns the request the form describes. A linked replica's
// version, flavor and plan are left to the agent, which takes the
// source's.
func (m Model) Request() api.CreateDatabaseRequest {
	if m.source != nil {
		return api.CreateDatabaseRequest{Name: m.Name(), Node: m.nodeName(), Follows: m.source.Name}
	}
	n, _ := m.replicaCount()
	if !m.replicasOffered() {
		n = 0
	}
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
	if err != nil || n < 0 {
		return 0, fmt.Errorf("replicas must be a whole number, 0 or more, not %q", s)
	}
	return n, nil
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

// plan parses the memory plan with the agent's rules; a linked replica's
// is its source's.
func (m Model) plan() (int64, error) {
	if m.source != nil {
		return m.source.MemoryBytes, nil
	}
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

// take says whether node n can take one more instance of the plan, as
// the agent's placement decides: not draining, heard from lately, with
// room. known is false when n has not reported its hardware: then the form
// says nothing, rather than guess.
func (m Model) take(n api.Node, plan int64) (known bool, err error) {
	switch {
	case n.Draining:
		return true, fmt.Errorf("node %s is draining and takes no new databases", n.Name)
	case n.Hardware.MemTotal == 0:
		return false, nil
	case !n.Healthy:
		return true, fmt.Errorf("node %s has not reported for a while (no heartbeat); it cannot take new databases now", n.Name)
	}
	alloc := sizing.Allocation{Memory: n.AllocatedMemory, Disk: n.AllocatedDisk}
	flavor := raftstate.Flavor(flavors[m.flavor].value)
	return true, sizing.Check(n.Hardware, sizing.DefaultPolicy(n.Hardware), alloc, flavor, plan, n.Name)
}

// fitErr runs the agent's fit check for the primary against the nodes as
// last reported: the chosen node, or with automatic placement every node
// (an error only when none fits). It says nothing while the data is stale,
// rather than guess.
func (m Model) fitErr(plan int64) error {
	if m.ctx.Stale || len(m.nodes) == 0 {
		return nil
	}
	if m.node > 0 {
		_, err := m.take(m.nodes[m.node-1], plan)
		return err
	}
	var first error
	for _, n := range m.nodes {
		known, err := m.take(n, plan)
		if !known || err == nil {
			return nil
		}
		if first == nil && !n.Draining {
			first = err
		}
	}
	if first == nil {
		first = errors.New("no node can take new databases (all draining?); see the cluster view")
	}
	return first
}

// replicasErr checks that the primary and its replicas can each have a
// node of their own with room, as the agent places them.
func (m Model) replicasErr(plan int64, replicas int) error {
	if replicas == 0 || m.ctx.Stale || len(m.nodes) == 0 {
		return nil
	}
	noun := "replicas"
	if replicas == 1 {
		noun = "replica"
	}
	if need := replicas + 1; need > len(m.nodes) {
		return fmt.Errorf("%d %s need %d nodes (each instance on its own node); the cluster has %d: ask for fewer, or add nodes with redis-appliance cluster join",
			replicas, noun, need, len(m.nodes))
	}
	pin := m.nodeName()
	var room, without []string
	others := 0
	for _, n := range m.nodes {
		known, err := m.take(n, plan)
		switch {
		case !known || err == nil:
			room = append(room, n.Name)
			if n.Name != pin {
				others++
			}
		case n.Draining:
			without = append(without, n.Name+" is draining")
		case !n.Healthy:
			without = append(without, n.Name+" is not reporting")
		default:
			without = append(without, n.Name+" lacks room")
		}
	}
	need := replicas + 1
	if pin != "" {
		need = replicas
	}
	if others >= need {
		return nil
	}
	have := "no node has room"
	switch len(room) {
	case 0:
	case 1:
		have = "only " + room[0] + " has room"
	default:
		have = "only " + strings.Join(room, ", ") + " have room"
	}
	return fmt.Errorf("the primary and %d %s need %d nodes with room, one each; %s (%s): ask for fewer replicas or a smaller plan, or add a node",
		replicas, noun, replicas+1, have, strings.Join(without, ", "))
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
		return p
	}
	if err := m.fitErr(plan); err != nil {
		p[fNode] = err
	}
	if !m.replicasOffered() {
		return p
	}
	n, err := m.replicaCount()
	if err == nil {
		err = m.replicasErr(plan, n)
	}
	if err != nil {
		p[fReplicas] = err
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
	case fName, fMemory, fReplicas:
		in := &m.name
		switch m.focus {
		case fMemory:
			in = &m.memory
		case fReplicas:
			in = &m.replicas
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
	i := 0
	fields := m.activeFields()
	for j, f := range fields {
		if f == m.focus {
			i = j
		}
	}
	n := len(fields)
	m.setFocus(fields[((i+d)%n+n)%n])
}

// replicasOffered says the replicas field is in the form: not for a
// linked replica, and not on a cluster known to have one node, where a
// replica would have nowhere to go.
func (m Model) replicasOffered() bool {
	return m.source == nil && len(m.nodes) != 1
}

// activeFields are the fields tab visits now.
func (m Model) activeFields() []field {
	if m.replicasOffered() {
		return m.fields
	}
	return slices.DeleteFunc(slices.Clone(m.fields), func(f field) bool { return f == fReplicas })
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

func (m Model) submit() (Model, tea.Cmd) {
	p := m.problems()
	if len(p) > 0 {
		m.tried = true
		for _, f := range m.activeFields() {
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

// lines collects what the form draws. A spare line may go when the
// screen is too short for all: the highest spare first, the last of equals
// first, so that errors, the fields and the button stay in sight.
type lines struct {
	text  []string
	spare []int
}

// Spare levels: what goes first on a short screen.
const (
	keep     = 0
	keysHint = 1 // the line of keys at the bottom
	hintLine = 2 // a field's hint, not its error
	blank    = 3
)

func (l *lines) add(s string, spare int) {
	for _, t := range strings.Split(s, "\n") {
		l.text = append(l.text, t)
		l.spare = append(l.spare, spare)
	}
}

// fit drops spare lines until at most h are left.
func (l lines) fit(h int) string {
	text, spare := slices.Clone(l.text), slices.Clone(l.spare)
	for len(text) > h {
		drop := -1
		for i, s := range spare {
			if s > 0 && (drop < 0 || s >= spare[drop]) {
				drop = i
			}
		}
		if drop < 0 {
			break
		}
		text, spare = slices.Delete(text, drop, drop+1), slices.Delete(spare, drop, drop+1)
	}
	return strings.Join(text, "\n")
}

// View draws the form in a frame centred in its area.
func (m Model) View() string {
	st := m.ctx.Styles
	inner := min(m.width-4, 74)
	p := m.problems()
	var b lines
	if src := m.source; src != nil {
		b.add(st.Title.Render("NEW LINKED REPLICA OF "+src.Name), keep)
		b.add(st.Faint.Width(inner).Render(fmt.Sprintf("A database of its own (name, password, URL) with the source's %s, %s and %s plan. It follows %s and refuses writes until promoted.",
			src.Version, src.Flavor, sizing.FormatSize(src.MemoryBytes), src.Name)), keep)
	} else {
		b.add(st.Title.Render("NEW DATABASE"), keep)
	}
	b.add("", blank)

	row := func(f field, label, value string) {
		mark := "  "
		lbl := st.Label.Render(layout.Pad(label, 9))
		if m.focus == f {
			mark = st.Focused.Render("▸ ")
			lbl = st.Focused.Render(layout.Pad(label, 9))
		}
		b.add(mark+lbl+value, keep)
	}
	// note shows an error once the field was typed in or a submit was
	// tried, or else a hint.
	note := func(f field, typed bool, hint string) {
		if err := p[f]; err != nil && (typed || m.tried) {
			for _, l := range strings.Split(st.Err.Width(inner-11).Render(err.Error()), "\n") {
				b.add(strings.Repeat(" ", 11)+l, keep)
			}
			return
		}
		b.add(strings.Repeat(" ", 11)+st.Faint.Render(layout.Truncate(hint, inner-11)), hintLine)
	}
	pick := func(c choice, focused bool) string {
		v := c.label
		if focused {
			v = "‹ " + v + " ›"
		}
		return layout.Pad(v, 12) + st.Faint.Render(c.detail)
	}
	// wide shows an error under its row, the whole width: the agent's
	// sizing errors are long and say what to do.
	wide := func(err error) {
		if err != nil {
			b.add(st.Err.Width(inner).Render(err.Error()), keep)
		}
	}

	row(fName, "Name", m.name.View())
	example := "cache"
	if m.source != nil {
		example = m.source.Name + "-copy"
	}
	note(fName, m.name.Value() != "", "e.g. "+example+": lowercase letters, digits and hyphens")
	replicas, repErr := m.replicaCount()
	if !m.replicasOffered() {
		replicas = 0
	}
	if m.source == nil {
		row(fMemory, "Memory", m.memory.View())
		hint := "e.g. 256mb or 2gb: the plan (maxmemory), at least " + sizing.FormatSize(sizing.MinPlan)
		if plan, err := m.plan(); err == nil {
			mem, disk := sizing.Need(raftstate.Flavor(flavors[m.flavor].value), plan)
			hint = fmt.Sprintf("= %s; needs %s memory, %s disk on its node", sizing.FormatSize(plan), sizing.FormatSize(mem), sizing.FormatSize(disk))
			if repErr == nil && replicas > 0 {
				hint = fmt.Sprintf("= %s; each of %d nodes needs %s memory, %s disk", sizing.FormatSize(plan), replicas+1, sizing.FormatSize(mem), sizing.FormatSize(disk))
			}
		}
		note(fMemory, m.memory.Value() != "", hint)
		row(fFlavor, "Flavor", pick(flavors[m.flavor], m.focus == fFlavor))
		row(fVersion, "Version", pick(m.versions[m.version], m.focus == fVersion))
	}
	row(fNode, "Node", pick(m.nodeChoice(), m.focus == fNode))
	wide(p[fNode])
	switch {
	case m.source != nil:
	case !m.replicasOffered():
		b.add("  "+st.Faint.Render(layout.Pad("Replicas", 9)+"none: each replica needs another node; this cluster has one"), keep)
	default:
		hint := "none; or copies on other nodes, to fail over to"
		if repErr == nil && replicas > 0 {
			hint = "a read-only copy on another node"
			if replicas > 1 {
				hint = fmt.Sprintf("%d read-only copies, each on another node", replicas)
			}
		}
		row(fReplicas, "Replicas", layout.Pad(m.replicas.View(), 12)+st.Faint.Render(layout.Truncate(hint, inner-23)))
		if m.replicas.Value() != "" || m.tried {
			wide(p[fReplicas])
		}
	}
	b.add("", blank)
	button := "[ Create ]"
	if m.focus == fSubmit {
		b.add(st.Focused.Render("▸ ")+st.Selected.Render(button), keep)
	} else {
		b.add("  "+button, keep)
	}

	switch {
	case m.pending:
		elapsed := max(0, m.ctx.Now.Sub(m.since))
		b.add("", blank)
		b.add(st.Info.Width(inner).Render(fmt.Sprintf("Creating %s… %s. The agent answers once redis-server runs; esc hides this form, the creation goes on.", m.Name(), uictx.FormatAge(elapsed))), keep)
	case m.apiErr != nil:
		b.add("", blank)
		b.add(st.Err.Width(inner).Render("The agent refused: "+m.apiErr.Error()), keep)
	default:
		b.add("", blank)
	}
	b.add(st.Faint.Render("enter next · ←/→ choose · ctrl+s or enter on Create · esc cancel"), keysHint)
	// The frame takes two lines.
	box := st.Dialog.Width(inner + 2).Render(b.fit(m.height - 2))
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
