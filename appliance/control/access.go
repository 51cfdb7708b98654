package control

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Grace periods of rotations: how long a replaced password keeps working.
const (
	// UserGrace is db user rotate's default: a day, for the applications
	// using the user to be redeployed with the new password.
	UserGrace = 24 * time.Hour
	// PasswordGrace is db rotate-password's default: none, since it is
	// what an operator runs when a host or a password may be in the
	// wrong hands.
	PasswordGrace = 0
	// MaxGrace bounds any grace period.
	MaxGrace = 30 * 24 * time.Hour
)

// accessLevel is the feature level at which databases have access
// control: its commands and Database.Access.
const accessLevel = 3

// accessReady says whether every voter applies access control, so that a
// database may be given users (an older agent would drop them).
func (c *Controller) accessReady() bool {
	level, _, err := c.store().ClusterLevel()
	return err == nil && level >= accessLevel
}

// newAccess returns fresh agent and replication secrets, sealed.
func (c *Controller) newAccess() (agent, repl raftstate.Sealed, err error) {
	seal := func() (raftstate.Sealed, error) {
		pw, err := secrets.NewPassword()
		if err != nil {
			return nil, err
		}
		return c.keys().Seal([]byte(pw))
	}
	if agent, err = seal(); err != nil {
		return nil, nil, err
	}
	repl, err = seal()
	return agent, repl, err
}

// accessRetry is how often the leader looks again for databases without
// access control when nothing changed (a failed write, say).
const accessRetry = 30 * time.Second

// KeepAccess runs on the leader: once every voter applies access control,
// it gives each database from before it its agent and replication
// secrets, after which the reconcilers take every management command
// away from the default user; once every voter is at level 4 it makes the
// cluster's database CA.
func (c *Controller) KeepAccess(ctx context.Context) {
	changes := c.store().Subscribe()
	t := time.NewTicker(accessRetry)
	defer t.Stop()
	for {
		if err := c.ensureDatabaseCA(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("cannot make the database CA", "err", err)
		}
		if c.accessReady() {
			for _, name := range c.store().View().DatabaseNames() {
				if err := c.giveAccess(ctx, name); err != nil && ctx.Err() == nil {
					c.log.Warn("cannot give a database access control", "database", name, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-t.C:
		}
	}
}

func (c *Controller) giveAccess(ctx context.Context, name string) error {
	db, ok := c.store().View().Databases[name]
	if !ok || db.Access != nil {
		return nil
	}
	agent, repl, err := c.newAccess()
	if err != nil {
		return err
	}
	err = c.store().Apply(ctx, raftstate.CmdSetDatabaseSecrets, raftstate.SetDatabaseSecrets{
		Name: name, First: true, Agent: agent, Replication: repl, At: c.Now().UTC(),
	})
	if errors.Is(err, raftstate.ErrExists) || errors.Is(err, raftstate.ErrNotFound) {
		return nil
	}
	if err == nil {
		c.log.Info("database given access control", "database", name)
	}
	return err
}

// accessOf returns the database and checks it has access control.
func (c *Controller) accessOf(name string) (*raftstate.Database, error) {
	db, ok := c.store().View().Databases[name]
	if !ok {
		return nil, notFound(name)
	}
	if db.Access == nil {
		_, behind, _ := c.store().ClusterLevel()
		if len(behind) > 0 {
			return nil, conflict("database %s has no users yet: upgrade the agent on %s first (every node must run a release with access control)", name, strings.Join(behind, ", "))
		}
		return nil, conflict("database %s is being given access control; try again in a moment", name)
	}
	return db, nil
}

func userView(u raftstate.User, readOnly bool, now time.Time) api.DatabaseUser {
	v := api.DatabaseUser{
		Name: u.Name, Role: string(u.Role), Keys: u.Keys, Channels: u.Channels,
		Rules: access.UserRules(u, readOnly), CreatedAt: u.CreatedAt, RotatedAt: u.RotatedAt,
	}
	if v.Keys == nil {
		v.Keys = []string{"*"}
	}
	if v.Channels == nil {
		v.Channels = []string{"*"}
	}
	if len(u.Previous) > 0 && now.Before(u.PreviousUntil) {
		at := u.PreviousUntil
		v.PreviousValidUntil = &at
	}
	return v
}

func usersView(db *raftstate.Database, now time.Time) []api.DatabaseUser {
	if db.Access == nil {
		return nil
	}
	out := make([]api.DatabaseUser, 0, len(db.Access.Users))
	for _, u := range db.Access.Users {
		out = append(out, userView(u, db.ReadOnly, now))
	}
	return out
}

// ListUsers lists a database's application users, never their passwords.
func (c *Controller) ListUsers(_ context.Context, name string) ([]api.DatabaseUser, error) {
	db, ok := c.store().View().Databases[name]
	if !ok {
		return nil, notFound(name)
	}
	out := usersView(db, c.Now())
	if out == nil {
		out = []api.DatabaseUser{}
	}
	return out, nil
}

// checkUserRequest checks what a user asks for, with the FSM's own rules,
// so that bad input is refused before anything is written.
func checkUserRequest(req api.CreateUserRequest) error {
	// A stand-in password: only the request is checked here.
	u := raftstate.User{Name: req.Name, Role: raftstate.UserRole(req.Role), Keys: req.Keys, Channels: req.Channels, Password: raftstate.Sealed{0}}
	if err := raftstate.CheckUser(&u); err != nil {
		return badRequest("%s", strings.TrimSuffix(err.Error(), ": "+raftstate.ErrInvalid.Error()))
	}
	return nil
}

// CreateUser adds an application user with a new password, which it
// returns (once) when the user works on the primary.
func (c *Controller) CreateUser(ctx context.Context, name string, req api.CreateUserRequest) (api.Credentials, error) {
	if err := checkUserRequest(req); err != nil {
		return api.Credentials{}, err
	}
	db, err := c.accessOf(name)
	if err != nil {
		return api.Credentials{}, err
	}
	if _, ok := db.Access.User(req.Name); ok {
		return api.Credentials{}, conflict("database %s has a user %s already; rotate its password with redis-appliance db user rotate %s %s", name, req.Name, name, req.Name)
	}
	pw, sealed, err := c.newPassword()
	if err != nil {
		return api.Credentials{}, err
	}
	now := c.Now().UTC()
	u := raftstate.User{Name: req.Name, Role: raftstate.UserRole(req.Role), Keys: req.Keys, Channels: req.Channels, Password: sealed, CreatedAt: now}
	if err := c.store().Apply(ctx, raftstate.CmdPutDatabaseUser, raftstate.PutDatabaseUser{Name: name, Create: true, User: u}); err != nil {
		return api.Credentials{}, err
	}
	c.log.Info("database user created", "database", name, "user", req.Name, "role", req.Role)
	return c.credentials(ctx, name, req.Name, pw, nil)
}

// RotateUser gives a user a new password; the old one works for the
// grace period.
func (c *Controller) RotateUser(ctx context.Context, name, user string, req api.RotateRequest) (api.Credentials, error) {
	grace, err := parseGrace(req.Grace, UserGrace)
	if err != nil {
		return api.Credentials{}, err
	}
	if err := raftstate.CheckUserName(user); err != nil {
		return api.Credentials{}, badRequest("%s", strings.TrimSuffix(err.Error(), ": "+raftstate.ErrInvalid.Error()))
	}
	db, err := c.accessOf(name)
	if err != nil {
		return api.Credentials{}, err
	}
	u, ok := db.Access.User(user)
	if !ok {
		return api.Credentials{}, userNotFound(name, user)
	}
	pw, sealed, err := c.newPassword()
	if err != nil {
		return api.Credentials{}, err
	}
	now := c.Now().UTC()
	u.Previous, u.PreviousUntil, u.Password, u.RotatedAt = u.Password, now.Add(grace), sealed, now
	if grace == 0 {
		u.Previous, u.PreviousUntil = nil, time.Time{}
	}
	if err := c.store().Apply(ctx, raftstate.CmdPutDatabaseUser, raftstate.PutDatabaseUser{Name: name, User: u}); err != nil {
		return api.Credentials{}, err
	}
	c.log.Info("database user password rotated", "database", name, "user", user, "grace", grace)
	return c.credentials(ctx, name, user, pw, until(u.PreviousUntil, grace))
}

// DeleteUser removes an application user from every instance.
func (c *Controller) DeleteUser(ctx context.Context, name, user string) error {
	if err := raftstate.CheckUserName(user); err != nil {
		return badRequest("%s", strings.TrimSuffix(err.Error(), ": "+raftstate.ErrInvalid.Error()))
	}
	db, err := c.accessOf(name)
	if err != nil {
		return err
	}
	if _, ok := db.Access.User(user); !ok {
		return userNotFound(name, user)
	}
	if err := c.store().Apply(ctx, raftstate.CmdDeleteDatabaseUser, raftstate.DeleteDatabaseUser{Name: name, User: user}); err != nil {
		return err
	}
	c.log.Info("database user deleted", "database", name, "user", user)
	return nil
}

// UserURL is the URL of the primary for user, without its password.
func (c *Controller) UserURL(_ context.Context, name, user string) (api.URL, error) {
	db, err := c.accessOf(name)
	if err != nil {
		return api.URL{}, err
	}
	if _, ok := db.Access.User(user); !ok {
		return api.URL{}, userNotFound(name, user)
	}
	u, err := c.primaryURL(name, url.User(user))
	return api.URL{URL: u}, err
}

// RotatePassword gives a database new secrets: the default user's
// password, and the agent's and the replicas' own. The old ones work for
// the grace period (none by default).
func (c *Controller) RotatePassword(ctx context.Context, name string, req api.RotateRequest) (api.Credentials, error) {
	grace, err := parseGrace(req.Grace, PasswordGrace)
	if err != nil {
		return api.Credentials{}, err
	}
	if _, err := c.accessOf(name); err != nil {
		return api.Credentials{}, err
	}
	pw, sealed, err := c.newPassword()
	if err != nil {
		return api.Credentials{}, err
	}
	agent, repl, err := c.newAccess()
	if err != nil {
		return api.Credentials{}, err
	}
	now := c.Now().UTC()
	err = c.store().Apply(ctx, raftstate.CmdSetDatabaseSecrets, raftstate.SetDatabaseSecrets{
		Name: name, Agent: agent, Replication: repl, Password: sealed, PreviousUntil: now.Add(grace), At: now,
	})
	if err != nil {
		return api.Credentials{}, err
	}
	c.log.Info("database passwords rotated", "database", name, "grace", grace)
	return c.credentials(ctx, name, raftstate.DefaultUser, pw, until(now.Add(grace), grace))
}

func until(t time.Time, grace time.Duration) *time.Time {
	if grace == 0 {
		return nil
	}
	return &t
}

func (c *Controller) newPassword() (string, raftstate.Sealed, error) {
	pw, err := secrets.NewPassword()
	if err != nil {
		return "", nil, err
	}
	sealed, err := c.keys().Seal([]byte(pw))
	return pw, sealed, err
}

func userNotFound(db, user string) error {
	return notFoundf("database %s has no user %q; see redis-appliance db user list %s", db, user, db)
}

func parseGrace(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > MaxGrace {
		return 0, badRequest("--grace %q is not a duration between 0s and %s (for example 1h or 24h)", s, MaxGrace)
	}
	return d, nil
}

// credentials returns a password to show once, when it works on the
// primary: the reconcilers apply users within a pass, and a password
// handed out before would be refused for that moment.
func (c *Controller) credentials(ctx context.Context, name, user, pw string, prevUntil *time.Time) (api.Credentials, error) {
	u, err := c.primaryURL(name, url.UserPassword(user, pw))
	if err != nil {
		return api.Credentials{}, err
	}
	cred := instance.Credential{User: user, Password: pw}
	ok := c.converge(ctx, func() bool {
		st := c.store().View()
		db, found := st.Databases[name]
		if !found {
			return true
		}
		p, found := db.Primary()
		if !found {
			return false
		}
		cl := instance.Connect(instance.Addr(st, p, c.cfg.AdvertiseAddr), cred, instance.NameCheck, time.Second)
		defer cl.Close()
		return cl.Ping(ctx).Err() == nil
	})
	out := api.Credentials{Database: name, User: user, Password: pw, URL: u, PreviousValidUntil: prevUntil}
	if !ok {
		// Still shown: it is recorded, and it is never shown again.
		out.Warning = fmt.Sprintf("the primary of %s does not take this password yet; it will once its node applies it (see redis-appliance db show %s)", name, name)
	}
	return out, nil
}

// primaryURL is redis://USER[:PASSWORD]@HOST:PORT/0 of the primary.
func (c *Controller) primaryURL(name string, user *url.Userinfo) (string, error) {
	st := c.store().View()
	db, ok := st.Databases[name]
	if !ok {
		return "", notFound(name)
	}
	p, ok := db.Primary()
	if !ok {
		return "", conflict("database %q has no primary right now", name)
	}
	u := url.URL{Scheme: "redis", User: user, Host: instance.Addr(st, p, c.cfg.AdvertiseAddr), Path: "/0"}
	return u.String(), nil
}

func notFoundf(format string, args ...any) error {
	return &api.Error{Status: 404, Message: fmt.Sprintf(format, args...)}
}
