// Package layout measures, cuts and pads styled text for the terminal UI.
//
// Every width here is in terminal cells and ignores escape sequences, so
// styled strings line up with plain ones. The root model passes every frame
// through Fit: a line wider than the terminal would wrap and a frame taller
// than it would scroll, and either garbles the screen.
package layout

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// Width returns how many cells s takes on screen.
func Width(s string) int { return ansi.StringWidth(s) }

// Truncate cuts s to at most w cells, ending with "…" when it cut.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// Pad cuts or pads s with spaces to exactly w cells.
func Pad(s string, w int) string {
	s = Truncate(s, w)
	if n := w - ansi.StringWidth(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}

// PadLeft cuts s to w cells, or pads it on the left (right-aligns it).
func PadLeft(s string, w int) string {
	s = Truncate(s, w)
	if n := w - ansi.StringWidth(s); n > 0 {
		return strings.Repeat(" ", n) + s
	}
	return s
}

// Fit returns s as exactly h lines, each cut to at most w cells: extra
// lines are dropped from the bottom, missing ones added empty.
func Fit(s string, w, h int) string {
	if h <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		lines[i] = Truncate(l, w)
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// Plain removes the styles (escape sequences) from s.
func Plain(s string) string { return ansi.Strip(s) }

// Lines counts the lines of s ("" is one empty line).
func Lines(s string) int { return strings.Count(s, "\n") + 1 }

// Spread puts left at the left and right at the right of a w-cell line,
// cutting left if both do not fit.
func Spread(left, right string, w int) string {
	rw := ansi.StringWidth(right)
	if rw >= w {
		return Truncate(right, w)
	}
	left = Truncate(left, w-rw-1)
	gap := w - rw - ansi.StringWidth(left)
	return left + strings.Repeat(" ", max(1, gap)) + right
}

// Center places block in the middle of a w×h area.
func Center(block string, w, h int) string {
	lines := strings.Split(block, "\n")
	bw := 0
	for _, l := range lines {
		bw = max(bw, ansi.StringWidth(l))
	}
	left := strings.Repeat(" ", max(0, (w-bw)/2))
	top := max(0, (h-len(lines))/2)
	var b strings.Builder
	for range top {
		b.WriteByte('\n')
	}
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(left + l)
	}
	return Fit(b.String(), w, h)
}
