package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/forward"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
)

// forgedClientConfig is a client configuration with a certificate from
// the cluster's own CA (read from a member's ca.key, as anyone holding a
// copy could) in node's name but with a key of its own.
func forgedClientConfig(t *testing.T, member *testAgent, node string) *tls.Config {
	t.Helper()
	m, err := pki.LoadDir(member.cfg.PKIDir())
	if err != nil || m.CA == nil {
		t.Fatalf("load %s's CA: %v", member.cfg.NodeName, err)
	}
	certPEM, keyPEM, err := m.CA.IssueNode(node, []net.IP{net.ParseIP("127.0.0.1")}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged, err := pki.NewMaterial(m.CA.CertPEM(), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pki.ClientConfig(forged, "")
}

// refusedAtHandshake says err is a failed connection, not an answer: the
// server refused the certificate before any request was read.
func refusedAtHandshake(err error) bool {
	var e *api.Error
	return err != nil && !errors.As(err, &e)
}

// A certificate minted with the cluster CA under a member's name (what a
// member holding the CA key could do) is refused at the handshake by the
// cluster API of every member; the member's real certificate is not.
func TestCluster_APIRefusesAForgedMemberCertificate(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	forged := forgedClientConfig(t, agents[0], "n2")
	for _, target := range []*testAgent{agents[0], agents[2]} {
		real, err := agents[1].clusterClient(target.cfg.ClusterAdvertise())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := real.Nodes(ctx); err != nil {
			t.Fatalf("n2's own certificate refused by %s: %v", target.cfg.NodeName, err)
		}
		c := api.NewRemoteClient(target.cfg.ClusterAdvertise(), forged)
		_, err = c.Nodes(ctx)
		if !refusedAtHandshake(err) {
			t.Fatalf("%s answered a forged n2 certificate (%v), want a refused handshake", target.cfg.NodeName, err)
		}
		c.Close()
	}
}

// A removed node's certificate is refused at the handshake by the cluster
// API of every remaining member, right after the removal returns.
func TestCluster_RemovedNodeIsRefusedAtTheHandshakeByEveryMember(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	victim := agents[2]
	clients := map[string]*api.Client{}
	for _, a := range agents[:2] {
		c, err := victim.clusterClient(a.cfg.ClusterAdvertise())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Nodes(ctx); err != nil {
			t.Fatalf("n3 refused by %s while a member: %v", a.cfg.NodeName, err)
		}
		clients[a.cfg.NodeName] = c // keeps its connection open
	}
	if err := agents[1].client.RemoveNode(ctx, "n3", false); err != nil {
		t.Fatal(err)
	}
	// Every member applies the removal within a round trip of the leader.
	waitUntil(t, "n2 to apply the removal", func() bool {
		st, err := agents[1].client.ClusterStatus(ctx)
		return err == nil && st.Voters == 2
	})
	for name, c := range clients {
		// The kept-alive connection is checked on every request, and a new
		// one at the handshake.
		if _, err := c.Nodes(ctx); err == nil {
			t.Fatalf("%s still answers removed n3 on its open connection", name)
		}
		c.Close()
		fresh, _ := victim.clusterClient(agents[0].cfg.ClusterAdvertise())
		if name == "n2" {
			fresh, _ = victim.clusterClient(agents[1].cfg.ClusterAdvertise())
		}
		if _, err := fresh.Nodes(ctx); !refusedAtHandshake(err) {
			t.Fatalf("%s answered removed n3 on a new connection (%v), want a refused handshake", name, err)
		}
		fresh.Close()
	}
}

// postAs sends a heartbeat for node as a member holding cfg, to addr,
// with the forwarded header set to origin ("" for none).
func postAs(t *testing.T, cfg *tls.Config, addr, node, origin string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"node":%q,"same":true}`, node)
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, "https://"+addr+"/v1/internal/heartbeat", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set(forward.Header, origin)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("heartbeat to %s: %v", addr, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// A member with a valid, pinned certificate cannot report in another
// node's name: not in the body, not by claiming the other as the origin
// of a forwarded call, and a follower never forwards a report.
func TestCluster_AMemberCannotReportForAnother(t *testing.T) {
	agents := startCluster(t, 3)
	leader := agents[0].cfg.ClusterAdvertise()
	n2, err := loadMaterial(agents[1].cfg)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := postAs(t, n2, leader, "n2", ""); code != http.StatusOK {
		t.Fatalf("n2 reporting for itself: %d %s", code, body)
	}
	for _, c := range []struct{ what, origin string }{
		{"claiming n3 as the origin", forward.Origin("n3")},
		{"claiming the leader's local socket as the origin", forward.Origin("")},
		{"in n3's name with no origin", ""},
	} {
		code, body := postAs(t, n2, leader, "n3", c.origin)
		if code != http.StatusForbidden {
			t.Errorf("n2 reporting for n3, %s: %d %s, want 403", c.what, code, body)
		}
	}
	if code, body := postAs(t, n2, agents[2].cfg.ClusterAdvertise(), "n2", ""); code != http.StatusServiceUnavailable {
		t.Errorf("a report sent to a follower: %d %s, want 503 (never forwarded)", code, body)
	}
}

// stableIndex waits until the leader's last Raft index has not moved for
// a second, and returns it.
func stableIndex(t *testing.T, a *testAgent) uint64 {
	t.Helper()
	ctx := ctxT(t)
	var last uint64
	since := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := a.client.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastIndex != last {
			last, since = st.LastIndex, time.Now()
		} else if time.Since(since) > time.Second {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the leader's Raft index never settled")
	return 0
}

// 200 forged join tokens (the cluster's CA fingerprint, a made-up
// secret) write nothing to Raft: each is refused against the leader's
// state before anything is proposed. Hosts without a certificate are
// limited to a few attempts, then answered 429.
func TestCluster_ForgedJoinTokensWriteNothing(t *testing.T) {
	agents := startCluster(t, 2)
	leader := agents[0]
	ctx := ctxT(t)
	m, err := pki.LoadDir(leader.cfg.PKIDir())
	if err != nil {
		t.Fatal(err)
	}
	before := stableIndex(t, leader)
	member, err := agents[1].clusterClient(leader.cfg.ClusterAdvertise())
	if err != nil {
		t.Fatal(err)
	}
	join := func(c *api.Client, i int) error {
		tok, err := pki.NewToken(leader.cfg.ClusterAdvertise(), m.CAFingerprint(), time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Join(ctx, api.JoinRequest{Token: tok.String(), Node: fmt.Sprintf("forged-%d", i), RaftAddr: "127.0.0.1:1"})
		return err
	}
	// Through a member's connection, which the limit does not slow: every
	// one reaches the token check.
	for i := range 200 {
		if err := join(member, i); !isStatus(err, http.StatusForbidden) || !strings.Contains(err.Error(), "unknown token") {
			t.Fatalf("forged token %d: %v, want 403 unknown token", i, err)
		}
	}
	stranger := api.NewRemoteClient(leader.cfg.ClusterAdvertise(), pki.PinnedConfig(m.CAFingerprint()))
	defer stranger.Close()
	limited := 0
	for i := range 20 {
		err := join(stranger, 1000+i)
		switch {
		case isStatus(err, http.StatusTooManyRequests):
			limited++
		case !isStatus(err, http.StatusForbidden):
			t.Fatalf("forged token from a host with no certificate: %v, want 403 or 429", err)
		}
	}
	if limited < 10 {
		t.Fatalf("%d of 20 attempts from one address limited, want most", limited)
	}
	if after := stableIndex(t, leader); after != before {
		t.Fatalf("forged tokens moved the leader's Raft index from %d to %d", before, after)
	}
}

// rotate-key gives every current member the new key (cluster.key changes
// on each, to the same key), the databases' passwords still open, and a
// node removed before the rotation keeps only the old key.
func TestCluster_RotateKeyReachesEveryMemberButTheRemovedOne(t *testing.T) {
	agents := startCluster(t, 3)
	ctx := ctxT(t)
	if _, err := agents[0].client.CreateDatabase(ctx, api.CreateDatabaseRequest{Name: "kept", Memory: "16mb", Flavor: "nordb", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	url, err := agents[0].client.DatabaseURL(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if err := agents[0].client.RemoveNode(ctx, "n3", true); err != nil {
		t.Fatal(err)
	}
	keyOf := func(a *testAgent) []byte {
		b, err := os.ReadFile(a.cfg.KeyPath())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := keyOf(agents[0])
	res, err := agents[1].client.RotateClusterKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyID == "" || res.Resealed < 1 {
		t.Fatalf("rotate-key: %+v, want a key ID and the database's password re-sealed", res)
	}
	waitUntil(t, "every member to write the new key", func() bool {
		return !bytes.Equal(keyOf(agents[0]), old) && bytes.Equal(keyOf(agents[0]), keyOf(agents[1]))
	})
	if !bytes.Equal(keyOf(agents[2]), old) {
		t.Fatal("the node removed before the rotation received the new key")
	}
	for _, a := range agents[:2] {
		got, err := a.client.DatabaseURL(context.Background(), "kept")
		if err != nil || got.URL != url.URL {
			t.Fatalf("%s: db url after rotation: %+v, %v; want %s", a.cfg.NodeName, got, err, url.URL)
		}
	}
}
