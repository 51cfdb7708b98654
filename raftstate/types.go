// Package raftstate owns the cluster's replicated control state: the domain
// types, the append-only list of commands, the FSM that applies them and the
// Raft store that replicates them. The FSM is deterministic and does no I/O;
// every side effect belongs to the reconciler in appliance/reconcile.
package raftstate

import (
	"net"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Flavor is a database's persistence mode.
type Flavor string

// The three persistence flavors a database can have.
const (
	// FlavorAOF is AOF plus RDB snapshots (appendfsync everysec).
	FlavorAOF Flavor = "aof"
	// FlavorRDB is RDB snapshots only.
	FlavorRDB Flavor = "rdb"
	// FlavorNoRDB keeps data in memory only.
	FlavorNoRDB Flavor = "nordb"
)

// Flavors lists every valid flavor, in the order the CLI shows them.
var Flavors = []Flavor{FlavorAOF, FlavorRDB, FlavorNoRDB}

// Valid reports whether f is one of the known flavors.
func (f Flavor) Valid() bool {
	return slices.Contains(Flavors, f)
}

// Check is the one check of a flavor: the FSM, the control plane, sizing
// and redis.conf rendering all ask it.
func (f Flavor) Check() error {
	if !f.Valid() {
		return invalidf("unknown flavor %q: use aof (AOF+RDB), rdb (RDB only) or nordb (memory only)", string(f))
	}
	return nil
}

// ParseFlavor reads a flavor as users give it: empty means aof.
func ParseFlavor(s string) (Flavor, error) {
	f := Flavor(s)
	if f == "" {
		return FlavorAOF, nil
	}
	return f, f.Check()
}

// InstanceID names instance n of database db: what CheckInstanceID
// accepts.
func InstanceID(db string, n int) string { return db + "-" + strconv.Itoa(n) }

// Role is an instance's replication role.
type Role string

// Instance roles.
const (
	RolePrimary Role = "primary"
	RoleReplica Role = "replica"
)

// Sealed is a secret encrypted with the cluster key (see appliance/secrets).
// Only sealed bytes ever enter the Raft log or a snapshot.
type Sealed []byte

// Database is what a user asks for by name.
type Database struct {
	Name        string `json:"name"`
	Version     string `json:"version"` // catalogue version, e.g. "7.0"
	Flavor      Flavor `json:"flavor"`
	MemoryBytes int64  `json:"memory_bytes"`
	Password    Sealed `json:"password"`
	// CreatedAt comes from the proposer so that Apply stays deterministic.
	CreatedAt time.Time `json:"created_at"`
	// RestartGeneration is bumped by a restart request; a reconciler restarts
	// an instance whose applied generation is lower.
	RestartGeneration uint64     `json:"restart_generation"`
	Instances         []Instance `json:"instances"`
	// Epoch counts the changes of primary: 1 at creation, bumped by every
	// switchover, failover and promotion. Commands that change the primary
	// carry the epoch they were decided at, so a decision made on a stale
	// view is refused instead of applied twice.
	Epoch uint64 `json:"epoch,omitempty"`
	// Follows makes the database a linked replica: its primary replicates
	// another database of the cluster, or an external Redis.
	Follows *Follow `json:"follows,omitempty"`
	// ReadOnly is set by unlink: the database keeps its data, follows
	// nothing and refuses writes until it is promoted.
	ReadOnly bool `json:"read_only,omitempty"`
	// PromotedAt and PromotedFrom record the last promotion of a linked
	// replica: when, and what it followed.
	PromotedAt   time.Time `json:"promoted_at,omitempty"`
	PromotedFrom string    `json:"promoted_from,omitempty"`
	// PrimarySince is when the current primary took over: creation, or
	// the last switchover, failover or promotion.
	PrimarySince time.Time `json:"primary_since,omitempty"`
	// FailedOverAt is the last automatic failover: the cooldown runs from it.
	FailedOverAt time.Time `json:"failed_over_at,omitempty"`
	// TLS is whether the instances listen with TLS (feature level 4).
	TLS TLSMode `json:"tls,omitempty"`
	// Access holds the agent's and the replicas' secrets and the
	// application users; nil for a database from before access control
	// (feature level 3), whose default user can still do everything.
	Access *Access `json:"access,omitempty"`
}

// Event is something an operator should be able to look back on: a
// detection, a failover or a refusal to fail over, a fence, a node lost.
type Event struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Database string    `json:"database,omitempty"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message"`
}

// MaxEvents bounds the events the state keeps; older ones are dropped.
const MaxEvents = 1000

// Follow is what a linked replica replicates: a database of this cluster
// by name, or an external Redis by address and sealed password.
type Follow struct {
	Database string `json:"database,omitempty"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	Password Sealed `json:"password,omitempty"`
}

// Describe names the source for people: the database name, or host:port.
func (f *Follow) Describe() string {
	if f.Database != "" {
		return f.Database
	}
	return net.JoinHostPort(f.Host, strconv.Itoa(f.Port))
}

// Instance returns the database's instance with the given ID.
func (d *Database) Instance(id string) (Instance, bool) {
	for _, in := range d.Instances {
		if in.ID == id {
			return in, true
		}
	}
	return Instance{}, false
}

// LinkedReplicas returns the names of the databases that follow name.
func (s *State) LinkedReplicas(name string) []string {
	var out []string
	for _, n := range s.DatabaseNames() {
		if f := s.Databases[n].Follows; f != nil && f.Database == name {
			out = append(out, n)
		}
	}
	return out
}

// Primary returns the database's primary instance, if it has one.
func (d *Database) Primary() (Instance, bool) {
	for _, in := range d.Instances {
		if in.Role == RolePrimary {
			return in, true
		}
	}
	return Instance{}, false
}

// Instance is one redis-server of a database on one node.
type Instance struct {
	ID   string `json:"id"` // unique in the cluster, e.g. "cache-0"
	Node string `json:"node"`
	Port int    `json:"port"`
	Role Role   `json:"role"`
	// TLSPort is the instance's TLS port; 0 until its database first
	// has TLS.
	TLSPort int `json:"tls_port,omitempty"`
}

// Node is a host running the agent.
type Node struct {
	Name     string `json:"name"`
	RaftAddr string `json:"raft_addr"`
	// APIAddr is the node's cluster API (mutual TLS), host:port.
	APIAddr string `json:"api_addr,omitempty"`
	// Address is where clients reach this node's instances.
	Address string `json:"address,omitempty"`
	// SentinelPort is where the node answers discovery; 0: off.
	SentinelPort int `json:"sentinel_port,omitempty"`
	// Draining nodes get no new placements.
	Draining bool      `json:"draining,omitempty"`
	JoinedAt time.Time `json:"joined_at,omitempty"`
	// FeatureLevel is the level of commands the node's agent applies, as
	// it last registered (0: an agent from before levels, level 1).
	FeatureLevel uint32 `json:"feature_level,omitempty"`
	// AgentVersion is the node's agent release as it last registered.
	AgentVersion string `json:"agent_version,omitempty"`
	// Versions are the catalogue versions (major.minor) the node has a
	// redis-server for, as it last reported; nil when it never said (an
	// agent before feature level 2), which HasVersion treats as unknown;
	// empty when it has none (no omitempty: that would make none unknown).
	Versions []string `json:"versions"`
	// CertSHA256 pins the node's certificate (see identity.go): peers
	// accept this node only with that certificate. Empty for a member
	// that joined before pins, until the leader records it.
	CertSHA256 string `json:"cert_sha256,omitempty"`
}

// HasVersion says whether the node can run version: it reported it
// installed, or it never reported what it has (an agent before feature
// level 2 is trusted, as before levels). A nil node has no record: not
// known either.
func (n *Node) HasVersion(version string) bool {
	if n == nil || n.Versions == nil {
		return true
	}
	return slices.Contains(n.Versions, version)
}

// Level is the node's feature level: FeatureLevel, or 1 when it said none.
func (n *Node) Level() uint32 {
	return max(n.FeatureLevel, 1)
}

// JoinToken is the cluster's record of a join token: only a hash of its
// secret, so the Raft log never holds a usable token.
type JoinToken struct {
	ID         string    `json:"id"`
	Hash       string    `json:"hash"`
	Expires    time.Time `json:"expires"`
	CreatedAt  time.Time `json:"created_at"`
	ConsumedBy string    `json:"consumed_by,omitempty"`
}

// State is the whole replicated state. Readers get deep copies.
type State struct {
	Databases map[string]*Database  `json:"databases"`
	Nodes     map[string]*Node      `json:"nodes"`
	Tokens    map[string]*JoinToken `json:"tokens,omitempty"`
	Events    []Event               `json:"events,omitempty"`
	// KeyChain is each cluster key rotate-key made, sealed with the one
	// before it (see secrets.go), oldest first.
	KeyChain []KeyLink `json:"key_chain,omitempty"`
	// DatabaseCA issues the instances' TLS certificates (nil until the
	// leader makes it, once every voter is at feature level 4).
	DatabaseCA *DatabaseCA `json:"database_ca,omitempty"`
}

// NewState returns an empty state.
func NewState() *State {
	return &State{Databases: map[string]*Database{}, Nodes: map[string]*Node{}, Tokens: map[string]*JoinToken{}}
}

// NodeNames returns the node names in sorted order.
func (s *State) NodeNames() []string {
	names := make([]string, 0, len(s.Nodes))
	for n := range s.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Clone returns a deep copy that the caller may keep and modify.
func (s *State) Clone() *State {
	c := NewState()
	for k, d := range s.Databases {
		dd := *d
		dd.Password = append(Sealed(nil), d.Password...)
		dd.Instances = append([]Instance(nil), d.Instances...)
		if d.Follows != nil {
			f := *d.Follows
			f.Password = append(Sealed(nil), d.Follows.Password...)
			dd.Follows = &f
		}
		dd.Access = d.Access.clone()
		c.Databases[k] = &dd
	}
	for k, n := range s.Nodes {
		nn := *n
		nn.Versions = slices.Clone(n.Versions)
		c.Nodes[k] = &nn
	}
	for k, t := range s.Tokens {
		tt := *t
		c.Tokens[k] = &tt
	}
	c.Events = append([]Event(nil), s.Events...)
	for _, l := range s.KeyChain {
		l.Sealed = append(Sealed(nil), l.Sealed...)
		c.KeyChain = append(c.KeyChain, l)
	}
	c.DatabaseCA = s.DatabaseCA.clone()
	return c
}

// DatabaseNames returns the database names in sorted order.
func (s *State) DatabaseNames() []string {
	names := make([]string, 0, len(s.Databases))
	for n := range s.Databases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// InstancesOn returns every instance placed on node, with its database.
func (s *State) InstancesOn(node string) []PlacedInstance {
	var out []PlacedInstance
	for _, name := range s.DatabaseNames() {
		d := s.Databases[name]
		for _, in := range d.Instances {
			if in.Node == node {
				out = append(out, PlacedInstance{Database: d, Instance: in})
			}
		}
	}
	return out
}

// PlacedInstance pairs an instance with the database it belongs to.
type PlacedInstance struct {
	Database *Database
	Instance Instance
}

// PortsInUse returns the ports allocated on node.
func (s *State) PortsInUse(node string) map[int]string {
	used := map[int]string{}
	for _, d := range s.Databases {
		for _, in := range d.Instances {
			if in.Node == node {
				used[in.Port] = in.ID
				if in.TLSPort != 0 {
					used[in.TLSPort] = in.ID
				}
			}
		}
	}
	return used
}

// AllocatedMemory returns the sum of maxmemory of the instances on node.
func (s *State) AllocatedMemory(node string) int64 {
	var sum int64
	for _, d := range s.Databases {
		for _, in := range d.Instances {
			if in.Node == node {
				sum += d.MemoryBytes
			}
		}
	}
	return sum
}
