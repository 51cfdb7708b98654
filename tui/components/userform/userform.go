// Package userform is the form that adds an application user to a
// database: its name, its role (read, write or admin) and, optionally, the
// key and channel patterns it may touch.
//
// Like the database form, it decides none of the agent's rules (which
// names are usable, which patterns Redis takes): the agent checks the
// request before it writes anything, and its refusal is shown in the form,
// which stays open to be corrected. The form never sees a password: the
// agent's answer to a create goes to the root, which shows it once.
package userform

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// SubmitMsg asks for the user the form describes, on Database.
type SubmitMsg struct {
	Database string
	Request  api.CreateUserRequest
}

// CancelMsg asks to close the form. Pending says a create is still
// waiting for the agent: it goes on, only the form goes away.
type CancelMsg struct{ Pending bool }

type field int

// The fields, in the order tab visits them.
const (
	fName field = iota
	fRole
	fKeys
	fChannels
	fSubmit
	nFields
)

// Roles are the roles a user can have, least first, with what each may
// do as the agent maps them to ACL rules (see docs/security.md).
var Roles = []struct{ Value, Detail string }{
	{"read", "reads only (+@read)"},
	{"write", "reads and writes (+@all -@dangerous)"},
	{"admin", "write, and what an owner may need (FLUSHDB…)"},
}

// Model is the form.
type Model struct {
	ctx      *uictx.Context
	db       string
	focus    field
	name     textinput.Model
	keys     textinput.Model
	channels textinput.Model
	// role indexes Roles; read, the least, to begin with.
	role int
	// pending says a create was sent at since; sent is its request, and
	// apiErr the agent's refusal of it.
	pending bool
	since   time.Time
	sent    api.CreateUserRequest
	apiErr  error
	width   int
	height  int
}

// New returns an empty form for a user of database db, the name focused.
func New(ctx *uictx.Context, db string) Model {
	st := ctx.Styles
	// No placeholders: without colours they would look typed in. The
	// hints under the fields say what to type.
	m := Model{
		ctx:      ctx,
		db:       db,
		name:     components.NewInput(st, "", "", 64),
		keys:     components.NewInput(st, "", "", 512),
		channels: components.NewInput(st, "", "", 512),
	}
	m.name.Width, m.keys.Width, m.channels.Width = 40, 40, 40
	m.name.Focus()
	return m
}

// Database returns the database the user is for.
func (m Model) Database() string { return m.db }

// Name returns the name of the user being created, or as typed.
func (m Model) Name() string {
	if m.pending {
		return m.sent.Name
	}
	return strings.TrimSpace(m.name.Value())
}

// Pending says a create was sent and the agent has not answered.
func (m Model) Pending() bool { return m.pending }

// SetSize sets the area the form is centred in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// SetPending says the create was sent at now.
func (m *Model) SetPending(now time.Time) {
	m.pending, m.since, m.sent, m.apiErr = true, now, m.Request(), nil
}

// SetResult takes the agent's refusal of the create: the form shows it
// and stays open, with what was typed, to be corrected.
func (m *Model) SetResult(err error) {
	m.pending, m.apiErr = false, err
}

// Request returns the user the form describes. Patterns are separated by
// spaces (Redis patterns take none); none means every key or channel.
func (m Model) Request() api.CreateUserRequest {
	return api.CreateUserRequest{
		Name:     strings.TrimSpace(m.name.Value()),
		Role:     Roles[m.role].Value,
		Keys:     patterns(m.keys.Value()),
		Channels: patterns(m.channels.Value()),
	}
}

// patterns splits s at spaces; nil if it has none.
func patterns(s string) []string {
	if f := strings.Fields(s); len(f) > 0 {
		return f
	}
	return nil
}

// Update answers the form's keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	if k.Type == tea.KeyEsc {
		pending := m.pending
		return m, func() tea.Msg { return CancelMsg{Pending: pending} }
	}
	if m.pending {
		// One create at a time; esc leaves it to go on.
		return m, nil
	}
	km := m.ctx.Keys
	switch {
	case key.Matches(k, km.Submit), k.Type == tea.KeyEnter && m.focus == fSubmit:
		return m, m.submit()
	case k.Type == tea.KeyEnter, key.Matches(k, km.NextField):
		return m, m.move(1)
	case key.Matches(k, km.PrevField):
		return m, m.move(-1)
	case m.focus == fRole && key.Matches(k, km.Left):
		m.role = max(m.role-1, 0)
		m.apiErr = nil
		return m, nil
	case m.focus == fRole && key.Matches(k, km.Right):
		m.role = min(m.role+1, len(Roles)-1)
		m.apiErr = nil
		return m, nil
	}
	in := m.input(m.focus)
	if in == nil {
		return m, nil
	}
	before := in.Value()
	var cmd tea.Cmd
	*in, cmd = in.Update(k)
	if in.Value() != before {
		// The refusal was about what was there before.
		m.apiErr = nil
	}
	return m, cmd
}

func (m *Model) input(f field) *textinput.Model {
	switch f {
	case fName:
		return &m.name
	case fKeys:
		return &m.keys
	case fChannels:
		return &m.channels
	}
	return nil
}

func (m *Model) move(by int) tea.Cmd {
	if in := m.input(m.focus); in != nil {
		in.Blur()
	}
	m.focus = (m.focus + field(by) + nFields) % nFields
	if in := m.input(m.focus); in != nil {
		return in.Focus()
	}
	return nil
}

func (m Model) submit() tea.Cmd {
	db, req := m.db, m.Request()
	return func() tea.Msg { return SubmitMsg{Database: db, Request: req} }
}

// View draws the form in a frame centred in its area.
func (m Model) View() string {
	st := m.ctx.Styles
	inner := min(m.width-4, 74)
	var b components.Lines
	b.Add(st.Title.Render("NEW USER OF "+m.db), components.Keep)
	b.Add(st.Faint.Width(inner).Render("A Redis user on every instance of "+m.db+". No role can change roles, persistence, security or the fence. Its password is shown once, when it is created."), components.HintLine)
	b.Add("", components.Blank)
	row := func(f field, label, value string) {
		mark, lbl := "  ", st.Label.Render(layout.Pad(label, 9))
		if m.focus == f {
			mark, lbl = st.Focused.Render("▸ "), st.Focused.Render(layout.Pad(label, 9))
		}
		b.Add(mark+lbl+value, components.Keep)
	}
	hint := func(text string) {
		b.Add(strings.Repeat(" ", 11)+st.Faint.Render(layout.Truncate(text, inner-11)), components.HintLine)
	}
	row(fName, "Name", m.name.View())
	hint("e.g. app or reporting: letters, digits, '_', '.' and '-'")
	role := Roles[m.role].Value
	if m.focus == fRole {
		role = "‹ " + role + " ›"
	}
	row(fRole, "Role", layout.Pad(role, 10)+st.Faint.Render(layout.Truncate(Roles[m.role].Detail, inner-21)))
	row(fKeys, "Keys", m.keys.View())
	hint("e.g. app:* (several: separated by spaces); empty: every key")
	row(fChannels, "Channels", m.channels.View())
	hint("Pub/Sub channel patterns, as keys; empty: every channel")
	b.Add("", components.Blank)
	button := "[ Create ]"
	if m.focus == fSubmit {
		b.Add(st.Focused.Render("▸ ")+st.Selected.Render(button), components.Keep)
	} else {
		b.Add("  "+button, components.Keep)
	}
	b.Add("", components.Blank)
	switch {
	case m.pending:
		elapsed := max(0, m.ctx.Now.Sub(m.since))
		b.Add(st.Info.Width(inner).Render(fmt.Sprintf("Creating user %s… %s. esc hides this form; the creation goes on, and its password is shown when it is done.", m.sent.Name, uictx.FormatAge(elapsed))), components.Keep)
	case m.apiErr != nil:
		b.Add(st.Err.Width(inner).Render("The agent refused, nothing was created: "+m.apiErr.Error()), components.Keep)
	}
	b.Add(st.Faint.Render(layout.Truncate("enter next · ←/→ role · ctrl+s or enter on Create · esc cancel", inner)), components.KeysLine)
	// The frame takes two lines.
	box := st.Dialog.Width(inner + 2).Render(b.Fit(m.height - 2))
	return layout.Center(box, m.width, m.height)
}
