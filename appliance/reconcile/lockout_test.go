package reconcile

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/lab"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// createWithAccess records a database with access control whose primary is
// on n1 and, if ha, a replica on n2 (so the primary is one to fence).
func (r *rig) createWithAccess(t *testing.T, name string, ha bool) *raftstate.Database {
	t.Helper()
	seal := func(s string) raftstate.Sealed {
		b, err := r.keys.Seal([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	db := raftstate.Database{
		Name: name, Version: "7.0", Flavor: raftstate.FlavorNoRDB, MemoryBytes: 16 << 20, Password: seal("pw-" + name),
		Instances: []raftstate.Instance{{ID: name + "-0", Node: "n1", Port: lab.FreePort(t), Role: raftstate.RolePrimary}},
		Access:    &raftstate.Access{Agent: seal("agent-" + name), Replication: seal("repl-" + name)},
	}
	if ha {
		db.Instances = append(db.Instances, raftstate.Instance{ID: name + "-1", Node: "n2", Port: lab.FreePort(t), Role: raftstate.RoleReplica})
	}
	if err := r.store.Apply(context.Background(), raftstate.CmdCreateDatabase, raftstate.CreateDatabase{Database: db}); err != nil {
		t.Fatal(err)
	}
	return r.store.State().Databases[name]
}

func defaultClient(t *testing.T, port int, pw string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Password: pw, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// waitRestarted polls until the instance runs under another PID than old.
func (r *rig) waitRestarted(t *testing.T, id string, old int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		us, err := r.sup.State(context.Background(), UnitName(id))
		if err == nil && us.ActiveState == "active" && us.MainPID != 0 && us.MainPID != old {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not restarted within 30s (%+v, %v)", id, us, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFence_APrimaryThatKeepsTheAgentOutIsRestartedFenced: every
// connection slot of an HA primary is taken by connections that never
// authenticate, so the agent cannot set its fence; on the second failed
// attempt the reconciler restarts it, and it comes back refusing writes
// (fenced by its file) with the squatters gone.
func TestFence_APrimaryThatKeepsTheAgentOutIsRestartedFenced(t *testing.T) {
	r := newRig(t)
	r.rec.cfg.MaxClients = 12
	db := r.createWithAccess(t, "locked", true)
	in := db.Instances[0]
	r.pass(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The fence is lifted (the lease is held) and the app writes.
	if err := r.rec.Fence(ctx, db, in, false); err != nil {
		t.Fatal(err)
	}
	if err := defaultClient(t, in.Port, "pw-locked").Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET before: %v", err)
	}
	old := r.pid(t, in.ID)
	r.rec.probes.forget(in.ID)
	var squat []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in.Port))
		if err == nil {
			squat = append(squat, c)
		}
	}
	defer func() {
		for _, c := range squat {
			c.Close()
		}
	}()
	err1 := r.rec.Fence(ctx, db, in, true)
	err2 := r.rec.Fence(ctx, db, in, true)
	if err1 == nil || err2 == nil || !strings.Contains(err2.Error(), "restarting it fenced") {
		t.Fatalf("fencing a primary with no free connection slot: %v, then %v; want both to fail and the second to restart it", err1, err2)
	}
	r.waitRestarted(t, in.ID, old)
	if err := defaultClient(t, in.Port, "pw-locked").Set(ctx, "k", "v2", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOREPLICAS") {
		t.Errorf("SET after the restart = %v, want NOREPLICAS (fenced from its file)", err)
	}
}

// TestReconciler_AnInstanceThatMissedTwoRotationsIsRestarted: the node was
// away while the database's secrets were rotated twice, so its running
// instance knows none of the secrets the agent has now; two passes later
// it runs from its file with the current ones, and the oldest password is
// refused.
func TestReconciler_AnInstanceThatMissedTwoRotationsIsRestarted(t *testing.T) {
	r := newRig(t)
	db := r.createWithAccess(t, "away", false)
	in := db.Instances[0]
	r.pass(t)
	old := r.pid(t, in.ID)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 2 {
		seal := func(s string) raftstate.Sealed { b, _ := r.keys.Seal([]byte(fmt.Sprintf("%s-%d", s, i))); return b }
		if err := r.store.Apply(ctx, raftstate.CmdSetDatabaseSecrets, raftstate.SetDatabaseSecrets{
			Name: "away", Agent: seal("agent"), Replication: seal("repl"), Password: seal("pw"), At: time.Now(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	r.rec.probes.forget(in.ID)
	for i := range 2 {
		err := r.rec.Pass(ctx)
		if err == nil || !strings.Contains(err.Error(), "refuses every credential") {
			t.Fatalf("pass %d: %v, want the instance refusing every credential", i+1, err)
		}
	}
	r.waitRestarted(t, in.ID, old)
	if err := defaultClient(t, in.Port, "pw-1").Ping(ctx).Err(); err != nil {
		t.Errorf("the current password after the restart: %v", err)
	}
	if err := defaultClient(t, in.Port, "pw-away").Ping(ctx).Err(); err == nil {
		t.Error("the password from before both rotations still works")
	}
	r.pass(t)
}
