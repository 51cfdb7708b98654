package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// Client is the typed API client used by the CLI, the TUI and agents
// talking to each other.
type Client struct {
	socket string
	base   string
	http   *http.Client
}

// NewRemoteClient returns a client for another node's cluster API at
// host:port over TLS (mutual TLS between members; a pinned CA when joining).
func NewRemoteClient(addr string, cfg *tls.Config) *Client {
	return &Client{socket: addr, base: "https://" + addr, http: &http.Client{Transport: RemoteTransport(cfg), Timeout: 2 * time.Minute}}
}

// RemoteTransport carries requests to other nodes' cluster APIs over TLS.
// Short dial and keep-alive bounds: a member that died must not hold a
// caller for a whole request timeout.
func RemoteTransport(cfg *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 5 * time.Second}
	return &http.Transport{
		DialContext: d.DialContext, TLSClientConfig: cfg, TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout: 30 * time.Second,
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// NewClient returns a client for the agent listening on the unix socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	// Creating or restarting a database waits for redis-server to be ready.
	return &Client{socket: socket, base: "http://agent", http: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// CreateDatabase asks for a new database.
func (c *Client) CreateDatabase(ctx context.Context, req CreateDatabaseRequest) (Database, error) {
	var db Database
	return db, c.do(ctx, http.MethodPost, "/v1/databases", req, &db)
}

// ValidateDatabase asks whether a create would be accepted, and where it
// would go, without creating anything.
func (c *Client) ValidateDatabase(ctx context.Context, req CreateDatabaseRequest) (CreatePlan, error) {
	var p CreatePlan
	return p, c.do(ctx, http.MethodPost, "/v1/databases/validate", req, &p)
}

// ListDatabases lists every database.
func (c *Client) ListDatabases(ctx context.Context) ([]Database, error) {
	var dbs []Database
	return dbs, c.do(ctx, http.MethodGet, "/v1/databases", nil, &dbs)
}

// GetDatabase returns one database.
func (c *Client) GetDatabase(ctx context.Context, name string) (Database, error) {
	var db Database
	return db, c.do(ctx, http.MethodGet, "/v1/databases/"+url.PathEscape(name), nil, &db)
}

// DatabaseURL returns the connection URL, with the password.
func (c *Client) DatabaseURL(ctx context.Context, name string) (URL, error) {
	var u URL
	return u, c.do(ctx, http.MethodGet, "/v1/databases/"+url.PathEscape(name)+"/url", nil, &u)
}

// RestartDatabase restarts every instance and waits for them.
func (c *Client) RestartDatabase(ctx context.Context, name string) (Database, error) {
	var db Database
	return db, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(name)+"/restart", nil, &db)
}

// FailoverDatabase makes a replica the primary in a planned switchover.
func (c *Client) FailoverDatabase(ctx context.Context, name string, req FailoverRequest) (FailoverResult, error) {
	var res FailoverResult
	return res, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(name)+"/failover", req, &res)
}

// PromoteDatabase makes a linked or unlinked replica a writable primary.
func (c *Client) PromoteDatabase(ctx context.Context, name string) (Database, error) {
	var db Database
	return db, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(name)+"/promote", nil, &db)
}

// UnlinkDatabase stops a linked replica following its source.
func (c *Client) UnlinkDatabase(ctx context.Context, name string) (Database, error) {
	var db Database
	return db, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(name)+"/unlink", nil, &db)
}

// SetDatabaseTLS sets a database's TLS mode (enable, only, off).
func (c *Client) SetDatabaseTLS(ctx context.Context, name string, req TLSRequest) (Database, error) {
	var out Database
	return out, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(name)+"/tls", req, &out)
}

// DatabaseTLSURL is the rediss:// URL of the primary.
func (c *Client) DatabaseTLSURL(ctx context.Context, name string) (URL, error) {
	var out URL
	return out, c.do(ctx, http.MethodGet, "/v1/databases/"+url.PathEscape(name)+"/url/tls", nil, &out)
}

// DatabaseCA is the CA applications verify instances' TLS ports with.
func (c *Client) DatabaseCA(ctx context.Context) (CA, error) {
	var out CA
	return out, c.do(ctx, http.MethodGet, "/v1/ca", nil, &out)
}

// SaveDatabase writes the primary's data to its RDB file now.
func (c *Client) SaveDatabase(ctx context.Context, name string) (SaveResult, error) {
	var out SaveResult
	return out, c.do(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(name)+"/save", nil, &out)
}

// DeleteDatabase deletes a database, its units and its data.
func (c *Client) DeleteDatabase(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/databases/"+url.PathEscape(name), nil, nil)
}

// Events lists the recorded events, oldest first.
func (c *Client) Events(ctx context.Context) ([]Event, error) {
	var evs []Event
	return evs, c.do(ctx, http.MethodGet, "/v1/events", nil, &evs)
}

// Versions lists the version catalogue.
func (c *Client) Versions(ctx context.Context) ([]Version, error) {
	var v []Version
	return v, c.do(ctx, http.MethodGet, "/v1/versions", nil, &v)
}

// Node returns this node's hardware and allocations.
func (c *Client) Node(ctx context.Context) (Node, error) {
	var n Node
	return n, c.do(ctx, http.MethodGet, "/v1/node", nil, &n)
}

// ClusterStatus returns this node's view of the cluster.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var s ClusterStatus
	return s, c.do(ctx, http.MethodGet, "/v1/cluster", nil, &s)
}

// ClusterInit makes this node a new single-node cluster.
func (c *Client) ClusterInit(ctx context.Context) (ClusterStatus, error) {
	var s ClusterStatus
	return s, c.do(ctx, http.MethodPost, "/v1/cluster/init", nil, &s)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read agent response: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("agent answered %s", resp.Status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode agent response: %w", err)
	}
	return nil
}

// explain turns a dial failure into advice.
func (c *Client) explain(err error) error {
	if c.base != "http://agent" {
		return fmt.Errorf("talk to node at %s: %w", c.socket, err)
	}
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no agent is listening on %s: start it (make run, or systemctl start redis-appliance) or pass --socket", c.socket)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("permission denied on %s: run as root or as a member of the agent's socket_group", c.socket)
	}
	return fmt.Errorf("talk to agent on %s: %w", c.socket, err)
}

// ClusterJoin tells the local agent to join the cluster at addr with token.
func (c *Client) ClusterJoin(ctx context.Context, req JoinClusterRequest) (ClusterStatus, error) {
	var s ClusterStatus
	return s, c.do(ctx, http.MethodPost, "/v1/cluster/join", req, &s)
}

// ClusterToken creates a join token.
func (c *Client) ClusterToken(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	var t TokenResponse
	return t, c.do(ctx, http.MethodPost, "/v1/cluster/token", req, &t)
}

// ClusterLeave removes this node from its cluster.
func (c *Client) ClusterLeave(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/cluster/leave", nil, nil)
}

// Nodes lists every node of the cluster.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var n []Node
	return n, c.do(ctx, http.MethodGet, "/v1/nodes", nil, &n)
}

// DrainNode stops new placements on a node.
func (c *Client) DrainNode(ctx context.Context, name string) (DrainResponse, error) {
	var d DrainResponse
	return d, c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(name)+"/drain", nil, &d)
}

// RemoveNode removes a node from the cluster.
func (c *Client) RemoveNode(ctx context.Context, name string, force bool) error {
	return c.do(ctx, http.MethodDelete, "/v1/nodes/"+url.PathEscape(name)+"?force="+strconv.FormatBool(force), nil, nil)
}

// Join asks a member, over TLS pinned to the token's CA, to admit this host.
func (c *Client) Join(ctx context.Context, req JoinRequest) (JoinResponse, error) {
	var r JoinResponse
	return r, c.do(ctx, http.MethodPost, "/v1/internal/join", req, &r)
}

// JoinComplete asks the leader, over mutual TLS, to add this node as a
// voter once its Raft transport listens.
func (c *Client) JoinComplete(ctx context.Context, req JoinCompleteRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/internal/join/complete", req, nil)
}

// Heartbeat sends this node's observations to the leader.
func (c *Client) Heartbeat(ctx context.Context, hb any) (HeartbeatAck, error) {
	var ack HeartbeatAck
	return ack, c.do(ctx, http.MethodPost, "/v1/internal/heartbeat", hb, &ack)
}
