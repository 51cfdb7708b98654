// Package instance is how the agent talks to one redis-server: connecting
// to it with the agent's settings, reading INFO into typed facts, turning
// what a node observes of an instance into the report the leader reads,
// and what an instance's place in its database means for failover.
//
// It owns no loop and no state of the cluster: the reconciler, the failure
// detector, the fencer, the switchover and the control plane all call it,
// so that each of these facts is decided here once.
package instance

import (
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// HA says whether a database has replicas: failover may act on it, its
// primary is fenced while its node has no lease, and a crashed primary is
// failed over rather than restarted in place.
func HA(db *raftstate.Database) bool { return len(db.Instances) > 1 }

// HAPrimary says whether in is the primary of an HA database: the
// instance a failover may replace, and so the one to fence.
func HAPrimary(db *raftstate.Database, in raftstate.Instance) bool {
	return in.Role == raftstate.RolePrimary && HA(db)
}

// Client names, shown by CLIENT LIST on the instance, so an operator can
// tell the agent's own connections from the application's.
const (
	// NameAgent observes and manages an instance on its own node.
	NameAgent = "redis-appliance-agent"
	// NameProbe is a replica's node checking that the primary answers.
	NameProbe = "redis-appliance-probe"
	// NameSwitchover is the leader driving a planned switchover.
	NameSwitchover = "redis-appliance-switchover"
	// NameCheck checks an external Redis before following it.
	NameCheck = "redis-appliance-check"
)

// Connect returns a client to the redis-server at addr (host:port) with
// the agent's connection settings: one connection, no retries and no
// HELLO (so a reply is never delayed by a retry, and the handshake cannot
// fail on a server's RESP3 quirks), and timeout on dial, read and write.
// Nothing is sent until it is used; close it when done.
func Connect(addr string, cred Credential, name string, timeout time.Duration) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: addr, Username: cred.User, Password: cred.Password, ClientName: name,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1,
		Protocol: 2, DisableIdentity: true,
	})
}

// Host is where clients and other instances reach node's instances: the
// address the node registered, or fallback for a node that has not
// registered one yet (a single node bootstrapped on loopback).
func Host(st *raftstate.State, node, fallback string) string {
	if n, ok := st.Nodes[node]; ok && n.Address != "" {
		return n.Address
	}
	return fallback
}

// Addr is host:port of an instance (see Host).
func Addr(st *raftstate.State, in raftstate.Instance, fallback string) string {
	return net.JoinHostPort(Host(st, in.Node, fallback), strconv.Itoa(in.Port))
}
