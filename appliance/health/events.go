package health

import (
	"sync"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// EventQueue holds what happened on this node (fences) until a heartbeat
// has delivered it to the leader, which records it in the state.
type EventQueue struct {
	mu  sync.Mutex
	evs []raftstate.Event
}

// maxQueued bounds what a long-isolated node keeps: the newest events.
const maxQueued = 100

// Add queues an event.
func (q *EventQueue) Add(e raftstate.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.evs = append(q.evs, e)
	if len(q.evs) > maxQueued {
		q.evs = q.evs[len(q.evs)-maxQueued:]
	}
}

// Peek returns the queued events; Drop removes the first n once delivered.
func (q *EventQueue) Peek() []raftstate.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]raftstate.Event(nil), q.evs...)
}

// Drop removes the first n queued events.
func (q *EventQueue) Drop(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.evs = q.evs[min(n, len(q.evs)):]
}
