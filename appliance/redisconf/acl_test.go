package redisconf

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/lab"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// appUsers are one application user of each role, with their passwords.
var appUsers = []raftstate.User{
	{Name: "reader", Role: raftstate.UserRead, Password: raftstate.Sealed("reader-" + testPassword)},
	{Name: "writer", Role: raftstate.UserWrite, Password: raftstate.Sealed("writer-" + testPassword)},
	{Name: "owner", Role: raftstate.UserAdmin, Password: raftstate.Sealed("owner-" + testPassword)},
	{Name: "scoped", Role: raftstate.UserWrite, Keys: []string{"app:*"}, Channels: []string{"news.*"}, Password: raftstate.Sealed("scoped-" + testPassword)},
	{Name: "scopedowner", Role: raftstate.UserAdmin, Keys: []string{"app:*"}, Password: raftstate.Sealed("scopedowner-" + testPassword)},
}

// roleClients connects as the default user and each application user.
func roleClients(t *testing.T, port int) map[string]*redis.Client {
	out := map[string]*redis.Client{"default": client(t, port, testPassword)}
	for _, u := range appUsers {
		out[u.Name] = userClient(t, port, u.Name, string(u.Password))
	}
	return out
}

// deniedInvocations lists one call of every command no application user
// may run, taken from the server's own catalogue: every command and
// subcommand of @admin but access.Restored, and every one of ACL, CLUSTER
// and MIGRATE, each with as many arguments as its arity asks (the ACL
// check comes before the command runs, so the arguments are never used).
func deniedInvocations(t *testing.T, agent *redis.Client) (calls [][]any, names map[string]bool) {
	t.Helper()
	restored := map[string]bool{}
	for _, r := range access.Restored {
		restored[strings.TrimPrefix(r, "+")] = true
	}
	admin, err := agent.Do(ctx(t), "ACL", "CAT", "admin").StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	names = map[string]bool{}
	for _, n := range admin {
		if !restored[n] {
			names[n] = true
		}
	}
	for _, container := range []string{"acl", "cluster"} {
		subs, err := agent.Do(ctx(t), "COMMAND", "LIST", "FILTERBY", "PATTERN", container+"|*").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			names[s] = true
		}
	}
	names["migrate"] = true
	for _, n := range slices.Sorted(maps.Keys(names)) {
		info, err := agent.Do(ctx(t), "COMMAND", "INFO", n).Slice()
		if err != nil || len(info) == 0 {
			t.Fatalf("COMMAND INFO %s: %v %v", n, info, err)
		}
		row, _ := info[0].([]any)
		if len(row) < 2 {
			t.Fatalf("COMMAND INFO %s: %v", n, info)
		}
		arity, _ := row[1].(int64)
		if arity < 0 {
			arity = -arity
		}
		var call []any
		for _, w := range strings.Split(n, "|") {
			call = append(call, w)
		}
		for int64(len(call)) < arity {
			call = append(call, "x")
		}
		calls = append(calls, call)
	}
	return calls, names
}

// refused says whether err is the server refusing a command: NOPERM from
// the ACL, or (DEBUG and MODULE) the enable-*-command settings, which
// Redis checks before the ACL and which stay at their default, no.
func refused(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "NOPERM") ||
		strings.HasPrefix(err.Error(), "ERR DEBUG command not allowed") || strings.HasPrefix(err.Error(), "ERR MODULE command not allowed"))
}

// TestACL_EveryRoleIsDeniedWhatChangesRolesPersistenceSecurityOrTheFence
// runs, on a real redis-server, every command of @admin (but the read-only
// ones given back), ACL, CLUSTER and MIGRATE as the default user and as an
// application user of each role, and expects NOPERM for every one. It
// also checks the commands applications and frameworks call keep working.
func TestACL_EveryRoleIsDeniedWhatChangesRolesPersistenceSecurityOrTheFence(t *testing.T) {
	p := Params{Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, testPassword, false, appUsers...),
		MaxMemory: 32 << 20, Dir: t.TempDir(), Flavor: raftstate.FlavorNoRDB}
	startRedis(t, p)
	agent := agentClient(t, p)
	denied, names := deniedInvocations(t, agent)
	if len(denied) < 60 {
		t.Fatalf("only %d denied commands found in the server's catalogue: %v", len(denied), denied)
	}
	for _, must := range []string{"config|set", "config|get", "replicaof", "slaveof", "failover", "shutdown", "acl|setuser", "debug", "module|load",
		"sync", "psync", "monitor", "client|kill", "client|pause", "save", "bgsave", "bgrewriteaof", "cluster|reset", "migrate"} {
		if !names[must] {
			t.Errorf("%s is not among the denied commands", must)
		}
	}
	clients := roleClients(t, p.Port)
	for name, c := range clients {
		for _, call := range denied {
			if err := c.Do(ctx(t), call...).Err(); !refused(err) {
				t.Errorf("%s ran %v: %v, want NOPERM", name, call, err)
			}
		}
	}
	if agent.Ping(ctx(t)).Err() != nil {
		t.Fatal("the server did not survive the denied commands")
	}

	// What applications call. "+" works, "-" is NOPERM.
	type want struct {
		call  []any
		roles string // the users it works for
	}
	for _, w := range []want{
		{[]any{"SET", "app:1", "v"}, "default writer owner scoped scopedowner"},
		{[]any{"GET", "app:1"}, "default reader writer owner scoped scopedowner"},
		{[]any{"SET", "other", "v"}, "default writer owner"},
		{[]any{"INFO"}, "default reader writer owner scoped scopedowner"},
		{[]any{"WATCH", "app:1"}, "default reader writer owner scoped scopedowner"},
		{[]any{"EVAL_RO", "return redis.call('get', KEYS[1])", "1", "app:1"}, "default reader writer owner scoped scopedowner"},
		{[]any{"EVAL_RO", "return redis.call('get', KEYS[1])", "1", "other"}, "default reader writer owner"},
		{[]any{"ROLE"}, "default reader writer owner scoped scopedowner"},
		{[]any{"CLIENT", "SETNAME", "app"}, "default reader writer owner scoped scopedowner"},
		{[]any{"CLIENT", "LIST"}, "default reader writer owner scoped scopedowner"},
		{[]any{"SLOWLOG", "GET"}, "default reader writer owner scoped scopedowner"},
		{[]any{"KEYS", "*"}, "default reader owner scopedowner"},
		{[]any{"SORT", "nolist"}, "default owner"},
		{[]any{"SORT", "app:list"}, "default owner scopedowner"},
		{[]any{"FLUSHDB"}, "default owner"},
		{[]any{"FLUSHALL"}, "default owner"},
		{[]any{"SWAPDB", "0", "1"}, "default owner"},
		{[]any{"FUNCTION", "LOAD", "REPLACE", "#!lua name=lib\nredis.register_function('f', function() return 1 end)"}, "default owner scopedowner"},
		{[]any{"FUNCTION", "DELETE", "nolib"}, "default owner scopedowner"},
		{[]any{"PUBLISH", "news.1", "x"}, "default writer owner scoped scopedowner"},
		{[]any{"PUBLISH", "other", "x"}, "default writer owner scopedowner"},
		{[]any{"EVAL", "return redis.call('set', KEYS[1], 'v')", "1", "app:2"}, "default writer owner scoped scopedowner"},
	} {
		for _, name := range []string{"default", "reader", "writer", "owner", "scoped", "scopedowner"} {
			err := clients[name].Do(ctx(t), w.call...).Err()
			ok := err == nil || err == redis.Nil || !strings.HasPrefix(err.Error(), "NOPERM")
			if should := slices.Contains(strings.Fields(w.roles), name); ok != should {
				t.Errorf("%s: %v = %v; allowed %v, want %v", name, w.call, err, ok, should)
			}
		}
	}
}

// TestACL_AFencedPrimaryCannotBeUnfencedByAClient tries every way an
// application connection has to write to a fenced primary or to promote a
// replica, on real redis-servers: CONFIG SET, MULTI/EXEC around it, a Lua
// script, a function, FAILOVER, REPLICAOF NO ONE on the replica, ACL
// SETUSER to grant itself more, CLIENT KILL of the agent, and the same
// again from a second connection. Every write stays refused and the
// replica stays a replica.
func TestACL_AFencedPrimaryCannotBeUnfencedByAClient(t *testing.T) {
	primary := Params{Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, testPassword, false, appUsers...),
		MasterUser: access.ReplicationUser, MasterAuth: testReplSecret,
		MaxMemory: 32 << 20, Dir: t.TempDir(), Flavor: raftstate.FlavorNoRDB, Fenced: true}
	startRedis(t, primary)
	replica := primary
	replica.Port, replica.Dir, replica.Fenced = lab.FreePort(t), t.TempDir(), false
	replica.ReplicaOf = fmt.Sprintf("127.0.0.1:%d", primary.Port)
	startRedis(t, replica)
	agent := agentClient(t, primary)
	_ = agent.Do(ctx(t), "CLIENT", "SETNAME", "redis-appliance-agent").Err()

	attempts := [][]any{
		{"CONFIG", "SET", "min-replicas-to-write", "0"},
		{"CONFIG", "SET", "min-replicas-max-lag", "100000"},
		{"CONFIG", "RESETSTAT"},
		{"FAILOVER"},
		{"ACL", "SETUSER", "default", "+@all"},
		{"ACL", "SETUSER", "backdoor", "on", ">x", "+@all", "~*"},
		{"CLIENT", "KILL", "TYPE", "normal"},
		{"CLIENT", "PAUSE", "100000", "WRITE"},
		{"EVAL", "return redis.call('config', 'set', 'min-replicas-to-write', '0')", "0"},
		{"EVAL", "redis.call('config', 'set', 'min-replicas-to-write', '0') return redis.call('set', 'k', 'v')", "0"},
		{"FUNCTION", "LOAD", "REPLACE", "#!lua name=unfence\nredis.register_function('unfence', function() return redis.call('config', 'set', 'min-replicas-to-write', '0') end)"},
		{"FCALL", "unfence", "0"},
		{"SHUTDOWN", "NOSAVE"},
	}
	for name := range roleClients(t, primary.Port) {
		for round := 0; round < 2; round++ { // the second round on a second connection
			var c *redis.Client
			if name == "default" {
				c = client(t, primary.Port, testPassword)
			} else {
				u := appUsers[slices.IndexFunc(appUsers, func(u raftstate.User) bool { return u.Name == name })]
				c = userClient(t, primary.Port, u.Name, string(u.Password))
			}
			for _, a := range attempts {
				_ = c.Do(ctx(t), a...).Err()
			}
			// MULTI/EXEC around the same: refused when queued, so EXEC aborts.
			pipe := c.TxPipeline()
			pipe.Do(ctx(t), "CONFIG", "SET", "min-replicas-to-write", "0")
			pipe.Set(ctx(t), "k", "v", 0)
			_, _ = pipe.Exec(ctx(t))
			err := c.Set(ctx(t), "app:k", "v", 0).Err()
			if name == "reader" {
				if !refused(err) {
					t.Errorf("reader: SET = %v, want NOPERM", err)
				}
			} else if err == nil || !strings.HasPrefix(err.Error(), "NOREPLICAS") {
				t.Errorf("%s round %d: SET on the fenced primary after every attempt = %v, want NOREPLICAS", name, round, err)
			}
			rc := client(t, replica.Port, testPassword)
			if err := rc.Do(ctx(t), "REPLICAOF", "NO", "ONE").Err(); !refused(err) {
				t.Errorf("%s: REPLICAOF NO ONE on the replica = %v, want NOPERM", name, err)
			}
			if err := rc.Do(ctx(t), "SLAVEOF", "NO", "ONE").Err(); !refused(err) {
				t.Errorf("%s: SLAVEOF NO ONE on the replica = %v, want NOPERM", name, err)
			}
		}
	}
	keys, _ := agent.DBSize(ctx(t)).Result()
	if keys != 0 {
		t.Errorf("the fenced primary holds %d keys: a write went through", keys)
	}
	if got, _ := agent.ConfigGet(ctx(t), "min-replicas-to-write").Result(); got["min-replicas-to-write"] != fmt.Sprint(FencedMinReplicas) {
		t.Errorf("min-replicas-to-write = %v, want the fence's %d", got, FencedMinReplicas)
	}
	role, _ := client(t, replica.Port, testPassword).Do(ctx(t), "ROLE").Slice()
	if len(role) == 0 || role[0] != "slave" {
		t.Errorf("the replica's ROLE = %v, want slave", role)
	}
	users, _ := agent.Do(ctx(t), "ACL", "USERS").StringSlice()
	if slices.Contains(users, "backdoor") {
		t.Error("a client created the user backdoor")
	}
	// The agent, and only it, lifts the fence.
	if err := agent.ConfigSet(ctx(t), "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatalf("the agent cannot lift the fence: %v", err)
	}
	if err := client(t, primary.Port, testPassword).Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Errorf("SET once the agent lifted the fence: %v", err)
	}
}
