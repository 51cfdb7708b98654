package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Backend is what the server exposes; the agent's controller implements it.
// Errors wrapping raftstate's domain errors, *Error or *sizing.FitError are
// translated to HTTP statuses; anything else is a 500.
type Backend interface {
	CreateDatabase(ctx context.Context, req CreateDatabaseRequest) (Database, error)
	ListDatabases(ctx context.Context) ([]Database, error)
	GetDatabase(ctx context.Context, name string) (Database, error)
	DatabaseURL(ctx context.Context, name string) (URL, error)
	RestartDatabase(ctx context.Context, name string) (Database, error)
	DeleteDatabase(ctx context.Context, name string) error
	FailoverDatabase(ctx context.Context, name string, req FailoverRequest) (FailoverResult, error)
	PromoteDatabase(ctx context.Context, name string) (Database, error)
	UnlinkDatabase(ctx context.Context, name string) (Database, error)
	Events(ctx context.Context) ([]Event, error)
	Versions(ctx context.Context) ([]Version, error)
	Node(ctx context.Context) (Node, error)
	ClusterInit(ctx context.Context) (ClusterStatus, error)
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
	ClusterJoin(ctx context.Context, req JoinClusterRequest) (ClusterStatus, error)
	ClusterToken(ctx context.Context, req TokenRequest) (TokenResponse, error)
	ClusterLeave(ctx context.Context) error
	Nodes(ctx context.Context) ([]Node, error)
	DrainNode(ctx context.Context, name string) (DrainResponse, error)
	RemoveNode(ctx context.Context, name string, force bool) error

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
}

// Server serves the API over a unix socket (local administration) and over
// the cluster listener (mutual TLS between members; joining hosts).
type Server struct {
	backend Backend
	auth    Authorizer
	log     *slog.Logger
	http    *http.Server
}

// NewServer returns a server for backend.
func NewServer(b Backend, auth Authorizer, log *slog.Logger) *Server {
	s := &Server{backend: b, auth: auth, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/databases", s.listDatabases)
	mux.HandleFunc("POST /v1/databases", s.createDatabase)
	mux.HandleFunc("GET /v1/databases/{name}", s.getDatabase)
	mux.HandleFunc("DELETE /v1/databases/{name}", s.deleteDatabase)
	mux.HandleFunc("GET /v1/databases/{name}/url", s.databaseURL)
	mux.HandleFunc("POST /v1/databases/{name}/restart", s.restartDatabase)
	mux.HandleFunc("POST /v1/databases/{name}/failover", s.failoverDatabase)
	mux.HandleFunc("POST /v1/databases/{name}/promote", s.promoteDatabase)
	mux.HandleFunc("POST /v1/databases/{name}/unlink", s.unlinkDatabase)
	mux.HandleFunc("GET /v1/versions", s.versions)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/node", s.node)
	mux.HandleFunc("GET /v1/cluster", s.clusterStatus)
	mux.HandleFunc("POST /v1/cluster/init", s.clusterInit)
	mux.HandleFunc("POST /v1/cluster/join", s.clusterJoin)
	mux.HandleFunc("POST /v1/cluster/token", s.clusterToken)
	mux.HandleFunc("POST /v1/cluster/leave", s.clusterLeave)
	mux.HandleFunc("GET /v1/nodes", s.nodes)
	mux.HandleFunc("POST /v1/nodes/{name}/drain", s.drainNode)
	mux.HandleFunc("DELETE /v1/nodes/{name}", s.removeNode)
	mux.HandleFunc("POST /v1/internal/join", s.admit)
	mux.HandleFunc("POST /v1/internal/join/complete", s.joinComplete)
	mux.HandleFunc("POST /v1/internal/heartbeat", s.heartbeat)
	s.http = &http.Server{Handler: s.authorize(mux), ReadHeaderTimeout: 10 * time.Second}
	return s
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
		case r.URL.Path == "/v1/internal/join":
			// A joining host has no certificate yet: its token is checked.
		default:
			if len(r.TLS.PeerCertificates) == 0 {
				s.reply(w, r, nil, &Error{Status: http.StatusUnauthorized, Message: "a member certificate is required"})
				return
			}
			name, err := s.auth.NodeName(r.TLS.PeerCertificates[0])
			if err != nil || !s.auth.IsMember(name) {
				s.reply(w, r, nil, &Error{Status: http.StatusForbidden, Message: fmt.Sprintf("node %q is not a member of this cluster (removed?)", name)})
				return
			}
			ctx = WithPeerNode(ctx, name)
			if r.Header.Get(ForwardedHeader) != "" {
				ctx = context.WithValue(ctx, forwardedKey, true)
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

// ListenCluster opens the cluster listener: TCP with TLS.
func ListenCluster(addr string, cfg *tls.Config) (net.Listener, error) {
	l, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("listen for the cluster API on %s (is the port free?): %w", addr, err)
	}
	return l, nil
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

func (s *Server) listDatabases(w http.ResponseWriter, r *http.Request) {
	dbs, err := s.backend.ListDatabases(r.Context())
	s.reply(w, r, dbs, err)
}

func (s *Server) createDatabase(w http.ResponseWriter, r *http.Request) {
	var req CreateDatabaseRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	db, err := s.backend.CreateDatabase(r.Context(), req)
	if err == nil {
		w.WriteHeader(http.StatusCreated)
	}
	s.reply(w, r, db, err)
}

func (s *Server) getDatabase(w http.ResponseWriter, r *http.Request) {
	db, err := s.backend.GetDatabase(r.Context(), r.PathValue("name"))
	s.reply(w, r, db, err)
}

func (s *Server) deleteDatabase(w http.ResponseWriter, r *http.Request) {
	err := s.backend.DeleteDatabase(r.Context(), r.PathValue("name"))
	s.reply(w, r, map[string]string{"deleted": r.PathValue("name")}, err)
}

func (s *Server) databaseURL(w http.ResponseWriter, r *http.Request) {
	u, err := s.backend.DatabaseURL(r.Context(), r.PathValue("name"))
	s.reply(w, r, u, err)
}

func (s *Server) restartDatabase(w http.ResponseWriter, r *http.Request) {
	db, err := s.backend.RestartDatabase(r.Context(), r.PathValue("name"))
	s.reply(w, r, db, err)
}

func (s *Server) failoverDatabase(w http.ResponseWriter, r *http.Request) {
	var req FailoverRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	res, err := s.backend.FailoverDatabase(r.Context(), r.PathValue("name"), req)
	s.reply(w, r, res, err)
}

func (s *Server) promoteDatabase(w http.ResponseWriter, r *http.Request) {
	db, err := s.backend.PromoteDatabase(r.Context(), r.PathValue("name"))
	s.reply(w, r, db, err)
}

func (s *Server) unlinkDatabase(w http.ResponseWriter, r *http.Request) {
	db, err := s.backend.UnlinkDatabase(r.Context(), r.PathValue("name"))
	s.reply(w, r, db, err)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	evs, err := s.backend.Events(r.Context())
	s.reply(w, r, evs, err)
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	v, err := s.backend.Versions(r.Context())
	s.reply(w, r, v, err)
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	n, err := s.backend.Node(r.Context())
	s.reply(w, r, n, err)
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.ClusterStatus(r.Context())
	s.reply(w, r, st, err)
}

func (s *Server) clusterInit(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.ClusterInit(r.Context())
	s.reply(w, r, st, err)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return &Error{Status: http.StatusBadRequest, Message: "invalid request body: " + err.Error()}
	}
	return nil
}

func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request) {
	var req JoinClusterRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	st, err := s.backend.ClusterJoin(r.Context(), req)
	s.reply(w, r, st, err)
}

func (s *Server) clusterToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	t, err := s.backend.ClusterToken(r.Context(), req)
	s.reply(w, r, t, err)
}

func (s *Server) clusterLeave(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, map[string]bool{"left": true}, s.backend.ClusterLeave(r.Context()))
}

func (s *Server) nodes(w http.ResponseWriter, r *http.Request) {
	n, err := s.backend.Nodes(r.Context())
	s.reply(w, r, n, err)
}

func (s *Server) drainNode(w http.ResponseWriter, r *http.Request) {
	d, err := s.backend.DrainNode(r.Context(), r.PathValue("name"))
	s.reply(w, r, d, err)
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	err := s.backend.RemoveNode(r.Context(), r.PathValue("name"), r.URL.Query().Get("force") == "true")
	s.reply(w, r, map[string]string{"removed": r.PathValue("name")}, err)
}

func (s *Server) admit(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	resp, err := s.backend.Admit(r.Context(), req)
	if err == nil {
		// Key material: never cached by anything in between.
		w.Header().Set("Cache-Control", "no-store")
	}
	s.reply(w, r, resp, err)
}

func (s *Server) joinComplete(w http.ResponseWriter, r *http.Request) {
	var req JoinCompleteRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.reply(w, r, nil, err)
		return
	}
	s.reply(w, r, map[string]bool{"voter": true}, s.backend.JoinComplete(r.Context(), req))
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	var ack HeartbeatAck
	if err == nil {
		ack, err = s.backend.Heartbeat(r.Context(), body)
	}
	s.reply(w, r, ack, err)
}

// reply writes v as JSON, or err as an Error body with a matching status.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
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
	case errors.Is(err, raftstate.ErrTokenRefused):
		status = http.StatusForbidden
	case errors.Is(err, raftstate.ErrAlreadyBootstrapped):
		status = http.StatusConflict
	case errors.Is(err, raftstate.ErrNotLeader):
		status = http.StatusServiceUnavailable
	}
	return &Error{Status: status, Message: err.Error()}
}
