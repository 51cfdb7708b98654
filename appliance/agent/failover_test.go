package agent

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/failover"
)

// haCluster starts three agents and an HA database "ha" (nordb, primary on
// n1, two replicas), and waits until both replicas are linked.
func haCluster(t *testing.T) ([]*testAgent, api.Database) {
	t.Helper()
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	if _, err := agents[0].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "ha", Memory: "32mb", Flavor: "nordb", Replicas: 2, Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	return agents, waitReplicasLinked(t, agents[0].client, "ha")
}

// waitReplicasLinked waits until database name's primary runs and every
// replica's link is up, and returns the database as it was then.
func waitReplicasLinked(t *testing.T, c *api.Client, name string) api.Database {
	t.Helper()
	ctx := ctxT(t)
	var db api.Database
	waitUntil(t, name+" with its replicas linked", func() bool {
		v, err := c.GetDatabase(ctx, name)
		if err != nil || primaryOf(v).State != api.StateRunning {
			return false
		}
		for _, in := range v.Instances {
			if in.Role == "replica" && (in.Replication == nil || in.Replication.LinkStatus != "up") {
				return false
			}
		}
		db = v
		return true
	})
	return db
}

func hasEvent(evs []api.Event, kind, db string) bool {
	for _, e := range evs {
		if e.Kind == kind && (db == "" || e.Database == db) {
			return true
		}
	}
	return false
}

// TestFailover_KillNineOfThePrimaryPromotesAReplicaAndLosesNoWaitedWrite:
// the primary's redis-server is killed; it is not restarted in place (its
// replicas would sync the empty nordb dataset); the leader promotes the
// most up-to-date replica, records why, and the old primary comes back as
// a replica. Every write acknowledged by WAIT 1 survives.
func TestFailover_KillNineOfThePrimaryPromotesAReplicaAndLosesNoWaitedWrite(t *testing.T) {
	agents, db := haCluster(t)
	ctx := ctxT(t)
	fc, password := failoverClient(t, agents, "ha", 300*time.Millisecond)
	// SET then WAIT on one connection: WAIT counts the replicas that have
	// this connection's writes; only those count as acknowledged.
	w := startWriter(5*time.Millisecond, func(k string) bool {
		var wait *redis.Cmd
		_, err := fc.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, "1", 0)
			wait = p.Do(ctx, "WAIT", 1, 200)
			return nil
		})
		n, _ := wait.Int64()
		return err == nil && n >= 1
	})
	waited := &w.acked
	waitUntil(t, "some writes acknowledged by a replica", func() bool {
		c := 0
		waited.Range(func(_, _ any) bool { c++; return c < 20 })
		return c >= 20
	})
	old := primaryOf(db)
	start := time.Now()
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var after api.Database
	waitUntil(t, "a replica promoted", func() bool {
		v, err := agents[1].client.GetDatabase(ctx, "ha")
		if err != nil {
			return false
		}
		after = v
		return primaryOf(v).Node != "n1" && primaryOf(v).State == api.StateRunning && v.Epoch == 2
	})
	t.Logf("kill -9 of the primary → %s primary at epoch 2 after %s", primaryOf(after).Node, time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond) // let the writer land a few writes on the new primary
	w.stop()
	final := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", primaryOf(after).Host, primaryOf(after).Port), Password: password})
	defer final.Close()
	lost, total := 0, 0
	waited.Range(func(k, _ any) bool {
		total++
		if final.Get(ctx, k.(string)).Err() != nil {
			lost++
		}
		return true
	})
	if lost > 0 {
		t.Fatalf("%d of %d writes acknowledged by WAIT 1 were lost", lost, total)
	}
	evs, err := agents[2].client.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(evs, "detected", "ha") || !hasEvent(evs, "promoted", "ha") {
		t.Errorf("events lack the detection or the promotion: %+v", evs)
	}
	// The old primary comes back, as a replica of the new one: the data it
	// syncs is the new primary's, not an empty restart's.
	waitUntil(t, "the old primary back as a replica", func() bool {
		v, err := agents[0].client.GetDatabase(ctx, "ha")
		if err != nil {
			return false
		}
		for _, in := range v.Instances {
			if in.ID == old.ID {
				return in.Role == "replica" && in.State == api.StateRunning && in.Replication != nil && in.Replication.LinkStatus == "up"
			}
		}
		return false
	})
}

// TestFailover_AnAgentCutOffFromTheLeaderFencesItsPrimaries: with the two
// other agents stopped, the primary's agent loses the lease and its primary
// refuses writes (NOREPLICAS); when they come back the fence lifts, and
// both the fence and the un-fence are recorded as events.
func TestFailover_AnAgentCutOffFromTheLeaderFencesItsPrimaries(t *testing.T) {
	agents, db := haCluster(t)
	ctx := ctxT(t)
	c := instanceClient(t, agents[0], db, primaryOf(db))
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("write before the cut: %v", err)
	}
	agents[1].stop()
	agents[2].stop()
	waitUntil(t, "the primary on n1 refusing writes", func() bool {
		err := c.Set(ctx, "k", "v", 0).Err()
		return err != nil && strings.Contains(err.Error(), "NOREPLICAS")
	})
	// Reads go on.
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("read while fenced: %q %v", got, err)
	}
	restarted := []*testAgent{startAgent(t, agents[1].cfg), startAgent(t, agents[2].cfg)}
	stopInstances(t, restarted[0]) // runs first, while the cluster has quorum
	waitUntil(t, "the primary on n1 taking writes again", func() bool {
		return c.Set(ctx, "k", "v2", 0).Err() == nil
	})
	waitUntil(t, "fence and un-fence recorded", func() bool {
		evs, err := restarted[0].client.Events(ctx)
		return err == nil && hasEvent(evs, "fenced", "") && hasEvent(evs, "unfenced", "")
	})
	// Nothing failed over: the primary was alive and its replicas linked.
	if v, _ := restarted[1].client.GetDatabase(ctx, "ha"); v.Epoch != 1 || primaryOf(v).Node != "n1" {
		t.Fatalf("after the cut: primary on %s at epoch %d, want n1 at 1", primaryOf(v).Node, v.Epoch)
	}
}

// TestFailover_AWedgedInstanceDoesNotFenceItsNeighbours: a redis-server
// that stops answering (SIGSTOP) makes every observation of its node wait
// for INFO to time out. The node's reports, and so its lease, must not
// wait with it: the node's HA primaries, on the leader and on a follower,
// keep taking writes, and no fence is recorded.
func TestFailover_AWedgedInstanceDoesNotFenceItsNeighbours(t *testing.T) {
	agents, _ := haCluster(t)
	ctx := ctxT(t)
	c0 := agents[0].client
	if _, err := c0.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "ha2", Memory: "16mb", Flavor: "nordb", Replicas: 1, Node: "n2"}); err != nil {
		t.Fatal(err)
	}
	var stuck []api.Instance
	for _, node := range []string{"n1", "n2"} {
		name := "stuck-" + node
		db, err := c0.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: name, Memory: "16mb", Flavor: "nordb", Node: node})
		if err != nil {
			t.Fatal(err)
		}
		stuck = append(stuck, primaryOf(db))
	}
	var writers []*redis.Client
	for _, name := range []string{"ha", "ha2"} {
		db := waitReplicasLinked(t, c0, name)
		c := instanceClient(t, agents[0], db, primaryOf(db))
		waitUntil(t, name+"'s primary taking writes", func() bool { return c.Set(ctx, "k", "v", 0).Err() == nil })
		writers = append(writers, c)
	}
	for _, in := range stuck {
		if err := syscall.Kill(in.PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(in.PID, syscall.SIGCONT) })
	}
	// Long enough for every node to observe all its instances (every
	// failover.ObserveAllInterval), each time waiting on the wedged one.
	refused := map[string]int{}
	for end := time.Now().Add(failover.ObserveAllInterval + 3*time.Second); time.Now().Before(end); {
		for i, c := range writers {
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				refused[fmt.Sprintf("%s: %v", []string{"ha on n1", "ha2 on n2"}[i], err)]++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(refused) > 0 {
		t.Errorf("primaries refused writes while a neighbour instance was wedged: %v", refused)
	}
	evs, err := c0.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hasEvent(evs, "fenced", "") {
		t.Errorf("a node fenced its primaries because an instance beside them was wedged: %+v", evs)
	}
}
