// Package confirm is the dialog that stands before a destructive action:
// `y` to go on for a restart, a drain, a promote or an unlink, typing the
// database's name for a delete, so that no single stray key can destroy
// data; and picking one of a few choices, then `y` or enter, for a
// failover and its target.
package confirm

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// ConfirmedMsg says the user confirmed; Tag is what the dialog was made
// with, Choice the value of the choice picked (empty without choices).
type ConfirmedMsg struct {
	Tag    any
	Choice string
}

// Choice is one line of a dialog made with NewChoice.
type Choice struct {
	// Value is what ConfirmedMsg carries when this choice is picked.
	Value string
	// Label is the line shown; Detail follows it, faint.
	Label, Detail string
}

// CancelledMsg says the user backed out.
type CancelledMsg struct{ Tag any }

// Model is a confirmation dialog.
type Model struct {
	ctx    *uictx.Context
	title  string
	body   string
	expect string
	input  textinput.Model
	wrong  bool
	// choices, when set, are picked with ↑↓ and confirmed with y or
	// enter; picked is the one under the cursor.
	choices []Choice
	picked  int
	// verb says what y does, in the key line ("fail over").
	verb   string
	tag    any
	width  int
	height int
}

// NewYesNo returns a dialog confirmed with `y`.
func NewYesNo(ctx *uictx.Context, title, body string, tag any) Model {
	return Model{ctx: ctx, title: title, body: body, tag: tag}
}

// NewTyped returns a dialog confirmed by typing expect and enter.
func NewTyped(ctx *uictx.Context, title, body, expect string, tag any) Model {
	// No placeholder: without colours it would look typed already.
	in := components.NewInput(ctx.Styles, "> ", "", len(expect)+10)
	in.Width = len(expect) + 10
	in.Focus()
	return Model{ctx: ctx, title: title, body: body, expect: expect, input: in, tag: tag}
}

// NewChoice returns a dialog in which one of choices is picked with ↑↓
// (the first to begin with) and confirmed with y or enter; verb says what
// confirming does ("fail over").
func NewChoice(ctx *uictx.Context, title, body, verb string, choices []Choice, tag any) Model {
	return Model{ctx: ctx, title: title, body: body, verb: verb, choices: choices, tag: tag}
}

// Picked returns the value of the choice under the cursor.
func (m Model) Picked() string {
	if m.picked < len(m.choices) {
		return m.choices[m.picked].Value
	}
	return ""
}

// SetSize sets the area the dialog is centred in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Tag returns what the dialog was made with.
func (m Model) Tag() any { return m.tag }

// Update answers the dialog's keys.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	tag, picked := m.tag, m.Picked()
	confirmed := func() tea.Msg { return ConfirmedMsg{Tag: tag, Choice: picked} }
	cancelled := func() tea.Msg { return CancelledMsg{Tag: tag} }
	if k.Type == tea.KeyEsc {
		return m, cancelled
	}
	km := m.ctx.Keys
	if len(m.choices) > 0 {
		switch {
		case key.Matches(k, km.Yes), k.Type == tea.KeyEnter:
			return m, confirmed
		case key.Matches(k, km.No):
			return m, cancelled
		case key.Matches(k, km.Up, km.PrevField):
			m.picked = max(m.picked-1, 0)
		case key.Matches(k, km.Down, km.NextField):
			m.picked = min(m.picked+1, len(m.choices)-1)
		}
		return m, nil
	}
	if m.expect == "" {
		switch {
		case key.Matches(k, km.Yes):
			return m, confirmed
		case key.Matches(k, km.No):
			return m, cancelled
		}
		return m, nil
	}
	if k.Type == tea.KeyEnter {
		if m.input.Value() == m.expect {
			return m, confirmed
		}
		m.wrong = true
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.wrong = false
	return m, cmd
}

// View draws the dialog centred in its area. On a short screen the body
// is cut first: the choices and the keys that answer must stay in sight.
func (m Model) View() string {
	st := m.ctx.Styles
	inner := min(m.width-4, 64)
	var tail strings.Builder
	switch {
	case len(m.choices) > 0:
		labelW := 0
		for _, c := range m.choices {
			labelW = max(labelW, layout.Width(c.Label))
		}
		for i, c := range m.choices {
			// The mark, not only the highlight, shows the pick: it must
			// be seen without colours.
			line := "  " + layout.Pad(c.Label, labelW) + "  " + st.Faint.Render(c.Detail)
			if i == m.picked {
				line = st.Focused.Render("▸ ") + st.Selected.Render(layout.Pad(c.Label, labelW)) + "  " + st.Faint.Render(c.Detail)
			}
			tail.WriteString(layout.Truncate(line, inner) + "\n")
		}
		tail.WriteString("\n" + st.Key.Render("↑↓") + " choose   " + st.Key.Render("y/enter") + " " + m.verb + "   " + st.Key.Render("n/esc") + " no")
	case m.expect == "":
		tail.WriteString(st.Key.Render("y") + " yes   " + st.Key.Render("n/esc") + " no")
	default:
		tail.WriteString("Type " + st.Bold.Render(m.expect) + " and press enter to confirm, esc to cancel.\n")
		tail.WriteString(m.input.View())
		if m.wrong {
			tail.WriteString("\n" + st.Err.Render("that is not "+m.expect))
		}
	}
	body := strings.Split(st.Renderer.NewStyle().Width(inner).Render(m.body), "\n")
	// The border, the title and the blank lines around the body.
	room := max(m.height-5-layout.Lines(tail.String()), 1)
	if len(body) > room {
		body = body[:room]
		body[room-1] = layout.Truncate(strings.TrimRight(body[room-1], " ")+" …", inner)
	}
	text := st.Title.Render(m.title) + "\n\n" + strings.Join(body, "\n") + "\n\n" + tail.String()
	box := st.Dialog.BorderForeground(st.Err.GetForeground()).Width(inner + 2).Render(text)
	return layout.Center(box, m.width, m.height)
}
