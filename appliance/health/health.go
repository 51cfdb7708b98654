// Package health carries what each agent observes to the leader: a
// heartbeat several times a second, outside the Raft log, and the leader's
// live view of the latest heartbeat of every node with its age on the
// monotonic clock.
package health

import (
	"errors"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Heartbeat is one node's report.
type Heartbeat struct {
	Node     string          `json:"node"`
	Hardware sizing.Hardware `json:"hardware"`
	// PortMin and PortMax are the node's instance port range.
	PortMin   int              `json:"port_min"`
	PortMax   int              `json:"port_max"`
	Instances []InstanceReport `json:"instances"`
	// Same says nothing changed since this node's last full report: the
	// leader only notes that the node is alive. It keeps heartbeats several
	// times a second cheap.
	Same bool `json:"same,omitempty"`
	// Events are what happened on the node that the cluster should record
	// (fences); the node sends them until a heartbeat carrying them is
	// acknowledged.
	Events []raftstate.Event `json:"events,omitempty"`
	// Versions are the catalogue versions (major.minor) the node has a
	// redis-server for; AgentVersion and FeatureLevel are its agent's
	// release and the level of Raft commands it applies. The leader
	// records them in the state when they change. Agents before feature
	// level 2 send none of them.
	Versions     []string `json:"versions,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
	FeatureLevel uint32   `json:"feature_level,omitempty"`
}

// StaleAfter is how old a node's last heartbeat may be before what it
// reported is no longer taken as live: the node is shown as unknown, takes
// no new instance, and its reports count for nothing in failover.
const StaleAfter = 3 * time.Second

// StateRemoving is the state of an instance whose database was deleted
// while its unit is still being removed.
const StateRemoving = "removing"

// ErrNoBaseline is returned for a "same" heartbeat from a node the view has
// no full report of (a new leader): the node must send a full one.
var ErrNoBaseline = errors.New("no earlier full heartbeat from this node; send a full one")

// InstanceReport is what a node observes of one of its instances.
type InstanceReport struct {
	ID string `json:"id"`
	// Installed is false once the unit and the directory are gone.
	Installed         bool   `json:"installed"`
	State             string `json:"state"`
	PID               int    `json:"pid,omitempty"`
	Restarts          int    `json:"restarts"`
	MemoryUsed        int64  `json:"memory_used"`
	ServerVersion     string `json:"server_version,omitempty"`
	Role              string `json:"role,omitempty"`
	ReplOffset        int64  `json:"repl_offset"`
	Error             string `json:"error,omitempty"`
	AppliedGeneration uint64 `json:"applied_generation"`
	// Link is set when the instance replicates something.
	Link *Link `json:"link,omitempty"`
	// OpsPerSec and Clients: instantaneous_ops_per_sec, connected_clients.
	OpsPerSec int64 `json:"ops_per_sec,omitempty"`
	Clients   int   `json:"clients,omitempty"`
}

// Link is a replica's view of its replication link, from INFO replication.
type Link struct {
	MasterHost     string `json:"master_host"`
	MasterPort     int    `json:"master_port"`
	Up             bool   `json:"up"`
	SyncInProgress bool   `json:"sync_in_progress,omitempty"`
	// LastIOSeconds is master_last_io_seconds_ago; -1 while the link is down.
	LastIOSeconds int `json:"last_io_seconds"`
	// PrimaryReachable is this node's own view: the agent reached the
	// primary's redis-server (PING) within the last probe periods. It is
	// how replicas confirm a primary is lost.
	PrimaryReachable bool `json:"primary_reachable"`
	// Synced: since it started following this primary, its agent has seen
	// the link up with no sync in progress. A replica that never synced
	// holds nothing worth promoting.
	Synced bool `json:"synced"`
}

// Entry is a heartbeat with when it arrived.
type Entry struct {
	Heartbeat Heartbeat
	// Received is on the monotonic clock; use Age.
	Received time.Time
}

// Age is how long ago the heartbeat arrived.
func (e Entry) Age() time.Duration { return time.Since(e.Received) }

// View is the leader's latest heartbeat per node.
type View struct {
	mu    sync.RWMutex
	nodes map[string]Entry
}

// NewView returns an empty view.
func NewView() *View { return &View{nodes: map[string]Entry{}} }

// Record stores a heartbeat.
func (v *View) Record(hb Heartbeat) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if hb.Same {
		e, ok := v.nodes[hb.Node]
		if !ok {
			return ErrNoBaseline
		}
		e.Received = time.Now()
		v.nodes[hb.Node] = e
		return nil
	}
	v.nodes[hb.Node] = Entry{Heartbeat: hb, Received: time.Now()}
	return nil
}

// Node returns a node's latest heartbeat.
func (v *View) Node(name string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.nodes[name]
	return e, ok
}

// Instance returns the latest report of an instance from its node.
func (v *View) Instance(node, id string) (InstanceReport, time.Duration, bool) {
	e, ok := v.Node(node)
	if !ok {
		return InstanceReport{}, 0, false
	}
	for _, r := range e.Heartbeat.Instances {
		if r.ID == id {
			return r, e.Age(), true
		}
	}
	return InstanceReport{ID: id}, e.Age(), true
}

// Fresh returns the latest report of an instance if its node reported
// within StaleAfter.
func (v *View) Fresh(node, id string) (InstanceReport, bool) {
	r, age, ok := v.Instance(node, id)
	return r, ok && age <= StaleAfter
}

// Forget drops a node (it was removed).
func (v *View) Forget(name string) {
	v.mu.Lock()
	delete(v.nodes, name)
	v.mu.Unlock()
}
