// Package access decides who may do what on a database's instances: the
// Redis users every instance has (the agent's own, the replicas', the
// default user and the application users), the ACL rules of each role, and
// the credentials the agent and replicas present. redis.conf rendering,
// the reconciler's live changes, the failover code and the control plane
// all ask it, so each of these rules is written once.
//
// The promise it keeps: no credential handed to an application can change
// roles, persistence, security or the fence. Those commands are only the
// agent's, whose secret never leaves the cluster.
package access

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// The appliance's own users on every instance of a database with access
// control. Application users cannot take these names
// (raftstate.ReservedPrefix).
const (
	// AgentUser is the agent's management user: every command.
	AgentUser = "appliance-agent"
	// ReplicationUser is what replicas authenticate as (masteruser): only
	// the commands of the replication handshake.
	ReplicationUser = "appliance-replication"
)

// Opener opens the secrets sealed in the state (the cluster's keyring).
type Opener interface {
	Open(sealed []byte) ([]byte, error)
}

// Denied is what no application user may run, whatever its role, applied
// after the role's own rules. Redis's @admin category holds every command
// that changes roles (REPLICAOF, SLAVEOF, FAILOVER), persistence (SAVE,
// BGSAVE, BGREWRITEAOF, CONFIG), security (ACL SETUSER, CONFIG) or the
// fence (CONFIG SET min-replicas-to-write), or that stops or spies on the
// server (SHUTDOWN, DEBUG, MODULE, MONITOR, SYNC, PSYNC, CLIENT KILL and
// PAUSE); ACL, CLUSTER and MIGRATE are denied whole on top, since their
// harmless subcommands are of no use to an application here (no cluster
// mode, MIGRATE would write into another server). docs/security.md
// justifies each.
var Denied = []string{"-@admin", "-acl", "-cluster", "-migrate"}

// Restored are the @admin subcommands given back to applications after
// Denied: they only read, and clients and frameworks call them (ioredis
// asks ROLE after discovery; dashboards read SLOWLOG GET and CLIENT LIST;
// LASTSAVE and the LATENCY reports are read-only).
var Restored = []string{
	"+role", "+client|list", "+slowlog|get", "+slowlog|len", "+lastsave",
	"+latency|doctor", "+latency|graph", "+latency|histogram", "+latency|history", "+latency|latest",
}

// subscribe is what a reader needs to follow channels (PUBLISH is a write).
var subscribe = []string{"+subscribe", "+psubscribe", "+ssubscribe", "+unsubscribe", "+punsubscribe", "+sunsubscribe"}

// Rules returns the ACL rules of role, Denied included: read is Redis
// Cloud's read-only preset (+@read) with the connection commands,
// subscriptions, MULTI/EXEC/WATCH and the read-only script calls (whose
// redis.call is checked against the same rules); write is its read-write preset (+@all -@dangerous) with
// INFO back (Sidekiq and client libraries read it); admin is every
// command but Denied, what the default user has. A read-only database
// (unlinked, not promoted) takes no write from anyone.
func Rules(role raftstate.UserRole, readOnly bool) []string {
	var r []string
	switch role {
	case raftstate.UserRead:
		r = append([]string{"+@read", "+@connection", "+info", "+@transaction", "+eval_ro", "+evalsha_ro", "+fcall_ro", "+time"}, subscribe...)
	case raftstate.UserWrite:
		// Functions are shared code that runs with its caller's rights:
		// a writer replacing one an admin calls would act as the admin.
		r = []string{"+@all", "-@dangerous", "+info", "-function|load", "-function|delete", "-function|flush", "-function|restore"}
	default:
		r = []string{"+@all"}
	}
	r = append(r, Denied...)
	r = append(r, Restored...)
	if readOnly {
		r = append(r, "-@write")
	}
	return r
}

// scopedDenied is what a user limited to some keys also may not run: the
// commands that act on every key whatever its name.
var scopedDenied = []string{"-flushall", "-flushdb", "-swapdb"}

// UserRules are the ACL rules of an application user: its role's, and
// for a user limited to some keys, scopedDenied before the read-only rule.
func UserRules(u raftstate.User, readOnly bool) []string {
	r := Rules(u.Role, false)
	if len(u.Keys) > 0 {
		r = append(r, scopedDenied...)
	}
	if readOnly {
		r = append(r, "-@write")
	}
	return r
}

// InternalOverlap is how long, at least, the agent's and the replicas'
// previous secrets keep working after a rotation, whatever its grace: the
// nodes apply a rotation one after the other (within a reconcile period),
// and a replica reconnecting in between must not be refused.
const InternalOverlap = time.Minute

// User is one Redis user of an instance: its name and the arguments of
// ACL SETUSER that make it from nothing (they start with "reset", so
// applying them again is harmless and nothing of an older definition
// stays).
type User struct {
	Name string
	Args []string
}

// ConfigLine is u as a redis.conf directive. Passwords are given as
// SHA-256 digests, so the file holds no application secret in the clear.
func (u User) ConfigLine() string {
	return "user " + u.Name + " " + strings.Join(u.Args, " ")
}

// Digest is the ACL form of a password: '#' and its SHA-256 in hex.
func Digest(pw string) string { return digest([]byte(pw)) }

func digest(pw []byte) string {
	h := sha256.Sum256(pw)
	return "#" + hex.EncodeToString(h[:])
}

// opened are a database's secrets in the clear.
type opened struct {
	password, agent, replication    []byte
	prevPassword, prevAgent, prevRe []byte
	// previousValid: the previous default password is still accepted;
	// previousInternal: the previous agent and replication secrets.
	previousValid, previousInternal bool
}

func open(keys Opener, db *raftstate.Database, now time.Time) (opened, error) {
	var o opened
	var err error
	get := func(dst *[]byte, s raftstate.Sealed, what string) {
		if err != nil || len(s) == 0 {
			return
		}
		if *dst, err = keys.Open(s); err != nil {
			err = fmt.Errorf("open the %s of %s: %w", what, db.Name, err)
		}
	}
	get(&o.password, db.Password, "password")
	if a := db.Access; a != nil {
		get(&o.agent, a.Agent, "agent's secret")
		get(&o.replication, a.Replication, "replication secret")
		get(&o.prevPassword, a.PreviousPassword, "previous password")
		get(&o.prevAgent, a.PreviousAgent, "agent's previous secret")
		get(&o.prevRe, a.PreviousReplication, "previous replication secret")
		o.previousValid = now.Before(a.PreviousUntil)
		o.previousInternal = o.previousValid || now.Before(a.RotatedAt.Add(InternalOverlap))
	}
	return o, err
}

// passwords returns the ACL password arguments: the current secret, and
// the previous one while it is valid.
func passwords(cur, prev []byte, prevValid bool) []string {
	out := []string{digest(cur)}
	if prevValid && len(prev) > 0 && string(prev) != string(cur) {
		out = append(out, digest(prev))
	}
	return out
}

func patterns(prefix string, ps []string) []string {
	if len(ps) == 0 {
		return []string{prefix + "*"}
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = prefix + p
	}
	return out
}

// Users returns every user the instances of db have at time now, in the
// order to apply them: the agent's own first, so that a change made over
// the agent's connection never takes away what it needs to go on. A
// database from before access control has only the default user, with
// every command as before (or every read, read-only).
func Users(keys Opener, db *raftstate.Database, now time.Time) ([]User, error) {
	o, err := open(keys, db, now)
	if err != nil {
		return nil, err
	}
	if len(o.password) == 0 {
		return nil, fmt.Errorf("database %s has no password", db.Name)
	}
	a := db.Access
	if a == nil {
		rules := []string{"+@all"}
		if db.ReadOnly {
			rules = append(rules, "-@write")
		}
		return []User{{Name: raftstate.DefaultUser, Args: append([]string{"reset", "on", digest(o.password), "~*", "&*"}, rules...)}}, nil
	}
	var out []User
	user := func(name string, pws []string, keys, channels, rules []string) {
		args := append([]string{"reset", "on"}, pws...)
		args = append(args, keys...)
		args = append(args, channels...)
		out = append(out, User{Name: name, Args: append(args, rules...)})
	}
	user(AgentUser, passwords(o.agent, o.prevAgent, o.previousInternal), []string{"~*"}, []string{"&*"}, []string{"+@all"})
	// CLIENT SETNAME: the probes of other nodes log in as this user, and
	// name their connection (CLIENT LIST tells them from applications).
	user(ReplicationUser, passwords(o.replication, o.prevRe, o.previousInternal), nil, nil, []string{"+psync", "+sync", "+replconf", "+ping", "+client|setname"})
	user(raftstate.DefaultUser, passwords(o.password, o.prevPassword, o.previousValid), []string{"~*"}, []string{"&*"}, Rules(raftstate.UserAdmin, db.ReadOnly))
	for _, u := range a.Users {
		pw, err := keys.Open(u.Password)
		if err != nil {
			return nil, fmt.Errorf("open the password of user %s of %s: %w", u.Name, db.Name, err)
		}
		var prev []byte
		if len(u.Previous) > 0 && now.Before(u.PreviousUntil) {
			if prev, err = keys.Open(u.Previous); err != nil {
				return nil, fmt.Errorf("open the previous password of user %s of %s: %w", u.Name, db.Name, err)
			}
		}
		user(u.Name, passwords(pw, prev, true), patterns("~", u.Keys), patterns("&", u.Channels), UserRules(u, db.ReadOnly))
	}
	return out, nil
}

// AgentCredentials are what the agent authenticates to db's instances
// with, in the order to try them: its own user's secret, the one a
// rotation replaced (an instance whose node was away during the rotation
// knows only that), then the default user's passwords (an instance from
// before access control, until its first pass applies the users).
func AgentCredentials(keys Opener, db *raftstate.Database) ([]instance.Credential, error) {
	o, err := open(keys, db, time.Time{})
	if err != nil {
		return nil, err
	}
	var out []instance.Credential
	add := func(user string, pw []byte) {
		c := instance.Credential{User: user, Password: string(pw)}
		if len(pw) > 0 && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	add(AgentUser, o.agent)
	add(AgentUser, o.prevAgent)
	add(raftstate.DefaultUser, o.password)
	add(raftstate.DefaultUser, o.prevPassword)
	return out, nil
}

// ProbeCredentials are what another node's probe (a PING to see that the
// primary answers) authenticates with, in the order to try them: the
// replication user's, which can do little else, never the agent's (it
// crosses the network); the default user's for a database from before
// access control, or a primary not switched over to it yet.
func ProbeCredentials(keys Opener, db *raftstate.Database) ([]instance.Credential, error) {
	o, err := open(keys, db, time.Time{})
	if err != nil {
		return nil, err
	}
	if len(o.replication) == 0 {
		return []instance.Credential{{User: raftstate.DefaultUser, Password: string(o.password)}}, nil
	}
	out := []instance.Credential{{User: ReplicationUser, Password: string(o.replication)}}
	if len(o.prevRe) > 0 {
		out = append(out, instance.Credential{User: ReplicationUser, Password: string(o.prevRe)})
	}
	// A primary not switched over to access control yet has only the
	// default user (whose password is the applications' anyway).
	return append(out, instance.Credential{User: raftstate.DefaultUser, Password: string(o.password)}), nil
}

// ReplicationCredential is what a replica of db authenticates to db's
// primary with: the replication user, or the default user for a database
// from before access control.
func ReplicationCredential(keys Opener, db *raftstate.Database) (instance.Credential, error) {
	o, err := open(keys, db, time.Time{})
	if err != nil {
		return instance.Credential{}, err
	}
	if len(o.replication) > 0 {
		return instance.Credential{User: ReplicationUser, Password: string(o.replication)}, nil
	}
	return instance.Credential{Password: string(o.password)}, nil
}

// Fingerprint identifies a set of users for the reconciler's memory of
// what an instance has: equal users, equal fingerprints; it holds digests
// of passwords only.
func Fingerprint(users []User) string {
	h := sha256.New()
	for _, u := range users {
		fmt.Fprintf(h, "%s\x00%s\n", u.Name, strings.Join(u.Args, "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))
}
