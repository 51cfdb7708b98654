package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// runReconciler runs the rig's reconciler (real redis-server instances
// under the process supervisor) until the test ends, deleting the test's
// databases first.
func (r *rig) runReconciler(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.rec.Run(ctx) }()
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		for _, name := range r.store.View().DatabaseNames() {
			_ = r.ctl.DeleteDatabase(dctx, name)
		}
		cancel()
		<-done
	})
}

// setLevel records node n1 as an agent of feature level l.
func (r *rig) setLevel(t *testing.T, l uint32) {
	t.Helper()
	n, _ := r.store.Node("n1")
	if err := r.store.Apply(context.Background(), raftstate.CmdRegisterNode, raftstate.RegisterNode{
		Name: n.Name, RaftAddr: n.RaftAddr, APIAddr: n.APIAddr, Address: n.Address, FeatureLevel: l, AgentVersion: "test", Versions: n.Versions,
	}); err != nil {
		t.Fatal(err)
	}
}

func urlClient(t *testing.T, raw string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// poll waits up to 30 s for cond, looking after every reconcile pass.
func (r *rig) poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		passed := r.rec.Passed()
		r.rec.Trigger()
		select {
		case <-passed:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func isNoPerm(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

// TestAccess_ADatabaseFromBeforeKeepsItsPasswordAndLosesAdmin: a database
// created while an agent of level 2 was a voter has only the default user,
// with every command. Once every voter is at level 3, the leader gives it
// its secrets and the reconciler applies the users live: the same password
// keeps working for data, CONFIG is refused, the agent still manages the
// instance as its own user, and the instance never restarted.
func TestAccess_ADatabaseFromBeforeKeepsItsPasswordAndLosesAdmin(t *testing.T) {
	r := newRig(t)
	r.setLevel(t, 2)
	r.runReconciler(t)
	ctx := ctxFor(t)
	db, err := r.ctl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "old", Memory: "32mb", Flavor: "nordb"})
	if err != nil {
		t.Fatal(err)
	}
	if db.AccessControl || r.store.View().Databases["old"].Access != nil {
		t.Fatal("a database created at level 2 was given access control")
	}
	if _, err := r.ctl.CreateUser(ctx, "old", api.CreateUserRequest{Name: "app", Role: "write"}); statusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "upgrade the agent on n1") {
		t.Errorf("a user on a database without access control = %v, want 409 naming the node to upgrade", err)
	}
	u, err := r.ctl.DatabaseURL(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	app := urlClient(t, u.URL)
	if err := app.ConfigGet(ctx, "maxmemory").Err(); err != nil {
		t.Fatalf("before: CONFIG GET as the default user: %v (an older database keeps every command)", err)
	}
	if err := app.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := db.Instances[0].PID

	r.setLevel(t, raftstate.FeatureLevel)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.ctl.KeepAccess(lctx)
	r.poll(t, "the default user loses CONFIG", func() bool { return isNoPerm(app.ConfigGet(ctx, "maxmemory").Err()) })
	if got, err := app.Get(ctx, "k").Result(); err != nil || got != "before" {
		t.Errorf("after: GET k with the same password = %q, %v", got, err)
	}
	if err := app.Set(ctx, "k", "after", 0).Err(); err != nil {
		t.Errorf("after: SET with the same password: %v", err)
	}
	after, err := r.ctl.GetDatabase(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if !after.AccessControl || after.Instances[0].PID != pid || after.Instances[0].State != api.StateRunning {
		t.Errorf("after: access control %v, pid %d (was %d), state %s: want access control, the same process, running",
			after.AccessControl, after.Instances[0].PID, pid, after.Instances[0].State)
	}
	if after.Instances[0].MemoryUsedBytes == 0 {
		t.Error("after: the agent no longer observes the instance (memory used 0)")
	}
}

// TestAccess_UsersRolesGraceAndBadInput walks db user create, list,
// rotate (with a grace period on an injected clock, and without), delete
// and db rotate-password on a real instance, and refuses bad input with
// the Raft log untouched.
func TestAccess_UsersRolesGraceAndBadInput(t *testing.T) {
	r := newRig(t)
	r.runReconciler(t)
	ctx := ctxFor(t)
	if _, err := r.ctl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "shop", Memory: "32mb", Flavor: "nordb"}); err != nil {
		t.Fatal(err)
	}

	before := r.store.AppliedIndex()
	for _, c := range []struct {
		name string
		do   func() error
		want int
		says string
	}{
		{"unknown role", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "app", Role: "root"})
			return err
		}, http.StatusBadRequest, "use read, write or admin"},
		{"key pattern with a space", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "app", Role: "read", Keys: []string{"a b"}})
			return err
		}, http.StatusBadRequest, "key pattern"},
		{"channel pattern with a quote", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "app", Role: "read", Channels: []string{`x"`}})
			return err
		}, http.StatusBadRequest, "channel pattern"},
		{"name with a space", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "my app", Role: "read"})
			return err
		}, http.StatusBadRequest, "not usable"},
		{"name that is an ACL rule", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "+@all", Role: "read"})
			return err
		}, http.StatusBadRequest, "not usable"},
		{"the default user", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "default", Role: "admin"})
			return err
		}, http.StatusBadRequest, "default user"},
		{"the agent's user", func() error {
			_, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "appliance-agent", Role: "admin"})
			return err
		}, http.StatusBadRequest, "reserved"},
		{"a missing database", func() error {
			_, err := r.ctl.CreateUser(ctx, "nope", api.CreateUserRequest{Name: "app", Role: "read"})
			return err
		}, http.StatusNotFound, "does not exist"},
		{"rotating a missing user", func() error {
			_, err := r.ctl.RotateUser(ctx, "shop", "ghost", api.RotateRequest{})
			return err
		}, http.StatusNotFound, "has no user"},
		{"deleting a missing user", func() error { return r.ctl.DeleteUser(ctx, "shop", "ghost") }, http.StatusNotFound, "has no user"},
		{"a grace that is no duration", func() error {
			_, err := r.ctl.RotatePassword(ctx, "shop", api.RotateRequest{Grace: "soon"})
			return err
		}, http.StatusBadRequest, "--grace"},
		{"a negative grace", func() error {
			_, err := r.ctl.RotatePassword(ctx, "shop", api.RotateRequest{Grace: "-1h"})
			return err
		}, http.StatusBadRequest, "--grace"},
	} {
		err := c.do()
		if statusOf(err) != c.want || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %d saying %q", c.name, err, c.want, c.says)
		}
	}
	if got := r.store.AppliedIndex(); got != before {
		t.Errorf("bad input wrote to Raft: applied index %d, was %d", got, before)
	}

	// A scoped writer: its password once, working on the primary.
	cr, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "cart", Role: "write", Keys: []string{"cart:*"}})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Password == "" || !strings.Contains(cr.URL, "cart:"+cr.Password+"@") || cr.Warning != "" {
		t.Fatalf("credentials: %+v", cr)
	}
	cart := urlClient(t, cr.URL)
	if err := cart.Set(ctx, "cart:1", "x", 0).Err(); err != nil {
		t.Errorf("SET cart:1 as cart: %v", err)
	}
	if err := cart.Set(ctx, "other", "x", 0).Err(); !isNoPerm(err) {
		t.Errorf("SET other as cart = %v, want NOPERM", err)
	}
	if _, err := r.ctl.CreateUser(ctx, "shop", api.CreateUserRequest{Name: "cart", Role: "read"}); statusOf(err) != http.StatusConflict {
		t.Errorf("creating cart twice = %v, want 409", err)
	}
	us, err := r.ctl.ListUsers(ctx, "shop")
	if err != nil || len(us) != 1 || us[0].Name != "cart" || us[0].Role != "write" || us[0].Keys[0] != "cart:*" || us[0].Channels[0] != "*" {
		t.Fatalf("list: %+v, %v", us, err)
	}
	uu, err := r.ctl.UserURL(ctx, "shop", "cart")
	if err != nil || strings.Contains(uu.URL, cr.Password) || !strings.HasPrefix(uu.URL, "redis://cart@") {
		t.Errorf("db url --user: %q, %v; want the URL without the password", uu.URL, err)
	}

	// Rotation with a grace period: both work until the clock passes it.
	rot, err := r.ctl.RotateUser(ctx, "shop", "cart", api.RotateRequest{Grace: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if rot.PreviousValidUntil == nil || rot.Password == cr.Password {
		t.Fatalf("rotation: %+v", rot)
	}
	fresh := urlClient(t, rot.URL)
	if err := fresh.Ping(ctx).Err(); err != nil {
		t.Errorf("the new password: %v", err)
	}
	old := urlClient(t, cr.URL)
	if err := old.Ping(ctx).Err(); err != nil {
		t.Errorf("the old password within its grace: %v", err)
	}
	r.clock.Add(61 * time.Minute)
	r.poll(t, "the old password expires with the clock", func() bool {
		c := urlClient(t, cr.URL)
		return c.Ping(ctx).Err() != nil
	})
	if err := urlClient(t, rot.URL).Ping(ctx).Err(); err != nil {
		t.Errorf("the new password after the grace: %v", err)
	}
	// Without one, the old password stops at once.
	rot2, err := r.ctl.RotateUser(ctx, "shop", "cart", api.RotateRequest{Grace: "0s"})
	if err != nil || rot2.PreviousValidUntil != nil {
		t.Fatalf("rotation without grace: %+v, %v", rot2, err)
	}
	if err := urlClient(t, rot.URL).Ping(ctx).Err(); err == nil {
		t.Error("the replaced password still works after a rotation without grace")
	}

	// db rotate-password: the default user's new password works, the old
	// one does not, and the agent still manages the instance.
	def, err := r.ctl.DatabaseURL(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	held := urlClient(t, def.URL) // logged in before the rotation
	if err := held.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	np, err := r.ctl.RotatePassword(ctx, "shop", api.RotateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Get(ctx, "k").Err(); err == nil || err == redis.Nil {
		t.Errorf("a connection logged in with the old password still runs GET after rotate-password: %v", err)
	}
	if err := urlClient(t, np.URL).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Errorf("the new default password: %v", err)
	}
	if err := urlClient(t, def.URL).Ping(ctx).Err(); err == nil {
		t.Error("the old default password still works after rotate-password")
	}
	if got, _ := r.ctl.DatabaseURL(ctx, "shop"); got.URL != np.URL {
		t.Errorf("db url after rotate-password = %q, want the new one", got.URL)
	}
	r.poll(t, "the agent observes the instance with its new secret", func() bool {
		v, err := r.ctl.GetDatabase(ctx, "shop")
		return err == nil && v.State == api.StateRunning && v.Instances[0].MemoryUsedBytes > 0
	})

	if err := r.ctl.DeleteUser(ctx, "shop", "cart"); err != nil {
		t.Fatal(err)
	}
	r.poll(t, "a deleted user is refused", func() bool { return urlClient(t, rot2.URL).Ping(ctx).Err() != nil })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestSave_TheOperatorSavesWhatApplicationsMayNot: BGSAVE is refused to
// the default user, and db save writes dump.rdb as the agent's user and
// waits until it is on disk.
func TestSave_TheOperatorSavesWhatApplicationsMayNot(t *testing.T) {
	r := newRig(t)
	r.runReconciler(t)
	ctx := ctxFor(t)
	if _, err := r.ctl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "kept", Memory: "32mb", Flavor: "rdb"}); err != nil {
		t.Fatal(err)
	}
	u, err := r.ctl.DatabaseURL(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	app := urlClient(t, u.URL)
	if err := app.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := app.BgSave(ctx).Err(); !isNoPerm(err) {
		t.Errorf("BGSAVE as the default user = %v, want NOPERM", err)
	}
	start := time.Now().Add(-time.Second)
	res, err := r.ctl.SaveDatabase(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(r.ctl.cfg.InstancesDir(), "kept-0", "dump.rdb")
	st, serr := os.Stat(dump)
	if res.Status != "ok" || res.Instance != "kept-0" || res.SavedAt.Before(start.Truncate(time.Second)) || serr != nil || st.ModTime().Before(start) {
		t.Errorf("db save: %+v; %s: %v %v", res, dump, st, serr)
	}
	if _, err := r.ctl.SaveDatabase(ctx, "nope"); statusOf(err) != http.StatusNotFound {
		t.Errorf("db save of a missing database: %v, want 404", err)
	}
}

// TestTLS_EnableGivesAVerifiedPortBesidePlaintextAndOffClosesIt: db tls
// enable gives the instance a TLS port with a certificate of the database
// CA; a client verifying against db ca reaches it with db url --tls, the
// plaintext URL keeps working; a client trusting another CA is refused;
// off closes the TLS port; only is refused for now, changing nothing.
func TestTLS_EnableGivesAVerifiedPortBesidePlaintextAndOffClosesIt(t *testing.T) {
	r := newRig(t)
	r.runReconciler(t)
	ctx := ctxFor(t)
	created, err := r.ctl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "secure", Memory: "32mb", Flavor: "nordb"})
	if err != nil {
		t.Fatal(err)
	}
	pid := created.Instances[0].PID
	if _, err := r.ctl.DatabaseTLSURL(ctx, "secure"); statusOf(err) != http.StatusConflict {
		t.Errorf("db url --tls before TLS: %v, want 409", err)
	}
	for _, bad := range []string{"maybe", "only"} {
		if _, err := r.ctl.SetDatabaseTLS(ctx, "secure", api.TLSRequest{Mode: bad}); err == nil {
			t.Errorf("db tls secure %s was accepted", bad)
		}
	}
	if d := r.store.View().Databases["secure"]; d.TLS != raftstate.TLSOff || d.Instances[0].TLSPort != 0 {
		t.Fatalf("refused modes changed the database: %+v", d)
	}
	v, err := r.ctl.SetDatabaseTLS(ctx, "secure", api.TLSRequest{Mode: "enable"})
	if err != nil {
		t.Fatal(err)
	}
	if v.TLS != "enabled" || v.TLSPort == 0 || v.TLSPort == v.Port || v.State != api.StateRunning {
		t.Fatalf("after db tls enable: %+v", v)
	}
	ca, err := r.ctl.DatabaseCA(ctx)
	if err != nil || !strings.Contains(ca.CertPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("db ca: %+v %v", ca, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(ca.CertPEM))
	u, err := r.ctl.DatabaseTLSURL(ctx, "secure")
	if err != nil || !strings.HasPrefix(u.URL, "rediss://default:") {
		t.Fatalf("db url --tls: %q %v", u.URL, err)
	}
	opt, err := redis.ParseURL(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.TLSConfig.RootCAs, opt.MaxRetries = roots, -1
	tc := redis.NewClient(opt)
	defer tc.Close()
	if err := tc.Set(ctx, "k", "over-tls", 0).Err(); err != nil {
		t.Errorf("SET over TLS, verified against db ca: %v", err)
	}
	plain, _ := r.ctl.DatabaseURL(ctx, "secure")
	if got, err := urlClient(t, plain.URL).Get(ctx, "k").Result(); err != nil || got != "over-tls" {
		t.Errorf("GET on the plaintext port: %q %v", got, err)
	}
	other, _ := redis.ParseURL(u.URL)
	other.TLSConfig.RootCAs, other.MaxRetries = x509.NewCertPool(), -1
	oc := redis.NewClient(other)
	defer oc.Close()
	if err := oc.Ping(ctx).Err(); err == nil {
		t.Error("a client trusting no CA of ours was served")
	}
	if _, err := r.ctl.SetDatabaseTLS(ctx, "secure", api.TLSRequest{Mode: "off"}); err != nil {
		t.Fatal(err)
	}
	r.poll(t, "the TLS port closes", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", v.TLSPort), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if got, err := urlClient(t, plain.URL).Get(ctx, "k").Result(); err != nil || got != "over-tls" {
		t.Errorf("GET on the plaintext port after TLS off (memory only: a restart would have lost it): %q %v", got, err)
	}
	if after, _ := r.ctl.GetDatabase(ctx, "secure"); after.Instances[0].PID != pid {
		t.Errorf("TLS on and off restarted the instance: pid %d, was %d", after.Instances[0].PID, pid)
	}
}

// serialOf is the serial number of the certificate a TLS server presents.
// now is the clock the client checks validity with (the rig's: a
// certificate issued on it is not valid yet on the wall clock).
func serialOf(t *testing.T, addr string, roots *x509.CertPool, now func() time.Time) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Time: now})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLS_ACertificateIsRenewedWithoutDroppingAClient: two thirds into
// the certificate's life (on the injected clock) the node issues a new one
// and the instance reloads it at run time: new handshakes see a new
// serial number, and a client connected before goes on working.
func TestTLS_ACertificateIsRenewedWithoutDroppingAClient(t *testing.T) {
	r := newRig(t)
	r.runReconciler(t)
	ctx := ctxFor(t)
	if _, err := r.ctl.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "renew", Memory: "32mb", Flavor: "nordb"}); err != nil {
		t.Fatal(err)
	}
	v, err := r.ctl.SetDatabaseTLS(ctx, "renew", api.TLSRequest{Mode: "enable"})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := r.ctl.DatabaseCA(ctx)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(ca.CertPEM))
	addr := fmt.Sprintf("127.0.0.1:%d", v.TLSPort)
	before := serialOf(t, addr, roots, r.clock.Now)
	u, _ := r.ctl.DatabaseTLSURL(ctx, "renew")
	opt, _ := redis.ParseURL(u.URL)
	opt.TLSConfig.RootCAs, opt.MaxRetries, opt.PoolSize = roots, -1, 1
	held := redis.NewClient(opt)
	defer held.Close()
	if err := held.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.clock.Add(61 * 24 * time.Hour) // past two thirds of 90 days
	r.poll(t, "a renewed certificate on new handshakes", func() bool { return serialOf(t, addr, roots, r.clock.Now) != before })
	if err := held.Set(ctx, "k", "after", 0).Err(); err != nil {
		t.Errorf("the client connected before the renewal: %v", err)
	}
	if got, _ := held.Get(ctx, "k").Result(); got != "after" {
		t.Errorf("GET k = %q", got)
	}
}
