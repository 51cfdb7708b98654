package sentinel

import (
	"net"
	"strconv"
	"strings"
)

// What a real Sentinel reports from its configuration. Ours has none, so
// these are Sentinel's defaults; clients only display them.
const (
	downAfterMillis = 30000
	failoverTimeout = 180000
	parallelSyncs   = 1
	slavePriority   = 100
)

// masterFields is a master as SENTINEL MASTER(S) describes it: field and
// value pairs in the order Sentinel 7 emits them. peers is how many other
// nodes there are.
func masterFields(m *Master, peers int) []string {
	f := instanceFields(m.Name, m.Addr, "", m.Down, "master")
	f = append(f,
		"info-refresh", "0",
		"role-reported", "master",
		"role-reported-time", "0",
		"config-epoch", strconv.FormatUint(m.Epoch, 10),
		"num-slaves", strconv.Itoa(len(m.Replicas)),
		"num-other-sentinels", strconv.Itoa(peers),
		// The agent decides failover by a majority of the nodes, which
		// is what quorum means to someone reading this.
		"quorum", strconv.Itoa((peers+1)/2+1),
		"failover-timeout", strconv.Itoa(failoverTimeout),
		"parallel-syncs", strconv.Itoa(parallelSyncs),
	)
	return f
}

// replicaFields is one replica as SENTINEL REPLICAS describes it.
func replicaFields(m *Master, r *Replica) []string {
	name := hostPort(r.Addr)
	f := instanceFields(name, r.Addr, "", r.Down, "slave")
	linkStatus := "err"
	if r.LinkUp {
		linkStatus = "ok"
	}
	f = append(f,
		"info-refresh", "0",
		"role-reported", "slave",
		"role-reported-time", "0",
		"master-link-down-time", "0",
		"master-link-status", linkStatus,
		"master-host", m.Addr.IP,
		"master-port", strconv.Itoa(m.Addr.Port),
		"slave-priority", strconv.Itoa(slavePriority),
		"slave-repl-offset", strconv.FormatInt(r.Offset, 10),
		"replica-announced", "1",
	)
	return f
}

// peerFields is another node as SENTINEL SENTINELS describes it. A
// Sentinel is named by its run id.
func peerFields(p *Peer) []string {
	f := instanceFields(p.ID, p.Addr, p.ID, false, "sentinel")
	return append(f,
		"last-hello-message", "0",
		"voted-leader", "?",
		"voted-leader-epoch", "0",
	)
}

// instanceFields are the fields every kind of instance starts with, down to
// down-after-milliseconds. role is "master", "slave" or "sentinel".
func instanceFields(name string, a Addr, runID string, down bool, role string) []string {
	// Sentinel's flag order: s_down, o_down, role, disconnected. Only a
	// master is objectively down; a replica is only ever s_down.
	var flags []string
	if down {
		flags = append(flags, "s_down")
		if role == "master" {
			flags = append(flags, "o_down")
		}
	}
	flags = append(flags, role)
	if down {
		flags = append(flags, "disconnected")
	}
	lastOK := "0"
	if down {
		lastOK = strconv.Itoa(downAfterMillis)
	}
	f := []string{
		"name", name,
		"ip", a.IP,
		"port", strconv.Itoa(a.Port),
		"runid", runID,
		"flags", strings.Join(flags, ","),
		"link-pending-commands", "0",
		"link-refcount", "1",
		"last-ping-sent", "0",
		"last-ok-ping-reply", lastOK,
		"last-ping-reply", lastOK,
	}
	if down {
		f = append(f, "s-down-time", "0")
		if role == "master" {
			f = append(f, "o-down-time", "0")
		}
	}
	return append(f, "down-after-milliseconds", strconv.Itoa(downAfterMillis))
}

// hostPort is how Sentinel names a replica: "ip:port", "[ip6]:port".
func hostPort(a Addr) string {
	return net.JoinHostPort(a.IP, strconv.Itoa(a.Port))
}
