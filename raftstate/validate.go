package raftstate

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The FSM checks what it records with these validators, in Apply and in
// Restore: the reconciler, running as root, joins instance IDs and names
// onto directories and unit names, and the agents dial the addresses, so
// a value that is only checked by the proposer (the API) is one bug or
// one hostile member away from a path traversal. They are deterministic,
// as Apply must be.

// CheckName checks a database or node name (kind is "database" or "node")
// against NameRE.
func CheckName(kind, name string) error {
	if NameRE.MatchString(name) {
		return nil
	}
	return invalidf("invalid %s name %q: use 1 to 40 lowercase letters, digits and hyphens, starting with a letter", kind, name)
}

// maxInstances bounds the instance number in an instance ID, and so the
// instances of one database.
const maxInstances = 1000

// CheckInstanceID checks that id is an instance ID of database: exactly
// "<database>-<n>", n a decimal number from 0 to 999 without leading
// zeros (as placement names them).
func CheckInstanceID(database, id string) error {
	n, ok := strings.CutPrefix(id, database+"-")
	if ok && n != "" && len(n) <= 3 && (n == "0" || n[0] != '0') && allDigits(n) {
		return nil
	}
	return invalidf("invalid instance ID %q for database %s: use %s-0 to %s-%d", id, database, database, database, maxInstances-1)
}

// CheckPort checks a TCP port: 1 to 65535.
func CheckPort(port int) error {
	if port >= 1 && port <= 65535 {
		return nil
	}
	return invalidf("invalid port %d: use 1 to 65535", port)
}

// maxHostName is the longest DNS name (RFC 1035), without a trailing dot.
const maxHostName = 253

// CheckHost checks a host: an IP address (an IPv6 one may carry a zone,
// fe80::1%eth0), or a host name of letters, digits, dots, hyphens and
// underscores (what resolvers and /etc/hosts take in practice, trailing
// dot included), not starting with a hyphen, at most 253 characters. It
// refuses what would break a redis.conf line, a URL or a command line:
// spaces, quotes, slashes, colons outside an IP, control characters.
//
// It is no stricter than what agents before it recorded (any host they
// could reach), so a log or snapshot they wrote still applies: an entry
// refused on replay would drop a database this node then removes.
func CheckHost(host string) error {
	if ip, zone, _ := strings.Cut(host, "%"); net.ParseIP(ip) != nil && (zone == "" || validName(zone)) && (zone == "" || strings.Contains(ip, ":")) {
		return nil
	}
	if validName(host) {
		return nil
	}
	return invalidf("invalid host %q: use an IP address or a host name (letters, digits, dots, hyphens and underscores)", host)
}

// validName says whether s is 1 to 253 letters, digits, dots, hyphens and
// underscores, not starting with a hyphen.
func validName(s string) bool {
	if s == "" || len(s) > maxHostName || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// CheckHostPort checks an address host:port (an IPv6 host in brackets),
// the host by CheckHost and the port, in decimal digits, by CheckPort.
func CheckHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf("invalid address %q: use host:port, e.g. 10.0.0.1:7481 or [fd00::1]:7481", addr)
	}
	if err := CheckHost(host); err != nil {
		return invalidf("invalid address %q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || !allDigits(port) {
		return invalidf("invalid address %q: the port %q is not a number; use 1 to 65535", addr, port)
	}
	if err := CheckPort(p); err != nil {
		return invalidf("invalid address %q: %v", addr, err)
	}
	return nil
}

// versionRE is the catalogue's major.minor form of a Redis version.
var versionRE = regexp.MustCompile(`^[0-9]{1,3}\.[0-9]{1,3}$`)

// CheckVersion checks a catalogue version: major.minor, e.g. "7.2".
func CheckVersion(v string) error {
	if versionRE.MatchString(v) {
		return nil
	}
	return invalidf("invalid version %q: use the catalogue's major.minor form, e.g. 7.2 (see redis-appliance versions)", v)
}

// maxAgentVersion bounds a node's recorded agent release string.
const maxAgentVersion = 64

// checkAgentVersion allows an empty release (an agent that did not say)
// or up to 64 printable ASCII characters.
func checkAgentVersion(v string) error {
	if len(v) > maxAgentVersion {
		return invalidf("invalid agent version %.20q…: use at most %d printable characters", v, maxAgentVersion)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return invalidf("invalid agent version %q: use at most %d printable ASCII characters", v, maxAgentVersion)
		}
	}
	return nil
}

// checkSentinelPort allows 0 (discovery off) or a port.
func checkSentinelPort(port int) error {
	if port == 0 {
		return nil
	}
	if err := CheckPort(port); err != nil {
		return invalidf("invalid sentinel port %d: use 0 (off) or 1 to 65535", port)
	}
	return nil
}

// checkRole allows the two instance roles.
func checkRole(id string, r Role) error {
	if r == RolePrimary || r == RoleReplica {
		return nil
	}
	return invalidf("instance %s has role %q: use %s or %s", id, r, RolePrimary, RoleReplica)
}

// checkNode checks what a node record holds (RegisterNode and Restore).
// RaftAddr may be empty: a record written without one is only a name.
func checkNode(n *Node) error {
	if err := CheckName("node", n.Name); err != nil {
		return err
	}
	for _, a := range []struct{ what, addr string }{{"raft", n.RaftAddr}, {"API", n.APIAddr}} {
		if a.addr == "" {
			continue
		}
		if err := CheckHostPort(a.addr); err != nil {
			return fmt.Errorf("node %s %s address: %w", n.Name, a.what, err)
		}
	}
	if n.Address != "" {
		if err := CheckHost(n.Address); err != nil {
			return fmt.Errorf("node %s client address: %w", n.Name, err)
		}
	}
	if err := checkSentinelPort(n.SentinelPort); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := checkAgentVersion(n.AgentVersion); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if n.CertSHA256 != "" {
		if err := CheckFingerprint(n.CertSHA256); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	if len(n.Versions) > maxNodeVersions {
		return invalidf("node %s reports %d versions: at most %d", n.Name, len(n.Versions), maxNodeVersions)
	}
	for _, v := range n.Versions {
		if err := CheckVersion(v); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

// maxNodeVersions bounds the versions a node record lists.
const maxNodeVersions = 64

// checkDatabase checks the fields of a database record on their own,
// without the rest of the state (CreateDatabase and Restore): its name,
// version, flavor, instances and what it follows.
func checkDatabase(d *Database) error {
	if err := CheckName("database", d.Name); err != nil {
		return err
	}
	if err := CheckVersion(d.Version); err != nil {
		return fmt.Errorf("database %s: %w", d.Name, err)
	}
	if err := d.Flavor.Check(); err != nil {
		return fmt.Errorf("database %s: %w", d.Name, err)
	}
	ids := make(map[string]bool, len(d.Instances))
	for _, in := range d.Instances {
		if err := CheckInstanceID(d.Name, in.ID); err != nil {
			return err
		}
		if ids[in.ID] {
			return invalidf("database %s lists instance %s twice: give each instance its own number", d.Name, in.ID)
		}
		ids[in.ID] = true
		if err := CheckName("node", in.Node); err != nil {
			return fmt.Errorf("instance %s: %w", in.ID, err)
		}
		if err := CheckPort(in.Port); err != nil {
			return fmt.Errorf("instance %s: %w", in.ID, err)
		}
		if err := checkRole(in.ID, in.Role); err != nil {
			return err
		}
	}
	if err := checkAccess(d.Name, d.Access); err != nil {
		return err
	}
	if err := d.TLS.Check(); err != nil {
		return fmt.Errorf("database %s: %w", d.Name, err)
	}
	for _, in := range d.Instances {
		if in.TLSPort != 0 {
			if err := CheckPort(in.TLSPort); err != nil {
				return fmt.Errorf("instance %s TLS: %w", in.ID, err)
			}
		}
		if d.TLS != TLSOff && in.TLSPort == 0 {
			return invalidf("instance %s of %s has TLS but no TLS port", in.ID, d.Name)
		}
	}
	if fl := d.Follows; fl != nil {
		if fl.Database != "" {
			if err := CheckName("database", fl.Database); err != nil {
				return fmt.Errorf("database %s follows: %w", d.Name, err)
			}
		} else {
			if err := CheckHost(fl.Host); err != nil {
				return fmt.Errorf("database %s follows an external Redis: %w", d.Name, err)
			}
			if err := CheckPort(fl.Port); err != nil {
				return fmt.Errorf("database %s follows an external Redis: %w", d.Name, err)
			}
		}
	}
	return nil
}

// checkState checks every record of a state (Restore: a snapshot comes
// from the leader over the network). Each map key must be its record's
// name, and no record may be missing.
func checkState(s *State) error {
	for _, name := range s.DatabaseNames() {
		d := s.Databases[name]
		if d == nil || d.Name != name {
			return invalidf("database record %q is empty or named otherwise", name)
		}
		if err := checkDatabase(d); err != nil {
			return err
		}
	}
	for _, name := range s.NodeNames() {
		n := s.Nodes[name]
		if n == nil || n.Name != name {
			return invalidf("node record %q is empty or named otherwise", name)
		}
		if err := checkNode(n); err != nil {
			return err
		}
	}
	for id, t := range s.Tokens {
		if t == nil {
			return invalidf("join token record %q is empty", id)
		}
	}
	if err := checkDatabaseCA(s.DatabaseCA); err != nil {
		return err
	}
	return checkKeyChain(s.KeyChain)
}

// MaxEventMessage is the longest event message kept, in bytes:
// RecordEvents cuts a longer one (see applyRecordEvents).
const MaxEventMessage = 2000

// eventKindRE is the form of an event kind: 1 to 40 lowercase letters and
// hyphens ("failover-refused").
var eventKindRE = regexp.MustCompile(`^[a-z-]{1,40}$`)

// wellFormedEvent reports whether an event may be recorded: its kind is
// 1 to 40 lowercase letters and hyphens, and its database and node, when
// set, are names.
func wellFormedEvent(e Event) bool {
	return eventKindRE.MatchString(e.Kind) &&
		(e.Database == "" || NameRE.MatchString(e.Database)) &&
		(e.Node == "" || NameRE.MatchString(e.Node))
}

// cutMessage shortens a message to at most MaxEventMessage bytes, on a
// character boundary, ending it with an ellipsis when it was cut.
func cutMessage(m string) string {
	if len(m) <= MaxEventMessage {
		return m
	}
	const more = "…"
	cut := MaxEventMessage - len(more)
	for cut > 0 && !utf8.RuneStart(m[cut]) {
		cut--
	}
	return m[:cut] + more
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// invalidf is a refusal matching ErrInvalid.
func invalidf(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
}
