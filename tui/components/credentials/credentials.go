// Package credentials is the panel that shows a password the agent gives
// once: a new application user's, or a rotated one's. It says so, shows
// the password and the URL whole (to be copied), and is dismissed with a
// key. The root drops the panel, and with it the password, once
// dismissed; neither is ever logged.
package credentials

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// DismissedMsg says the user is done with the password.
type DismissedMsg struct{}

// Model is the panel.
type Model struct {
	ctx     *uictx.Context
	c       api.Credentials
	rotated bool
	width   int
	height  int
}

// New returns the panel of c; rotated says c replaces a password.
func New(ctx *uictx.Context, c api.Credentials, rotated bool) Model {
	return Model{ctx: ctx, c: c, rotated: rotated}
}

// SetSize sets the area the panel is centred in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Update dismisses the panel on enter or esc; other keys do nothing, so
// that a key meant for the view underneath does not make the password go
// unread.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if ok && (k.Type == tea.KeyEnter || key.Matches(k, m.ctx.Keys.Back)) {
		return m, func() tea.Msg { return DismissedMsg{} }
	}
	return m, nil
}

// View draws the panel centred in its area. The password and the URL are
// never cut: they are broken over lines, to be copied whole.
func (m Model) View() string {
	if m.ctx == nil {
		return ""
	}
	st := m.ctx.Styles
	inner := max(min(m.width-4, 74), 10)
	c := m.c
	var b components.Lines
	title := "NEW USER " + c.User + " OF " + c.Database
	if m.rotated {
		title = "NEW PASSWORD OF " + c.User + " OF " + c.Database
	}
	b.Add(st.Title.Render(layout.Truncate(title, inner)), components.Keep)
	b.Add("", components.Blank)
	b.Add(st.Warn.Width(inner).Render("This password is not shown again: copy it now."), components.Keep)
	b.Add("", components.Blank)
	b.Add(st.Label.Render("password"), components.Keep)
	b.Add(st.Bold.Render(breakAt(c.Password, inner)), components.Keep)
	b.Add(st.Label.Render("url"), components.Keep)
	b.Add(breakAt(c.URL, inner), components.Keep)
	if m.rotated {
		b.Add("", components.Blank)
		old := "The old password stopped working."
		if c.PreviousValidUntil != nil {
			old = "The old password works until " + c.PreviousValidUntil.UTC().Format("2006-01-02 15:04 UTC")
			if !m.ctx.Now.IsZero() {
				old += " (" + uictx.FormatAge(c.PreviousValidUntil.Sub(m.ctx.Now)) + " from now)"
			}
			old += ": give the applications the new one before then."
		}
		b.Add(st.Faint.Width(inner).Render(old), components.HintLine)
	}
	if c.Warning != "" {
		b.Add(st.Warn.Width(inner).Render("! "+c.Warning), components.Keep)
	}
	b.Add("", components.Blank)
	b.Add(st.Renderer.NewStyle().Width(inner).Render(st.Key.Render("enter/esc")+st.Faint.Render(" copied: close it, and the UI forgets the password")), components.Keep)
	box := st.Dialog.BorderForeground(st.Warn.GetForeground()).Width(inner + 2).Render(b.Fit(m.height - 2))
	return layout.Center(box, m.width, m.height)
}

// breakAt breaks s into lines of at most w characters, whole: cut, a
// password could not be copied.
func breakAt(s string, w int) string {
	var lines []string
	r := []rune(s)
	for len(r) > 0 {
		n := min(len(r), w)
		lines = append(lines, string(r[:n]))
		r = r[n:]
	}
	return strings.Join(lines, "\n")
}
