// Package api is the agent's HTTP+JSON interface: the wire types, the server
// that maps routes onto a Backend, and the typed client the CLI and the TUI
// use. Nothing else speaks HTTP to the agent.
package api

import (
	"time"
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
	// Node pins the database (its primary) to a node; empty lets the
	// leader place it.
	Node string `json:"node,omitempty"`
	// Replicas is how many replicas to place, each on another node.
	Replicas int `json:"replicas,omitempty"`
	// Follows makes the new database a linked replica of this database
	// of the cluster; version, flavor and memory default to the source's.
	Follows string `json:"follows,omitempty"`
	// FromURL makes it a linked replica of an external Redis,
	// redis://[user]:PASSWORD@HOST:PORT. It holds a secret: never logged.
	FromURL string `json:"from_url,omitempty"`
}

// CreatePlan is the agent's answer to a create it was asked only to
// validate (POST /v1/databases/validate): the database as it would be
// created, where each instance would go, and what each instance's node
// must have for it. Nothing is created.
type CreatePlan struct {
	// Database has the resolved version, flavor and plan, and one
	// instance per placement (node, port, role), in state "planned".
	Database Database `json:"database"`
	// NeedMemory and NeedDisk are what each instance takes on its node:
	// the plan plus the flavor's headroom (fork copy-on-write, RDB and
	// AOF rewrite files).
	NeedMemory int64 `json:"need_memory"`
	NeedDisk   int64 `json:"need_disk"`
}

// FailoverRequest asks for a planned switchover.
type FailoverRequest struct {
	// To names the node whose replica becomes the primary; empty picks
	// the most up-to-date replica.
	To string `json:"to,omitempty"`
}

// FailoverResult is the database after a switchover, with how long writes
// were paused on the old primary.
type FailoverResult struct {
	Database Database `json:"database"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	// WritePauseMs runs from CLIENT PAUSE on the old primary to its
	// demotion and CLIENT UNPAUSE.
	WritePauseMs float64 `json:"write_pause_ms"`
}

// JoinCompleteRequest names the node to make a voter. The member that first
// receives the call fills it from the caller's verified certificate.
type JoinCompleteRequest struct {
	Node string `json:"node"`
}

// Database states as users see them.
const (
	// StatePlanned is an instance of a create that was only validated.
	StatePlanned  = "planned"
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
	Port            int    `json:"port"`
	Unit            string `json:"unit"`
	State           string `json:"state"`
	MemoryUsedBytes int64  `json:"memory_used_bytes"`
	// OpsPerSec and Clients are the primary's, as last observed.
	OpsPerSec int64      `json:"ops_per_sec"`
	Clients   int        `json:"clients"`
	Instances []Instance `json:"instances"`
	// Epoch counts primary changes (switchovers, failovers, promotions).
	Epoch uint64 `json:"epoch"`
	// Follows names what a linked replica follows: a database of the
	// cluster, or host:port of an external Redis.
	Follows string `json:"follows,omitempty"`
	// ReadOnly: unlinked, refusing writes until promoted.
	ReadOnly bool `json:"read_only,omitempty"`
	// LinkedReplicas are the databases that follow this one.
	LinkedReplicas []string   `json:"linked_replicas,omitempty"`
	PromotedAt     *time.Time `json:"promoted_at,omitempty"`
	PromotedFrom   string     `json:"promoted_from,omitempty"`
	// FailoverStatus says why a failed primary is not being replaced
	// (no replica qualifies, cooldown, replicas still reach it).
	FailoverStatus string `json:"failover_status,omitempty"`
	// AccessControl: the default user cannot change roles, persistence,
	// security or the fence (false only for a database from before
	// access control, until every agent is upgraded).
	AccessControl bool `json:"access_control"`
	// Users are the application users besides the default one.
	Users []DatabaseUser `json:"users,omitempty"`
	// TLS is the TLS mode ("" off, enabled, only); TLSPort the primary's.
	TLS     string `json:"tls,omitempty"`
	TLSPort int    `json:"tls_port,omitempty"`
}

// CA is a certificate authority's certificate, for clients to trust.
type CA struct {
	CertPEM string `json:"cert_pem"`
}

// TLSRequest sets a database's TLS mode: enable, only or off.
type TLSRequest struct {
	Mode string `json:"mode"`
}

// SaveResult is a snapshot of a database's primary written to its RDB
// file (db save).
type SaveResult struct {
	Database string    `json:"database"`
	Instance string    `json:"instance"`
	Node     string    `json:"node"`
	Status   string    `json:"status"`
	SavedAt  time.Time `json:"saved_at"`
	Seconds  float64   `json:"seconds"`
}

// Instance is one redis-server of a database.
type Instance struct {
	ID              string `json:"id"`
	Node            string `json:"node"`
	Host            string `json:"host"`
	Port            int    `json:"port"`
	TLSPort         int    `json:"tls_port,omitempty"`
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
	// Offset is the instance's replication offset (master_repl_offset).
	Offset int64 `json:"offset"`
	// OpsPerSec and Clients: instantaneous_ops_per_sec and
	// connected_clients as last observed (every 2 s).
	OpsPerSec int64 `json:"ops_per_sec"`
	Clients   int   `json:"clients"`
	// Replication is set for an instance that replicates something.
	Replication *Replication `json:"replication,omitempty"`
}

// Replication is how an instance's replication link looks.
type Replication struct {
	// Primary is the host:port it follows.
	Primary string `json:"primary"`
	// LinkStatus is up or down (master_link_status).
	LinkStatus     string `json:"link_status"`
	SyncInProgress bool   `json:"sync_in_progress"`
	// LagBytes is the primary's offset minus this instance's, as last
	// observed; -1 when the primary's offset is unknown (external).
	LagBytes int64 `json:"lag_bytes"`
	// LastIOSeconds is the seconds since the last interaction with the
	// primary; -1 when the link is down.
	LastIOSeconds int `json:"last_io_seconds"`
}

// URL is a database's connection URL, with its password.
type URL struct {
	URL string `json:"url"`
}

// Node is one node's hardware and what is allocated on it.
type Node struct {
	Name     string `json:"name"`
	Address  string `json:"address,omitempty"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
	Draining bool   `json:"draining"`
	// LastContactSeconds is the age of the node's last heartbeat as seen by
	// the leader; -1 when none has arrived.
	LastContactSeconds float64  `json:"last_contact_seconds"`
	Healthy            bool     `json:"healthy"`
	Supervisor         string   `json:"supervisor"`
	Hardware           Hardware `json:"hardware"`
	ReservedMemory     int64    `json:"reserved_memory"`
	ReservedDisk       int64    `json:"reserved_disk"`
	AllocatedMemory    int64    `json:"allocated_memory"`
	AllocatedDisk      int64    `json:"allocated_disk"`
	FreeMemory         int64    `json:"free_memory"`
	FreeDisk           int64    `json:"free_disk"`
	Databases          int      `json:"databases"`
	// Versions are the catalogue versions (major.minor) the node has a
	// redis-server for, as it last reported; nil when it has not said
	// (an agent older than feature level 2): null, where none is [].
	Versions []string `json:"versions"`
	// AgentVersion and FeatureLevel are the node's agent release and the
	// level of Raft commands it applies, as recorded in the state.
	AgentVersion string `json:"agent_version,omitempty"`
	FeatureLevel uint32 `json:"feature_level,omitempty"`
}

// Hardware is what a node has, in bytes, as it last measured it.
type Hardware struct {
	MemTotal     int64  `json:"mem_total"`
	MemAvailable int64  `json:"mem_available"`
	SwapTotal    int64  `json:"swap_total"`
	SwapFree     int64  `json:"swap_free"`
	CPUs         int    `json:"cpus"`
	DiskPath     string `json:"disk_path"`
	DiskTotal    int64  `json:"disk_total"`
	DiskFree     int64  `json:"disk_free"`
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
	// LastContactSeconds is how long ago this node heard from the leader.
	LastContactSeconds float64  `json:"last_contact_seconds"`
	Members            []Member `json:"members,omitempty"`
	// AgentVersion and FeatureLevel are this node's own.
	AgentVersion string `json:"agent_version,omitempty"`
	FeatureLevel uint32 `json:"feature_level,omitempty"`
	// ClusterFeatureLevel is the lowest feature level among the voters:
	// commands above it are refused until they are upgraded.
	ClusterFeatureLevel uint32 `json:"cluster_feature_level,omitempty"`
	// ApplyErrors are Raft log entries this node could not apply (written
	// by a newer agent): it needs an upgrade. UndecodableTotal counts all
	// of them since the agent started.
	ApplyErrors      []ApplyError `json:"apply_errors,omitempty"`
	UndecodableTotal uint64       `json:"undecodable_total,omitempty"`
	// Token is set by cluster init: a first join token.
	Token *TokenResponse `json:"token,omitempty"`
}

// ApplyError is a Raft log entry this node could not apply.
type ApplyError struct {
	Index          uint64 `json:"index"`
	Command        string `json:"command"`
	PayloadVersion uint8  `json:"payload_version"`
	Error          string `json:"error"`
}

// Member is one server of the Raft configuration.
type Member struct {
	Name    string `json:"name"`
	Address string `json:"raft_address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	// LastContactSeconds is the age of its last heartbeat at the leader
	// (-1: none yet, or this node is not the leader).
	LastContactSeconds float64 `json:"last_contact_seconds"`
	Healthy            bool    `json:"healthy"`
	// AgentVersion and FeatureLevel are the member's agent release and
	// feature level as recorded in the state (empty and 0 for an agent
	// too old to report them: level 1).
	AgentVersion string `json:"agent_version,omitempty"`
	FeatureLevel uint32 `json:"feature_level,omitempty"`
}

// JoinClusterRequest tells the local agent to join a cluster.
type JoinClusterRequest struct {
	// Addr is a member's cluster API, host or host:port; empty means the
	// address in the token.
	Addr  string `json:"addr,omitempty"`
	Token string `json:"token"`
}

// TokenRequest asks for a join token.
type TokenRequest struct {
	// TTL is how long the token is valid, e.g. "1h"; empty means 1h.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse is a join token. It is a secret: it admits one host.
type TokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// DrainResponse says what a drain left on the node.
type DrainResponse struct {
	Node string `json:"node"`
	// Moved are the databases whose primary was switched over to another
	// node.
	Moved []string `json:"moved"`
	// Remaining are the databases with an instance still on the node.
	Remaining []string `json:"remaining"`
}

// JoinRequest is what a joining host sends to a member.
type JoinRequest struct {
	Token    string `json:"token"`
	Node     string `json:"node"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Address  string `json:"address"`
	// SentinelPort is where the node answers discovery; 0: off.
	SentinelPort int `json:"sentinel_port,omitempty"`
}

// JoinResponse is the key material a joining host receives over TLS.
type JoinResponse struct {
	CACert     []byte `json:"ca_cert"`
	CAKey      []byte `json:"ca_key"`
	NodeCert   []byte `json:"node_cert"`
	NodeKey    []byte `json:"node_key"`
	ClusterKey []byte `json:"cluster_key"`
	Leader     string `json:"leader"`
}

// Version is one row of the version catalogue, with where it is
// installed.
type Version struct {
	// Version is major.minor.
	Version string `json:"version"`
	// Status is supported, deprecated, eol, or unknown (installed but not
	// in the catalogue: never used).
	Status string `json:"status"`
	// Released, Deprecated and EndOfLife are dates (YYYY-MM-DD); empty for
	// an installed version that is not in the catalogue.
	Released   string `json:"released,omitempty"`
	Deprecated string `json:"deprecated,omitempty"`
	EndOfLife  string `json:"end_of_life,omitempty"`
	// Installed says whether the answering node has a binary for it, and
	// which.
	Installed bool   `json:"installed"`
	Full      string `json:"full,omitempty"`
	Path      string `json:"path,omitempty"`
	// Nodes are the nodes that reported a binary for it (on the leader;
	// the answering node alone elsewhere).
	Nodes []string `json:"nodes,omitempty"`
	// Default marks the version a new database gets when it names none.
	Default bool `json:"default"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// Event is a recorded event: a failure detected, a failover, a refusal to
// fail over, a fence or un-fence, a node lost or back.
type Event struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Database string    `json:"database,omitempty"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message"`
}

// HeartbeatAck is the leader's answer to a heartbeat.
type HeartbeatAck struct {
	// AppliedIndex is the leader's applied Raft index when it answered: a
	// node that has applied that much knows every decision taken before
	// its heartbeat was acknowledged (the fence waits for it).
	AppliedIndex uint64 `json:"applied_index"`
}
