package components

import (
	"slices"
	"strings"
)

// Lines collect what a form or a dialog draws, each line with how readily
// it gives way when the screen is too short for all: the highest spare
// first, the last of equals first, so that errors, the fields and the
// buttons stay in sight. The database and user forms and the password
// panel use them alike.
type Lines struct {
	text  []string
	spare []int
}

// Spare levels: what goes first on a short screen (the highest first).
const (
	// Keep is never dropped: a field, an error, a button.
	Keep = 0
	// KeysLine is the line of keys at the bottom.
	KeysLine = 1
	// HintLine is a field's hint, not its error.
	HintLine = 2
	// Blank is a blank line between parts.
	Blank = 3
)

// Add appends s, each of its lines with the spare level spare.
func (l *Lines) Add(s string, spare int) {
	for _, t := range strings.Split(s, "\n") {
		l.text = append(l.text, t)
		l.spare = append(l.spare, spare)
	}
}

// Fit returns the lines, dropping the sparest (the last of them first)
// until at most h are left or only Keep lines are.
func (l Lines) Fit(h int) string {
	text, spare := slices.Clone(l.text), slices.Clone(l.spare)
	for len(text) > h {
		drop := -1
		for i, s := range spare {
			if s > Keep && (drop < 0 || s >= spare[drop]) {
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
