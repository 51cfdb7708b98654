package raftstate

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fuzzState is the FSM every fuzzed entry is applied to: three nodes, a
// database with replicas, a linked replica, an external one, a join token
// and an event, so that most commands have something to act on.
func fuzzState(t testing.TB) *FSM {
	f := NewFSM(nil)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for i, c := range fuzzSeeds(at)[:6] {
		res := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: c})
		if res != nil {
			t.Fatalf("seed %d: %v", i, res)
		}
	}
	return f
}

// fuzzSeeds are valid encodings of every command; the first six build
// fuzzState.
func fuzzSeeds(at time.Time) [][]byte {
	copyDB := testDB("copy", 6401)
	copyDB.Follows = &Follow{Database: "cache"}
	ext := testDB("ext", 6402)
	ext.Follows = &Follow{Host: "10.0.0.9", Port: 6379, Password: Sealed("sealed")}
	cmds := []struct {
		t CommandType
		p any
	}{
		{CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: "10.0.0.1:7481", APIAddr: "10.0.0.1:7482", Address: "10.0.0.1", SentinelPort: 26379, At: at, FeatureLevel: FeatureLevel, AgentVersion: "1.4.0"}},
		{CmdRegisterNode, RegisterNode{Name: "n2", RaftAddr: "[fd00::2]:7481"}},
		{CmdRegisterNode, RegisterNode{Name: "n3", RaftAddr: "n3.lab:7481"}},
		{CmdCreateDatabase, CreateDatabase{Database: haDB("cache", 6400)}},
		{CmdCreateDatabase, CreateDatabase{Database: copyDB}},
		{CmdAddJoinToken, AddJoinToken{Token: JoinToken{ID: "t1", Hash: "h1", CreatedAt: at, Expires: at.Add(time.Hour)}}},
		{CmdCreateDatabase, CreateDatabase{Database: ext}},
		{CmdDeleteDatabase, DeleteDatabase{Name: "copy"}},
		{CmdRestartDatabase, RestartDatabase{Name: "cache", At: at}},
		{CmdRemoveNode, RemoveNode{Name: "n2", Force: true}},
		{CmdSetNodeDraining, SetNodeDraining{Name: "n3", Draining: true}},
		{CmdConsumeJoinToken, ConsumeJoinToken{ID: "t1", Hash: "h1", Node: "n4", At: at}},
		{CmdSetPrimary, SetPrimary{Name: "cache", Instance: "cache-1", Epoch: 1, At: at, Automatic: true}},
		{CmdPromoteDatabase, PromoteDatabase{Name: "copy", At: at}},
		{CmdUnlinkDatabase, UnlinkDatabase{Name: "copy", At: at}},
		{CmdRecordEvents, RecordEvents{Events: []Event{{At: at, Kind: "fenced", Node: "n1", Message: "m"}}}},
	}
	var out [][]byte
	for _, c := range cmds {
		b, err := Encode(c.t, c.p)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzFSMApply feeds arbitrary entries to FSM.Apply: it must never panic;
// an entry it refuses (a domain error or an undecodable entry) must leave
// the state exactly as it was; and one it accepts must leave a state that
// Restore would accept.
func FuzzFSMApply(f *testing.F) {
	for _, seed := range fuzzSeeds(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)) {
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Add([]byte{byte(CmdCreateDatabase)})
	f.Add([]byte{200, payloadVersion, '{', '}'})
	f.Add([]byte{byte(CmdDeleteDatabase), newestPayloadVersion + 1, '{', '}'})
	f.Add([]byte{byte(CmdCreateDatabase), payloadVersion, 'n', 'u', 'l', 'l'})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := fuzzState(t)
		before := fsm.State()
		const index = 100
		res := fsm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
		if fsm.Applied() != index {
			t.Fatalf("applied index %d after the entry, want %d", fsm.Applied(), index)
		}
		after := fsm.State()
		if res != nil {
			err, ok := res.(error)
			if !ok {
				t.Fatalf("response %T %v, want nil or an error", res, res)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("refused entry (%v) changed the state", err)
			}
			if _, total := fsm.ApplyErrors(); errors.Is(err, ErrUndecodable) != (total == 1) {
				t.Fatalf("response %v but %d apply errors recorded", err, total)
			}
			return
		}
		if err := checkState(after); err != nil {
			t.Fatalf("accepted entry left a state Restore would refuse: %v", err)
		}
	})
}
