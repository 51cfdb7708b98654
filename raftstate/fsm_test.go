package raftstate

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func applyCmd(t *testing.T, f *FSM, index uint64, ct CommandType, payload any) error {
	t.Helper()
	data, err := Encode(ct, payload)
	if err != nil {
		t.Fatal(err)
	}
	res := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	if res == nil {
		return nil
	}
	return res.(error)
}

func testDB(name string, port int) Database {
	return Database{
		Name: name, Version: "7.0", Flavor: FlavorAOF, MemoryBytes: 256 << 20,
		Password:  Sealed("sealed"),
		CreatedAt: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
		Instances: []Instance{{ID: name + "-0", Node: "n1", Port: port, Role: RolePrimary}},
	}
}

func TestFSM_CreateDeleteRestart(t *testing.T) {
	f := NewFSM(nil)
	if err := applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: "127.0.0.1:7481"}); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 2, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	if got := f.State().Databases["cache"]; got == nil || got.Instances[0].Port != 6400 {
		t.Fatalf("cache not recorded: %+v", got)
	}
	if err := applyCmd(t, f, 3, CmdRestartDatabase, RestartDatabase{Name: "cache"}); err != nil {
		t.Fatal(err)
	}
	if g := f.State().Databases["cache"].RestartGeneration; g != 1 {
		t.Fatalf("restart generation = %d, want 1", g)
	}
	if err := applyCmd(t, f, 4, CmdDeleteDatabase, DeleteDatabase{Name: "cache"}); err != nil {
		t.Fatal(err)
	}
	if len(f.State().Databases) != 0 {
		t.Fatal("database still present after delete")
	}
}

func TestFSM_RefusesBadCommandsWithoutChangingState(t *testing.T) {
	f := NewFSM(nil)
	_ = applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1"})
	_ = applyCmd(t, f, 2, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)})
	before := f.State()

	badName := testDB("Bad_Name", 6401)
	badFlavor := testDB("x", 6401)
	badFlavor.Flavor = "lsm"
	unknownNode := testDB("y", 6401)
	unknownNode.Instances[0].Node = "n9"
	noPrimary := testDB("z", 6401)
	noPrimary.Instances[0].Role = RoleReplica
	cases := []struct {
		name string
		ct   CommandType
		p    any
		want error
	}{
		{"duplicate", CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6401)}, ErrExists},
		{"port taken", CmdCreateDatabase, CreateDatabase{Database: testDB("other", 6400)}, ErrConflict},
		{"bad name", CmdCreateDatabase, CreateDatabase{Database: badName}, ErrInvalid},
		{"bad flavor", CmdCreateDatabase, CreateDatabase{Database: badFlavor}, ErrInvalid},
		{"unknown node", CmdCreateDatabase, CreateDatabase{Database: unknownNode}, ErrConflict},
		{"no primary", CmdCreateDatabase, CreateDatabase{Database: noPrimary}, ErrInvalid},
		{"delete missing", CmdDeleteDatabase, DeleteDatabase{Name: "nope"}, ErrNotFound},
		{"restart missing", CmdRestartDatabase, RestartDatabase{Name: "nope"}, ErrNotFound},
	}
	for i, c := range cases {
		err := applyCmd(t, f, uint64(10+i), c.ct, c.p)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("refused commands changed the state")
	}
}

// An entry this agent cannot decode (a newer agent wrote it, or it is
// damaged) is not applied and does not stop the FSM: the state stays as
// it was, the applied index moves past it, the entry's response wraps
// ErrUndecodable, and it is recorded and reported once.
func TestFSM_UndecodableEntryIsRecordedNotApplied(t *testing.T) {
	var heard []ApplyError
	f := NewFSM(nil)
	f.OnApplyError(func(e ApplyError) { heard = append(heard, e) })
	_ = applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1"})
	_ = applyCmd(t, f, 2, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)})
	before := f.State()
	body := []byte(`{"name":"cache"}`)
	cases := []struct {
		name    string
		data    []byte
		command string
	}{
		{"empty", nil, ""},
		{"too short", []byte{byte(CmdDeleteDatabase)}, ""},
		{"unknown command type", append([]byte{200, payloadVersion}, body...), "command-200"},
		{"newer payload version", append([]byte{byte(CmdDeleteDatabase), newestPayloadVersion + 1}, body...), "delete-database"},
		{"payload version 0", append([]byte{byte(CmdDeleteDatabase), 0}, body...), "delete-database"},
		{"JSON that does not decode", []byte{byte(CmdCreateDatabase), payloadVersion, '{'}, "create-database"},
		{"JSON of the wrong shape", append([]byte{byte(CmdDeleteDatabase), payloadVersion}, `{"name":7}`...), "delete-database"},
	}
	for i, c := range cases {
		index := uint64(10 + i)
		res := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: c.data})
		err, _ := res.(error)
		if !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: response %v, want ErrUndecodable", c.name, res)
		}
		if f.Applied() != index {
			t.Errorf("%s: applied index %d, want %d", c.name, f.Applied(), index)
		}
		if len(heard) != i+1 || heard[i].Index != index || heard[i].Command != c.command || heard[i].Err == "" {
			t.Errorf("%s: reported %+v, want one report of entry %d (%q)", c.name, heard, index, c.command)
		}
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("an entry that was not decoded changed the state")
	}
	recent, total := f.ApplyErrors()
	if total != uint64(len(cases)) || len(recent) != len(cases) || recent[0].Index != 10 {
		t.Fatalf("ApplyErrors = %+v, %d; want the %d entries, oldest first", recent, total, len(cases))
	}
	// A decodable entry after them applies as ever.
	if err := applyCmd(t, f, 30, CmdDeleteDatabase, DeleteDatabase{Name: "cache"}); err != nil {
		t.Fatal(err)
	}
}

// ApplyErrors keeps the last maxApplyErrors entries and counts them all.
func TestFSM_ApplyErrorsAreBounded(t *testing.T) {
	f := NewFSM(nil)
	for i := uint64(1); i <= 40; i++ {
		f.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: []byte{200, payloadVersion}})
	}
	recent, total := f.ApplyErrors()
	if total != 40 || len(recent) != maxApplyErrors || recent[0].Index != 40-maxApplyErrors+1 || recent[maxApplyErrors-1].Index != 40 {
		t.Fatalf("ApplyErrors = %d entries from %d, total %d; want the last %d of 40", len(recent), recent[0].Index, total, maxApplyErrors)
	}
}

// While an entry is skipped, no snapshot is taken (it would compact the
// entry out of the log, and an upgraded agent could never replay it); a
// snapshot restored from the leader holds it, and snapshots resume.
func TestFSM_NoSnapshotWhileAnEntryIsSkipped(t *testing.T) {
	f := NewFSM(nil)
	_ = applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1"})
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{200, payloadVersion}})
	if _, err := f.Snapshot(); !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "entry 2") {
		t.Fatalf("snapshot after a skipped entry: %v, want a refusal naming entry 2", err)
	}
	leader := NewFSM(nil)
	_ = applyCmd(t, leader, 1, CmdRegisterNode, RegisterNode{Name: "n1"})
	snap, err := leader.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Snapshot(); err != nil {
		t.Fatalf("snapshot after restoring the leader's: %v", err)
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Close() error  { return nil }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }

func TestFSM_SnapshotRestoreRoundTrip(t *testing.T) {
	f := NewFSM(nil)
	_ = applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: "127.0.0.1:7481"})
	_ = applyCmd(t, f, 2, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)})
	_ = applyCmd(t, f, 3, CmdCreateDatabase, CreateDatabase{Database: testDB("sessions", 6401)})
	_ = applyCmd(t, f, 4, CmdRestartDatabase, RestartDatabase{Name: "sessions"})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	changed := 0
	g := NewFSM(func() { changed++ })
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.State(), g.State()) {
		t.Fatalf("restored state differs:\n%+v\n%+v", f.State(), g.State())
	}
	if changed != 1 {
		t.Fatalf("restore notified %d times, want 1", changed)
	}
	// A corrupt snapshot leaves the old state in place.
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte("{not json")))); err == nil {
		t.Fatal("corrupt snapshot accepted")
	}
	if len(g.State().Databases) != 2 {
		t.Fatal("failed restore replaced the state")
	}
}

func TestFSM_JoinTokensAreSingleUseAndExpire(t *testing.T) {
	f := NewFSM(nil)
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	_ = applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1"})
	tok := JoinToken{ID: "t1", Hash: "h1", CreatedAt: t0, Expires: t0.Add(time.Hour)}
	if err := applyCmd(t, f, 2, CmdAddJoinToken, AddJoinToken{Token: tok}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		p    ConsumeJoinToken
		want error
	}{
		{"wrong hash", ConsumeJoinToken{ID: "t1", Hash: "h2", Node: "n2", At: t0}, ErrTokenRefused},
		{"unknown id", ConsumeJoinToken{ID: "t9", Hash: "h1", Node: "n2", At: t0}, ErrTokenRefused},
		{"expired", ConsumeJoinToken{ID: "t1", Hash: "h1", Node: "n2", At: t0.Add(time.Hour)}, ErrTokenRefused},
		{"duplicate node name", ConsumeJoinToken{ID: "t1", Hash: "h1", Node: "n1", At: t0}, ErrExists},
		{"good", ConsumeJoinToken{ID: "t1", Hash: "h1", Node: "n2", At: t0.Add(time.Minute)}, nil},
		{"reused", ConsumeJoinToken{ID: "t1", Hash: "h1", Node: "n3", At: t0.Add(2 * time.Minute)}, ErrTokenRefused},
	}
	for i, c := range cases {
		err := applyCmd(t, f, uint64(3+i), CmdConsumeJoinToken, c.p)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if f.State().Tokens["t1"].ConsumedBy != "n2" {
		t.Fatal("token not marked as used by n2")
	}
	// Old tokens are pruned when a new one is added a day after they expired.
	later := JoinToken{ID: "t2", Hash: "h2", CreatedAt: t0.Add(26 * time.Hour), Expires: t0.Add(27 * time.Hour)}
	if err := applyCmd(t, f, 20, CmdAddJoinToken, AddJoinToken{Token: later}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.State().Tokens["t1"]; ok {
		t.Fatal("expired token kept past its retention")
	}
}

func TestFSM_RemoveNodeRefusedWhileItHoldsTheOnlyCopy(t *testing.T) {
	f := NewFSM(nil)
	_ = applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1", APIAddr: "10.0.0.1:7482"})
	_ = applyCmd(t, f, 2, CmdRegisterNode, RegisterNode{Name: "n2"})
	_ = applyCmd(t, f, 3, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)})
	if err := applyCmd(t, f, 4, CmdRemoveNode, RemoveNode{Name: "n1"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "cache") {
		t.Fatalf("remove n1: %v, want a conflict naming cache", err)
	}
	if err := applyCmd(t, f, 5, CmdSetNodeDraining, SetNodeDraining{Name: "n2", Draining: true}); err != nil || !f.State().Nodes["n2"].Draining {
		t.Fatalf("drain n2: %v", err)
	}
	if err := applyCmd(t, f, 6, CmdRemoveNode, RemoveNode{Name: "n2"}); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 7, CmdRemoveNode, RemoveNode{Name: "n1", Force: true}); err != nil {
		t.Fatal(err)
	}
	st := f.State()
	if len(st.Nodes) != 0 || len(st.Databases) != 0 {
		t.Fatalf("after forced removal: %+v", st)
	}
	if err := applyCmd(t, f, 8, CmdSetNodeDraining, SetNodeDraining{Name: "n1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("drain removed node: %v", err)
	}
}
