// Package api is the agent's HTTP+JSON interface: the wire types, the server
// that maps routes onto a Backend, and the typed client the CLI and the TUI
// use. Nothing else speaks HTTP to the agent.
package api

import (
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
)

// CreateDatabaseRequest asks for a new database.
type CreateDatabaseRequest struct {
	Name string `json:"name"`
	// Version is a catalogue version ("7.0"); empty means the default.
	Version string `json:"version,omitempty"`
	// Flavor is aof, rdb or nordb; empty means aof.
	Flavor string `json:"flavor,omitempty"`
	// Memory is the plan, e.g. "256mb" or "2gb".
	Memory string `json:"memory"`
}

// Database states as users see them.
const (
	StateRunning  = "running"
	StateStarting = "starting"
	StateFailed   = "failed"
	StateStopped  = "stopped"
	StateUnknown  = "unknown"
)

// Database is a database with what is observed of it.
type Database struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Flavor      string    `json:"flavor"`
	MemoryBytes int64     `json:"memory_bytes"`
	CreatedAt   time.Time `json:"created_at"`
	// Port, Unit, State and MemoryUsedBytes are the primary instance's.
	Port            int        `json:"port"`
	Unit            string     `json:"unit"`
	State           string     `json:"state"`
	MemoryUsedBytes int64      `json:"memory_used_bytes"`
	Instances       []Instance `json:"instances"`
}

// Instance is one redis-server of a database.
type Instance struct {
	ID              string `json:"id"`
	Node            string `json:"node"`
	Host            string `json:"host"`
	Port            int    `json:"port"`
	Role            string `json:"role"`
	Unit            string `json:"unit"`
	State           string `json:"state"`
	PID             int    `json:"pid,omitempty"`
	Restarts        int    `json:"restarts"`
	MemoryUsedBytes int64  `json:"memory_used_bytes"`
	// ServerVersion is what redis-server reports (e.g. 7.0.15).
	ServerVersion string `json:"server_version,omitempty"`
	// Error says why the instance is not running, when known.
	Error string `json:"error,omitempty"`
}

// URL is a database's connection URL, with its password.
type URL struct {
	URL string `json:"url"`
}

// Node is one node's hardware and what is allocated on it.
type Node struct {
	Name            string          `json:"name"`
	Supervisor      string          `json:"supervisor"`
	Hardware        sizing.Hardware `json:"hardware"`
	ReservedMemory  int64           `json:"reserved_memory"`
	ReservedDisk    int64           `json:"reserved_disk"`
	AllocatedMemory int64           `json:"allocated_memory"`
	AllocatedDisk   int64           `json:"allocated_disk"`
	FreeMemory      int64           `json:"free_memory"`
	FreeDisk        int64           `json:"free_disk"`
	Databases       int             `json:"databases"`
}

// ClusterStatus is this node's view of the cluster.
type ClusterStatus struct {
	Node         string `json:"node"`
	RaftState    string `json:"raft_state"`
	Leader       string `json:"leader"`
	Voters       int    `json:"voters"`
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Bootstrapped bool   `json:"bootstrapped"`
}

// Version is one row of the version catalogue.
type Version = versions.Row

// Error is the body of every non-2xx response.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }
