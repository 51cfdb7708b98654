package components

import (
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/tui/theme"
)

// Filter is a list's `/` filter: a text input that has the keyboard while
// it is edited (keys are text then, not commands) and whose text narrows
// the list. The databases and events lists use it alike.
type Filter struct {
	input  textinput.Model
	active bool
}

// FilterChange says what a key did to the filter's text.
type FilterChange int

const (
	// FilterKept: the text is as it was.
	FilterKept FilterChange = iota
	// FilterEdited: the text changed while editing (the list starts over
	// at its top).
	FilterEdited
	// FilterCleared: esc emptied it (the list keeps its selection).
	FilterCleared
)

// NewFilter returns an empty filter whose placeholder names what it
// matches.
func NewFilter(st theme.Styles, placeholder string) Filter {
	f := Filter{input: NewInput(st, "/", placeholder, 64)}
	f.input.Width = 30
	return f
}

// Active says the filter has the keyboard.
func (f Filter) Active() bool { return f.active }

// Value is the filter text.
func (f Filter) Value() string { return f.input.Value() }

// Start gives the filter the keyboard.
func (f *Filter) Start() tea.Cmd {
	f.active = true
	return f.input.Focus()
}

// Clear empties the filter (esc outside editing).
func (f *Filter) Clear() { f.input.SetValue("") }

// Update handles a key while the filter has the keyboard: esc empties it
// and gives the keyboard back, enter keeps the text and gives it back,
// anything else edits.
func (f *Filter) Update(msg tea.KeyMsg) (tea.Cmd, FilterChange) {
	switch msg.Type {
	case tea.KeyEsc:
		f.input.SetValue("")
		f.active = false
		f.input.Blur()
		return nil, FilterCleared
	case tea.KeyEnter:
		f.active = false
		f.input.Blur()
		return nil, FilterKept
	}
	before := f.input.Value()
	var cmd tea.Cmd
	f.input, cmd = f.input.Update(msg)
	if f.input.Value() != before {
		return cmd, FilterEdited
	}
	return cmd, FilterKept
}

// View is the filter's line under the list: the input with its keys while
// editing, the text with how to change it when set, nothing otherwise.
func (f Filter) View(st theme.Styles) string {
	switch {
	case f.active:
		return f.input.View() + st.Faint.Render("   enter keep · esc clear")
	case f.input.Value() != "":
		return st.Key.Render("/") + f.input.Value() + st.Faint.Render("   / edit · esc clear")
	}
	return ""
}
