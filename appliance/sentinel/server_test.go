package sentinel

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	cachePW    = "cache-secret"
	sessionsPW = "sessions-secret"
)

// twoDatabases is a source with two databases on different passwords, one
// replica each, and two other nodes.
func twoDatabases() *staticSource {
	return &staticSource{
		masters: []Master{
			{
				Name: "cache", Addr: Addr{"10.0.0.1", 7001}, Epoch: 3, Password: cachePW,
				Replicas: []Replica{
					{Addr: Addr{"10.0.0.2", 7001}, LinkUp: true, Offset: 1234},
					{Addr: Addr{"10.0.0.3", 7001}, Down: true},
				},
			},
			{
				Name: "sessions", Addr: Addr{"10.0.0.2", 7002}, Password: sessionsPW,
				Replicas: []Replica{{Addr: Addr{"10.0.0.1", 7002}, LinkUp: true}},
			},
		},
		peers: []Peer{
			{ID: RunID("n2"), Addr: Addr{"10.0.0.2", 26379}},
			{ID: RunID("n3"), Addr: Addr{"10.0.0.3", 26379}},
		},
	}
}

const noAuth = "-NOAUTH Authentication required.\r\n"
const wrongPassReply = "-WRONGPASS invalid username-password pair or user is disabled.\r\n"

func TestAuth_EverythingButAuthHelloQuitNeedsAPassword(t *testing.T) {
	_, addr := startServer(t, twoDatabases())
	c := dialRaw(t, addr)
	for _, cmd := range [][]string{
		{"PING"},
		{"SENTINEL", "get-master-addr-by-name", "cache"},
		{"SENTINEL", "masters"},
		{"SENTINEL", "myid"},
		{"SUBSCRIBE", "+switch-master"},
		{"PSUBSCRIBE", "*"},
		{"CLIENT", "SETINFO", "lib-name", "x"},
		{"SELECT", "0"},
	} {
		if got := c.do(cmd...); got != noAuth {
			t.Errorf("%q before AUTH: got %q, want NOAUTH", cmd, got)
		}
	}
	if got := c.do("HELLO", "2"); !strings.HasPrefix(got, "-NOAUTH HELLO must be called with the client already authenticated") {
		t.Errorf("HELLO 2 before AUTH: got %q", got)
	}
	// Redis looks a command up before checking authentication.
	if got := c.do("FOO", "a"); got != "-ERR unknown command 'FOO', with args beginning with: 'a' \r\n" {
		t.Errorf("unknown command before AUTH: got %q", got)
	}
	if got := c.do("QUIT"); got != "+OK\r\n" {
		t.Errorf("QUIT: got %q", got)
	}
	if !c.closedByServer() {
		t.Error("the connection stayed open after QUIT")
	}
}

func TestAuth_WrongPasswordIsRefused(t *testing.T) {
	src := twoDatabases()
	src.set(Master{Name: "nopass", Addr: Addr{"10.0.0.9", 7009}}) // no password: nobody sees it
	_, addr := startServer(t, src)
	c := dialRaw(t, addr)
	for _, cmd := range [][]string{
		{"AUTH", "wrong"},
		{"AUTH", "default", "wrong"},
		{"AUTH", ""},
		{"AUTH", "nopass", ""},
		{"AUTH", cachePW + "x"},
		{"AUTH", "sessions", cachePW}, // the user names a database the password is not for
		{"AUTH", "someone", cachePW},  // neither "default" nor the database
		{"HELLO", "2", "AUTH", "default", "wrong"},
	} {
		if got := c.do(cmd...); got != wrongPassReply {
			t.Errorf("%q: got %q, want WRONGPASS", cmd[:len(cmd)-1], got)
		}
	}
	if got := c.do("SENTINEL", "masters"); got != noAuth {
		t.Errorf("after refused attempts the connection is authenticated: %q", got)
	}
	if got := c.do("AUTH", "a", "b", "c"); got != "-ERR syntax error\r\n" {
		t.Errorf("AUTH with three arguments: got %q", got)
	}
}

func TestAuth_APasswordSeesOnlyItsDatabase(t *testing.T) {
	_, addr := startServer(t, twoDatabases())
	cache := dialRaw(t, addr)
	if got := cache.do("AUTH", cachePW); got != "+OK\r\n" {
		t.Fatalf("AUTH: %q", got)
	}
	if got, want := cache.do("SENTINEL", "get-master-addr-by-name", "cache"), bulks("10.0.0.1", "7001"); got != want {
		t.Errorf("own database: got %q, want %q", got, want)
	}
	// Another database's name and a name that does not exist get the same
	// answer, so a client cannot probe for names.
	for _, name := range []string{"sessions", "nope"} {
		if got := cache.do("SENTINEL", "get-master-addr-by-name", name); got != "*-1\r\n" {
			t.Errorf("get-master-addr-by-name %s: got %q, want nil array", name, got)
		}
		for _, sub := range []string{"master", "replicas", "slaves", "sentinels"} {
			if got := cache.do("SENTINEL", sub, name); got != "-ERR No such master with that name\r\n" {
				t.Errorf("SENTINEL %s %s: got %q", sub, name, got)
			}
		}
	}
	masters := cache.do("SENTINEL", "masters")
	if !strings.HasPrefix(masters, "*1\r\n") || !strings.Contains(masters, bulks("name", "cache")[4:]) || strings.Contains(masters, "sessions") {
		t.Errorf("SENTINEL masters shows more than cache: %q", masters)
	}

	sessions := dialRaw(t, addr)
	if got := sessions.do("AUTH", "sessions", sessionsPW); got != "+OK\r\n" {
		t.Fatalf("AUTH sessions: %q", got)
	}
	if got := sessions.do("SENTINEL", "get-master-addr-by-name", "cache"); got != "*-1\r\n" {
		t.Errorf("sessions' password sees cache: %q", got)
	}
	if got, want := sessions.do("SENTINEL", "get-master-addr-by-name", "sessions"), bulks("10.0.0.2", "7002"); got != want {
		t.Errorf("sessions: got %q, want %q", got, want)
	}
}

func TestAuth_UserNameNarrowsASharedPassword(t *testing.T) {
	src := twoDatabases()
	src.set(Master{Name: "cache2", Addr: Addr{"10.0.0.5", 7005}, Password: cachePW})
	_, addr := startServer(t, src)

	shared := dialRaw(t, addr)
	shared.do("AUTH", cachePW)
	if got := shared.do("SENTINEL", "masters"); !strings.HasPrefix(got, "*2\r\n") {
		t.Errorf("the default user with a shared password should see both databases: %q", got)
	}
	narrow := dialRaw(t, addr)
	narrow.do("AUTH", "cache2", cachePW)
	if got := narrow.do("SENTINEL", "get-master-addr-by-name", "cache"); got != "*-1\r\n" {
		t.Errorf("user cache2 sees cache: %q", got)
	}
	if got := narrow.do("SENTINEL", "get-master-addr-by-name", "cache2"); got != bulks("10.0.0.5", "7005") {
		t.Errorf("user cache2 does not see cache2: %q", got)
	}
}

// TestAuth_AnApplicationUserSeesOnlyItsDatabase: AUTH with an application
// user of a database and one of its passwords opens that database alone;
// its password under another user name, or the database's own password
// under its name, opens nothing.
func TestAuth_AnApplicationUserSeesOnlyItsDatabase(t *testing.T) {
	src := twoDatabases()
	m := src.Masters()[0]
	m.Users = map[string][]string{"app": {"app-pw", "app-old-pw"}}
	src.set(m)
	_, addr := startServer(t, src)
	for _, pw := range []string{"app-pw", "app-old-pw"} {
		c := dialRaw(t, addr)
		if got := c.do("AUTH", "app", pw); got != "+OK\r\n" {
			t.Fatalf("AUTH app: %q", got)
		}
		if got := c.do("SENTINEL", "get-master-addr-by-name", m.Name); got != bulks(m.Addr.IP, fmt.Sprint(m.Addr.Port)) {
			t.Errorf("app does not see %s: %q", m.Name, got)
		}
		if got := c.do("SENTINEL", "masters"); !strings.HasPrefix(got, "*1\r\n") {
			t.Errorf("app sees more than its database: %q", got)
		}
	}
	c := dialRaw(t, addr)
	for _, cmd := range [][]string{
		{"AUTH", "default", "app-pw"},
		{"AUTH", m.Name, "app-pw"},
		{"AUTH", "app", m.Password},
		{"AUTH", "app", ""},
		{"AUTH", "other", "app-pw"},
	} {
		if got := c.do(cmd...); got != wrongPassReply {
			t.Errorf("%q: got %q, want WRONGPASS", cmd, got)
		}
	}
}

// TestAuth_ThePreviousPasswordOpensItsDatabaseDuringTheGrace: after db
// rotate-password --grace, applications that still have the old password
// discover with it until the grace ends (the agent then clears it).
func TestAuth_ThePreviousPasswordOpensItsDatabaseDuringTheGrace(t *testing.T) {
	src := twoDatabases()
	m := src.Masters()[0]
	old := m.Password
	m.Password, m.PreviousPassword = "rotated", old
	src.set(m)
	_, addr := startServer(t, src)
	for _, pw := range []string{"rotated", old} {
		c := dialRaw(t, addr)
		if got := c.do("AUTH", pw); got != "+OK\r\n" {
			t.Errorf("AUTH with %s password: %q", map[bool]string{true: "the new", false: "the previous"}[pw == "rotated"], got)
		}
	}
	m.PreviousPassword = ""
	src.set(m)
	if got := dialRaw(t, addr).do("AUTH", old); got != wrongPassReply {
		t.Errorf("AUTH with the previous password after the grace: %q, want WRONGPASS", got)
	}
}

func TestAuth_ChangedPasswordRevokesAnOpenConnection(t *testing.T) {
	src := twoDatabases()
	_, addr := startServer(t, src)
	c := dialRaw(t, addr)
	c.do("AUTH", cachePW)
	m := src.Masters()[0]
	m.Password = "rotated"
	src.set(m)
	if got := c.do("SENTINEL", "get-master-addr-by-name", "cache"); got != "*-1\r\n" {
		t.Errorf("after the password changed the old one still sees cache: %q", got)
	}
}

func TestHello_RefusesRESP3AndAnswersRESP2LikeSentinel(t *testing.T) {
	_, addr := startServer(t, twoDatabases())
	c := dialRaw(t, addr)
	if got := c.do("HELLO", "3", "AUTH", "default", cachePW); got != "-NOPROTO sorry, this protocol version is not supported.\r\n" {
		t.Errorf("HELLO 3: got %q", got)
	}
	if got := c.do("HELLO", "x"); got != "-ERR Protocol version is not an integer or out of range\r\n" {
		t.Errorf("HELLO x: got %q", got)
	}
	if got := c.do("HELLO", "2", "FOO"); got != "-ERR Syntax error in HELLO option 'FOO'\r\n" {
		t.Errorf("HELLO 2 FOO: got %q", got)
	}
	got := c.do("HELLO", "2", "AUTH", "default", cachePW, "SETNAME", "app")
	want := "*12\r\n" + bulks("server", "redis", "version", "7.0.0", "proto")[4:] + ":2\r\n" +
		"$2\r\nid\r\n:1\r\n" + bulks("mode", "sentinel", "modules")[4:] + "*0\r\n"
	if got != want {
		t.Errorf("HELLO 2 AUTH:\n got %q\nwant %q", got, want)
	}
	if got := c.do("CLIENT", "GETNAME"); got != "$3\r\napp\r\n" {
		t.Errorf("CLIENT GETNAME after HELLO SETNAME: %q", got)
	}
	if got := c.do("HELLO"); !strings.HasPrefix(got, "*12\r\n") {
		t.Errorf("HELLO with no version once authenticated: %q", got)
	}
}

func TestCommands_AnswerLikeRedis(t *testing.T) {
	srv, addr := startServer(t, twoDatabases())
	c := dialRaw(t, addr)
	c.do("AUTH", cachePW)
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"PING"}, "+PONG\r\n"},
		{[]string{"ping", "hi"}, "$2\r\nhi\r\n"},
		{[]string{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command\r\n"},
		{[]string{"SELECT", "0"}, "+OK\r\n"},
		{[]string{"SELECT", "1"}, "-ERR DB index is out of range\r\n"},
		{[]string{"SELECT"}, "-ERR wrong number of arguments for 'select' command\r\n"},
		{[]string{"CLIENT", "SETINFO", "LIB-NAME", "go-redis(,go1.26)"}, "+OK\r\n"},
		{[]string{"CLIENT", "SETINFO", "lib-ver", "9.23.0"}, "+OK\r\n"},
		{[]string{"CLIENT", "SETINFO", "color", "blue"}, "-ERR Unrecognized option 'color'\r\n"},
		{[]string{"CLIENT", "GETNAME"}, "$-1\r\n"},
		{[]string{"CLIENT", "SETNAME", "has space"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
		{[]string{"CLIENT", "SETNAME", "worker-1"}, "+OK\r\n"},
		{[]string{"CLIENT", "GETNAME"}, "$8\r\nworker-1\r\n"},
		{[]string{"CLIENT", "ID"}, ":1\r\n"},
		{[]string{"CLIENT", "KILL"}, "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"},
		{[]string{"FOO", "a", "b"}, "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"},
		{[]string{"FOO"}, "-ERR unknown command 'FOO', with args beginning with: \r\n"},
		{[]string{"FOO", "x\r\ny"}, "-ERR unknown command 'FOO', with args beginning with: 'x  y' \r\n"},
		{[]string{"SENTINEL"}, "-ERR wrong number of arguments for 'sentinel' command\r\n"},
		{[]string{"SENTINEL", "bogus"}, "-ERR unknown subcommand 'bogus'. Try SENTINEL HELP.\r\n"},
		{[]string{"SENTINEL", "get-master-addr-by-name"}, "-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n"},
		{[]string{"SENTINEL", "master", "cache", "extra"}, "-ERR wrong number of arguments for 'sentinel|master' command\r\n"},
		{[]string{"sentinel", "GET-MASTER-ADDR-BY-NAME", "cache"}, bulks("10.0.0.1", "7001")},
		{[]string{"SENTINEL", "myid"}, bulks(RunID("n1"))[4:]},
	} {
		if got := c.do(tc.cmd...); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.cmd, got, tc.want)
		}
	}
	if got := c.do("SENTINEL", "failover", "cache"); !strings.HasPrefix(got, "-ERR SENTINEL FAILOVER is not supported") || !strings.Contains(got, "/v1/databases/NAME/failover") {
		t.Errorf("SENTINEL failover should say who manages failover: %q", got)
	}
	if len(srv.ID()) != 40 {
		t.Errorf("RunID gives %q, want 40 hex digits", srv.ID())
	}
}

// The key lists are what redis-sentinel 7.0.15 emits (captured from a real
// one); TestFields_MatchARealSentinel checks the first two live.
var (
	masterKeys = []string{"name", "ip", "port", "runid", "flags", "link-pending-commands", "link-refcount",
		"last-ping-sent", "last-ok-ping-reply", "last-ping-reply", "down-after-milliseconds", "info-refresh",
		"role-reported", "role-reported-time", "config-epoch", "num-slaves", "num-other-sentinels", "quorum",
		"failover-timeout", "parallel-syncs"}
	replicaKeys = []string{"name", "ip", "port", "runid", "flags", "link-pending-commands", "link-refcount",
		"last-ping-sent", "last-ok-ping-reply", "last-ping-reply", "down-after-milliseconds", "info-refresh",
		"role-reported", "role-reported-time", "master-link-down-time", "master-link-status", "master-host",
		"master-port", "slave-priority", "slave-repl-offset", "replica-announced"}
	sentinelKeys = []string{"name", "ip", "port", "runid", "flags", "link-pending-commands", "link-refcount",
		"last-ping-sent", "last-ok-ping-reply", "last-ping-reply", "down-after-milliseconds",
		"last-hello-message", "voted-leader", "voted-leader-epoch"}
)

// parseFlat reads a reply of flat string arrays (or one flat array) into
// Go values.
func parseFlat(t *testing.T, raw string) [][]string {
	t.Helper()
	r := bufio.NewReader(strings.NewReader(raw))
	line, _ := r.ReadString('\n')
	var n int
	if _, err := fmt.Sscanf(line, "*%d\r\n", &n); err != nil {
		t.Fatalf("not an array: %q", raw)
	}
	var out [][]string
	for range n {
		line, _ := r.ReadString('\n')
		var m int
		if _, err := fmt.Sscanf(line, "*%d\r\n", &m); err != nil {
			t.Fatalf("element is not an array: %q", line)
		}
		var item []string
		for range m {
			var b bytes.Buffer
			if err := readReply(r, &b); err != nil || b.Len() == 0 || b.Bytes()[0] != '$' {
				t.Fatalf("field is not a bulk string: %q", b.String())
			}
			s := b.String()
			item = append(item, s[strings.Index(s, "\r\n")+2:len(s)-2])
		}
		out = append(out, item)
	}
	return out
}

func keysOf(fields []string) []string {
	var keys []string
	for i := 0; i < len(fields); i += 2 {
		keys = append(keys, fields[i])
	}
	return keys
}

func fieldMap(fields []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i]] = fields[i+1]
	}
	return m
}

func TestSentinelReplies_HaveSentinel7Fields(t *testing.T) {
	_, addr := startServer(t, twoDatabases())
	c := dialRaw(t, addr)
	c.do("AUTH", cachePW)

	masters := parseFlat(t, c.do("SENTINEL", "masters"))
	if len(masters) != 1 || strings.Join(keysOf(masters[0]), " ") != strings.Join(masterKeys, " ") {
		t.Fatalf("SENTINEL masters keys:\n got %q\nwant %q", keysOf(masters[0]), masterKeys)
	}
	m := fieldMap(masters[0])
	for k, want := range map[string]string{
		"name": "cache", "ip": "10.0.0.1", "port": "7001", "flags": "master", "config-epoch": "3",
		"num-slaves": "2", "num-other-sentinels": "2", "quorum": "2", "role-reported": "master",
	} {
		if m[k] != want {
			t.Errorf("master %s = %q, want %q", k, m[k], want)
		}
	}

	replicas := parseFlat(t, c.do("SENTINEL", "replicas", "cache"))
	if len(replicas) != 2 {
		t.Fatalf("got %d replicas, want 2", len(replicas))
	}
	up, down := fieldMap(replicas[0]), fieldMap(replicas[1])
	if got := strings.Join(keysOf(replicas[0]), " "); got != strings.Join(replicaKeys, " ") {
		t.Errorf("replica keys:\n got %s\nwant %s", got, strings.Join(replicaKeys, " "))
	}
	for k, want := range map[string]string{
		"name": "10.0.0.2:7001", "ip": "10.0.0.2", "port": "7001", "flags": "slave", "master-link-status": "ok",
		"master-host": "10.0.0.1", "master-port": "7001", "slave-repl-offset": "1234",
	} {
		if up[k] != want {
			t.Errorf("replica %s = %q, want %q", k, up[k], want)
		}
	}
	if down["flags"] != "s_down,slave,disconnected" || down["master-link-status"] != "err" || down["s-down-time"] != "0" {
		t.Errorf("down replica: flags %q, link %q, s-down-time %q", down["flags"], down["master-link-status"], down["s-down-time"])
	}
	if slaves := c.do("SENTINEL", "slaves", "cache"); slaves != c.do("SENTINEL", "replicas", "cache") {
		t.Errorf("SENTINEL slaves differs from SENTINEL replicas: %q", slaves)
	}

	sentinels := parseFlat(t, c.do("SENTINEL", "sentinels", "cache"))
	if len(sentinels) != 2 || strings.Join(keysOf(sentinels[0]), " ") != strings.Join(sentinelKeys, " ") {
		t.Fatalf("SENTINEL sentinels: %q", sentinels)
	}
	if s := fieldMap(sentinels[0]); s["name"] != RunID("n2") || s["runid"] != RunID("n2") || s["flags"] != "sentinel" || s["port"] != "26379" {
		t.Errorf("peer: %v", s)
	}

	// Every value redis-py converts with int() must be an integer.
	for _, fields := range append(append(masters, replicas...), sentinels...) {
		for k, v := range fieldMap(fields) {
			if _, typed := intFields[k]; typed {
				if _, err := strconv.Atoi(v); err != nil {
					t.Errorf("%s = %q is not an integer", k, v)
				}
			}
		}
	}
}

// intFields are redis-py 4.3's SENTINEL_STATE_TYPES: the fields it reads
// with int().
var intFields = map[string]struct{}{
	"can-failover-its-master": {}, "config-epoch": {}, "down-after-milliseconds": {}, "failover-timeout": {},
	"info-refresh": {}, "last-hello-message": {}, "last-ok-ping-reply": {}, "last-ping-reply": {},
	"last-ping-sent": {}, "master-link-down-time": {}, "master-port": {}, "num-other-sentinels": {},
	"num-slaves": {}, "o-down-time": {}, "pending-commands": {}, "parallel-syncs": {}, "port": {},
	"quorum": {}, "role-reported-time": {}, "s-down-time": {}, "slave-priority": {},
	"slave-repl-offset": {}, "voted-leader-epoch": {},
}

func TestSentinelReplies_DownMasterIsFlaggedDown(t *testing.T) {
	src := twoDatabases()
	m := src.Masters()[0]
	m.Down = true
	src.set(m)
	_, addr := startServer(t, src)
	c := dialRaw(t, addr)
	c.do("AUTH", cachePW)
	got := fieldMap(parseFlat(t, "*1\r\n"+c.do("SENTINEL", "master", "cache"))[0])
	if got["flags"] != "s_down,o_down,master,disconnected" || got["s-down-time"] != "0" || got["o-down-time"] != "0" {
		t.Errorf("down master: %v", got)
	}
	// A real Sentinel still answers the address of a down master.
	if addr := c.do("SENTINEL", "get-master-addr-by-name", "cache"); addr != bulks("10.0.0.1", "7001") {
		t.Errorf("get-master-addr-by-name of a down master: %q", addr)
	}
}

func TestPubSub_WireFormatsAndSubscribedMode(t *testing.T) {
	src := twoDatabases()
	srv, addr := startServer(t, src)
	c := dialRaw(t, addr)
	c.do("AUTH", cachePW)

	c.send(string(appendBulks(nil, "SUBSCRIBE", "+switch-master", "other")))
	if got, want := c.read()+c.read(), "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nother\r\n:2\r\n"; got != want {
		t.Errorf("SUBSCRIBE:\n got %q\nwant %q", got, want)
	}
	if got := c.do("PSUBSCRIBE", "+switch-*"); got != "*3\r\n$10\r\npsubscribe\r\n$9\r\n+switch-*\r\n:3\r\n" {
		t.Errorf("PSUBSCRIBE: %q", got)
	}
	if got := c.do("PING"); got != bulks("pong", "") {
		t.Errorf("PING in subscribed mode: %q", got)
	}
	if got := c.do("PING", "hc"); got != bulks("pong", "hc") {
		t.Errorf("PING hc in subscribed mode: %q", got)
	}
	if got := c.do("SENTINEL", "myid"); got != "-ERR Can't execute 'sentinel|myid': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n" {
		t.Errorf("SENTINEL in subscribed mode: %q", got)
	}

	m := src.Masters()[0]
	m.Addr = Addr{"10.0.0.2", 7001}
	src.set(m)
	srv.Changed()
	payload := "cache 10.0.0.1 7001 10.0.0.2 7001"
	if got := c.read(); got != bulks("message", "+switch-master", payload) {
		t.Errorf("message: %q", got)
	}
	if got := c.read(); got != bulks("pmessage", "+switch-*", "+switch-master", payload) {
		t.Errorf("pmessage: %q", got)
	}

	c.send(string(appendBulks(nil, "UNSUBSCRIBE")))
	if got, want := c.read()+c.read(), "*3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$5\r\nother\r\n:1\r\n"; got != want {
		t.Errorf("UNSUBSCRIBE all:\n got %q\nwant %q", got, want)
	}
	if got := c.do("PUNSUBSCRIBE"); got != "*3\r\n$12\r\npunsubscribe\r\n$9\r\n+switch-*\r\n:0\r\n" {
		t.Errorf("PUNSUBSCRIBE all: %q", got)
	}
	if got := c.do("UNSUBSCRIBE"); got != "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n" {
		t.Errorf("UNSUBSCRIBE with none: %q", got)
	}
	if got := c.do("PING"); got != "+PONG\r\n" {
		t.Errorf("PING after leaving subscribed mode: %q", got)
	}
}

func TestChanged_PublishesOnlyMovesOfSeenMastersToAllowedSubscribers(t *testing.T) {
	src := twoDatabases()
	srv, addr := startServer(t, src)
	cache := dialRaw(t, addr)
	cache.do("AUTH", cachePW)
	cache.do("PSUBSCRIBE", "*")
	sessions := dialRaw(t, addr)
	sessions.do("AUTH", sessionsPW)
	sessions.do("SUBSCRIBE", "+switch-master")

	// A database seen for the first time, and one that moves while gone
	// and comes back, publish nothing.
	src.set(Master{Name: "fresh", Addr: Addr{"10.0.0.7", 7007}, Password: cachePW})
	srv.Changed()
	srv.Changed() // nothing changed
	src.mu.Lock()
	saved := src.masters[1]
	src.masters = src.masters[:1]
	src.mu.Unlock()
	srv.Changed()
	saved.Addr = Addr{"10.0.0.3", 7002}
	src.set(saved)
	srv.Changed()

	// cache moves: only cache's subscriber hears of it, and it is the first
	// thing it hears.
	m := src.Masters()[0]
	m.Addr, m.Epoch = Addr{"10.0.0.2", 7001}, 4
	src.set(m)
	srv.Changed()
	if got := cache.read(); got != bulks("pmessage", "*", "+switch-master", "cache 10.0.0.1 7001 10.0.0.2 7001") {
		t.Errorf("cache subscriber: %q", got)
	}
	// sessions moves: its subscriber's first message is about sessions,
	// which proves it never got cache's.
	s := src.Masters()[1]
	s.Addr = Addr{"10.0.0.1", 7002}
	src.set(s)
	srv.Changed()
	if got := sessions.read(); got != bulks("message", "+switch-master", "sessions 10.0.0.3 7002 10.0.0.1 7002") {
		t.Errorf("sessions subscriber: %q", got)
	}
	if got := cache.do("PING"); got != bulks("pong", "") {
		t.Errorf("cache subscriber got more than its own message: %q", got)
	}
}

func TestProtocolViolation_RepliesWithAnErrorAndCloses(t *testing.T) {
	_, addr := startServer(t, twoDatabases())
	for _, tc := range []struct{ in, want string }{
		{"*1025\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"*1\r\n$70000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"PING \"x\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
	} {
		c := dialRaw(t, addr)
		c.send(tc.in)
		if got := c.read(); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
		if !c.closedByServer() {
			t.Errorf("%q: connection left open", tc.in)
		}
	}
}

func TestSlowSubscriber_IsDroppedWithoutDelayingOthers(t *testing.T) {
	src := twoDatabases()
	srv, addr := startServer(t, src)
	srv.mu.Lock()
	srv.queueLimit = 4 << 10
	srv.mu.Unlock()

	// A small receive buffer, set before connecting so that the window is
	// small from the start, makes the kernel hold few messages for it.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		_ = rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
		return err
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	slow := &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	slow.do("AUTH", cachePW)
	slow.do("SUBSCRIBE", "+switch-master")

	fast := dialRaw(t, addr)
	fast.do("AUTH", cachePW)
	fast.do("SUBSCRIBE", "+switch-master")
	_ = fast.nc.SetReadDeadline(time.Time{})
	var received atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			var b bytes.Buffer
			if readReply(fast.r, &b) != nil {
				return
			}
			received.Add(1)
		}
	}()

	conns := func() int { return len(srv.openConns()) }
	if conns() != 2 {
		t.Fatalf("%d connections open, want 2", conns())
	}
	// Publish until the slow subscriber, which reads nothing, has filled
	// its kernel buffers and its queue and is dropped. The fast one reads
	// every 32 messages (under 3 KiB) before more are published, so it
	// never falls far behind.
	addrs := [2]Addr{{"10.0.0.1", 7001}, {"10.0.0.2", 7001}}
	published, slowest := 0, time.Duration(0)
	for conns() == 2 {
		if published == 200_000 {
			t.Fatalf("the slow subscriber was not dropped after %d messages", published)
		}
		m := src.Masters()[0]
		m.Addr = addrs[(published+1)%2]
		src.set(m)
		start := time.Now()
		srv.Changed()
		slowest = max(slowest, time.Since(start))
		published++
		if published%32 != 0 {
			continue
		}
		eventually(t, 5*time.Second, "the fast subscriber receives every message", func() error {
			if n := received.Load(); n != int64(published) {
				return fmt.Errorf("received %d of %d", n, published)
			}
			return nil
		})
	}
	if slowest > time.Second {
		t.Errorf("a Changed call took %v: publishing waited for a client", slowest)
	}
	eventually(t, 5*time.Second, "the fast subscriber receives every message", func() error {
		if n := received.Load(); n != int64(published) {
			return fmt.Errorf("received %d of %d", n, published)
		}
		return nil
	})
	if !slow.closedByServer() {
		t.Error("the slow subscriber's connection is still open")
	}
	t.Logf("slow subscriber dropped after %d messages; slowest Changed %v", published, slowest)
	_ = fast.nc.Close()
	<-readerDone
}

func TestClose_ClosesClientsAndIsIdempotent(t *testing.T) {
	src := twoDatabases()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(src, "", nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := dialRaw(t, l.Addr().String())
	c.do("AUTH", cachePW)
	c.do("SUBSCRIBE", "+switch-master")
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Close: %v, want nil", err)
	}
	if !c.closedByServer() {
		t.Error("a subscribed client stayed connected after Close")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := srv.Serve(l); err != nil {
		t.Errorf("Serve after Close: %v, want nil", err)
	}
	if len(srv.ID()) != 40 {
		t.Errorf("generated run id %q, want 40 hex digits", srv.ID())
	}
}
