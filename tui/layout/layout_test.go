package layout_test

import (
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/tui/layout"
)

const styled = "\x1b[1mbold\x1b[0m text"

// TestWidthIgnoresStyles: escape sequences take no cells; wide runes two.
func TestWidthIgnoresStyles(t *testing.T) {
	if w := layout.Width(styled); w != 9 {
		t.Fatalf("Width = %d", w)
	}
	if got := layout.Pad(styled, 12); layout.Width(got) != 12 || !strings.HasPrefix(got, "\x1b[1m") {
		t.Fatalf("Pad = %q", got)
	}
	if got := layout.Truncate(styled, 6); layout.Width(got) != 6 || !strings.HasSuffix(layout.Plain(got), "…") {
		t.Fatalf("Truncate = %q", got)
	}
	if got := layout.PadLeft("42", 5); got != "   42" {
		t.Fatalf("PadLeft = %q", got)
	}
}

// TestFit makes any text exactly w×h at most: what keeps a frame from
// wrapping or scrolling the terminal.
func TestFit(t *testing.T) {
	in := strings.Repeat("x", 100) + "\n" + styled + "\nthird\nfourth"
	out := layout.Fit(in, 10, 3)
	lines := strings.Split(out, "\n")
	if len(lines) != 3 || layout.Width(lines[0]) != 10 || lines[2] != "third" {
		t.Fatalf("Fit = %q", out)
	}
	if got := layout.Fit("one", 10, 3); got != "one\n\n" {
		t.Fatalf("Fit pads with %q", got)
	}
}

// TestSpread puts the right part at the right edge and cuts the left.
func TestSpread(t *testing.T) {
	if got := layout.Spread("left", "right", 20); got != "left           right" {
		t.Fatalf("Spread = %q", got)
	}
	if got := layout.Spread(strings.Repeat("l", 30), "right", 20); layout.Width(got) != 20 || !strings.HasSuffix(got, " right") {
		t.Fatalf("Spread cut = %q", got)
	}
}
