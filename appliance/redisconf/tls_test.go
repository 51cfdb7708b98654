package redisconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/lab"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// tlsClient connects over TLS to port, verifying the server's certificate
// against the CA in caFile for serverName; maxVersion 0 is Go's default.
func tlsClient(t *testing.T, port int, caFile, serverName, user, password string, maxVersion uint16) *redis.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: serverName, MaxVersion: maxVersion}
	if maxVersion != 0 && maxVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS10
	}
	c := redis.NewClient(&redis.Options{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), Username: user, Password: password, TLSConfig: cfg,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1, DisableIdentity: true,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// tlsFiles issues a certificate of a fresh database CA for 127.0.0.1 and
// localhost into dir, and returns the instance's TLS settings.
func tlsFiles(t *testing.T, dir string, ca *pki.CA, only bool) *TLS {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tl := &TLS{Port: lab.FreePort(t), CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), CAFile: filepath.Join(dir, "ca.crt"), Only: only}
	for path, data := range map[string][]byte{tl.CertFile: certPEM, tl.KeyFile: keyPEM, tl.CAFile: ca.CertPEM()} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tl
}

// TestTLS_ClientsVerifyTheInstanceAndOldProtocolsAreRefused: redis-server
// 7.0 starts from a rendered file with a TLS port and a certificate of the
// database CA; a client verifying against that CA works on it, plaintext
// beside it still works; TLS 1.1 and 1.0 are refused, and so is a client
// that trusts another CA or dials a name the certificate lacks.
func TestTLS_ClientsVerifyTheInstanceAndOldProtocolsAreRefused(t *testing.T) {
	ca, err := pki.NewDatabaseCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := Params{Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, testPassword, false),
		MaxMemory: 32 << 20, Dir: dir, Flavor: raftstate.FlavorNoRDB, TLS: tlsFiles(t, dir, ca, false)}
	startRedis(t, p)
	for _, name := range []string{"127.0.0.1", "localhost"} {
		c := tlsClient(t, p.TLS.Port, p.TLS.CAFile, name, "", testPassword, 0)
		if err := c.Set(ctx(t), "k", "over-tls", 0).Err(); err != nil {
			t.Errorf("SET over TLS verifying %s: %v", name, err)
		}
	}
	if got, err := client(t, p.Port, testPassword).Get(ctx(t), "k").Result(); err != nil || got != "over-tls" {
		t.Errorf("GET on the plaintext port beside TLS: %q %v", got, err)
	}
	for _, v := range []uint16{tls.VersionTLS11, tls.VersionTLS10} {
		if err := tlsClient(t, p.TLS.Port, p.TLS.CAFile, "127.0.0.1", "", testPassword, v).Ping(ctx(t)).Err(); err == nil {
			t.Errorf("a client limited to TLS version %#x was served", v)
		}
	}
	other, err := pki.NewDatabaseCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(otherFile, other.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tlsClient(t, p.TLS.Port, otherFile, "127.0.0.1", "", testPassword, 0).Ping(ctx(t)).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting another CA: %v, want a certificate error", err)
	}
	if err := tlsClient(t, p.TLS.Port, p.TLS.CAFile, "redis.elsewhere.test", "", testPassword, 0).Ping(ctx(t)).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client dialing a name the certificate lacks: %v, want a certificate error", err)
	}
}

// TestTLS_OnlyClosesPlaintextAndReplicatesOverTLS: with TLS only, the
// plaintext port is closed, and a replica follows its primary's TLS port,
// verifying it, as the replication user.
func TestTLS_OnlyClosesPlaintextAndReplicatesOverTLS(t *testing.T) {
	ca, err := pki.NewDatabaseCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pdir, rdir := t.TempDir(), t.TempDir()
	primary := Params{Port: lab.FreePort(t), Bind: []string{"127.0.0.1"}, Users: testUsers(t, testPassword, false),
		MasterUser: access.ReplicationUser, MasterAuth: testReplSecret,
		MaxMemory: 32 << 20, Dir: pdir, Flavor: raftstate.FlavorNoRDB, TLS: tlsFiles(t, pdir, ca, true)}
	startRedis(t, primary)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", primary.Port), time.Second); err == nil {
		c.Close()
		t.Errorf("the plaintext port %d accepts connections with TLS only", primary.Port)
	}
	replica := primary
	replica.Port, replica.Dir, replica.TLS = lab.FreePort(t), rdir, tlsFiles(t, rdir, ca, true)
	replica.ReplicaOf = fmt.Sprintf("127.0.0.1:%d", primary.TLS.Port)
	startRedis(t, replica)
	pc := tlsClient(t, primary.TLS.Port, primary.TLS.CAFile, "127.0.0.1", "", testPassword, 0)
	if err := pc.Set(ctx(t), "k", "replicated-over-tls", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rc := tlsClient(t, replica.TLS.Port, replica.TLS.CAFile, "127.0.0.1", "", testPassword, 0)
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, _ := rc.Info(ctx(t), "replication").Result()
		got, _ := rc.Get(ctx(t), "k").Result()
		if strings.Contains(info, "master_link_status:up") && got == "replicated-over-tls" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not sync over TLS within 15s; GET k = %q; INFO replication:\n%s", got, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
