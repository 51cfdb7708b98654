package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// at connects with a URL's user and password to one instance.
func at(t *testing.T, rawURL string, in api.Instance) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	opt.Addr, opt.MaxRetries = fmt.Sprintf("%s:%d", in.Host, in.Port), -1
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAccess_UsersFollowTheDatabaseAcrossSwitchoverAndRotation: on three
// nodes, a user made through one member works on every instance and on
// the new primary after a switchover; the replicas, which authenticate as
// the replication user, stay linked; db rotate-password gives the default
// user, the agent and the replicas new secrets, and after a restart of
// every instance (which reads them from its file) the replicas link again
// with the new one and the old default password is refused everywhere.
func TestAccess_UsersFollowTheDatabaseAcrossSwitchoverAndRotation(t *testing.T) {
	agents, db := haCluster(t)
	ctx := ctxT(t)
	if !db.AccessControl {
		t.Fatal("a new database has no access control")
	}
	cr, err := agents[1].client.CreateUser(ctx, "ha", api.CreateUserRequest{Name: "app", Role: "write"})
	if err != nil {
		t.Fatal(err)
	}
	if err := at(t, cr.URL, primaryOf(db)).Set(ctx, "k", "1", 0).Err(); err != nil {
		t.Fatalf("SET as app on the primary: %v", err)
	}
	for _, in := range db.Instances {
		waitUntil(t, "app authenticates on "+in.ID, func() bool { return at(t, cr.URL, in).Ping(ctx).Err() == nil })
		if err := at(t, cr.URL, in).Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("REPLICAOF NO ONE as app on %s = %v, want NOPERM", in.ID, err)
		}
	}

	res, err := agents[2].client.FailoverDatabase(ctx, "ha", api.FailoverRequest{To: "n3"})
	if err != nil {
		t.Fatal(err)
	}
	np := primaryOf(res.Database)
	if err := at(t, cr.URL, np).Set(ctx, "k", "2", 0).Err(); err != nil {
		t.Errorf("SET as app on the new primary %s: %v", np.ID, err)
	}
	waitReplicasLinked(t, agents[0].client, "ha")

	old, err := agents[0].client.DatabaseURL(ctx, "ha")
	if err != nil {
		t.Fatal(err)
	}
	rot, err := agents[1].client.RotatePassword(ctx, "ha", api.RotateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agents[0].client.RestartDatabase(ctx, "ha"); err != nil {
		t.Fatal(err)
	}
	v := waitReplicasLinked(t, agents[0].client, "ha")
	if err := at(t, rot.URL, primaryOf(v)).Set(ctx, "k", "3", 0).Err(); err != nil {
		t.Errorf("SET with the rotated default password: %v", err)
	}
	for _, in := range v.Instances {
		if err := at(t, old.URL, in).Ping(ctx).Err(); err == nil {
			t.Errorf("the old default password still works on %s", in.ID)
		}
		// A replica gets the write a moment after the primary.
		waitUntil(t, "GET k as app on "+in.ID+" after the rotation and restart to be 3", func() bool {
			got, err := at(t, cr.URL, in).Get(ctx, "k").Result()
			return err == nil && got == "3"
		})
	}
}
