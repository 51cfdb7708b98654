// Package source is the terminal UI's only way to the agent. Each call to
// the API client is wrapped in a tea.Cmd, which bubbletea runs on its own
// goroutine, so Update never blocks on the network; the answer comes back
// as a message.
package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// API is the part of *api.Client the UI uses.
type API interface {
	ClusterStatus(ctx context.Context) (api.ClusterStatus, error)
	Nodes(ctx context.Context) ([]api.Node, error)
	ListDatabases(ctx context.Context) ([]api.Database, error)
	DatabaseURL(ctx context.Context, name string) (api.URL, error)
	Versions(ctx context.Context) ([]api.Version, error)
	CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error)
	ValidateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.CreatePlan, error)
	RestartDatabase(ctx context.Context, name string) (api.Database, error)
	DeleteDatabase(ctx context.Context, name string) error
	DrainNode(ctx context.Context, name string) (api.DrainResponse, error)
	FailoverDatabase(ctx context.Context, name string, req api.FailoverRequest) (api.FailoverResult, error)
	PromoteDatabase(ctx context.Context, name string) (api.Database, error)
	UnlinkDatabase(ctx context.Context, name string) (api.Database, error)
	CreateUser(ctx context.Context, db string, req api.CreateUserRequest) (api.Credentials, error)
	RotateUser(ctx context.Context, db, user string, req api.RotateRequest) (api.Credentials, error)
	Events(ctx context.Context) ([]api.Event, error)
}

var _ API = (*api.Client)(nil)

// ActionTimeout bounds every action. The agent answers a create, restart,
// promote or unlink once redis-server runs in its new role, and a failover
// once the roles are applied, which takes seconds; the API
// client gives up after two minutes, and this is a little longer so the
// client's own, clearer error wins.
const ActionTimeout = 2*time.Minute + 10*time.Second

// Source makes the commands that call the API.
type Source struct {
	ctx     context.Context
	api     API
	timeout time.Duration
	now     func() time.Time
}

// New returns a Source calling a. ctx ends every call in flight when the
// UI quits; timeout bounds each refresh and read.
func New(ctx context.Context, a API, timeout time.Duration) *Source {
	return &Source{ctx: ctx, api: a, timeout: timeout, now: time.Now}
}

// SnapshotMsg is the answer to Refresh: what the four calls returned. A
// call that failed leaves its value zero and sets its error.
type SnapshotMsg struct {
	// Started and At are when the refresh began and ended.
	Started, At time.Time

	Status    api.ClusterStatus
	StatusErr error

	Nodes    []api.Node
	NodesErr error

	Databases    []api.Database
	DatabasesErr error

	// Events are the recorded events, oldest first (the cluster keeps
	// the last 1000). EventsErr is not part of Err: the events are
	// history, shown in their own view with their own error and age, and
	// an agent that cannot list them must not make the cluster's state
	// look stale.
	Events    []api.Event
	EventsErr error
}

// Err returns the errors of the cluster's state (status, nodes,
// databases), each message once (an agent that is down fails all three
// calls alike), or nil when all three calls answered.
func (m SnapshotMsg) Err() error {
	var errs []error
	seen := map[string]bool{}
	for _, err := range []error{m.StatusErr, m.NodesErr, m.DatabasesErr} {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Refresh fetches the cluster status, the nodes, the databases and the
// events in parallel, each bounded by the Source's timeout.
func (s *Source) Refresh() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		defer cancel()
		m := SnapshotMsg{Started: s.now()}
		var wg sync.WaitGroup
		wg.Go(func() {
			m.Status, m.StatusErr = s.api.ClusterStatus(ctx)
			m.StatusErr = s.explain(m.StatusErr)
		})
		wg.Go(func() {
			m.Nodes, m.NodesErr = s.api.Nodes(ctx)
			m.NodesErr = s.explain(m.NodesErr)
		})
		wg.Go(func() {
			m.Databases, m.DatabasesErr = s.api.ListDatabases(ctx)
			m.DatabasesErr = s.explain(m.DatabasesErr)
		})
		wg.Go(func() {
			m.Events, m.EventsErr = s.api.Events(ctx)
			m.EventsErr = s.explain(m.EventsErr)
		})
		wg.Wait()
		m.At = s.now()
		return m
	}
}

// explain says what a timeout means; other errors already name what failed.
func (s *Source) explain(err error) error {
	if err != nil && errors.Is(err, context.DeadlineExceeded) && s.ctx.Err() == nil {
		return fmt.Errorf("the agent did not answer within %s", s.timeout)
	}
	return err
}

// URLMsg is the answer to URL.
type URLMsg struct {
	Name string
	URL  string
	Err  error
}

// URL fetches a database's connection URL, password included.
func (s *Source) URL(name string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		defer cancel()
		u, err := s.api.DatabaseURL(ctx, name)
		return URLMsg{Name: name, URL: u.URL, Err: s.explain(err)}
	}
}

// VersionsMsg is the answer to Versions.
type VersionsMsg struct {
	Versions []api.Version
	Err      error
}

// Versions fetches the version catalogue.
func (s *Source) Versions() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		defer cancel()
		v, err := s.api.Versions(ctx)
		return VersionsMsg{Versions: v, Err: s.explain(err)}
	}
}

// ValidationMsg is the answer to Validate: the plan, or why not.
type ValidationMsg struct {
	// Request is what was asked, so that an answer to a request the
	// form no longer describes is not taken for the current one.
	Request api.CreateDatabaseRequest
	Plan    api.CreatePlan
	Err     error
}

// Validate asks the agent whether it would create req now, and where,
// without creating anything. It is bounded by the Source's timeout, like a
// read: it changes nothing, and a form waiting on it must not wait long.
func (s *Source) Validate(req api.CreateDatabaseRequest) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		defer cancel()
		p, err := s.api.ValidateDatabase(ctx, req)
		return ValidationMsg{Request: req, Plan: p, Err: s.explain(err)}
	}
}

// Refused says err is the agent's verdict on a request: an *api.Error with
// 400, 404, 409 or 422, the statuses with which the agent refuses a create
// (or its validation) for what it asks. Anything else (no answer, 503
// without a leader, 405 from a leader too old to validate) says nothing
// about the request: a create may still succeed.
func Refused(err error) bool {
	var e *api.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// Action is a change the UI asks the agent for.
type Action int

// The actions. Their order means nothing.
const (
	Create Action = iota + 1
	Restart
	Delete
	Drain
	Failover
	Promote
	Unlink
	CreateUser
	RotateUser
)

// String returns the verb ("restart").
func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Restart:
		return "restart"
	case Delete:
		return "delete"
	case Drain:
		return "drain"
	case Failover:
		return "failover"
	case Promote:
		return "promote"
	case Unlink:
		return "unlink"
	case CreateUser:
		return "user create"
	case RotateUser:
		return "user rotate"
	}
	return fmt.Sprintf("action %d", int(a))
}

// Ongoing returns the verb in the -ing form ("restarting").
func (a Action) Ongoing() string {
	switch a {
	case Create:
		return "creating"
	case Restart:
		return "restarting"
	case Delete:
		return "deleting"
	case Drain:
		return "draining"
	case Failover:
		return "failing over"
	case Promote:
		return "promoting"
	case Unlink:
		return "unlinking"
	case CreateUser:
		return "creating user"
	case RotateUser:
		return "rotating the password of user"
	}
	return a.String()
}

// ActionMsg is the answer to an action.
type ActionMsg struct {
	Action Action
	// Target is the database or node acted on.
	Target string
	// User is the application user of Target a user create or rotate
	// is about.
	User string
	Err  error
	// Took is how long the agent took to answer.
	Took time.Duration
	// Database is the database after a create, restart, promote or
	// unlink.
	Database api.Database
	// Drain is what a drain left on the node.
	Drain api.DrainResponse
	// Failover is the switchover's outcome: the nodes, the write pause.
	Failover api.FailoverResult
	// Credentials are a user's new password and URL after a user create
	// or rotate: to be shown once, and never logged.
	Credentials api.Credentials
}

// Create asks for a new database; the agent answers once it runs.
func (s *Source) Create(req api.CreateDatabaseRequest) tea.Cmd {
	return s.act(Create, req.Name, func(ctx context.Context, m *ActionMsg) (err error) {
		m.Database, err = s.api.CreateDatabase(ctx, req)
		return err
	})
}

// Restart restarts every instance of a database and waits for them.
func (s *Source) Restart(name string) tea.Cmd {
	return s.act(Restart, name, func(ctx context.Context, m *ActionMsg) (err error) {
		m.Database, err = s.api.RestartDatabase(ctx, name)
		return err
	})
}

// Delete deletes a database, its units and its data.
func (s *Source) Delete(name string) tea.Cmd {
	return s.act(Delete, name, func(ctx context.Context, _ *ActionMsg) error {
		return s.api.DeleteDatabase(ctx, name)
	})
}

// Drain stops new placements on a node.
func (s *Source) Drain(node string) tea.Cmd {
	return s.act(Drain, node, func(ctx context.Context, m *ActionMsg) (err error) {
		m.Drain, err = s.api.DrainNode(ctx, node)
		return err
	})
}

// Failover switches the database's primary over to its replica on node
// to, or to the most up-to-date replica when to is empty.
func (s *Source) Failover(name, to string) tea.Cmd {
	return s.act(Failover, name, func(ctx context.Context, m *ActionMsg) (err error) {
		m.Failover, err = s.api.FailoverDatabase(ctx, name, api.FailoverRequest{To: to})
		m.Database = m.Failover.Database
		return err
	})
}

// Promote makes a linked or unlinked replica a writable primary.
func (s *Source) Promote(name string) tea.Cmd {
	return s.act(Promote, name, func(ctx context.Context, m *ActionMsg) (err error) {
		m.Database, err = s.api.PromoteDatabase(ctx, name)
		return err
	})
}

// Unlink stops a linked replica following its source; it stays read-only.
func (s *Source) Unlink(name string) tea.Cmd {
	return s.act(Unlink, name, func(ctx context.Context, m *ActionMsg) (err error) {
		m.Database, err = s.api.UnlinkDatabase(ctx, name)
		return err
	})
}

// CreateUser adds an application user to a database; the answer holds
// its password, which the agent shows this once.
func (s *Source) CreateUser(db string, req api.CreateUserRequest) tea.Cmd {
	return s.act(CreateUser, db, func(ctx context.Context, m *ActionMsg) (err error) {
		m.User = req.Name
		m.Credentials, err = s.api.CreateUser(ctx, db, req)
		return err
	})
}

// RotateUser gives an application user a new password, shown this once;
// the old one works for the agent's default grace period (a day).
func (s *Source) RotateUser(db, user string) tea.Cmd {
	return s.act(RotateUser, db, func(ctx context.Context, m *ActionMsg) (err error) {
		m.User = user
		m.Credentials, err = s.api.RotateUser(ctx, db, user, api.RotateRequest{})
		return err
	})
}

func (s *Source) act(a Action, target string, call func(context.Context, *ActionMsg) error) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(s.ctx, ActionTimeout)
		defer cancel()
		m := ActionMsg{Action: a, Target: target}
		start := s.now()
		err := call(ctx, &m)
		m.Took = s.now().Sub(start)
		if err != nil && errors.Is(err, context.DeadlineExceeded) && s.ctx.Err() == nil {
			err = fmt.Errorf("no answer from the agent within %s; the %s may still complete, watch the list", ActionTimeout, a)
		}
		m.Err = err
		return m
	}
}
