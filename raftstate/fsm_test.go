package raftstate

import (
	"bytes"
	"errors"
	"io"
	"reflect"
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

func TestFSM_PanicsOnUndecodableEntry(t *testing.T) {
	f := NewFSM(nil)
	defer func() {
		if recover() == nil {
			t.Fatal("Apply accepted an entry it cannot decode")
		}
	}()
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(CmdCreateDatabase), payloadVersion, '{'}})
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
