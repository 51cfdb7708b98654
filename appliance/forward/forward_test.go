package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/lab"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// node is one member of a three-node Raft cluster on loopback, with a
// cluster API (TLS, httptest's certificate) whose only route answers with
// the name of the node that ran it, through the Forwarder.
type node struct {
	name  string
	raft  string // its Raft address
	store *raftstate.Store
	srv   *httptest.Server
	fwd   *Forwarder
	tr    http.RoundTripper
	api   map[string]string // node name → cluster API address, shared

	mu      sync.Mutex
	ran     int           // requests run here
	origins []string      // Header values seen here
	block   chan struct{} // when set, requests run here wait on it
	local   func() error  // the local attempt's verdict (nil: ok)
	entered chan struct{} // receives when a blocked request started
}

// Leader, LeaderChanged and Transport make a node a Membership.
func (n *node) Leader() (bool, string, string, error) {
	if n.store.IsLeader() {
		return true, n.name, n.api[n.name], nil
	}
	name := n.store.Leader()
	return false, name, n.api[name], nil
}

func (n *node) LeaderChanged() <-chan struct{}        { return n.store.LeaderChanged() }
func (n *node) Transport() (http.RoundTripper, error) { return n.tr, nil }

// ServeHTTP is the route: run here when leading (a local verdict may
// refuse), forwarded otherwise, as the API server does.
func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := &Request{Method: r.Method, URI: r.URL.RequestURI(), Body: body, Header: r.Header, Origin: Origin("")}
	if v := r.Header.Get(Header); v != "" {
		req.Forwarded, req.Origin = true, v
		n.mu.Lock()
		n.origins = append(n.origins, v)
		n.mu.Unlock()
	}
	resp, err := n.fwd.Do(r.Context(), req, func(ctx context.Context) error {
		n.mu.Lock()
		n.ran++
		block, local, entered := n.block, n.local, n.entered
		n.mu.Unlock()
		if entered != nil {
			entered <- struct{}{}
		}
		if block != nil {
			select {
			case <-block:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if local != nil {
			return local()
		}
		return nil
	})
	switch {
	case resp != nil:
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
	case errors.Is(err, ErrLeaderMoved), errors.Is(err, ErrNoLeader), errors.Is(err, raftstate.ErrNotLeader), errors.Is(err, raftstate.ErrLeadershipLost):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		fmt.Fprintf(w, "ran on %s", n.name)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(lab.FreePort(t))
}

// formCluster starts three stores on loopback (plain TCP: the transport's
// TLS is tested in raftstate), bootstraps n1 and adds the others.
func formCluster(t *testing.T, ctx context.Context) []*node {
	t.Helper()
	api := map[string]string{}
	var nodes []*node
	for i := 1; i <= 3; i++ {
		name, addr := fmt.Sprintf("n%d", i), freeAddr(t)
		st, err := raftstate.Open(raftstate.Config{NodeName: name, Dir: t.TempDir(), BindAddr: addr, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{name: name, raft: addr, store: st, api: api}
		n.fwd = New(n)
		n.srv = httptest.NewTLSServer(n)
		n.tr = n.srv.Client().Transport
		api[name] = strings.TrimPrefix(n.srv.URL, "https://")
		t.Cleanup(func() {
			n.srv.Close()
			_ = st.Close()
		})
		nodes = append(nodes, n)
	}
	if err := nodes[0].store.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[1:] {
		if err := nodes[0].store.AddVoter(ctx, n.name, n.raft); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "every node to know the leader", func() bool {
		for _, n := range nodes {
			if n.store.Leader() == "" {
				return false
			}
		}
		return true
	})
	return nodes
}

func waitFor(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func leaderOf(nodes []*node) (leader *node, followers []*node) {
	for _, n := range nodes {
		if n.store.IsLeader() {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	return leader, followers
}

func get(t *testing.T, ctx context.Context, n *node) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.srv.URL+"/v1/x?y=1", nil)
	resp, err := n.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := formCluster(t, ctx)

	t.Run("AFollowerSendsTheRequestOnToTheLeaderOnce", func(t *testing.T) {
		leader, followers := leaderOf(nodes)
		leader.mu.Lock()
		leader.ran, leader.origins = 0, nil
		leader.mu.Unlock()
		status, body := get(t, ctx, followers[0])
		if status != http.StatusOK || body != "ran on "+leader.name {
			t.Fatalf("via follower %s: %d %q, want the leader %s to run it", followers[0].name, status, body, leader.name)
		}
		leader.mu.Lock()
		defer leader.mu.Unlock()
		if leader.ran != 1 || len(leader.origins) != 1 || leader.origins[0] != "local" {
			t.Errorf("the leader ran it %d times, origins %v; want once, from a local caller", leader.ran, leader.origins)
		}
		if followers[0].ran != 0 {
			t.Errorf("the follower ran it too")
		}
	})

	t.Run("TheLeaderRunsItsOwnRequests", func(t *testing.T) {
		leader, _ := leaderOf(nodes)
		if status, body := get(t, ctx, leader); status != http.StatusOK || body != "ran on "+leader.name {
			t.Fatalf("on the leader: %d %q", status, body)
		}
	})

	t.Run("AForwardedRequestIsNeverForwardedAgain", func(t *testing.T) {
		_, followers := leaderOf(nodes)
		_, err := followers[0].fwd.Forward(ctx, &Request{Method: http.MethodGet, URI: "/v1/x", Forwarded: true, Origin: Origin("n9")})
		if !errors.Is(err, ErrLeaderMoved) {
			t.Fatalf("a forwarded request at a follower: %v, want ErrLeaderMoved", err)
		}
	})

	t.Run("NotLeaderFromTheLocalAttemptIsForwardedButLeadershipLostIsNot", func(t *testing.T) {
		leader, followers := leaderOf(nodes)
		// A node that led when the request came in and lost leadership
		// before it wrote: its attempt says not-leader, having written
		// nothing, and the request goes on to whoever leads now.
		was := &lostLeadership{node: followers[0]}
		f := New(was)
		req := &Request{Method: http.MethodGet, URI: "/v1/x", Origin: Origin("")}
		tried := 0
		resp, err := f.Do(ctx, req, func(context.Context) error { tried++; return raftstate.ErrNotLeader })
		if err != nil || resp == nil || string(resp.Body) != "ran on "+leader.name || tried != 1 {
			t.Fatalf("not-leader from the local attempt: %v %v (tried %d), want it run once here, then on %s", resp, err, tried, leader.name)
		}
		// An entry that may have committed is never sent again.
		was = &lostLeadership{node: followers[0]}
		resp, err = New(was).Do(ctx, req, func(context.Context) error { return raftstate.ErrLeadershipLost })
		if resp != nil || !errors.Is(err, raftstate.ErrLeadershipLost) {
			t.Fatalf("leadership lost: %v %v, want the error back and nothing forwarded", resp, err)
		}
	})

	t.Run("AnAttemptThatWroteIsNotSentAgain", func(t *testing.T) {
		leader, followers := leaderOf(nodes)
		// It wrote one entry, then lost leadership before its second:
		// sending it on would do the first part twice.
		f := New(&lostLeadership{node: followers[0]})
		req := &Request{Method: http.MethodGet, URI: "/v1/x", Origin: Origin("")}
		resp, err := f.Do(ctx, req, func(ctx context.Context) error {
			if err := leader.store.Apply(ctx, raftstate.CmdRecordEvents, raftstate.RecordEvents{Events: []raftstate.Event{{Kind: "test", Message: "first half"}}}); err != nil {
				return err
			}
			return raftstate.ErrNotLeader
		})
		if resp != nil || !errors.Is(err, ErrPartlyDone) {
			t.Fatalf("not-leader after a write: %v %v, want ErrPartlyDone and nothing forwarded", resp, err)
		}
	})

	t.Run("AHandOverSendsEvenAForwardedRequestOn", func(t *testing.T) {
		leader, _ := leaderOf(nodes)
		// The leader removing itself: it hands leadership over, and the
		// request, though it was forwarded here, goes on to the new leader.
		req := &Request{Method: http.MethodGet, URI: "/v1/x", Origin: Origin("n9"), Forwarded: true}
		resp, err := leader.fwd.Do(ctx, req, func(context.Context) error {
			if err := leader.store.TransferLeadership(); err != nil {
				return err
			}
			return ErrHandedOver
		})
		if err != nil || resp == nil || resp.Status != http.StatusOK || !strings.HasPrefix(string(resp.Body), "ran on ") || string(resp.Body) == "ran on "+leader.name {
			t.Fatalf("after a handover: %+v %v, want the new leader to run it", resp, err)
		}
		waitFor(t, ctx, "a new leader everywhere", func() bool {
			l, _ := leaderOf(nodes)
			return l != nil && l != leader && nodes[0].store.Leader() == l.name && nodes[1].store.Leader() == l.name && nodes[2].store.Leader() == l.name
		})
	})

	t.Run("ALeaderChangeCutsAForwardedRequestShort", func(t *testing.T) {
		leader, followers := leaderOf(nodes)
		leader.mu.Lock()
		leader.block, leader.entered = make(chan struct{}), make(chan struct{}, 1)
		leader.mu.Unlock()
		defer func() {
			leader.mu.Lock()
			close(leader.block)
			leader.block, leader.entered = nil, nil
			leader.mu.Unlock()
		}()
		type answer struct {
			status int
			body   string
		}
		done := make(chan answer, 1)
		go func() {
			s, b := get(t, ctx, followers[0])
			done <- answer{s, b}
		}()
		select {
		case <-leader.entered:
		case <-ctx.Done():
			t.Fatal("the forwarded request never reached the leader")
		}
		moved := time.Now()
		if err := leader.store.TransferLeadership(); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-done:
			if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "retry") {
				t.Errorf("after the leader changed: %d %q, want 503 saying retry", a.status, a.body)
			}
			t.Logf("answered %s after the transfer", time.Since(moved).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatal("the forwarded request was not cut short when the leader changed")
		}
		waitFor(t, ctx, "a new leader", func() bool { l, _ := leaderOf(nodes); return l != nil && l != leader })
	})
}

// With no leader known, a forward waits a bounded time for one, then says
// there is none (a node cut off, or an election that does not end).
func TestForward_NoLeaderIsABoundedWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := raftstate.Open(raftstate.Config{NodeName: "lonely", Dir: t.TempDir(), BindAddr: freeAddr(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := &node{name: "lonely", store: st, api: map[string]string{}, tr: http.DefaultTransport}
	f := New(n)
	f.LeaderWait = 300 * time.Millisecond
	start := time.Now()
	_, err = f.Forward(ctx, &Request{Method: http.MethodGet, URI: "/v1/x", Origin: Origin("")})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("no leader: %v, want ErrNoLeader", err)
	}
	if waited := time.Since(start); waited < f.LeaderWait {
		t.Errorf("gave up after %s, before LeaderWait %s", waited, f.LeaderWait)
	}
}

// Origin and ParseOrigin agree, and the header of an agent older than
// feature level 2 ("1") is an unknown origin, not a local one.
func TestOrigin_RoundTripsAndTheOldHeaderIsUnknown(t *testing.T) {
	for _, node := range []string{"", "n2", "lab-3"} {
		if got, known := ParseOrigin(Origin(node)); got != node || !known {
			t.Errorf("ParseOrigin(Origin(%q)) = %q, %t", node, got, known)
		}
	}
	if got, known := ParseOrigin("1"); got != "" || known {
		t.Errorf(`ParseOrigin("1") = %q, %t; want unknown`, got, known)
	}
}

// lostLeadership is a follower that says it leads the first time it is
// asked: a leader that loses leadership between the check and the write.
type lostLeadership struct {
	*node
	asked bool
}

func (l *lostLeadership) Leader() (bool, string, string, error) {
	if !l.asked {
		l.asked = true
		return true, l.name, l.api[l.name], nil
	}
	return l.node.Leader()
}
