// Package uictx is the state every component of the terminal UI shares:
// the screen size, the styles, the key map, the configuration, and the
// clock and freshness of the data on screen. The root model owns it and
// hands each component a pointer, as gh-dash's ProgramContext does.
//
// Only Update (on the program's goroutine) may change it: commands run on
// other goroutines and must not touch it.
package uictx

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis-appliance/redis-appliance/tui/keys"
	"github.com/redis-appliance/redis-appliance/tui/theme"
)

// Context is shared by the root model and every component.
type Context struct {
	// Width and Height are the terminal's size.
	Width, Height int
	Styles        theme.Styles
	Keys          keys.KeyMap
	// Refresh is how often the data is fetched again.
	Refresh time.Duration
	// Endpoint names where the agent is reached, for messages.
	Endpoint string
	// Now is the time of the last tick. Views measure ages against it
	// rather than calling time.Now, so a frame is a pure function of the
	// model (and golden files are stable).
	Now time.Time
	// DataAt is when the data on screen was last fetched in full; zero
	// before the first good refresh.
	DataAt time.Time
	// Stale says the data on screen is not live: the last refresh failed
	// or none succeeded for a while. Views then say how old it is.
	Stale bool
	// Log receives diagnostics. It never writes to the terminal: the
	// default discards, --log-file sends it to a file.
	Log *slog.Logger
}

// New returns a context with the given styles and the default key map.
func New(styles theme.Styles, refresh time.Duration) *Context {
	return &Context{
		Styles:  styles,
		Keys:    keys.Default(),
		Refresh: refresh,
		Log:     slog.New(slog.DiscardHandler),
	}
}

// Age returns how old the data on screen is, or -1 before any.
func (c *Context) Age() time.Duration {
	if c.DataAt.IsZero() {
		return -1
	}
	return max(0, c.Now.Sub(c.DataAt))
}

// FormatAge prints a duration the way the UI shows ages: "0.4s", "12s",
// "3m05s", "2h10m", "3d".
func FormatAge(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// FormatCount prints a count the way the UI's tables show ops/s and
// clients, in at most four cells: "7", "950", "1.2k", "48k", "3.1M". It
// cuts rather than rounds, so a figure never reads higher than it is. It
// runs for every row on screen at every frame, hence strconv, not fmt.
func FormatCount(n int64) string {
	if n < 0 {
		return "-"
	}
	var buf [24]byte
	for _, u := range []struct {
		div    int64
		suffix byte
	}{{1e9, 'G'}, {1e6, 'M'}, {1e3, 'k'}} {
		switch {
		case n >= 10*u.div:
			return string(append(strconv.AppendInt(buf[:0], n/u.div, 10), u.suffix))
		case n >= u.div:
			b := append(strconv.AppendInt(buf[:0], n/u.div, 10), '.', byte('0'+n%u.div*10/u.div), u.suffix)
			return string(b)
		}
	}
	return strconv.FormatInt(n, 10)
}
