package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
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
	Versions(ctx context.Context) ([]Version, error)
	Node(ctx context.Context) (Node, error)
	ClusterInit(ctx context.Context) (ClusterStatus, error)
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
}

// Server serves the API over a unix socket.
type Server struct {
	backend Backend
	log     *slog.Logger
	http    *http.Server
}

// NewServer returns a server for backend.
func NewServer(b Backend, log *slog.Logger) *Server {
	s := &Server{backend: b, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/databases", s.listDatabases)
	mux.HandleFunc("POST /v1/databases", s.createDatabase)
	mux.HandleFunc("GET /v1/databases/{name}", s.getDatabase)
	mux.HandleFunc("DELETE /v1/databases/{name}", s.deleteDatabase)
	mux.HandleFunc("GET /v1/databases/{name}/url", s.databaseURL)
	mux.HandleFunc("POST /v1/databases/{name}/restart", s.restartDatabase)
	mux.HandleFunc("GET /v1/versions", s.versions)
	mux.HandleFunc("GET /v1/node", s.node)
	mux.HandleFunc("GET /v1/cluster", s.clusterStatus)
	mux.HandleFunc("POST /v1/cluster/init", s.clusterInit)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
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
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.reply(w, r, nil, &Error{Status: http.StatusBadRequest, Message: "invalid request body: " + err.Error()})
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
	case errors.Is(err, raftstate.ErrNotLeader):
		status = http.StatusServiceUnavailable
	}
	return &Error{Status: status, Message: err.Error()}
}
