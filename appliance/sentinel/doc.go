// Package sentinel answers the part of the Redis Sentinel protocol that
// standard clients use to find a database's primary, so that go-redis
// NewFailoverClient, redis-py's Sentinel and redis-cli (the clients the
// tests run) work against the appliance unchanged. Each node runs one
// Server; a database's name is the Sentinel "master name".
//
// There is no Sentinel behind it: no monitoring, no votes, no failover. The
// answers come from the cluster state through Source, and the agent calls
// Server.Changed when that state may have moved, which is when subscribers
// are told "+switch-master".
//
// What must always hold:
//
//   - A connection sees a database only while the password it authenticated
//     with is that database's password. Every command re-checks against the
//     current state, so a rotated password or a deleted and re-created
//     database stops being visible at once. An unknown name and a name the
//     connection may not see get the same answer, so existence never leaks.
//   - Passwords and AUTH arguments are never logged.
//   - A client that stops reading never blocks publishing to others: its
//     output queue is bounded and it is dropped when the queue overflows.
//   - Connections are bounded (limits.go): one that has not authenticated
//     within AuthTimeout of connecting is closed, whatever else it sends;
//     one that is authenticated and idle for IdleTimeout is closed unless it
//     is subscribed; and over the caps (in all, per address) a connection
//     is answered "max number of clients reached" and closed.
//   - Only RESP2 is spoken. HELLO 3 is refused with NOPROTO, which clients
//     treat as "old server" and fall back to RESP2 with AUTH.
//
// Fields a real Sentinel measures and we do not (times since the last ping,
// INFO refresh, role report) are reported as 0, except that a down instance
// reports its last OK ping as down-after-milliseconds ago, the least that its
// s_down flag implies. Numeric fields are always integers because redis-py
// converts them with int().
package sentinel
