package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DatabaseUser is an application user of a database, as listed: never its
// password.
type DatabaseUser struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Keys     []string `json:"keys"`
	Channels []string `json:"channels"`
	// Rules are the ACL rules the role gives, as applied to the
	// instances (Denied included).
	Rules     []string  `json:"rules"`
	CreatedAt time.Time `json:"created_at"`
	RotatedAt time.Time `json:"rotated_at,omitempty"`
	// PreviousValidUntil is when the password the last rotation replaced
	// stops working; absent when it does not work any more.
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
}

// CreateUserRequest asks for a new application user. Empty Keys or
// Channels mean every key or channel.
type CreateUserRequest struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Keys     []string `json:"keys,omitempty"`
	Channels []string `json:"channels,omitempty"`
}

// RotateRequest asks for a new password. Grace is how long the old one
// keeps working (a Go duration such as "24h"); empty is the default of
// the command.
type RotateRequest struct {
	Grace string `json:"grace,omitempty"`
}

// Credentials is a password shown once: on creation and on rotation.
type Credentials struct {
	Database string `json:"database"`
	User     string `json:"user"`
	Password string `json:"password"`
	// URL is the redis:// URL of the primary with the user and password.
	URL string `json:"url"`
	// PreviousValidUntil is when the replaced password stops working
	// (rotations only; absent when it stopped at once).
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	// Warning says the password is recorded but the primary did not take
	// it within the wait: it will, once its node applies it.
	Warning string `json:"warning,omitempty"`
}

// UserBackend is the part of Backend about a database's users and
// passwords.
type UserBackend interface {
	ListUsers(ctx context.Context, db string) ([]DatabaseUser, error)
	CreateUser(ctx context.Context, db string, req CreateUserRequest) (Credentials, error)
	RotateUser(ctx context.Context, db, user string, req RotateRequest) (Credentials, error)
	DeleteUser(ctx context.Context, db, user string) error
	UserURL(ctx context.Context, db, user string) (URL, error)
	RotatePassword(ctx context.Context, db string, req RotateRequest) (Credentials, error)
}

func (s *Server) listUsers(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.ListUsers(r.Context(), r.PathValue("name"))
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) (any, error) {
	var req CreateUserRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	c, err := s.backend.CreateUser(r.Context(), r.PathValue("name"), req)
	if err == nil {
		w.WriteHeader(http.StatusCreated)
	}
	return c, err
}

func (s *Server) rotateUser(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req RotateRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.RotateUser(r.Context(), r.PathValue("name"), r.PathValue("user"), req)
}

func (s *Server) deleteUser(_ http.ResponseWriter, r *http.Request) (any, error) {
	return map[string]string{"deleted": r.PathValue("user")}, s.backend.DeleteUser(r.Context(), r.PathValue("name"), r.PathValue("user"))
}

func (s *Server) userURL(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.backend.UserURL(r.Context(), r.PathValue("name"), r.PathValue("user"))
}

func (s *Server) rotatePassword(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req RotateRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	return s.backend.RotatePassword(r.Context(), r.PathValue("name"), req)
}

// ListUsers lists a database's application users.
func (c *Client) ListUsers(ctx context.Context, db string) ([]DatabaseUser, error) {
	var out []DatabaseUser
	return out, c.do(ctx, http.MethodGet, "/v1/databases/"+url.PathEscape(db)+"/users", nil, &out)
}

// CreateUser adds an application user and returns its password, once.
func (c *Client) CreateUser(ctx context.Context, db string, req CreateUserRequest) (Credentials, error) {
	var out Credentials
	return out, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(db)+"/users", req, &out)
}

// RotateUser gives an application user a new password, returned once.
func (c *Client) RotateUser(ctx context.Context, db, user string, req RotateRequest) (Credentials, error) {
	var out Credentials
	return out, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(db)+"/users/"+url.PathEscape(user)+"/rotate", req, &out)
}

// DeleteUser removes an application user.
func (c *Client) DeleteUser(ctx context.Context, db, user string) error {
	return c.do(ctx, http.MethodDelete, "/v1/databases/"+url.PathEscape(db)+"/users/"+url.PathEscape(user), nil, nil)
}

// UserURL is the URL of the primary for an application user, without
// its password (shown once, when it was made).
func (c *Client) UserURL(ctx context.Context, db, user string) (URL, error) {
	var out URL
	return out, c.do(ctx, http.MethodGet, "/v1/databases/"+url.PathEscape(db)+"/users/"+url.PathEscape(user)+"/url", nil, &out)
}

// RotatePassword gives a database new secrets: the default user's
// password, the agent's and the replicas'.
func (c *Client) RotatePassword(ctx context.Context, db string, req RotateRequest) (Credentials, error) {
	var out Credentials
	return out, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(db)+"/rotate-password", req, &out)
}
