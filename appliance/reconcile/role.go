package reconcile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/redisconf"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// replication is whom an instance replicates, as the state says, and the
// users it has.
type replication struct {
	// ReplicaOf is the primary's host:port; "" for a primary that follows
	// nothing.
	ReplicaOf string
	// Master is the credential to authenticate to the primary with.
	Master instance.Credential
	// Users are the instance's Redis users (access.Users).
	Users []access.User
	// TLS is the instance's TLS port and files; nil: none.
	TLS *redisconf.TLS
}

// replicationOf works out an instance's replication from the state: a
// replica follows its database's primary; the primary of a linked replica
// follows the source's primary, or the external Redis. A primary is given
// its own database's replication credential all the same, so that a
// demotion at run time finds it already set.
func (r *Reconciler) replicationOf(st *raftstate.State, db *raftstate.Database, in raftstate.Instance) (replication, error) {
	var rep replication
	own, err := access.ReplicationCredential(r.keys, db)
	if err != nil {
		return rep, err
	}
	if in.Role == raftstate.RoleReplica {
		p, ok := db.Primary()
		if !ok {
			return rep, fmt.Errorf("database %s has no primary to replicate", db.Name)
		}
		rep.ReplicaOf, rep.Master = instanceAddr(st, p), own
		return rep, nil
	}
	f := db.Follows
	if f == nil {
		rep.Master = own
		return rep, nil
	}
	if f.Database == "" {
		pw, err := r.keys.Open(f.Password)
		if err != nil {
			return rep, err
		}
		rep.ReplicaOf, rep.Master = net.JoinHostPort(f.Host, strconv.Itoa(f.Port)), instance.Credential{Password: string(pw)}
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
	if rep.Master, err = access.ReplicationCredential(r.keys, src); err != nil {
		return rep, err
	}
	rep.ReplicaOf = instanceAddr(st, p)
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
	c, err := r.probes.client(ctx, r.keys, db, in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*probeTimeout)
	defer cancel()
	info, err := instance.ReadInfo(ctx, c, "replication")
	if err != nil {
		r.probes.refused(in.ID, err)
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
			// An empty masteruser is the default user: CONFIG SET takes
			// "" for it.
			if err := c.Do(ctx, "CONFIG", "SET", "masteruser", rep.Master.User, "masterauth", rep.Master.Password).Err(); err != nil {
				return fmt.Errorf("set masteruser and masterauth: %w", err)
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
	if err := r.applyUsers(ctx, c, in, rep); err != nil {
		return err
	}
	if err := r.applyTLS(ctx, in, db, rep.TLS); err != nil {
		return err
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

// applyUsers gives a running instance the users its redis.conf has, with
// ACL SETUSER (each starts with reset, so nothing of an older definition
// stays) and ACL DELUSER for users the state no longer has, and the
// credential it replicates with (CONFIG SET masteruser masterauth: an
// established link keeps going, and its next reconnection uses the new
// one). It is remembered once done: no round trip on every pass (a
// restarted instance reads all of it from its file). The connection is
// dropped after a change, so that the next one authenticates as the
// agent's own user if this one was still the default user (an instance
// from before access control).
func (r *Reconciler) applyUsers(ctx context.Context, c *redis.Client, in raftstate.Instance, rep replication) error {
	users := rep.Users
	fp := access.Fingerprint(append(slices.Clip(users), access.User{Name: "\x00master", Args: []string{rep.Master.User, access.Digest(rep.Master.Password)}}))
	r.mu.Lock()
	done := r.acl[in.ID] == fp
	r.mu.Unlock()
	if done {
		return nil
	}
	have, err := c.Do(ctx, "ACL", "USERS").StringSlice()
	if err != nil {
		r.probes.refused(in.ID, err)
		return fmt.Errorf("list users: %w", err)
	}
	// The default user goes last: this connection may still be the
	// default user's (an instance from before access control), which
	// loses every management command with it.
	if err := c.Do(ctx, "CONFIG", "SET", "masteruser", rep.Master.User, "masterauth", rep.Master.Password).Err(); err != nil {
		r.probes.refused(in.ID, err)
		return fmt.Errorf("set masteruser and masterauth: %w", err)
	}
	want := map[string]bool{}
	var last []access.User
	set := func(u access.User) error {
		before, err := passwordDigests(ctx, c, u.Name)
		if err != nil {
			return fmt.Errorf("read user %s: %w", u.Name, err)
		}
		if err := c.Do(ctx, append([]any{"ACL", "SETUSER", u.Name}, stringsToAny(u.Args)...)...).Err(); err != nil {
			return fmt.Errorf("set user %s: %w", u.Name, err)
		}
		// Redis keeps a connection authenticated with a password it no
		// longer accepts: close the user's connections (but this one)
		// when one of its passwords went, so that a rotation locks out
		// whoever held the old one. Clients reconnect with theirs.
		for _, d := range before {
			if !slices.Contains(u.Args, "#"+d) {
				if err := c.Do(ctx, "CLIENT", "KILL", "USER", u.Name, "SKIPME", "yes").Err(); err != nil {
					return fmt.Errorf("close the connections of %s: %w", u.Name, err)
				}
				r.log.Info("a password of an instance's user stopped working; its connections are closed", "instance", in.ID, "user", u.Name)
				break
			}
		}
		return nil
	}
	for _, u := range users {
		want[u.Name] = true
		if u.Name == raftstate.DefaultUser {
			last = append(last, u)
			continue
		}
		if err := set(u); err != nil {
			return err
		}
	}
	for _, name := range have {
		if !want[name] {
			if err := c.Do(ctx, "ACL", "DELUSER", name).Err(); err != nil {
				return fmt.Errorf("delete user %s: %w", name, err)
			}
		}
	}
	for _, u := range last {
		if err := set(u); err != nil {
			return err
		}
	}
	r.probes.forget(in.ID)
	r.mu.Lock()
	r.acl[in.ID] = fp
	r.mu.Unlock()
	r.log.Info("instance users set", "instance", in.ID, "users", len(users))
	return nil
}

// applyTLS gives a running instance the TLS port and files its redis.conf
// has, with CONFIG SET (redis-server 7 opens, moves and closes its TLS
// port at run time, and setting the file paths again reloads them, which
// is how a renewed certificate is taken without dropping a client). It is
// remembered once done, with the certificate's digest, so that a renewal
// is applied and nothing else asks twice.
func (r *Reconciler) applyTLS(ctx context.Context, in raftstate.Instance, db *raftstate.Database, t *redisconf.TLS) error {
	want := "off"
	if t != nil {
		cert, err := os.ReadFile(t.CertFile)
		if err != nil {
			return fmt.Errorf("read the TLS certificate: %w", err)
		}
		sum := sha256.Sum256(cert)
		want = fmt.Sprintf("%d %s %x", t.Port, t.CertFile, sum[:8])
	}
	r.mu.Lock()
	done := r.tls[in.ID] == want
	r.mu.Unlock()
	if done {
		return nil
	}
	c, err := r.probes.client(ctx, r.keys, db, in)
	if err != nil {
		return err
	}
	if t == nil {
		err = c.Do(ctx, "CONFIG", "SET", "tls-port", "0").Err()
	} else {
		err = c.Do(ctx, "CONFIG", "SET", "tls-cert-file", t.CertFile, "tls-key-file", t.KeyFile, "tls-ca-cert-file", t.CAFile,
			"tls-protocols", redisconf.TLSProtocols, "tls-auth-clients", "no").Err()
		if err == nil {
			err = c.Do(ctx, "CONFIG", "SET", "tls-port", strconv.Itoa(t.Port)).Err()
		}
	}
	if err != nil {
		r.probes.refused(in.ID, err)
		return fmt.Errorf("set TLS (%s): %w", want, err)
	}
	r.mu.Lock()
	r.tls[in.ID] = want
	r.mu.Unlock()
	r.log.Info("instance TLS set", "instance", in.ID, "tls", want)
	return nil
}

// passwordDigests are the SHA-256 digests (hex) of the passwords user has
// on the instance; none for a user it does not have.
func passwordDigests(ctx context.Context, c *redis.Client, user string) ([]string, error) {
	v, err := c.Do(ctx, "ACL", "GETUSER", user).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(v); i += 2 {
		if k, _ := v[i].(string); k == "passwords" {
			ps, _ := v[i+1].([]any)
			out := make([]string, 0, len(ps))
			for _, p := range ps {
				if s, ok := p.(string); ok {
					out = append(out, s)
				}
			}
			return out, nil
		}
	}
	return nil, nil
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Fence makes a running primary refuse writes (NOREPLICAS), or lifts that,
// at run time: the agent fences its primaries while it cannot reach the
// leader, so that a primary the cluster may be failing over takes no write
// that would be lost.
//
// A primary that must be fenced but does not take the fence twice in a row
// (the agent cannot get in: every connection slot taken, a command
// blocking it, its credentials refused) is restarted: it comes back from
// its file, which fences it, and without the connections that kept the
// agent out. Writes it would otherwise take could be lost to a failover.
func (r *Reconciler) Fence(ctx context.Context, db *raftstate.Database, in raftstate.Instance, fenced bool) error {
	err := r.setFence(ctx, db, in, fenced)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.fenceFailed, in.ID)
		return nil
	}
	if !fenced {
		return err
	}
	if _, before := r.fenceFailed[in.ID]; !before {
		r.fenceFailed[in.ID] = time.Now()
		return err
	}
	if !r.restarting[in.ID] {
		r.restarting[in.ID] = true
		r.log.Warn("a primary that must refuse writes does not take its fence; restarting it fenced", "instance", in.ID, "err", err)
		go r.restartFenced(in.ID)
	}
	return fmt.Errorf("%w; restarting it fenced", err)
}

// lockedOut handles an instance the agent could not bring to its role:
// one that refuses every credential the agent has (its node missed two
// rotations) or, for a replica, that has no connection slot left for the
// agent (it may be a demoted primary still taking writes from the
// connections it has). On the second pass in a row it is restarted, from
// its file: with the current users, in the role the state gives it.
func (r *Reconciler) lockedOut(in raftstate.Instance, err error) error {
	full := strings.Contains(err.Error(), "max number of clients reached")
	if !instance.IsAuthError(err) && !(full && in.Role == raftstate.RoleReplica) {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lockouts[in.ID]++
	if r.lockouts[in.ID] < 2 || r.restarting[in.ID] {
		return err
	}
	delete(r.lockouts, in.ID)
	r.restarting[in.ID] = true
	r.log.Warn("an instance keeps the agent out; restarting it from its file", "instance", in.ID, "role", in.Role, "err", err)
	go r.restartFenced(in.ID)
	return fmt.Errorf("%w; restarting it", err)
}

// unfenceableRestart bounds the restart of an instance that would not
// take its fence.
const unfenceableRestart = time.Minute

func (r *Reconciler) restartFenced(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), unfenceableRestart)
	defer cancel()
	err := r.sup.Restart(ctx, UnitName(id))
	r.probes.forget(id)
	r.mu.Lock()
	delete(r.restarting, id)
	delete(r.fenceFailed, id)
	r.mu.Unlock()
	if err != nil {
		r.log.Error("cannot restart an instance that would not take its fence", "instance", id, "err", err)
	}
}

func (r *Reconciler) setFence(ctx context.Context, db *raftstate.Database, in raftstate.Instance, fenced bool) error {
	c, err := r.probes.client(ctx, r.keys, db, in)
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
		r.probes.refused(in.ID, err)
		// A connection that timed out may be half read: the next
		// attempt dials afresh.
		r.probes.forget(in.ID)
		return fmt.Errorf("fence %s (%t): %w", in.ID, fenced, err)
	}
	return nil
}
