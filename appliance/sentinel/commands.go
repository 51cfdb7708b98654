package sentinel

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// serverVersion is the Redis Sentinel version HELLO reports: the protocol
// this package answers is Sentinel 7's.
const serverVersion = "7.0.0"

// command is one entry of the command table, in Redis's terms.
type command struct {
	// arity counts the command name: n means exactly n words, -n at least n.
	arity int
	// noAuth commands run before AUTH.
	noAuth bool
	// inPubSub commands are allowed once a RESP2 client has subscribed.
	inPubSub bool
	run      func(s *Server, c *conn, args []string) reply
}

// reply is what a command answers; quit closes the connection once it is
// written.
type reply struct {
	out  []byte
	quit bool
}

var commands = map[string]command{
	"auth":         {arity: -2, noAuth: true, run: (*Server).auth},
	"hello":        {arity: -1, noAuth: true, run: (*Server).hello},
	"quit":         {arity: -1, noAuth: true, inPubSub: true, run: quit},
	"ping":         {arity: -1, inPubSub: true, run: ping},
	"client":       {arity: -2, run: client},
	"select":       {arity: 2, run: selectDB},
	"sentinel":     {arity: -2, run: (*Server).sentinel},
	"subscribe":    {arity: -2, inPubSub: true, run: subscribe},
	"psubscribe":   {arity: -2, inPubSub: true, run: psubscribe},
	"unsubscribe":  {arity: -1, inPubSub: true, run: unsubscribe},
	"punsubscribe": {arity: -1, inPubSub: true, run: punsubscribe},
}

// dispatch runs one command. The checks come in Redis's order: unknown
// command, arity, authentication, subscribed mode.
func (s *Server) dispatch(c *conn, args []string) reply {
	name := strings.ToLower(args[0])
	cmd, found := commands[name]
	if !found {
		return fail(unknownCommand(args))
	}
	if cmd.arity > 0 && len(args) != cmd.arity || cmd.arity < 0 && len(args) < -cmd.arity {
		return fail(wrongArgs(name))
	}
	c.mu.Lock()
	authed, subscribed := c.authed, c.subscriptions() > 0
	c.mu.Unlock()
	if !cmd.noAuth && !authed {
		return fail("NOAUTH Authentication required.")
	}
	if subscribed && !cmd.inPubSub {
		full := name
		if (name == "sentinel" || name == "client") && len(args) > 1 {
			full += "|" + strings.ToLower(args[1])
		}
		return fail(fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", full))
	}
	return cmd.run(s, c, args)
}

func okReply() reply { return reply{out: appendSimple(nil, "OK")} }

// fail is an error reply; msg starts with the error code.
func fail(msg string) reply { return reply{out: appendError(nil, msg)} }

// unknownCommand words the error as Redis 7 does, echoing at most about
// 128 bytes of arguments.
func unknownCommand(args []string) string {
	var echoed strings.Builder
	for _, a := range args[1:] {
		if echoed.Len() >= 128 {
			break
		}
		echoed.WriteString("'" + truncate(a, 128-echoed.Len()) + "' ")
	}
	return fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", truncate(args[0], 128), echoed.String())
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func wrongArgs(name string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", name)
}

// credentials is what a connection authenticated with.
type credentials struct {
	user   string
	digest [32]byte
}

// opens reports whether cr may see m: the user is "default" or the
// master's name and the password is the master's, or the user is one of
// the master's application users and the password one of its own.
// Digests are compared in constant time so that neither content nor
// length leaks through timing.
func (cr credentials) opens(m *Master) bool {
	if m.Name == "" || m.Password == "" {
		return false
	}
	same := func(pw string) bool {
		d := sha256.Sum256([]byte(pw))
		return pw != "" && subtle.ConstantTimeCompare(d[:], cr.digest[:]) == 1
	}
	if cr.user == "default" || cr.user == m.Name {
		return same(m.Password) || same(m.PreviousPassword)
	}
	for _, pw := range m.Users[cr.user] {
		if same(pw) {
			return true
		}
	}
	return false
}

func (c *conn) credentials() credentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return credentials{user: c.user, digest: c.digest}
}

// visibleMasters are the masters c may see, by name.
func (s *Server) visibleMasters(c *conn) []Master {
	cr := c.credentials()
	var out []Master
	for _, m := range s.src.Masters() {
		if cr.opens(&m) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// visibleMaster finds a master c may see. Not found and not allowed are
// the same answer, so that existence never leaks.
func (s *Server) visibleMaster(c *conn, name string) (Master, bool) {
	cr := c.credentials()
	for _, m := range s.src.Masters() {
		if m.Name == name && cr.opens(&m) {
			return m, true
		}
	}
	return Master{}, false
}

// authenticate makes c authorised for the masters whose password this is,
// if there are any. A failed attempt leaves earlier credentials in place,
// as in Redis.
func (s *Server) authenticate(c *conn, user, password string) bool {
	cr := credentials{user: user, digest: sha256.Sum256([]byte(password))}
	found := false
	for _, m := range s.src.Masters() {
		if cr.opens(&m) {
			found = true
			break
		}
	}
	if !found {
		s.log.Info("sentinel: authentication refused", "client", c.id, "remote", c.remote)
		return false
	}
	c.mu.Lock()
	c.authed, c.user, c.digest = true, user, cr.digest
	c.mu.Unlock()
	return true
}

const wrongPass = "WRONGPASS invalid username-password pair or user is disabled."

// auth: AUTH password | AUTH username password.
func (s *Server) auth(c *conn, args []string) reply {
	user, password := "default", args[1]
	switch len(args) {
	case 2:
	case 3:
		user, password = args[1], args[2]
	default:
		return fail("ERR syntax error")
	}
	if !s.authenticate(c, user, password) {
		return fail(wrongPass)
	}
	return okReply()
}

// hello: HELLO [protover [AUTH username password] [SETNAME clientname]].
// Only protocol 2 is spoken; HELLO 3 gets NOPROTO, on which go-redis and
// others fall back to RESP2 and AUTH.
func (s *Server) hello(c *conn, args []string) reply {
	if len(args) >= 2 {
		ver, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return fail("ERR Protocol version is not an integer or out of range")
		}
		if ver != 2 {
			return fail("NOPROTO sorry, this protocol version is not supported.")
		}
	}
	var user, password, name string
	var haveAuth, haveName bool
	for i := 2; i < len(args); i++ {
		more := len(args) - 1 - i
		switch opt := strings.ToLower(args[i]); {
		case opt == "auth" && more >= 2:
			user, password, haveAuth = args[i+1], args[i+2], true
			i += 2
		case opt == "setname" && more >= 1:
			name, haveName = args[i+1], true
			i++
		default:
			return fail(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[i]))
		}
	}
	if haveAuth && !s.authenticate(c, user, password) {
		return fail(wrongPass)
	}
	c.mu.Lock()
	authed := c.authed
	c.mu.Unlock()
	if !authed {
		return fail("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	if haveName {
		if msg := c.setName(name); msg != "" {
			return fail(msg)
		}
	}
	// The RESP2 form of Redis's HELLO map. A Sentinel reports no "role".
	out := appendArrayLen(nil, 12)
	out = appendBulk(out, "server")
	out = appendBulk(out, "redis")
	out = appendBulk(out, "version")
	out = appendBulk(out, serverVersion)
	out = appendBulk(out, "proto")
	out = appendInt(out, 2)
	out = appendBulk(out, "id")
	out = appendInt(out, c.id)
	out = appendBulk(out, "mode")
	out = appendBulk(out, "sentinel")
	out = appendBulk(out, "modules")
	out = appendArrayLen(out, 0)
	return reply{out: out}
}

func quit(*Server, *conn, []string) reply {
	return reply{out: appendSimple(nil, "OK"), quit: true}
}

// ping answers PONG, or in subscribed mode the ["pong", message] array
// that RESP2 pub/sub clients use as a health check.
func ping(_ *Server, c *conn, args []string) reply {
	if len(args) > 2 {
		return fail(wrongArgs("ping"))
	}
	msg := ""
	if len(args) == 2 {
		msg = args[1]
	}
	c.mu.Lock()
	subscribed := c.subscriptions() > 0
	c.mu.Unlock()
	switch {
	case subscribed:
		return reply{out: appendBulks(nil, "pong", msg)}
	case len(args) == 2:
		return reply{out: appendBulk(nil, msg)}
	default:
		return reply{out: appendSimple(nil, "PONG")}
	}
}

// client answers the CLIENT subcommands clients send while connecting.
func client(_ *Server, c *conn, args []string) reply {
	sub := strings.ToLower(args[1])
	switch sub {
	case "setname":
		if len(args) != 3 {
			return fail(wrongArgs("client|setname"))
		}
		if msg := c.setName(args[2]); msg != "" {
			return fail(msg)
		}
		return okReply()
	case "getname":
		if len(args) != 2 {
			return fail(wrongArgs("client|getname"))
		}
		c.mu.Lock()
		name := c.name
		c.mu.Unlock()
		if name == "" {
			return reply{out: appendNullBulk(nil)}
		}
		return reply{out: appendBulk(nil, name)}
	case "id":
		if len(args) != 2 {
			return fail(wrongArgs("client|id"))
		}
		return reply{out: appendInt(nil, c.id)}
	case "setinfo":
		// Library name and version are only informative; accepting them
		// keeps go-redis's connection setup free of errors.
		if len(args) != 4 {
			return fail(wrongArgs("client|setinfo"))
		}
		if attr := strings.ToLower(args[2]); attr != "lib-name" && attr != "lib-ver" {
			return fail(fmt.Sprintf("ERR Unrecognized option '%s'", args[2]))
		}
		return okReply()
	default:
		return fail(fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", truncate(args[1], 128)))
	}
}

// setName sets the client name, or returns Redis's error for one it
// refuses.
func (c *conn) setName(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] < '!' || name[i] > '~' {
			return "ERR Client names cannot contain spaces, newlines or special characters."
		}
	}
	c.mu.Lock()
	c.name = name
	c.mu.Unlock()
	return ""
}

// selectDB accepts SELECT 0, which some clients send by default; a
// Sentinel has no other database.
func selectDB(_ *Server, _ *conn, args []string) reply {
	n, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		return fail("ERR value is not an integer or out of range")
	}
	if n != 0 {
		return fail("ERR DB index is out of range")
	}
	return okReply()
}

// sentinelHelp is SENTINEL HELP: what this endpoint answers.
var sentinelHelp = []string{
	"SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GET-MASTER-ADDR-BY-NAME <master-name>",
	"    Return the ip and port number of the master with that name.",
	"MASTER <master-name>",
	"    Show the state and info of the specified master.",
	"MASTERS",
	"    Show a list of monitored masters and their state.",
	"MYID",
	"    Return the ID of the Sentinel instance.",
	"REPLICAS <master-name>",
	"    Show a list of replicas for this master and their state.",
	"SENTINELS <master-name>",
	"    Show a list of Sentinel instances for this master and their state.",
	"HELP",
	"    Print this help.",
	"Failover and monitoring are managed by the redis-appliance agent, not through this endpoint.",
}

// managedSubcommands change a real Sentinel's configuration or start a
// failover. Here the agent owns both, so they are refused with a pointer
// to it rather than as unknown.
var managedSubcommands = map[string]bool{
	"failover": true, "monitor": true, "remove": true, "set": true,
	"reset": true, "flushconfig": true, "config": true,
}

// sentinel answers SENTINEL subcommands.
func (s *Server) sentinel(c *conn, args []string) reply {
	sub := strings.ToLower(args[1])
	// want checks the subcommand's arity, named as Redis names it.
	want := func(n int) bool { return len(args) == n }
	switch sub {
	case "get-master-addr-by-name":
		if !want(3) {
			return fail(wrongArgs("sentinel|" + sub))
		}
		m, found := s.visibleMaster(c, args[2])
		if !found {
			return reply{out: appendNullArray(nil)}
		}
		return reply{out: appendBulks(nil, m.Addr.IP, strconv.Itoa(m.Addr.Port))}
	case "masters":
		if !want(2) {
			return fail(wrongArgs("sentinel|" + sub))
		}
		masters := s.visibleMasters(c)
		peers := len(s.src.Peers())
		out := appendArrayLen(nil, len(masters))
		for i := range masters {
			out = appendBulks(out, masterFields(&masters[i], peers)...)
		}
		return reply{out: out}
	case "master":
		if !want(3) {
			return fail(wrongArgs("sentinel|" + sub))
		}
		m, found := s.visibleMaster(c, args[2])
		if !found {
			return fail(noSuchMaster)
		}
		return reply{out: appendBulks(nil, masterFields(&m, len(s.src.Peers()))...)}
	case "replicas", "slaves":
		if !want(3) {
			return fail(wrongArgs("sentinel|" + sub))
		}
		m, found := s.visibleMaster(c, args[2])
		if !found {
			return fail(noSuchMaster)
		}
		out := appendArrayLen(nil, len(m.Replicas))
		for i := range m.Replicas {
			out = appendBulks(out, replicaFields(&m, &m.Replicas[i])...)
		}
		return reply{out: out}
	case "sentinels":
		if !want(3) {
			return fail(wrongArgs("sentinel|" + sub))
		}
		if _, found := s.visibleMaster(c, args[2]); !found {
			return fail(noSuchMaster)
		}
		peers := s.src.Peers()
		out := appendArrayLen(nil, len(peers))
		for i := range peers {
			out = appendBulks(out, peerFields(&peers[i])...)
		}
		return reply{out: out}
	case "myid":
		if !want(2) {
			return fail(wrongArgs("sentinel|" + sub))
		}
		return reply{out: appendBulk(nil, s.id)}
	case "help":
		out := appendArrayLen(nil, len(sentinelHelp))
		for _, line := range sentinelHelp {
			out = appendSimple(out, line)
		}
		return reply{out: out}
	default:
		if managedSubcommands[sub] {
			return fail(fmt.Sprintf("ERR SENTINEL %s is not supported: this endpoint only answers discovery, and the redis-appliance agent manages failover and configuration (for a planned switchover use its API: POST /v1/databases/NAME/failover)", strings.ToUpper(sub)))
		}
		return fail(fmt.Sprintf("ERR unknown subcommand '%s'. Try SENTINEL HELP.", truncate(args[1], 128)))
	}
}

const noSuchMaster = "ERR No such master with that name"
