// Package gauge draws a small horizontal bar with a percentage, for memory
// used against a plan or a node's memory and disk.
package gauge

import (
	"fmt"
	"strings"

	"github.com/redis-appliance/redis-appliance/tui/layout"
	"github.com/redis-appliance/redis-appliance/tui/theme"
)

// Thresholds at which a gauge turns from low to mid to high.
const (
	Mid  = 0.75
	High = 0.90
)

// pctWidth is the width of the percentage after the bar: " 45%".
const pctWidth = 5

// Render returns a gauge w cells wide showing used of total, e.g.
// "███░░ 61%". The percentage is the real one (a database can use a little
// more than its maxmemory); the bar stops at full. With no total (unknown)
// it shows "-".
func Render(st theme.Styles, w int, used, total int64) string {
	if total <= 0 || used < 0 {
		return layout.Pad(st.Faint.Render("-"), w)
	}
	frac := float64(used) / float64(total)
	pct := fmt.Sprintf("%3.0f%%", frac*100)
	if frac >= 10 {
		pct = ">999%"
	}
	barW := w - pctWidth
	if barW < 1 {
		return layout.PadLeft(pct, w)
	}
	filled := int(min(frac, 1)*float64(barW) + 0.5)
	style := st.GaugeLow
	switch {
	case frac >= High:
		style = st.GaugeHigh
	case frac >= Mid:
		style = st.GaugeMid
	}
	bar := style.Render(strings.Repeat("█", filled)) + st.GaugeEmpty.Render(strings.Repeat("░", barW-filled))
	return bar + layout.PadLeft(pct, pctWidth)
}
