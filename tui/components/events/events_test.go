package events_test

import (
	"testing"

	"github.com/redis-appliance/redis-appliance/tui/components/events"
	"github.com/redis-appliance/redis-appliance/tui/internal/tuitest"
)

// TestView says plainly that there are no events yet, rather than show a
// feed that would look live and empty.
func TestView(t *testing.T) {
	m := events.New(tuitest.Context(80, 10))
	m.SetSize(80, 10)
	tuitest.Golden(t, m.View())
}
