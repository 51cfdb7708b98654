package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/forward"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// fakeBackend is a test fake of the controller: each method records that
// it ran (and the caller it saw) and answers what the test set.
type fakeBackend struct {
	Backend // methods a test does not set panic if called
	name    string
	ready   error
	err     error // answer of every recording method

	mu      sync.Mutex
	calls   []string
	callers []string
}

func (f *fakeBackend) record(ctx context.Context, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, what)
	node, known := Caller(ctx)
	f.callers = append(f.callers, fmt.Sprintf("%s/%t", node, known))
}

func (f *fakeBackend) Ready(context.Context) error { return f.ready }
func (f *fakeBackend) NodeName() string            { return f.name }
func (f *fakeBackend) GetDatabase(ctx context.Context, name string) (Database, error) {
	f.record(ctx, "get "+name)
	return Database{Name: name, Unit: f.name}, f.err
}
func (f *fakeBackend) CreateDatabase(ctx context.Context, req CreateDatabaseRequest) (Database, error) {
	f.record(ctx, "create "+req.Name)
	return Database{Name: req.Name}, f.err
}
func (f *fakeBackend) RemoveNode(ctx context.Context, name string, force bool) error {
	f.record(ctx, fmt.Sprintf("remove %s force=%t", name, force))
	return f.err
}
func (f *fakeBackend) Events(ctx context.Context) ([]Event, error) {
	f.record(ctx, "events")
	return nil, f.err
}
func (f *fakeBackend) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	f.record(ctx, "status")
	return ClusterStatus{Node: f.name}, f.err
}
func (f *fakeBackend) JoinComplete(ctx context.Context, req JoinCompleteRequest) error {
	f.record(ctx, "join-complete "+req.Node)
	return f.err
}

// leading is a Membership for a node that leads, or follows leaderAddr.
type leading struct {
	self       bool
	name, addr string
	tr         http.RoundTripper
}

func (l *leading) Leader() (bool, string, string, error) { return l.self, l.name, l.addr, nil }
func (l *leading) LeaderChanged() <-chan struct{}        { return nil }
func (l *leading) Transport() (http.RoundTripper, error) { return l.tr, nil }

// serveUnix serves s on a unix socket in a temporary directory and returns
// a client for it (the local API, as the CLI sees it).
func serveUnix(t *testing.T, s *Server) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := ListenUnix(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return NewClient(sock)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Every domain error a backend returns reaches the caller with the status
// a client can act on and the backend's own message.
func TestServer_DomainErrorsMapToStatuses(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("database \"x\" %w", raftstate.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("database \"x\" %w", raftstate.ErrExists), http.StatusConflict},
		{fmt.Errorf("port taken: %w", raftstate.ErrConflict), http.StatusConflict},
		{fmt.Errorf("bad name: %w", raftstate.ErrInvalid), http.StatusBadRequest},
		{fmt.Errorf("x needs level 3: %w", raftstate.ErrFeatureLevel), http.StatusConflict},
		{raftstate.ErrLeadershipLost, http.StatusServiceUnavailable},
		{forward.ErrLeaderMoved, http.StatusServiceUnavailable},
		{forward.ErrNoLeader, http.StatusServiceUnavailable},
		{tooBig(), http.StatusUnprocessableEntity},
		{&Error{Status: http.StatusTeapot, Message: "as it is"}, http.StatusTeapot},
		{errors.New("something broke"), http.StatusInternalServerError},
	} {
		b := &fakeBackend{name: "n1", err: c.err}
		cl := serveUnix(t, NewServer(b, Authorizer{}, forward.New(&leading{self: true, name: "n1"}), quiet()))
		_, err := cl.GetDatabase(context.Background(), "x")
		var e *Error
		if !errors.As(err, &e) || e.Status != c.status || e.Message != c.err.Error() {
			t.Errorf("%v: got %v (%#v), want status %d with the backend's message", c.err, err, e, c.status)
		}
	}
}

// A leader route waits for the state to be replayed: a node that is not
// ready says so, and never answers from a state still being rebuilt.
func TestServer_LeaderRoutesWaitForTheReplayedState(t *testing.T) {
	b := &fakeBackend{name: "n1", ready: &Error{Status: http.StatusServiceUnavailable, Message: "not replayed yet"}}
	cl := serveUnix(t, NewServer(b, Authorizer{}, forward.New(&leading{self: true, name: "n1"}), quiet()))
	if _, err := cl.GetDatabase(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "not replayed yet") {
		t.Fatalf("get on a node not ready: %v", err)
	}
	if _, err := cl.Events(context.Background()); err == nil {
		t.Fatal("events on a node not ready were answered")
	}
	if _, err := cl.ClusterStatus(context.Background()); err != nil {
		t.Fatalf("cluster status needs no replayed state: %v", err)
	}
	if len(b.calls) != 1 || b.calls[0] != "status" {
		t.Errorf("the backend ran %v; want only the status", b.calls)
	}
}

// A request body is read strictly: a field the API does not know is the
// caller's mistake, refused before the backend sees it.
func TestServer_UnknownFieldsAreRefused(t *testing.T) {
	b := &fakeBackend{name: "n1"}
	s := NewServer(b, Authorizer{}, forward.New(&leading{self: true, name: "n1"}), quiet())
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/databases", strings.NewReader(`{"name":"x","memroy":"1gb"}`)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "memroy") {
		t.Fatalf("typo in a field: %d %s", rec.Code, rec.Body)
	}
	if len(b.calls) != 0 {
		t.Errorf("the backend ran %v", b.calls)
	}
}

// Internal endpoints are for members over mutual TLS only.
func TestServer_InternalEndpointsAreNotOnTheLocalSocket(t *testing.T) {
	b := &fakeBackend{name: "n1"}
	cl := serveUnix(t, NewServer(b, Authorizer{}, forward.New(&leading{self: true, name: "n1"}), quiet()))
	err := cl.JoinComplete(context.Background(), JoinCompleteRequest{Node: "n9"})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Fatalf("join complete on the socket: %v", err)
	}
	if len(b.calls) != 0 {
		t.Errorf("the backend ran %v", b.calls)
	}
}

// pair is a follower whose API forwards to a leader's cluster listener
// (TLS; any client certificate names node "n3", a member).
type pair struct {
	leader, follower *fakeBackend
	local            *Client // the follower's local socket
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{leader: &fakeBackend{name: "n1"}, follower: &fakeBackend{name: "n2"}}
	auth := Authorizer{
		NodeName: func(*x509.Certificate) (string, error) { return "n3", nil },
		IsMember: func(string) bool { return true },
	}
	ls := NewServer(p.leader, auth, forward.New(&leading{self: true, name: "n1"}), quiet())
	ts := httptest.NewUnstartedServer(ls.http.Handler)
	ts.TLS = ts.Config.TLSConfig
	ts.StartTLS()
	t.Cleanup(ts.Close)
	// httptest's client certificate is what "n3" presents.
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = ts.TLS.Certificates
	ts.TLS.ClientAuth = 2 // RequestClientCert: the leader reads the name
	fs := NewServer(p.follower, auth, forward.New(&leading{name: "n1", addr: strings.TrimPrefix(ts.URL, "https://"), tr: tr}), quiet())
	p.local = serveUnix(t, fs)
	return p
}

// On a follower a leader route runs on the leader, once, on behalf of the
// follower's local caller; a route that is answered where it arrives is
// not forwarded.
func TestServer_FollowerForwardsLeaderRoutesOnly(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	db, err := p.local.GetDatabase(ctx, "cache")
	if err != nil || db.Unit != "n1" {
		t.Fatalf("get via the follower: %+v %v, want the leader's answer", db, err)
	}
	if _, err := p.local.ClusterStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if len(p.leader.calls) != 1 || p.leader.calls[0] != "get cache" || p.leader.callers[0] != "/true" {
		t.Errorf("the leader ran %v for %v; want the get once, for a local caller", p.leader.calls, p.leader.callers)
	}
	if len(p.follower.calls) != 1 || p.follower.calls[0] != "status" {
		t.Errorf("the follower ran %v; want only its own status", p.follower.calls)
	}
}

// cluster leave on a follower removes that follower, on the leader: the
// node's name is fixed where the request came in.
func TestServer_LeaveRemovesTheNodeItWasAskedOn(t *testing.T) {
	p := newPair(t)
	if err := p.local.ClusterLeave(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.leader.calls) != 1 || p.leader.calls[0] != "remove n2 force=false" {
		t.Errorf("the leader ran %v; want the removal of n2", p.leader.calls)
	}
}

// A body that is too large is refused before anything runs.
func TestServer_BodiesAreBounded(t *testing.T) {
	b := &fakeBackend{name: "n1"}
	s := NewServer(b, Authorizer{}, forward.New(&leading{self: true, name: "n1"}), quiet())
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/databases", io.LimitReader(zeros{}, maxBody+1)))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("an oversized body: %d %s", rec.Code, rec.Body)
	}
	if len(b.calls) != 0 {
		t.Errorf("the backend ran %v", b.calls)
	}
}

// tooBig is the fit error of a 1 TiB plan on a 1 GiB node.
func tooBig() error {
	hw := sizing.Hardware{MemTotal: sizing.GiB, MemAvailable: sizing.GiB, DiskTotal: 100 * sizing.GiB, DiskFree: 100 * sizing.GiB, CPUs: 1}
	return sizing.Check(hw, sizing.DefaultPolicy(hw), sizing.Allocation{}, raftstate.FlavorAOF, sizing.TiB, "n1")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

var (
	_ = json.Marshal
	_ = net.Listen
	_ = time.Second
)

// A forwarded request that does not say where it came from (agents before
// feature level 2 send "1") is taken as before only while such an agent
// is a voter; afterwards it counts as the forwarding member's own, so no
// member skips the caller checks by leaving the origin out.
func TestCaller_UnsaidOriginIsTheForwarderOnceEveryVoterSaysIt(t *testing.T) {
	bg := WithPeerNode(context.Background(), "n3")
	for _, c := range []struct {
		header string
		legacy bool
		node   string
		known  bool
	}{
		{"1", true, "", false},
		{"1", false, "n3", true},
		{"node:n5", false, "n5", true},
		{"local", false, "", true},
	} {
		node, known := Caller(withForwarded(bg, c.header, "n3", c.legacy))
		if node != c.node || known != c.known {
			t.Errorf("header %q, legacy %t: caller %q known %t, want %q %t", c.header, c.legacy, node, known, c.node, c.known)
		}
	}
}
