package raftstate

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// haDB is a database with a primary on n1 and replicas on n2 and n3.
func haDB(name string, port int) Database {
	d := testDB(name, port)
	d.Instances = append(d.Instances,
		Instance{ID: name + "-1", Node: "n2", Port: port, Role: RoleReplica},
		Instance{ID: name + "-2", Node: "n3", Port: port, Role: RoleReplica})
	return d
}

func threeNodes(t *testing.T) *FSM {
	t.Helper()
	f := NewFSM(nil)
	for i, n := range []string{"n1", "n2", "n3"} {
		if err := applyCmd(t, f, uint64(i+1), CmdRegisterNode, RegisterNode{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestFSM_SetPrimaryMovesTheRoleAndBumpsTheEpochOnce(t *testing.T) {
	f := threeNodes(t)
	if err := applyCmd(t, f, 10, CmdCreateDatabase, CreateDatabase{Database: haDB("sessions", 6400)}); err != nil {
		t.Fatal(err)
	}
	if e := f.State().Databases["sessions"].Epoch; e != 1 {
		t.Fatalf("epoch at creation = %d, want 1", e)
	}
	if err := applyCmd(t, f, 11, CmdSetPrimary, SetPrimary{Name: "sessions", Instance: "sessions-2", Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	d := f.State().Databases["sessions"]
	p, _ := d.Primary()
	if p.ID != "sessions-2" || d.Epoch != 2 {
		t.Fatalf("after switchover: primary %s epoch %d, want sessions-2 at 2", p.ID, d.Epoch)
	}
	for _, in := range d.Instances {
		if in.ID != "sessions-2" && in.Role != RoleReplica {
			t.Errorf("%s is %s, want replica", in.ID, in.Role)
		}
	}
	// The same decision applied again (a retry after a leader change) is
	// refused: the epoch moved.
	before := f.State()
	err := applyCmd(t, f, 12, CmdSetPrimary, SetPrimary{Name: "sessions", Instance: "sessions-1", Epoch: 1})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "epoch 2") {
		t.Fatalf("stale SetPrimary: %v, want a conflict naming epoch 2", err)
	}
	for _, bad := range []SetPrimary{
		{Name: "sessions", Instance: "sessions-2", Epoch: 2}, // already primary
		{Name: "sessions", Instance: "sessions-9", Epoch: 2},
		{Name: "nope", Instance: "x", Epoch: 1},
	} {
		if err := applyCmd(t, f, 13, CmdSetPrimary, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("refused SetPrimary changed the state")
	}
}

func TestFSM_LinkedReplicaPromoteUnlinkAndDeleteRefusal(t *testing.T) {
	f := threeNodes(t)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	if err := applyCmd(t, f, 10, CmdCreateDatabase, CreateDatabase{Database: testDB("orders", 6400)}); err != nil {
		t.Fatal(err)
	}
	copyDB := testDB("orders-copy", 6401)
	copyDB.Follows = &Follow{Database: "orders"}
	if err := applyCmd(t, f, 11, CmdCreateDatabase, CreateDatabase{Database: copyDB}); err != nil {
		t.Fatal(err)
	}
	// Sources that are themselves replicas, missing, or the database itself.
	chained := testDB("chained", 6402)
	chained.Follows = &Follow{Database: "orders-copy"}
	missing := testDB("dangling", 6402)
	missing.Follows = &Follow{Database: "gone"}
	self := testDB("selfish", 6402)
	self.Follows = &Follow{Database: "selfish"}
	before := f.State()
	for _, c := range []struct {
		db   Database
		want error
		text string
	}{
		{chained, ErrConflict, "is itself a replica of orders"},
		{missing, ErrNotFound, "gone"},
		{self, ErrInvalid, "itself"},
	} {
		err := applyCmd(t, f, 12, CmdCreateDatabase, CreateDatabase{Database: c.db})
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("create %s: %v, want %v mentioning %q", c.db.Name, err, c.want, c.text)
		}
	}
	err := applyCmd(t, f, 13, CmdDeleteDatabase, DeleteDatabase{Name: "orders"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "orders-copy") {
		t.Fatalf("delete of a followed database: %v, want a conflict naming orders-copy", err)
	}
	if err := applyCmd(t, f, 14, CmdPromoteDatabase, PromoteDatabase{Name: "orders", At: at}); !errors.Is(err, ErrConflict) {
		t.Fatalf("promoting a primary: %v, want a conflict", err)
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("refused commands changed the state")
	}

	if err := applyCmd(t, f, 15, CmdPromoteDatabase, PromoteDatabase{Name: "orders-copy", At: at}); err != nil {
		t.Fatal(err)
	}
	d := f.State().Databases["orders-copy"]
	if d.Follows != nil || d.ReadOnly || d.PromotedFrom != "orders" || !d.PromotedAt.Equal(at) || d.Epoch != 2 {
		t.Fatalf("after promote: %+v", d)
	}
	if err := applyCmd(t, f, 16, CmdDeleteDatabase, DeleteDatabase{Name: "orders"}); err != nil {
		t.Fatalf("delete once nothing follows it: %v", err)
	}

	// Unlink leaves a read-only copy that follows nothing until promoted.
	ext := testDB("legacy", 6403)
	ext.Follows = &Follow{Host: "10.0.0.9", Port: 6379, Password: Sealed("sealed")}
	if err := applyCmd(t, f, 17, CmdCreateDatabase, CreateDatabase{Database: ext}); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 18, CmdUnlinkDatabase, UnlinkDatabase{Name: "legacy", At: at}); err != nil {
		t.Fatal(err)
	}
	if d := f.State().Databases["legacy"]; d.Follows != nil || !d.ReadOnly {
		t.Fatalf("after unlink: %+v", d)
	}
	if err := applyCmd(t, f, 19, CmdUnlinkDatabase, UnlinkDatabase{Name: "legacy", At: at}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second unlink: %v, want a conflict", err)
	}
	if err := applyCmd(t, f, 20, CmdPromoteDatabase, PromoteDatabase{Name: "legacy", At: at}); err != nil {
		t.Fatalf("promote after unlink: %v", err)
	}
	if d := f.State().Databases["legacy"]; d.ReadOnly {
		t.Fatal("promoted database still read-only")
	}
}

func TestFSM_RemoveNodeWithAPrimaryNeedsForceAndThenPromotesAReplica(t *testing.T) {
	f := threeNodes(t)
	if err := applyCmd(t, f, 10, CmdCreateDatabase, CreateDatabase{Database: haDB("sessions", 6400)}); err != nil {
		t.Fatal(err)
	}
	before := f.State()
	err := applyCmd(t, f, 11, CmdRemoveNode, RemoveNode{Name: "n1"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "primary of sessions") {
		t.Fatalf("remove n1: %v, want a conflict about the primary", err)
	}
	if !reflect.DeepEqual(before, f.State()) {
		t.Fatal("refused remove changed the state")
	}
	// A node with only replicas goes without force; the database stays.
	if err := applyCmd(t, f, 12, CmdRemoveNode, RemoveNode{Name: "n3"}); err != nil {
		t.Fatal(err)
	}
	if d := f.State().Databases["sessions"]; len(d.Instances) != 2 {
		t.Fatalf("instances after removing n3: %+v", d.Instances)
	}
	if err := applyCmd(t, f, 13, CmdRemoveNode, RemoveNode{Name: "n1", Force: true}); err != nil {
		t.Fatal(err)
	}
	d := f.State().Databases["sessions"]
	if p, ok := d.Primary(); !ok || p.Node != "n2" || d.Epoch != 2 {
		t.Fatalf("after forced removal of the primary's node: %+v", d)
	}
}

func TestFSM_EventsAreKeptBounded(t *testing.T) {
	f := NewFSM(nil)
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for i := 0; i < MaxEvents+5; i++ {
		ev := Event{At: at.Add(time.Duration(i) * time.Second), Kind: "test", Message: strconv.Itoa(i)}
		if err := applyCmd(t, f, uint64(i+1), CmdRecordEvents, RecordEvents{Events: []Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.State().Events
	if len(evs) != MaxEvents || evs[0].Message != "5" || evs[len(evs)-1].Message != strconv.Itoa(MaxEvents+4) {
		t.Fatalf("kept %d events from %q to %q, want the newest %d", len(evs), evs[0].Message, evs[len(evs)-1].Message, MaxEvents)
	}
}

func TestFSM_ViewIsSharedUntilTheNextChange(t *testing.T) {
	f := threeNodes(t)
	v1 := f.View()
	if v2 := f.View(); v1 != v2 {
		t.Fatal("two reads without a change got two copies")
	}
	if err := applyCmd(t, f, 10, CmdCreateDatabase, CreateDatabase{Database: testDB("cache", 6400)}); err != nil {
		t.Fatal(err)
	}
	v3 := f.View()
	if v3 == v1 || v3.Databases["cache"] == nil || v1.Databases["cache"] != nil {
		t.Fatal("the view after a change is not the new state, or the old view changed")
	}
}

func TestFSM_AResentEventIsKeptOnce(t *testing.T) {
	f := NewFSM(nil)
	ev := Event{At: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), Kind: "fenced", Node: "n2", Message: "no word from the leader"}
	for i := 1; i <= 2; i++ {
		if err := applyCmd(t, f, uint64(i), CmdRecordEvents, RecordEvents{Events: []Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.State().Events); n != 1 {
		t.Fatalf("an event sent twice is kept %d times, want once", n)
	}
}
