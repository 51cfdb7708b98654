// Package events is the place of the cluster's event feed: failovers,
// promotions, fences, nodes joining and lost.
//
// The agent records no events yet, so the view says so rather than show
// anything invented. When the API gains an event stream, this component
// takes the events as a message and lists them, newest first, with the
// same table as the other views.
package events

import (
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// Model is the events view.
type Model struct {
	ctx    *uictx.Context
	width  int
	height int
}

// New returns the events view.
func New(ctx *uictx.Context) Model { return Model{ctx: ctx} }

// SetSize sets the area the view draws in.
func (m *Model) SetSize(w, h int) { m.width, m.height = w, h }

// Update does nothing yet: there is no event to receive.
func (m Model) Update(tea.Msg) (Model, tea.Cmd) { return m, nil }

// View draws the view.
func (m Model) View() string {
	st := m.ctx.Styles
	s := st.Title.Render("EVENTS") + "\n\n" +
		"No events yet.\n\n" +
		st.Faint.Width(min(m.width, 76)).Render("This appliance does not record cluster events yet. Failovers, promotions, "+
			"fences, and nodes joining or being lost will be listed here, live, once it does. "+
			"Until then, the agent's log has what happened:") + "\n\n  journalctl -u redis-appliance"
	return layout.Fit(s, m.width, m.height)
}
