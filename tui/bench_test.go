package tui_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/tui"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

// bench200 is the root model on the databases view with 200 databases.
func bench200(b *testing.B, w, h int) (tui.Model, source.SnapshotMsg) {
	f := newFake(200)
	ctx := tuitest.Context(w, h)
	m := update(tui.New(ctx, source.New(context.Background(), f, time.Second)), tea.WindowSizeMsg{Width: w, Height: h})
	snap := source.New(context.Background(), f, time.Second).Refresh()().(source.SnapshotMsg)
	snap.Started, snap.At = tuitest.Now, tuitest.Now
	m = update(m, snap, tuitest.Key("2"))
	return m, snap
}

// BenchmarkView200Databases is the cost of drawing one frame of the
// databases view with 200 databases: what every refresh and every key
// costs on screen.
func BenchmarkView200Databases(b *testing.B) {
	for _, size := range [][2]int{{80, 24}, {200, 60}} {
		b.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(b *testing.B) {
			m, _ := bench200(b, size[0], size[1])
			b.ReportAllocs()
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}

// BenchmarkRefresh200Databases is a refresh's cost in the UI: taking 200
// databases in (filter, sort, keep the cursor) and drawing the frame.
func BenchmarkRefresh200Databases(b *testing.B) {
	m, snap := bench200(b, 80, 24)
	b.ReportAllocs()
	for b.Loop() {
		next, _ := m.Update(snap)
		_ = next.View()
	}
}

// BenchmarkFilterKeystroke200Databases is one key typed in the filter
// over 200 databases, with its frame.
func BenchmarkFilterKeystroke200Databases(b *testing.B) {
	m, _ := bench200(b, 80, 24)
	m = update(m, tuitest.Key("/"))
	b.ReportAllocs()
	for b.Loop() {
		next, _ := m.Update(tuitest.Key("1"))
		_ = next.View()
	}
}
