// Package theme holds every style the terminal UI draws with.
//
// All styles come from one lipgloss.Renderer, so the colour profile it
// detected (or was given) applies everywhere: NO_COLOR and terminals without
// colours get plain text, a test gets whatever profile it asks for. Colours
// are the 16 ANSI ones, so they follow the user's terminal theme on light
// and dark backgrounds alike and the UI never has to query the terminal for
// its background (a query that can hang or leak into the screen).
//
// Nothing is conveyed by colour alone: states are words, the selected row
// carries a marker, gauges carry a percentage. That is what keeps the UI
// usable when colours are stripped.
package theme

import (
	"github.com/charmbracelet/lipgloss"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// ANSI colours, by their terminal index.
const (
	red     = lipgloss.Color("1")
	green   = lipgloss.Color("2")
	yellow  = lipgloss.Color("3")
	blue    = lipgloss.Color("4")
	magenta = lipgloss.Color("5")
	cyan    = lipgloss.Color("6")
	white   = lipgloss.Color("15")
	black   = lipgloss.Color("0")
)

// Styles are the named styles of the UI.
type Styles struct {
	// Renderer made every style below; components that build a style on
	// the spot use it too.
	Renderer *lipgloss.Renderer

	App      lipgloss.Style // the product name in the header
	Title    lipgloss.Style // a section title ("DATABASES")
	Header   lipgloss.Style // table column headers
	Selected lipgloss.Style // the row under the cursor
	Faint    lipgloss.Style // secondary text
	Bold     lipgloss.Style
	Key      lipgloss.Style // a key in help text
	Label    lipgloss.Style // a field label in a detail panel

	OK   lipgloss.Style
	Warn lipgloss.Style
	Err  lipgloss.Style
	Info lipgloss.Style

	// BannerErr and BannerWarn are full-width lines under the header.
	BannerErr  lipgloss.Style
	BannerWarn lipgloss.Style

	TabActive   lipgloss.Style
	TabInactive lipgloss.Style

	// GaugeLow, GaugeMid and GaugeHigh fill a gauge by how full it is;
	// GaugeEmpty is its unfilled part.
	GaugeLow   lipgloss.Style
	GaugeMid   lipgloss.Style
	GaugeHigh  lipgloss.Style
	GaugeEmpty lipgloss.Style

	// Dialog frames a form or a confirmation.
	Dialog lipgloss.Style
	// Focused marks the field of a form that has the focus.
	Focused lipgloss.Style
}

// New returns the styles drawn by r.
func New(r *lipgloss.Renderer) Styles {
	s := r.NewStyle
	return Styles{
		Renderer:    r,
		App:         s().Bold(true).Foreground(magenta),
		Title:       s().Bold(true),
		Header:      s().Bold(true).Foreground(blue),
		Selected:    s().Reverse(true),
		Faint:       s().Faint(true),
		Bold:        s().Bold(true),
		Key:         s().Bold(true).Foreground(cyan),
		Label:       s().Foreground(blue),
		OK:          s().Foreground(green),
		Warn:        s().Foreground(yellow),
		Err:         s().Foreground(red),
		Info:        s().Foreground(cyan),
		BannerErr:   s().Bold(true).Foreground(white).Background(red),
		BannerWarn:  s().Bold(true).Foreground(black).Background(yellow),
		TabActive:   s().Bold(true).Reverse(true),
		TabInactive: s(),
		GaugeLow:    s().Foreground(green),
		GaugeMid:    s().Foreground(yellow),
		GaugeHigh:   s().Foreground(red),
		GaugeEmpty:  s().Faint(true),
		Dialog:      s().Border(lipgloss.RoundedBorder()).BorderForeground(blue).Padding(0, 1),
		Focused:     s().Bold(true).Foreground(cyan),
	}
}

// State returns the style of a database or instance state word.
func (s Styles) State(state string) lipgloss.Style {
	switch state {
	case api.StateRunning:
		return s.OK
	case api.StateStarting:
		return s.Warn
	case api.StateFailed:
		return s.Err
	case api.StateStopped, api.StateUnknown, "":
		return s.Faint
	}
	return s.Info
}

// Event returns the style of an event's kind: red for a failure or a
// refusal to act on one, yellow for what the cluster did about it (a
// promotion, a fence), cyan for a return to normal or a planned change.
// A kind this UI does not know is drawn plain.
func (s Styles) Event(kind string) lipgloss.Style {
	switch kind {
	case "detected", "failover-refused", "node-lost":
		return s.Err
	case "promoted", "fenced":
		return s.Warn
	case "unfenced", "node-back", "switchover", "promote":
		return s.Info
	}
	return s.Renderer.NewStyle()
}
