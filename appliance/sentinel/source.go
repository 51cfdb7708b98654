package sentinel

import (
	"crypto/sha1"
	"encoding/hex"
)

// Addr is an instance's address as clients reach it.
type Addr struct {
	IP   string
	Port int
}

// Replica is one replica of a master.
type Replica struct {
	Addr Addr
	// Down: not running or not reachable. Flags gain "s_down" and
	// "disconnected", which go-redis and redis-py both skip.
	Down bool
	// LinkUp: its replication link to the master is up
	// ("master-link-status" ok, else err).
	LinkUp bool
	// Offset is its replication offset ("slave-repl-offset").
	Offset int64
}

// Master is one database as discovery presents it.
type Master struct {
	Name string
	// Addr is the current primary.
	Addr Addr
	// Down: the primary is not running. Flags gain "s_down", "o_down" and
	// "disconnected"; redis-py then finds no master, go-redis still gets
	// the address (as from a real Sentinel) and retries it.
	Down bool
	// Epoch counts primary changes ("config-epoch").
	Epoch    uint64
	Replicas []Replica
	// Password is the database's password (plaintext, in memory only). A
	// client that authenticates with it may see this master, and no master
	// with another password. A master with no password is seen by nobody.
	Password string
	// PreviousPassword is the one a rotation replaced, while its grace
	// lasts ("" otherwise): it opens the master too.
	PreviousPassword string
	// Users are the database's application users and the passwords each
	// may authenticate with (plaintext, in memory only): AUTH user
	// password opens the master too, so that an application given a user
	// of its own discovers with it.
	Users map[string][]string
}

// Peer is another node's discovery endpoint (SENTINEL sentinels).
type Peer struct {
	// ID is that node's run id, as its own Server reports in SENTINEL myid.
	ID   string
	Addr Addr
}

// Source is where the server reads the current state. Calls must be cheap
// (in-memory): the server calls them per command, from many goroutines at
// once. The server does not modify what they return.
type Source interface {
	Masters() []Master
	// Peers are the other nodes' endpoints, not this one.
	Peers() []Peer
}

// RunID derives a stable Sentinel run id (40 hex digits, like a real
// Sentinel's) from a node's name, so that a node's own id and the id its
// peers list for it agree without being stored anywhere.
func RunID(node string) string {
	sum := sha1.Sum([]byte("redis-appliance sentinel " + node))
	return hex.EncodeToString(sum[:])
}
