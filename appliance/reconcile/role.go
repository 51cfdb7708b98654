package reconcile

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/redisconf"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// replication is whom an instance replicates, as the state says.
type replication struct {
	// ReplicaOf is the primary's host:port; "" for a primary that follows
	// nothing.
	ReplicaOf string
	// MasterAuth is the password of what it replicates (plaintext).
	MasterAuth string
	ReadOnly   bool
}

// replicationOf works out an instance's replication from the state: a
// replica follows its database's primary; the primary of a linked replica
// follows the source's primary, or the external Redis.
func (r *Reconciler) replicationOf(st *raftstate.State, db *raftstate.Database, in raftstate.Instance) (replication, error) {
	rep := replication{ReadOnly: db.ReadOnly}
	if in.Role == raftstate.RoleReplica {
		p, ok := db.Primary()
		if !ok {
			return rep, fmt.Errorf("database %s has no primary to replicate", db.Name)
		}
		pw, err := r.keys.Open(db.Password)
		if err != nil {
			return rep, err
		}
		rep.ReplicaOf, rep.MasterAuth = instanceAddr(st, p), string(pw)
		return rep, nil
	}
	f := db.Follows
	if f == nil {
		return rep, nil
	}
	if f.Database == "" {
		pw, err := r.keys.Open(f.Password)
		if err != nil {
			return rep, err
		}
		rep.ReplicaOf, rep.MasterAuth = net.JoinHostPort(f.Host, strconv.Itoa(f.Port)), string(pw)
		return rep, nil
	}
	src, ok := st.Databases[f.Database]
	if !ok {
		return rep, fmt.Errorf("database %s follows %s, which is not in the state", db.Name, f.Database)
	}
	p, ok := src.Primary()
	if !ok {
		return rep, fmt.Errorf("source %s has no primary to replicate", src.Name)
	}
	pw, err := r.keys.Open(src.Password)
	if err != nil {
		return rep, err
	}
	rep.ReplicaOf, rep.MasterAuth = instanceAddr(st, p), string(pw)
	return rep, nil
}

// instanceAddr is where other instances reach in: its node's address
// (loopback for a node that registered none: a single node).
func instanceAddr(st *raftstate.State, in raftstate.Instance) string {
	return instance.Addr(st, in, "127.0.0.1")
}

// applyRole brings a running instance to the role the state gives it,
// without a restart: REPLICAOF NO ONE to promote, REPLICAOF host port to
// follow (after CONFIG SET masterauth), and ACL SETUSER for read-only. A
// demoted primary's clients are disconnected, so that they ask discovery
// again instead of writing to a replica.
func (r *Reconciler) applyRole(ctx context.Context, db *raftstate.Database, in raftstate.Instance, rep replication) error {
	c, err := r.probes.client(r.keys, db, in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*probeTimeout)
	defer cancel()
	info, err := instance.ReadInfo(ctx, c, "replication")
	if err != nil {
		// Not answering yet (loading): the next pass tries again; the
		// file it will read on a restart already has the role.
		return fmt.Errorf("read role: %w", err)
	}
	wasPrimary := info.Primary()
	if rep.ReplicaOf == "" {
		if !wasPrimary {
			if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
				return fmt.Errorf("promote: %w", err)
			}
			r.log.Info("instance promoted to primary", "instance", in.ID, "epoch", db.Epoch)
		}
	} else {
		host, port, _ := net.SplitHostPort(rep.ReplicaOf)
		if !info.Follows(host, port) {
			if err := c.Do(ctx, "CONFIG", "SET", "masterauth", rep.MasterAuth).Err(); err != nil {
				return fmt.Errorf("set masterauth: %w", err)
			}
			if err := c.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
				return fmt.Errorf("replicate %s: %w", rep.ReplicaOf, err)
			}
			if wasPrimary {
				for _, kind := range []string{"normal", "pubsub"} {
					_ = c.Do(ctx, "CLIENT", "KILL", "TYPE", kind).Err()
				}
			}
			r.log.Info("instance now replicates", "instance", in.ID, "primary", rep.ReplicaOf, "was_primary", wasPrimary, "epoch", db.Epoch)
		}
	}
	// Once set, read-only only changes with the state: no ACL round trip
	// on every pass (a restarted instance reads it from its file).
	rule := "+@all"
	if rep.ReadOnly {
		rule = "-@write"
	}
	r.mu.Lock()
	done := r.acl[in.ID] == rule
	r.mu.Unlock()
	if !done {
		if err := c.Do(ctx, "ACL", "SETUSER", "default", rule).Err(); err != nil {
			return fmt.Errorf("set read-only %t: %w", rep.ReadOnly, err)
		}
		r.mu.Lock()
		r.acl[in.ID] = rule
		r.mu.Unlock()
	}
	if instance.HAPrimary(db, in) {
		fenced, known := false, true
		if r.cfg.Fenced != nil {
			fenced, known = r.cfg.Fenced()
		}
		if known {
			if err := r.Fence(ctx, db, in, fenced); err != nil {
				return err
			}
		}
	}
	return nil
}

// Fence makes a running primary refuse writes (NOREPLICAS), or lifts that,
// at run time: the agent fences its primaries while it cannot reach the
// leader, so that a primary the cluster may be failing over takes no write
// that would be lost.
func (r *Reconciler) Fence(ctx context.Context, db *raftstate.Database, in raftstate.Instance, fenced bool) error {
	c, err := r.probes.client(r.keys, db, in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	n := 0
	if fenced {
		n = redisconf.FencedMinReplicas
	}
	if err := c.Do(ctx, "CONFIG", "SET", "min-replicas-to-write", strconv.Itoa(n)).Err(); err != nil {
		return fmt.Errorf("fence %s (%t): %w", in.ID, fenced, err)
	}
	return nil
}
