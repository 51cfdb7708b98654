// Package systemd supervises redis-server instances. In production every
// instance is a hardened systemd unit driven over D-Bus; where systemd is not
// PID 1 (containers, development machines) a child-process supervisor behind
// the same interface takes over.
package systemd

import (
	"context"
	"errors"
)

// UnitPrefix starts the name of every unit the appliance owns, so that List
// never touches units it did not create.
const UnitPrefix = "redis-appliance-db-"

// ErrUnitNotFound is returned for a unit the supervisor does not know.
var ErrUnitNotFound = errors.New("unit not found")

// UnitSpec describes one redis-server instance as a service. It never holds a
// secret: the password lives in the 0600 config file ExecStart points at.
type UnitSpec struct {
	// Name is the full unit name, UnitPrefix + instance ID + ".service".
	Name        string
	Description string
	// ExecStart is the binary and its arguments (no secrets).
	ExecStart []string
	// User and Group run the process; empty means the supervisor's own user.
	User  string
	Group string
	// Dir is the instance's directory: working directory and the only
	// writable path. Under systemd the instance sees nothing else of its
	// parent directory, where the other instances are.
	Dir string
	// NoRestart leaves a crashed process down (Restart=no) instead of
	// restarting it: the primary of a database with replicas must not come
	// back by itself, because its replicas may have writes it lost; the
	// leader fails over instead.
	NoRestart bool `json:",omitempty"`
}

// UnitState is what the supervisor observes of a unit.
type UnitState struct {
	Name string
	// ActiveState follows systemd: active, activating, deactivating,
	// inactive, failed.
	ActiveState string
	SubState    string
	MainPID     int
	// Restarts counts automatic restarts since the unit was started.
	Restarts int
}

// Supervisor starts, stops and watches instance units.
type Supervisor interface {
	// Kind names the implementation: "systemd" or "process".
	Kind() string
	// Install writes the unit (reloading the manager if it changed) and
	// enables it so it starts at boot. It does not start it.
	Install(ctx context.Context, spec UnitSpec) (changed bool, err error)
	// Start starts the unit and returns once it is ready (Type=notify) or
	// has failed.
	Start(ctx context.Context, name string) error
	// Stop stops the unit and waits for it to be inactive.
	Stop(ctx context.Context, name string) error
	// Restart restarts the unit and waits for it to be ready again.
	Restart(ctx context.Context, name string) error
	// Remove stops and disables the unit and deletes its file.
	Remove(ctx context.Context, name string) error
	// State reports the unit's state; ErrUnitNotFound if it is not installed.
	State(ctx context.Context, name string) (UnitState, error)
	// States reports the state of each named unit that is installed, in one
	// round trip; units that are not installed are absent from the map.
	States(ctx context.Context, names []string) (map[string]UnitState, error)
	// List returns the names of installed units that start with UnitPrefix.
	List(ctx context.Context) ([]string, error)
	// Changes delivers the names of units whose state changed.
	Changes() <-chan string
	// Close releases the connection; running units keep running.
	Close() error
}
