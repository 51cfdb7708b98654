package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/forward"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Backend is what the server exposes; the agent's controller implements it.
// Its methods run on this node: the server decides which run on the leader
// (see NewServer) and forwards them there. Errors wrapping raftstate's
// domain errors, *Error or *sizing.FitError are translated to HTTP
// statuses; anything else is a 500.
type Backend interface {
	// Ready returns once this node's copy of the state has been replayed
	// (or with an error saying why it is not): nothing is answered from
	// a state still being rebuilt.
	Ready(ctx context.Context) error
	// NodeName is this node's name.
	NodeName() string

	CreateDatabase(ctx context.Context, req CreateDatabaseRequest) (Database, error)
	ValidateDatabase(ctx context.Context, req CreateDatabaseRequest) (CreatePlan, error)
	ListDatabases(ctx context.Context) ([]Database, error)
	GetDatabase(ctx context.Context, name string) (Database, error)
	DatabaseURL(ctx context.Context, name string) (URL, error)
	RestartDatabase(ctx context.Context, name string) (Database, error)
	DeleteDatabase(ctx context.Context, name string) error
	FailoverDatabase(ctx context.Context, name string, req FailoverRequest) (FailoverResult, error)
	PromoteDatabase(ctx context.Context, name string) (Database, error)
	UnlinkDatabase(ctx context.Context, name string) (Database, error)
	SaveDatabase(ctx context.Context, name string) (SaveResult, error)
	SetDatabaseTLS(ctx context.Context, name string, req TLSRequest) (Database, error)
	DatabaseTLSURL(ctx context.Context, name string) (URL, error)
	DatabaseCA(ctx context.Context) (CA, error)
	Events(ctx context.Context) ([]Event, error)
	Versions(ctx context.Context) ([]Version, error)
	Node(ctx context.Context) (Node, error)
	ClusterInit(ctx context.Context) (ClusterStatus, error)
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
	ClusterJoin(ctx context.Context, req JoinClusterRequest) (ClusterStatus, error)
	ClusterToken(ctx context.Context, req TokenRequest) (TokenResponse, error)
	Nodes(ctx context.Context) ([]Node, error)
	DrainNode(ctx context.Context, name string) (DrainResponse, error)
	RemoveNode(ctx context.Context, name string, force bool) error
	// RotateClusterKey re-seals every secret with a new cluster key.
	RotateClusterKey(ctx context.Context) (RotateKeyResult, error)
	UserBackend

	// Between members only (cluster listener, mutual TLS).
	Admit(ctx context.Context, req JoinRequest) (JoinResponse, error)
	JoinComplete(ctx context.Context, req JoinCompleteRequest) error
	Heartbeat(ctx context.Context, body []byte) (HeartbeatAck, error)
}

// Authorizer decides who may call over the cluster listener.
type Authorizer struct {
	// NodeName reads a node name from a verified client certificate.
	NodeName NodeNameFunc
	// IsMember reports whether a node is a current member; a removed node's
	// certificate stays valid, so membership is checked on every call.
	IsMember func(node string) bool
	// LegacyForwarding reports whether a forwarded request that does not
	// say where it came from (an agent before feature level 2) is taken
	// as it was before; nil means never.
	LegacyForwarding func() bool
	// Verify checks a member's certificate chain against its pin (nil:
	// the name alone). The listener's handshake checks it already; it is
	// asked again on every request, for a connection kept open across a
	// change of membership.
	Verify func(certs []*x509.Certificate) error
	// Seen hears of every call a member makes, with its certificate (the
	// leader pins members from before pins on first use); nil: nobody.
	Seen func(node string, cert *x509.Certificate)
}

// Server serves the API over a unix socket (local administration) and over
// the cluster listener (mutual TLS between members; joining hosts).
type Server struct {
	backend Backend
	auth    Authorizer
	fwd     *forward.Forwarder
	log     *slog.Logger
	mux     *http.ServeMux
	http    *http.Server
	// joins limits join attempts per source address.
	joins  *joinLimiter
	limits Limits
}

// where says on which node a route runs.
type where int

const (
	// here: on the node that received the request, at once.
	here where = iota
	// replayed: here, once the state is replayed (Backend.Ready).
	replayed
	// onLeader: on the leader, once the state is replayed; a follower
	// forwards the request (package forward).
	onLeader
	// leaderOnly: on the leader, from the member that calls, never
	// forwarded: the caller is the TLS peer itself, so no member can
	// speak in another's name (a node's reports). A follower answers 503
	// and the caller retries on the leader.
	leaderOnly
)

// handler answers one route: the value to send as JSON, or an error.
// It may set headers and a success status on w before returning.
type handler func(w http.ResponseWriter, r *http.Request) (any, error)

// NewServer returns a server for backend; fwd runs the leader's routes on
// the leader.
func NewServer(b Backend, auth Authorizer, fwd *forward.Forwarder, log *slog.Logger) *Server {
	s := &Server{backend: b, auth: auth, fwd: fwd, log: log, mux: http.NewServeMux(), joins: newJoinLimiter()}
	for _, r := range []struct {
		pattern string
		where   where
		h       handler
	}{
		{"GET /v1/databases", onLeader, s.listDatabases},
		{"POST /v1/databases", onLeader, s.createDatabase},
		{"POST /v1/databases/validate", onLeader, s.validateDatabase},
		{"GET /v1/databases/{name}", onLeader, s.getDatabase},
		{"DELETE /v1/databases/{name}", onLeader, s.deleteDatabase},
		// From the leader, so a node cut off from the cluster never hands
		// out the URL of a database that was deleted or moved meanwhile.
		{"GET /v1/databases/{name}/url", onLeader, s.databaseURL},
		{"POST /v1/databases/{name}/restart", onLeader, s.restartDatabase},
		{"POST /v1/databases/{name}/failover", onLeader, s.failoverDatabase},
		{"POST /v1/databases/{name}/promote", onLeader, s.promoteDatabase},
		{"POST /v1/databases/{name}/unlink", onLeader, s.unlinkDatabase},
		{"POST /v1/databases/{name}/save", onLeader, s.saveDatabase},
		{"POST /v1/databases/{name}/tls", onLeader, s.setDatabaseTLS},
		{"GET /v1/databases/{name}/url/tls", onLeader, s.databaseTLSURL},
		{"GET /v1/ca", onLeader, s.databaseCA},
		{"GET /v1/databases/{name}/users", onLeader, s.listUsers},
		{"POST /v1/databases/{name}/users", onLeader, s.createUser},
		{"POST /v1/databases/{name}/users/{user}/rotate", onLeader, s.rotateUser},
		{"DELETE /v1/databases/{name}/users/{user}", onLeader, s.deleteUser},
		{"GET /v1/databases/{name}/users/{user}/url", onLeader, s.userURL},
		{"POST /v1/databases/{name}/rotate-password", onLeader, s.rotatePassword},
		{"GET /v1/versions", here, s.versions},
		// Every node has the events a moment after the leader.
		{"GET /v1/events", replayed, s.events},
		{"GET /v1/node", here, s.node},
		{"GET /v1/cluster", here, s.clusterStatus},
		{"POST /v1/cluster/init", here, s.clusterInit},
		{"POST /v1/cluster/join", here, s.clusterJoin},
		{"POST /v1/cluster/token", onLeader, s.clusterToken},
		{"POST /v1/cluster/leave", here, s.clusterLeave},
		{"GET /v1/nodes", onLeader, s.nodes},
		{"POST /v1/nodes/{name}/drain", onLeader, s.drainNode},
		{"DELETE /v1/nodes/{name}", onLeader, s.removeNode},
		{"POST /v1/internal/join", onLeader, s.admit},
		{"POST /v1/internal/join/complete", onLeader, s.joinComplete},
		{"POST /v1/internal/heartbeat", leaderOnly, s.heartbeat},
		{"POST /v1/cluster/rotate-key", onLeader, s.rotateKey},
	} {
		s.mux.Handle(r.pattern, s.serve(r.where, r.h))
	}
	s.http = &http.Server{Handler: s.authorize(s.mux), ErrorLog: newErrorLog(log)}
	s.SetLimits(DefaultLimits())
	return s
}

// maxBody bounds a request body: a heartbeat of a node with many
// instances is the largest.
const maxBody = 4 << 20

// serve runs h where the route says: the one place that waits for the
// state and sends leader routes to the leader.
func (s *Server) serve(at where, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// A body sent slowly would hold its connection's slot (limits.go).
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(s.limits.BodyTimeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			// The rest of the body is unread: the connection cannot
			// carry another request (and net/http must not wait to
			// read that rest, the deadline stays).
			w.Header().Set("Connection", "close")
			status := http.StatusRequestEntityTooLarge
			if errors.Is(err, os.ErrDeadlineExceeded) {
				status = http.StatusRequestTimeout
			}
			s.reply(w, r, nil, &Error{Status: status, Message: "request body too large or unreadable: " + err.Error()})
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		if at == replayed || at == onLeader || at == leaderOnly {
			if err := s.backend.Ready(ctx); err != nil {
				s.reply(w, r, nil, err)
				return
			}
		}
		if at == leaderOnly {
			switch {
			case IsForwarded(ctx):
				s.reply(w, r, nil, &Error{Status: http.StatusForbidden, Message: "this call is never forwarded: a member makes it itself, to the leader"})
				return
			case !s.fwd.Leading():
				s.reply(w, r, nil, &Error{Status: http.StatusServiceUnavailable, Message: "this node is not the leader; send it to the leader (see redis-appliance cluster status)"})
				return
			}
		}
		if at != onLeader {
			v, err := h(w, r)
			s.reply(w, r, v, err)
			return
		}
		origin, _ := Caller(ctx)
		req := &forward.Request{
			Method: r.Method, URI: r.URL.RequestURI(), Body: body, Header: r.Header,
			Origin: forward.Origin(origin), Forwarded: IsForwarded(ctx),
		}
		var v any
		resp, err := s.fwd.Do(ctx, req, func(ctx context.Context) error {
			r.Body = io.NopCloser(bytes.NewReader(body))
			var err error
			v, err = h(w, r.WithContext(ctx))
			return err
		})
		if resp != nil {
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(resp.Status)
			_, _ = w.Write(resp.Body)
			return
		}
		s.reply(w, r, v, err)
	})
}

// authorize tells the local socket from the cluster listener: over TLS
// every call but a join must come from a current member's certificate, and
// internal endpoints are only served over TLS.
func (s *Server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		internal := strings.HasPrefix(r.URL.Path, "/v1/internal/")
		switch {
		case r.TLS == nil && internal:
			s.reply(w, r, nil, &Error{Status: http.StatusNotFound, Message: "internal endpoints are served to members over the cluster listener only"})
			return
		case r.TLS == nil:
		default:
			name, member := "", false
			var refused error
			if len(r.TLS.PeerCertificates) > 0 {
				var err error
				name, err = s.auth.NodeName(r.TLS.PeerCertificates[0])
				member = err == nil && s.auth.IsMember(name)
				if member && s.auth.Verify != nil {
					refused = s.auth.Verify(r.TLS.PeerCertificates)
					member = refused == nil
				}
			}
			switch {
			case member:
				if s.auth.Seen != nil {
					s.auth.Seen(name, r.TLS.PeerCertificates[0])
				}
				ctx = WithPeerNode(ctx, name)
				if v := r.Header.Get(forward.Header); v != "" {
					ctx = withForwarded(ctx, v, name, s.auth.LegacyForwarding != nil && s.auth.LegacyForwarding())
				}
			case r.URL.Path == "/v1/internal/join" && len(r.TLS.PeerCertificates) == 0:
				// A joining host has no certificate yet: its token is
				// checked, and its attempts are limited.
				if ok, wait := s.joins.allow(r.RemoteAddr); !ok {
					w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
					s.reply(w, r, nil, &Error{Status: http.StatusTooManyRequests, Message: fmt.Sprintf("too many join attempts from this address; wait %s and retry with a valid token (make one with redis-appliance cluster token)", wait.Round(time.Second)+time.Second)})
					return
				}
			case len(r.TLS.PeerCertificates) == 0:
				s.reply(w, r, nil, &Error{Status: http.StatusUnauthorized, Message: "a member certificate is required"})
				return
			case refused != nil:
				s.reply(w, r, nil, &Error{Status: http.StatusForbidden, Message: refused.Error()})
				return
			default:
				s.reply(w, r, nil, &Error{Status: http.StatusForbidden, Message: fmt.Sprintf("node %q is not a member of this cluster (removed?)", name)})
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// ListenUnix creates the socket at path with mode 0660, owned by group (if
// not empty), replacing a stale socket left by a dead agent.
func ListenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("another agent is already serving %s; stop it first", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("socket_group %q: %w", group, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// ListenCluster opens the cluster listener: TCP with TLS, its
// connections capped by DefaultLimits (see ListenClusterWith).
func ListenCluster(addr string, cfg *tls.Config) (net.Listener, error) {
	return ListenClusterWith(addr, cfg, DefaultLimits())
}

// Serve serves until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.http.Shutdown(sctx)
	}
}

func (s *Server) listDatabases(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.ListDatabases(r.Context())
}

func (s *Server) createDatabase(w http.ResponseWriter, r *http.Request) (any, error) {
	var req CreateDatabaseRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	db, err := s.backend.CreateDatabase(r.Context(), req)
	if err == nil {
		w.WriteHeader(http.StatusCreated)
	}
	return db, err
}

func (s *Server) validateDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req CreateDatabaseRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.ValidateDatabase(r.Context(), req)
}

func (s *Server) getDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.GetDatabase(r.Context(), r.PathValue("name"))
}

func (s *Server) deleteDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	return map[string]string{"deleted": r.PathValue("name")}, s.backend.DeleteDatabase(r.Context(), r.PathValue("name"))
}

func (s *Server) databaseURL(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.DatabaseURL(r.Context(), r.PathValue("name"))
}

func (s *Server) restartDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.RestartDatabase(r.Context(), r.PathValue("name"))
}

func (s *Server) failoverDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req FailoverRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.FailoverDatabase(r.Context(), r.PathValue("name"), req)
}

func (s *Server) promoteDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.PromoteDatabase(r.Context(), r.PathValue("name"))
}

func (s *Server) unlinkDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.UnlinkDatabase(r.Context(), r.PathValue("name"))
}

func (s *Server) setDatabaseTLS(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req TLSRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.SetDatabaseTLS(r.Context(), r.PathValue("name"), req)
}

func (s *Server) databaseTLSURL(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.DatabaseTLSURL(r.Context(), r.PathValue("name"))
}

func (s *Server) databaseCA(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.DatabaseCA(r.Context())
}

func (s *Server) saveDatabase(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.SaveDatabase(r.Context(), r.PathValue("name"))
}

func (s *Server) events(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.Events(r.Context())
}

func (s *Server) versions(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.Versions(r.Context())
}

func (s *Server) node(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.Node(r.Context())
}

func (s *Server) clusterStatus(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.ClusterStatus(r.Context())
}

func (s *Server) clusterInit(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.ClusterInit(r.Context())
}

// decodeBody reads a JSON request body strictly: an unknown field is a
// mistake the caller should hear about.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return &Error{Status: http.StatusBadRequest, Message: "invalid request body: " + err.Error()}
	}
	return nil
}

func (s *Server) clusterJoin(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req JoinClusterRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.ClusterJoin(r.Context(), req)
}

func (s *Server) clusterToken(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.ClusterToken(r.Context(), req)
}

// clusterLeave is a removal of this node, run as one on the leader (this
// node's name fixed here, so that a forwarded leave never removes the
// node it reaches).
func (s *Server) clusterLeave(w http.ResponseWriter, r *http.Request) (any, error) {
	rr := r.Clone(r.Context())
	rr.Method = http.MethodDelete
	rr.URL.Path, rr.URL.RawPath, rr.URL.RawQuery = "/v1/nodes/"+url.PathEscape(s.backend.NodeName()), "", ""
	rr.RequestURI = rr.URL.RequestURI()
	rr.Body = http.NoBody
	s.mux.ServeHTTP(w, rr)
	return nil, errAnswered
}

func (s *Server) nodes(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.Nodes(r.Context())
}

func (s *Server) drainNode(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.DrainNode(r.Context(), r.PathValue("name"))
}

func (s *Server) removeNode(_ http.ResponseWriter, r *http.Request) (any, error) {
	err := s.backend.RemoveNode(r.Context(), r.PathValue("name"), r.URL.Query().Get("force") == "true")
	return map[string]string{"removed": r.PathValue("name")}, err
}

func (s *Server) admit(w http.ResponseWriter, r *http.Request) (any, error) {
	var req JoinRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	resp, err := s.backend.Admit(r.Context(), req)
	if err == nil {
		// Key material: never cached by anything in between.
		w.Header().Set("Cache-Control", "no-store")
	}
	return resp, err
}

func (s *Server) joinComplete(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req JoinCompleteRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return map[string]bool{"voter": true}, s.backend.JoinComplete(r.Context(), req)
}

func (s *Server) rotateKey(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.RotateClusterKey(r.Context())
}

func (s *Server) heartbeat(_ http.ResponseWriter, r *http.Request) (any, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	return s.backend.Heartbeat(r.Context(), body)
}

// errAnswered says a handler has written its answer itself.
var errAnswered = errors.New("answered")

// reply writes v as JSON, or err as an Error body with a matching status.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if errors.Is(err, errAnswered) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		e := toError(err)
		if e.Status >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			s.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", e.Message)
		}
		w.WriteHeader(e.Status)
		_ = json.NewEncoder(w).Encode(e)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// toError maps an error onto an HTTP status.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var fit *sizing.FitError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &fit):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, raftstate.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, raftstate.ErrExists), errors.Is(err, raftstate.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, raftstate.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, raftstate.ErrTokenRefused), errors.Is(err, forward.ErrNotMember):
		status = http.StatusForbidden
	case errors.Is(err, raftstate.ErrAlreadyBootstrapped):
		status = http.StatusConflict
	case errors.Is(err, raftstate.ErrNotLeader), errors.Is(err, raftstate.ErrLeadershipLost),
		errors.Is(err, forward.ErrLeaderMoved), errors.Is(err, forward.ErrNoLeader), errors.Is(err, forward.ErrPartlyDone):
		status = http.StatusServiceUnavailable
	case errors.Is(err, raftstate.ErrFeatureLevel):
		status = http.StatusConflict
	}
	return &Error{Status: status, Message: err.Error()}
}
