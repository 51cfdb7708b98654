package gauge_test

import (
	"testing"

	"github.com/muesli/termenv"

	"github.com/redis-appliance/redis-appliance/tui/components/gauge"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/theme"
)

// TestRender: the bar fills in proportion and stops at full, the
// percentage is the real figure, an unknown total shows "-", and the
// gauge is always exactly as wide as asked.
func TestRender(t *testing.T) {
	st := tuitest.Context(80, 24).Styles
	for _, c := range []struct {
		used, total int64
		want        string
	}{
		{0, 100, "░░░░░   0%"},
		{50, 100, "███░░  50%"},
		{100, 100, "█████ 100%"},
		{130, 100, "█████ 130%"},
		{5000, 100, "█████>999%"},
		{1, 0, "-         "},
		{-1, 100, "-         "},
	} {
		if got := gauge.Render(st, 10, c.used, c.total); got != c.want {
			t.Errorf("Render(%d/%d) = %q, want %q", c.used, c.total, got, c.want)
		}
	}
	if got := gauge.Render(st, 4, 1, 2); got != " 50%" {
		t.Errorf("too narrow for a bar: %q", got)
	}
}

// TestColoursByFill: with colours, a gauge turns yellow at 75% and red
// at 90%, and keeps its width.
func TestColoursByFill(t *testing.T) {
	st := theme.New(tuitest.Renderer(termenv.ANSI))
	low, mid, high := gauge.Render(st, 10, 10, 100), gauge.Render(st, 10, 80, 100), gauge.Render(st, 10, 95, 100)
	if low == mid || mid == high || low == high {
		t.Fatalf("same styles: %q %q %q", low, mid, high)
	}
	for _, g := range []string{low, mid, high} {
		if layout.Width(g) != 10 {
			t.Errorf("%q is %d wide", g, layout.Width(g))
		}
	}
}
