// Package redisconf renders an instance's redis.conf from the cluster state
// and writes it safely. The file is generated, never edited: everything an
// instance needs at start (including whom it replicates) is in it, so a
// node that comes back after a failover starts each instance in the role
// Raft says it has, before redis-server accepts a single client.
package redisconf

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// DefaultMaxMemoryPolicy is used when Params.MaxMemoryPolicy is empty. A
// database is a store, not a cache, unless its owner says so: refusing
// writes when full is visible and recoverable, silently evicting keys is not.
const DefaultMaxMemoryPolicy = "noeviction"

// MaxMemoryPolicies are the eviction policies redis-server 7 accepts.
var MaxMemoryPolicies = []string{
	"noeviction",
	"allkeys-lru", "allkeys-lfu", "allkeys-random",
	"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
}

// ErrInvalidParams is wrapped by every validation error of Render.
var ErrInvalidParams = errors.New("invalid redis.conf parameters")

// minMaxMemory is the smallest maxmemory Render accepts: redis-server
// warns that anything below 1 MB is almost surely a mistake. Plans are
// checked against the (larger) product minimum by appliance/sizing.
const minMaxMemory = 1 << 20

// Params is everything that varies between instances' redis.conf files.
// Password and MasterAuth are secrets: Params redacts them when printed or
// logged, and Render's errors never contain them.
type Params struct {
	// Port is the TCP port redis-server listens on.
	Port int
	// Bind lists the IP addresses to listen on (at least one).
	Bind []string
	// Users are the instance's Redis users (appliance/access), in the
	// order to create them; one of them is the default user. Their
	// passwords are SHA-256 digests.
	Users []access.User
	// MaxMemory is the memory plan in bytes.
	MaxMemory int64
	// MaxMemoryPolicy is the eviction policy; "" means noeviction.
	MaxMemoryPolicy string
	// Dir is the absolute data directory (RDB and AOF files).
	Dir string
	// Flavor chooses the persistence directives.
	Flavor raftstate.Flavor
	// ReplicaOf is the primary's "host:port" for a replica, "" for a
	// primary. Rendering it makes an instance start as a replica, which is
	// how a returning old primary comes back without ever taking writes.
	ReplicaOf string
	// MasterUser and MasterAuth are the user and password this instance
	// authenticates to its primary with. They are rendered on primaries
	// too: a primary demoted at run time by REPLICAOF must already know
	// how to authenticate to its new primary. MasterUser "" is the
	// default user (an external Redis, or a database from before access
	// control).
	MasterUser string
	MasterAuth string
	// MaxClients is maxclients; 0 leaves redis-server's default (10000).
	MaxClients int
	// TLS, if not nil, opens a TLS port beside (or, Only, instead of) the
	// plaintext one.
	TLS *TLS
	// Fenced makes the instance start refusing writes (NOREPLICAS) until
	// the agent lifts the fence at run time: the primary of a database
	// with replicas must not take writes before its agent knows it still
	// holds the role (after a reboot it may have been failed over).
	Fenced bool
}

// TLS is an instance's TLS port and files (absolute paths in its
// directory: the instance's sandbox sees nothing else).
type TLS struct {
	Port int
	// CertFile and KeyFile are the server certificate (with any
	// intermediates) and its key; CAFile the CA a replica checks its
	// primary's certificate against.
	CertFile, KeyFile, CAFile string
	// Only closes the plaintext port (port 0) and makes replication use
	// TLS too.
	Only bool
}

// TLSProtocols are the only protocol versions an instance speaks: TLS 1.0
// and 1.1 are deprecated (RFC 8996).
const TLSProtocols = "TLSv1.2 TLSv1.3"

// FencedMinReplicas is the min-replicas-to-write of a fenced primary: more
// replicas than any database has, so every write is refused.
const FencedMinReplicas = 1000

// String prints p without its secrets, so %v in a log line or an error is
// safe.
func (p Params) String() string {
	return fmt.Sprintf("{Port:%d Bind:%v Users:%s MaxMemory:%d MaxMemoryPolicy:%s Dir:%s Flavor:%s ReplicaOf:%s MasterUser:%s MasterAuth:%s}",
		p.Port, p.Bind, userNames(p.Users), p.MaxMemory, p.MaxMemoryPolicy, p.Dir, p.Flavor, p.ReplicaOf, p.MasterUser, redact(p.MasterAuth))
}

// LogValue makes slog print p without its secrets.
func (p Params) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("port", p.Port),
		slog.Any("bind", p.Bind),
		slog.String("users", userNames(p.Users)),
		slog.Int64("maxmemory", p.MaxMemory),
		slog.String("maxmemory_policy", p.MaxMemoryPolicy),
		slog.String("dir", p.Dir),
		slog.String("flavor", string(p.Flavor)),
		slog.String("replicaof", p.ReplicaOf),
		slog.String("masteruser", p.MasterUser),
		slog.String("masterauth", redact(p.MasterAuth)),
		slog.Bool("fenced", p.Fenced),
	)
}

// userNames lists the users' names: their arguments hold password
// digests, which have no place in a log line either.
func userNames(us []access.User) string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Name
	}
	return "[" + strings.Join(names, " ") + "]"
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "[redacted]"
}

// persistence is the directives of each flavor. The save points snapshot
// after 15 minutes if anything changed, 5 minutes after 10 changes, and 1
// minute after 10000, upstream's long-standing defaults; aof keeps them so
// that a fresh RDB exists for replicas' full syncs and for backups.
var persistence = map[raftstate.Flavor][]string{
	raftstate.FlavorAOF: {
		"appendonly yes",
		"appendfsync everysec",
		"save 900 1 300 10 60 10000",
	},
	raftstate.FlavorRDB: {
		"appendonly no",
		"save 900 1 300 10 60 10000",
	},
	raftstate.FlavorNoRDB: {
		"appendonly no",
		`save ""`,
	},
}

// liveDirectives start the lines the agent applies to a running instance
// (REPLICAOF, CONFIG SET masteruser and masterauth, ACL SETUSER, CONFIG SET
// tls-*), so that a role change, a new user, a rotation or turning TLS on
// or off restarts nothing: a switchover must not reload the dataset, and
// a memory-only database would lose it. requirepass is what files from before
// access control have instead of user lines.
var liveDirectives = []string{"replicaof ", "masteruser ", "masterauth ", "requirepass ", "user ", "min-replicas-to-write ", "tls-", "# Replication", "# Read-only", "# Fenced", "# Users", "# TLS"}

// NeedsRestart reports whether a running instance started with the old
// file must restart to take the new one: whether they differ in anything
// but the live directives.
func NeedsRestart(old, new []byte) bool {
	return !slices.Equal(staticLines(old), staticLines(new))
}

func staticLines(conf []byte) []string {
	var out []string
	for _, l := range strings.Split(string(conf), "\n") {
		live := false
		for _, d := range liveDirectives {
			live = live || strings.HasPrefix(l, d)
		}
		if !live && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Render validates p and returns the redis.conf for it. It targets
// redis-server 7.0 and later (appenddirname and several save points on one
// line are 7.0 syntax).
func Render(p Params) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	policy := p.MaxMemoryPolicy
	if policy == "" {
		policy = DefaultMaxMemoryPolicy
	}

	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	line("# Generated by redis-appliance from the cluster state. Do not edit:")
	line("# the agent overwrites this file whenever the database changes.")
	line("")
	if p.TLS != nil && p.TLS.Only {
		line("port 0")
	} else {
		line("port %d", p.Port)
	}
	line("bind %s", strings.Join(p.Bind, " "))
	// Refuse clients from other hosts if a password were ever missing.
	line("protected-mode yes")
	// Users: the ACL is here rather than in an aclfile, which Redis
	// refuses beside user lines and cannot change at run time; the agent
	// applies the same lines live with ACL SETUSER.
	line("# Users: see docs/security.md for what each may run.")
	for _, u := range p.Users {
		line("%s", u.ConfigLine())
	}
	if p.MasterUser != "" {
		line("masteruser %s", p.MasterUser)
	}
	if p.MasterAuth != "" {
		line("masterauth %s", Quote(p.MasterAuth))
	}
	line("maxmemory %d", p.MaxMemory)
	line("maxmemory-policy %s", policy)
	line("dir %s", Quote(p.Dir))
	line("dbfilename dump.rdb")
	line("appenddirname appendonlydir")
	// systemd runs redis-server in the foreground (Type=notify) and
	// collects stdout into the journal: no daemonizing, log file or pid
	// file, which would only go stale.
	line("supervised systemd")
	line("daemonize no")
	line(`logfile ""`)
	line(`pidfile ""`)
	// Notice dead clients (and keep NAT state alive) within minutes.
	line("tcp-keepalive 60")
	// A new or returning replica gets its full sync at once instead of
	// after redis-server's default 5 s wait for more replicas: a database
	// is not protected until its replicas have synced.
	line("repl-diskless-sync-delay 0")
	// RESTORE and FUNCTION RESTORE, which applications may run, check
	// their payload: a malformed one could otherwise crash the server
	// (upstream's own advice; its one reason not to, MIGRATE, is denied).
	line("sanitize-dump-payload clients")
	if p.MaxClients > 0 {
		line("maxclients %d", p.MaxClients)
	}
	if t := p.TLS; t != nil {
		line("")
		line("# TLS: server-side (clients need no certificate of their own).")
		line("tls-port %d", t.Port)
		line("tls-cert-file %s", Quote(t.CertFile))
		line("tls-key-file %s", Quote(t.KeyFile))
		line("tls-ca-cert-file %s", Quote(t.CAFile))
		line("tls-protocols %s", Quote(TLSProtocols))
		line("tls-auth-clients no")
		if t.Only {
			line("tls-replication yes")
		}
	}
	line("")
	line("# Persistence: flavor %s", p.Flavor)
	for _, d := range persistence[p.Flavor] {
		line("%s", d)
	}
	if p.Fenced {
		line("")
		line("# Fenced: writes are refused until the agent confirms the role.")
		line("min-replicas-to-write %d", FencedMinReplicas)
	}
	if p.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(p.ReplicaOf) // validated
		line("")
		line("# Replication: this instance is a replica.")
		line("replicaof %s %s", host, port)
	}
	return []byte(b.String()), nil
}

func (p Params) validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if p.Port < 1 || p.Port > 65535 {
		bad("port %d is not between 1 and 65535", p.Port)
	}
	if len(p.Bind) == 0 {
		bad("no bind address: give at least one IP address to listen on")
	}
	for _, a := range p.Bind {
		if _, err := netip.ParseAddr(a); err != nil {
			bad("bind address %q is not an IP address", a)
		}
	}
	// An instance without a password on its default user is open to
	// anyone who can reach its port; the appliance always generates one.
	hasDefault := false
	for _, u := range p.Users {
		if !safeUserLine(u) {
			bad("user %q has arguments a redis.conf line cannot hold", u.Name)
		}
		if u.Name == "default" {
			hasDefault = slices.ContainsFunc(u.Args, func(a string) bool { return strings.HasPrefix(a, "#") })
		}
	}
	if !hasDefault {
		bad("no password: every instance needs its default user with one")
	}
	if p.MasterUser != "" && !safeWord(p.MasterUser) {
		bad("masteruser %q is not a plain user name", p.MasterUser)
	}
	if t := p.TLS; t != nil {
		if t.Port < 1 || t.Port > 65535 || t.Port == p.Port {
			bad("tls port %d is not between 1 and 65535 or is the plaintext port", t.Port)
		}
		for _, f := range []string{t.CertFile, t.KeyFile, t.CAFile} {
			if !filepath.IsAbs(f) {
				bad("TLS file %q is not an absolute path", f)
			}
		}
	}
	if p.MaxMemory < minMaxMemory {
		bad("maxmemory %d bytes is below 1 MiB (0 would mean no limit, which the appliance never sets)", p.MaxMemory)
	}
	if p.MaxMemoryPolicy != "" && !validPolicy(p.MaxMemoryPolicy) {
		bad("maxmemory-policy %q is not one of %s", p.MaxMemoryPolicy, strings.Join(MaxMemoryPolicies, ", "))
	}
	if !filepath.IsAbs(p.Dir) {
		bad("data directory %q is not an absolute path", p.Dir)
	}
	if err := p.Flavor.Check(); err != nil {
		bad("%v", err)
	}
	if p.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(p.ReplicaOf)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			bad("replicaof %q is not host:port", p.ReplicaOf)
		case host == "" || strings.ContainsAny(host, " \t\r\n\"'\\"):
			bad("replicaof %q has no usable host", p.ReplicaOf)
		case perr != nil || n < 1 || n > 65535:
			bad("replicaof %q has no port between 1 and 65535", p.ReplicaOf)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidParams, strings.Join(problems, "; "))
	}
	return nil
}

// safeUserLine says whether a user's name and arguments each stay one
// word of the line: access checks them, this makes sure.
func safeUserLine(u access.User) bool {
	if !safeWord(u.Name) {
		return false
	}
	for _, a := range u.Args {
		if !safeWord(a) {
			return false
		}
	}
	return true
}

func safeWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}

func validPolicy(p string) bool {
	for _, v := range MaxMemoryPolicies {
		if p == v {
			return true
		}
	}
	return false
}

// Quote returns s as one double-quoted redis.conf argument that
// redis-server reads back byte for byte: backslash and double quote are
// escaped, and every byte that is not printable ASCII is written as \xHH,
// so no newline, NUL or stray quote in a value can end the line or add a
// directive. Generated passwords never need it; it is there so that no
// value can ever change the meaning of the file.
func Quote(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
