package raftstate

import (
	"errors"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/pki"
)

// TestFSM_DatabaseCAOnceAndTLSModes: the database CA is recorded once;
// a database takes a TLS mode only with a CA and a valid TLS port for each
// instance; a refused command changes nothing; ports stay when TLS goes
// off; a snapshot keeps all of it.
func TestFSM_DatabaseCAOnceAndTLSModes(t *testing.T) {
	f := NewFSM(nil)
	if err := applyCmd(t, f, 1, CmdRegisterNode, RegisterNode{Name: "n1", RaftAddr: "127.0.0.1:7481"}); err != nil {
		t.Fatal(err)
	}
	db := testDB("cache", 6400)
	if err := applyCmd(t, f, 2, CmdCreateDatabase, CreateDatabase{Database: db}); err != nil {
		t.Fatal(err)
	}
	id := db.Instances[0].ID
	if err := applyCmd(t, f, 3, CmdSetDatabaseTLS, SetDatabaseTLS{Name: "cache", Mode: TLSEnabled, Ports: map[string]int{id: 7400}}); !errors.Is(err, ErrConflict) {
		t.Errorf("TLS before a database CA: %v, want ErrConflict", err)
	}
	ca, err := pki.NewDatabaseCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec := DatabaseCA{CertPEM: ca.CertPEM(), Key: Sealed("sealed-key")}
	for i, c := range []struct {
		name string
		ca   DatabaseCA
		want error
	}{
		{"not PEM", DatabaseCA{CertPEM: []byte("x"), Key: Sealed("k")}, ErrInvalid},
		{"no key", DatabaseCA{CertPEM: ca.CertPEM()}, ErrInvalid},
		{"good", rec, nil},
		{"a second", rec, ErrExists},
	} {
		if err := applyCmd(t, f, uint64(4+i), CmdSetDatabaseCA, SetDatabaseCA{CA: c.ca}); !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
			t.Errorf("database CA %s: %v, want %v", c.name, err, c.want)
		}
	}
	for i, c := range []SetDatabaseTLS{
		{Name: "cache", Mode: "maybe", Ports: map[string]int{id: 7400}},
		{Name: "cache", Mode: TLSEnabled},
		{Name: "cache", Mode: TLSEnabled, Ports: map[string]int{id: 70000}},
		{Name: "cache", Mode: TLSOnly, Ports: map[string]int{"other-0": 7400}},
		{Name: "nope", Mode: TLSEnabled, Ports: map[string]int{id: 7400}},
	} {
		if err := applyCmd(t, f, uint64(10+i), CmdSetDatabaseTLS, c); err == nil {
			t.Errorf("%+v was applied", c)
		}
	}
	if d := f.State().Databases["cache"]; d.TLS != TLSOff || d.Instances[0].TLSPort != 0 {
		t.Fatalf("refused commands changed the database: %+v", d)
	}
	if err := applyCmd(t, f, 20, CmdSetDatabaseTLS, SetDatabaseTLS{Name: "cache", Mode: TLSOnly, Ports: map[string]int{id: 7400}}); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 21, CmdSetDatabaseTLS, SetDatabaseTLS{Name: "cache", Mode: TLSOff}); err != nil {
		t.Fatal(err)
	}
	if err := applyCmd(t, f, 22, CmdSetDatabaseTLS, SetDatabaseTLS{Name: "cache", Mode: TLSEnabled}); err != nil {
		t.Errorf("TLS again with the port kept: %v", err)
	}
	st := f.State()
	if d := st.Databases["cache"]; d.TLS != TLSEnabled || d.Instances[0].TLSPort != 7400 || st.DatabaseCA == nil {
		t.Fatalf("state: %+v, CA %v", d, st.DatabaseCA != nil)
	}
	if err := checkState(st); err != nil {
		t.Errorf("the state does not pass the snapshot check: %v", err)
	}
}
