// Package confirm is the dialog that stands before a destructive action:
// `y` to go on for a restart or a drain, typing the database's name for a
// delete, so that no single stray key can destroy data.
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
// with.
type ConfirmedMsg struct{ Tag any }

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
	tag := m.tag
	confirmed := func() tea.Msg { return ConfirmedMsg{Tag: tag} }
	cancelled := func() tea.Msg { return CancelledMsg{Tag: tag} }
	if k.Type == tea.KeyEsc {
		return m, cancelled
	}
	if m.expect == "" {
		switch {
		case key.Matches(k, m.ctx.Keys.Yes):
			return m, confirmed
		case key.Matches(k, m.ctx.Keys.No):
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

// View draws the dialog centred in its area.
func (m Model) View() string {
	st := m.ctx.Styles
	inner := min(m.width-4, 64)
	var b strings.Builder
	b.WriteString(st.Title.Render(m.title) + "\n\n")
	b.WriteString(st.Renderer.NewStyle().Width(inner).Render(m.body) + "\n\n")
	if m.expect == "" {
		b.WriteString(st.Key.Render("y") + " yes   " + st.Key.Render("n/esc") + " no")
	} else {
		b.WriteString("Type " + st.Bold.Render(m.expect) + " and press enter to confirm, esc to cancel.\n")
		b.WriteString(m.input.View())
		if m.wrong {
			b.WriteString("\n" + st.Err.Render("that is not "+m.expect))
		}
	}
	box := st.Dialog.BorderForeground(st.Err.GetForeground()).Width(inner + 2).Render(b.String())
	return layout.Center(box, m.width, m.height)
}
