// Package components holds what the terminal UI's components share; each
// component is a package below it.
package components

import (
	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"

	"github.com/redis-appliance/redis-appliance/tui/theme"
)

// NewInput returns a text input drawn with the theme's renderer (so it
// obeys the same colour profile as the rest) and a cursor that does not
// blink: a blinking cursor redraws the screen twice a second for nothing,
// and a steady one keeps frames reproducible in tests.
func NewInput(st theme.Styles, prompt, placeholder string, limit int) textinput.Model {
	r := st.Renderer
	ti := textinput.New()
	ti.Prompt = prompt
	ti.Placeholder = placeholder
	ti.CharLimit = limit
	ti.PromptStyle = st.Key
	ti.TextStyle = r.NewStyle()
	ti.PlaceholderStyle = st.Faint
	ti.CompletionStyle = st.Faint
	ti.Cursor.Style = r.NewStyle()
	ti.Cursor.TextStyle = r.NewStyle()
	ti.Cursor.SetMode(cursor.CursorStatic)
	return ti
}
