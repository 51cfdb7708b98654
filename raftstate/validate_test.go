package raftstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "cache", "cache-2", "n1", strings.Repeat("a", 40)} {
		if err := CheckName("database", ok); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "Cache", "1cache", "-x", "a_b", "a/b", "..", "a b", strings.Repeat("a", 41), "a\x00"} {
		err := CheckName("node", bad)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "invalid node name") || !strings.Contains(err.Error(), "starting with a letter") {
			t.Errorf("CheckName(%q) = %v, want ErrInvalid saying what a node name is", bad, err)
		}
	}
	if err := CheckName("database", "X"); err.Error() != `invalid database name "X": use 1 to 40 lowercase letters, digits and hyphens, starting with a letter` {
		t.Errorf("message: %q", err)
	}
}

func TestCheckInstanceID(t *testing.T) {
	for _, ok := range []string{"cache-0", "cache-1", "cache-10", "cache-999"} {
		if err := CheckInstanceID("cache", ok); err != nil {
			t.Errorf("CheckInstanceID(cache, %q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"../../../../etc", "cache-0/../../x", "other-0", "cache", "cache-", "cache-00", "cache-01",
		"cache-1000", "cache--1", "cache-+1", "cache-1a", "cache-0\x00", "cache-0 ", "cache-a-0", "xcache-0",
	} {
		if err := CheckInstanceID("cache", bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cache-0 to cache-999") {
			t.Errorf("CheckInstanceID(cache, %q) = %v, want ErrInvalid naming cache-0 to cache-999", bad, err)
		}
	}
}

func TestCheckPort(t *testing.T) {
	for _, ok := range []int{1, 6379, 65535} {
		if err := CheckPort(ok); err != nil {
			t.Errorf("CheckPort(%d) = %v", ok, err)
		}
	}
	for _, bad := range []int{-1, 0, 65536, 70000} {
		if err := CheckPort(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckPort(%d) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestCheckHostAndHostPort(t *testing.T) {
	// As lenient as what agents before the check recorded: underscores, a
	// trailing dot, an IPv6 zone.
	for _, ok := range []string{"10.0.0.1", "::1", "fd00::1", "localhost", "redis-1.example.com", "A.B", strings.Repeat("a", 63) + ".com",
		"a_b.com", "node_1", "db.example.com.", "fe80::1%eth0"} {
		if err := CheckHost(ok); err != nil {
			t.Errorf("CheckHost(%q) = %v", ok, err)
		}
	}
	long := strings.Repeat(strings.Repeat("a", 50)+".", 5) + "com" // 258 characters
	for _, bad := range []string{
		"", "a/b", "../etc", "a b", "a\x00b", "-a.com", "a\"b", "a'b", "a\\b", "a#b",
		long, "10.0.0.1%eth0", "fe80::1%eth 0", "[::1]", "10.0.0.1:80", "a\nb",
	} {
		if err := CheckHost(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckHost(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	for _, ok := range []string{"10.0.0.1:7481", "[fd00::1]:7481", "node-1.lab:1", "localhost:65535", "node_1:7481", "[fe80::1%eth0]:7481"} {
		if err := CheckHostPort(ok); err != nil {
			t.Errorf("CheckHostPort(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:+80", "10.0.0.1:80a", ":7481",
		"a/b:7481", "fd00::1:7481", "0", "10.0.0.1:7481/x",
	} {
		if err := CheckHostPort(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckHostPort(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, ok := range []string{"7.0", "7.2", "10.12", "999.999"} {
		if err := CheckVersion(ok); err != nil {
			t.Errorf("CheckVersion(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "7", "7.2.4", "v7.2", "7.2 ", "../7.2", "1000.0", "7.x"} {
		if err := CheckVersion(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckVersion(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// The reconciler joins instance IDs onto its instances directory as root:
// the FSM must refuse an ID that climbs out of it, an ID of another
// database, a port that is none, and an address with a slash, and leave
// the state as it was.
func TestFSM_RefusesPathTraversalAndBadAddresses(t *testing.T) {
	f := threeNodes(t)
	if err := applyCmd(t, f, 5, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	before := f.State()
	db := func(edit func(d *Database)) CreateDatabase {
		d := haDB("sessions", 6500)
		edit(&d)
		return CreateDatabase{Database: d}
	}
	id := func(s string) CreateDatabase { return db(func(d *Database) { d.Instances[0].ID = s }) }
	cases := []struct {
		name string
		ct   CommandType
		p    any
	}{
		{"traversal ID", CmdCreateDatabase, id("../../../../etc")},
		{"traversal after a good prefix", CmdCreateDatabase, id("sessions-0/../../x")},
		{"another database's ID", CmdCreateDatabase, id("other-0")},
		{"ID with a leading zero", CmdCreateDatabase, id("sessions-01")},
		{"duplicate ID", CmdCreateDatabase, id("sessions-1")},
		{"port 0", CmdCreateDatabase, db(func(d *Database) { d.Instances[1].Port = 0 })},
		{"port 70000", CmdCreateDatabase, db(func(d *Database) { d.Instances[2].Port = 70000 })},
		{"unknown role", CmdCreateDatabase, db(func(d *Database) { d.Instances[1].Role = "leader" })},
		{"node name with a slash", CmdCreateDatabase, db(func(d *Database) { d.Instances[1].Node = "../n2" })},
		{"bad version", CmdCreateDatabase, db(func(d *Database) { d.Version = "../../bin/sh" })},
		{"traversal name", CmdCreateDatabase, db(func(d *Database) { d.Name = "../sessions" })},
		{"external source with a slash", CmdCreateDatabase, db(func(d *Database) { d.Follows = &Follow{Host: "10.0.0.9/x", Port: 6379} })},
		{"external source on port 0", CmdCreateDatabase, db(func(d *Database) { d.Follows = &Follow{Host: "10.0.0.9", Port: 0} })},
		{"source with a bad name", CmdCreateDatabase, db(func(d *Database) { d.Follows = &Follow{Database: "../cache"} })},
		{"node name", CmdRegisterNode, RegisterNode{Name: "../n4"}},
		{"raft address with a slash", CmdRegisterNode, RegisterNode{Name: "n4", RaftAddr: "10.0.0.4/x:7481"}},
		{"raft address without a port", CmdRegisterNode, RegisterNode{Name: "n4", RaftAddr: "10.0.0.4"}},
		{"API address on port 70000", CmdRegisterNode, RegisterNode{Name: "n4", RaftAddr: "10.0.0.4:7481", APIAddr: "10.0.0.4:70000"}},
		{"client address with a slash", CmdRegisterNode, RegisterNode{Name: "n4", RaftAddr: "10.0.0.4:7481", Address: "10.0.0.4/24"}},
		{"sentinel port 70000", CmdRegisterNode, RegisterNode{Name: "n4", SentinelPort: 70000}},
		{"sentinel port -1", CmdRegisterNode, RegisterNode{Name: "n4", SentinelPort: -1}},
		{"agent version too long", CmdRegisterNode, RegisterNode{Name: "n4", AgentVersion: strings.Repeat("1", 65)}},
		{"agent version with a newline", CmdRegisterNode, RegisterNode{Name: "n4", AgentVersion: "1.0\n"}},
		{"update with a bad address", CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: "a b:1"}},
		{"delete", CmdDeleteDatabase, DeleteDatabase{Name: "../cache"}},
		{"restart", CmdRestartDatabase, RestartDatabase{Name: "../cache"}},
		{"set primary", CmdSetPrimary, SetPrimary{Name: "../cache", Instance: "cache-0", Epoch: 1}},
		{"promote", CmdPromoteDatabase, PromoteDatabase{Name: "../cache"}},
		{"unlink", CmdUnlinkDatabase, UnlinkDatabase{Name: "../cache"}},
		{"remove node", CmdRemoveNode, RemoveNode{Name: "../n1"}},
		{"drain node", CmdSetNodeDraining, SetNodeDraining{Name: "../n1"}},
		{"consume token", CmdConsumeJoinToken, ConsumeJoinToken{ID: "t", Hash: "h", Node: "../n4"}},
	}
	for i, c := range cases {
		err := applyCmd(t, f, uint64(10+i), c.ct, c.p)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", c.name, err)
		}
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("refused commands changed the state")
	}
	// The same database, well formed, is accepted; a node may be
	// registered with every address form.
	if err := applyCmd(t, f, 100, CmdCreateDatabase, db(func(*Database) {})); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 101, CmdRegisterNode, RegisterNode{
		Name: "n4", RaftAddr: "[fd00::4]:7481", APIAddr: "n4.lab:7482", Address: "n4.lab", SentinelPort: 26379, AgentVersion: "1.4.0 (abc123)",
	}); err != nil {
		t.Fatal(err)
	}
}

// Two instances of one new database on one port of one node collide.
func TestFSM_RefusesTwoInstancesOnOnePort(t *testing.T) {
	f := threeNodes(t)
	d := haDB("sessions", 6500)
	d.Instances[1].Node = "n1"
	err := applyCmd(t, f, 10, CmdCreateDatabase, CreateDatabase{Database: d})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "sessions-0 and sessions-1") {
		t.Fatalf("err = %v, want a conflict naming both instances", err)
	}
}

// RecordEvents drops an event with a malformed kind, database or node
// and cuts a message longer than MaxEventMessage; the well-formed events
// of the same command are kept.
func TestFSM_RecordEventsDropsNonsenseAndCutsLongMessages(t *testing.T) {
	f := NewFSM(nil)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("é", MaxEventMessage) // 2 bytes each
	evs := []Event{
		{At: at, Kind: "failover-refused", Database: "cache", Node: "n1", Message: "kept"},
		{At: at, Kind: "Failover", Message: "uppercase kind"},
		{At: at, Kind: "", Message: "no kind"},
		{At: at, Kind: strings.Repeat("a", 41), Message: "kind too long"},
		{At: at, Kind: "fenced\x1b[2J", Message: "escape in kind"},
		{At: at, Kind: "fenced", Node: "../n1", Message: "bad node"},
		{At: at, Kind: "fenced", Database: "Cache", Message: "bad database"},
		{At: at, Kind: "detected", Message: long},
	}
	if err := applyCmd(t, f, 1, CmdRecordEvents, RecordEvents{Events: evs}); err != nil {
		t.Fatal(err)
	}
	got := f.State().Events
	if len(got) != 2 || got[0].Message != "kept" || got[1].Kind != "detected" {
		t.Fatalf("events kept: %+v; want the first and the last", got)
	}
	m := got[1].Message
	if len(m) > MaxEventMessage || !strings.HasSuffix(m, "…") || !strings.HasPrefix(long, strings.TrimSuffix(m, "…")) {
		t.Fatalf("long message kept as %d bytes ending %q; want it cut to at most %d on a character boundary", len(m), m[len(m)-8:], MaxEventMessage)
	}
	// A resend of the same events is recognised once cut.
	if err := applyCmd(t, f, 2, CmdRecordEvents, RecordEvents{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.State().Events); n != 2 {
		t.Fatalf("%d events after a resend, want 2", n)
	}
}

// A snapshot arrives from the leader over the network: Restore holds it to
// what Apply accepts and keeps the old state when it is refused.
func TestFSM_RestoreRefusesAnInvalidSnapshot(t *testing.T) {
	good := NewState()
	good.Nodes["n1"] = &Node{Name: "n1", RaftAddr: "10.0.0.1:7481"}
	d := testDB("cache", 6400)
	good.Databases["cache"] = &d
	encode := func(s *State) []byte {
		b, err := json.Marshal(snapshotFile{Version: snapshotVersion, State: s})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := NewFSM(nil)
	if err := f.Restore(io.NopCloser(bytes.NewReader(encode(good)))); err != nil {
		t.Fatal(err)
	}
	before := f.State()
	bad := func(edit func(s *State)) *State {
		s := good.Clone()
		edit(s)
		return s
	}
	cases := map[string]*State{
		"traversal ID":      bad(func(s *State) { s.Databases["cache"].Instances[0].ID = "../../../../etc" }),
		"another's ID":      bad(func(s *State) { s.Databases["cache"].Instances[0].ID = "other-0" }),
		"port 0":            bad(func(s *State) { s.Databases["cache"].Instances[0].Port = 0 }),
		"port 70000":        bad(func(s *State) { s.Databases["cache"].Instances[0].Port = 70000 }),
		"bad version":       bad(func(s *State) { s.Databases["cache"].Version = "../x" }),
		"key is not name":   bad(func(s *State) { s.Databases["cache"].Name = "other" }),
		"bad database name": bad(func(s *State) { s.Databases["../x"] = s.Databases["cache"]; s.Databases["../x"].Name = "../x" }),
		"empty database":    bad(func(s *State) { s.Databases["empty"] = nil }),
		"bad node name":     bad(func(s *State) { s.Nodes["../n2"] = &Node{Name: "../n2"} }),
		"empty node":        bad(func(s *State) { s.Nodes["n2"] = nil }),
		"address w/ slash":  bad(func(s *State) { s.Nodes["n1"].APIAddr = "10.0.0.1/x:7482" }),
		"sentinel port":     bad(func(s *State) { s.Nodes["n1"].SentinelPort = 70000 }),
		"empty token":       bad(func(s *State) { s.Tokens["t"] = nil }),
		"external source":   bad(func(s *State) { s.Databases["cache"].Follows = &Follow{Host: "a b", Port: 6379} }),
	}
	for name, s := range cases {
		err := f.Restore(io.NopCloser(bytes.NewReader(encode(s))))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Restore = %v, want ErrInvalid", name, err)
		}
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("a refused snapshot changed the state")
	}
}
