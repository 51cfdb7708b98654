package raftstate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// UserRole is what an application user of a database may do; package
// appliance/access turns it into Redis ACL rules.
type UserRole string

// The roles of application users.
const (
	// UserRead may read keys and subscribe.
	UserRead UserRole = "read"
	// UserWrite may read and write keys, but not run the commands Redis
	// calls dangerous (KEYS, FLUSHALL, SORT...).
	UserWrite UserRole = "write"
	// UserAdmin is what the database's owner may do: write plus FLUSHDB,
	// KEYS and the like, never what could change roles, persistence,
	// security or the fence. The default user has this role.
	UserAdmin UserRole = "admin"
)

// UserRoles lists every role, in the order the CLI shows them.
var UserRoles = []UserRole{UserRead, UserWrite, UserAdmin}

// Check is the one check of a role.
func (r UserRole) Check() error {
	if !slices.Contains(UserRoles, r) {
		return invalidf("unknown role %q: use read, write or admin", string(r))
	}
	return nil
}

// Access is who may connect to a database's instances, besides the default
// user (whose password is Database.Password). A database created before
// access control has none until the leader gives it one.
type Access struct {
	// Agent is the secret of the agent's own user, which every management
	// connection (observation, fencing, role changes) uses.
	Agent Sealed `json:"agent"`
	// Replication is the secret of the user replicas authenticate as.
	Replication Sealed `json:"replication"`
	// PreviousAgent, PreviousReplication and PreviousPassword are the
	// secrets the last rotation replaced. Instances accept them until
	// PreviousUntil (clients and replicas reconnecting meanwhile keep
	// working); the agent also tries them to reach an instance that has
	// not heard of the rotation yet.
	PreviousAgent       Sealed    `json:"previous_agent,omitempty"`
	PreviousReplication Sealed    `json:"previous_replication,omitempty"`
	PreviousPassword    Sealed    `json:"previous_password,omitempty"`
	PreviousUntil       time.Time `json:"previous_until,omitempty"`
	RotatedAt           time.Time `json:"rotated_at,omitempty"`
	// Users are the application users, by name.
	Users []User `json:"users,omitempty"`
}

// User is an application user of a database.
type User struct {
	Name string   `json:"name"`
	Role UserRole `json:"role"`
	// Keys and Channels are the Redis glob patterns the user may touch;
	// empty means all.
	Keys     []string `json:"keys,omitempty"`
	Channels []string `json:"channels,omitempty"`
	Password Sealed   `json:"password"`
	// Previous is the password the last rotation replaced, valid until
	// PreviousUntil.
	Previous      Sealed    `json:"previous,omitempty"`
	PreviousUntil time.Time `json:"previous_until,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	RotatedAt     time.Time `json:"rotated_at,omitempty"`
}

// User returns the application user called name.
func (a *Access) User(name string) (User, bool) {
	if a == nil {
		return User{}, false
	}
	for _, u := range a.Users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

func (a *Access) clone() *Access {
	if a == nil {
		return nil
	}
	c := *a
	c.Agent, c.Replication = slices.Clone(a.Agent), slices.Clone(a.Replication)
	c.PreviousAgent, c.PreviousReplication, c.PreviousPassword = slices.Clone(a.PreviousAgent), slices.Clone(a.PreviousReplication), slices.Clone(a.PreviousPassword)
	c.Users = make([]User, len(a.Users))
	for i, u := range a.Users {
		u.Keys, u.Channels = slices.Clone(u.Keys), slices.Clone(u.Channels)
		u.Password, u.Previous = slices.Clone(u.Password), slices.Clone(u.Previous)
		c.Users[i] = u
	}
	if a.Users == nil {
		c.Users = nil
	}
	return &c
}

// Reserved user names: Redis's own default user, and the prefix of the
// agent's and the replicas' users, which no application user may take.
const (
	DefaultUser    = "default"
	ReservedPrefix = "appliance-"
)

// MaxUsers bounds the application users of one database: each is a line
// of every instance's redis.conf and an ACL SETUSER on every change.
const MaxUsers = 100

// MaxPatterns bounds the key and the channel patterns of one user.
const MaxPatterns = 16

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckUserName checks the name of an application user: it becomes an
// argument of ACL SETUSER and of a redis.conf line, so it is plain.
func CheckUserName(name string) error {
	switch {
	case !userNameRE.MatchString(name):
		return invalidf("user name %q is not usable: 1-64 letters, digits, '_', '.' and '-', starting with a letter or digit", cutMessage(name))
	case name == DefaultUser:
		return invalidf("user name %q is Redis's own default user (its password is the one db url prints): choose another name", name)
	case strings.HasPrefix(strings.ToLower(name), ReservedPrefix):
		return invalidf("user name %q is reserved: names starting with %q are the appliance's own users", name, ReservedPrefix)
	}
	return nil
}

// CheckPattern checks a key or channel pattern: a Redis glob of printable
// ASCII without spaces or quotes, so that it stays one argument.
func CheckPattern(kind, p string) error {
	if p == "" || len(p) > 256 {
		return invalidf("%s pattern %q must be 1 to 256 characters", kind, cutMessage(p))
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return invalidf("%s pattern %q has a character Redis patterns cannot take here (spaces, quotes, backslashes and control characters are refused): use a glob such as app:*", kind, cutMessage(p))
		}
	}
	return nil
}

// CheckUser checks an application user's record: the one check the FSM
// and the control plane (before anything is written) both make.
func CheckUser(u *User) error {
	if err := CheckUserName(u.Name); err != nil {
		return err
	}
	if err := u.Role.Check(); err != nil {
		return fmt.Errorf("user %s: %w", u.Name, err)
	}
	if len(u.Keys) > MaxPatterns || len(u.Channels) > MaxPatterns {
		return invalidf("user %s: at most %d key and %d channel patterns", u.Name, MaxPatterns, MaxPatterns)
	}
	for _, p := range u.Keys {
		if err := CheckPattern("key", p); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	for _, p := range u.Channels {
		if err := CheckPattern("channel", p); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	if len(u.Password) == 0 {
		return invalidf("user %s has no sealed password", u.Name)
	}
	return nil
}

func checkUser(db string, u *User) error {
	if err := CheckUser(u); err != nil {
		return fmt.Errorf("database %s: %w", db, err)
	}
	return nil
}

// checkAccess checks a database's access record on its own.
func checkAccess(db string, a *Access) error {
	if a == nil {
		return nil
	}
	if len(a.Agent) == 0 || len(a.Replication) == 0 {
		return invalidf("database %s: access needs the agent's and the replicas' sealed secrets", db)
	}
	if len(a.Users) > MaxUsers {
		return invalidf("database %s has %d users, more than %d", db, len(a.Users), MaxUsers)
	}
	seen := map[string]bool{}
	for i := range a.Users {
		if err := checkUser(db, &a.Users[i]); err != nil {
			return err
		}
		if seen[a.Users[i].Name] {
			return invalidf("database %s lists user %s twice", db, a.Users[i].Name)
		}
		seen[a.Users[i].Name] = true
	}
	return nil
}

// SetDatabaseSecrets is the payload of CmdSetDatabaseSecrets: it gives a
// database its agent and replication secrets (First: one from before
// access control, refused if it has them already, so two leaders cannot
// both do it), or rotates them and, if Password is set, the default
// user's password; the replaced secrets stay valid until PreviousUntil.
type SetDatabaseSecrets struct {
	Name          string    `json:"name"`
	First         bool      `json:"first,omitempty"`
	Agent         Sealed    `json:"agent"`
	Replication   Sealed    `json:"replication"`
	Password      Sealed    `json:"password,omitempty"`
	PreviousUntil time.Time `json:"previous_until,omitempty"`
	At            time.Time `json:"at"`
}

// PutDatabaseUser is the payload of CmdPutDatabaseUser: it adds a user
// (Create; refused if the name is taken) or replaces one (a rotation;
// refused if there is none).
type PutDatabaseUser struct {
	Name   string `json:"name"`
	Create bool   `json:"create,omitempty"`
	User   User   `json:"user"`
}

// DeleteDatabaseUser is the payload of CmdDeleteDatabaseUser.
type DeleteDatabaseUser struct {
	Name string `json:"name"`
	User string `json:"user"`
}

func (f *FSM) database(name string) (*Database, error) {
	if err := CheckName("database", name); err != nil {
		return nil, err
	}
	d, ok := f.state.Databases[name]
	if !ok {
		return nil, fmt.Errorf("database %q %w", name, ErrNotFound)
	}
	return d, nil
}

func (f *FSM) applySetDatabaseSecrets(p SetDatabaseSecrets) error {
	d, err := f.database(p.Name)
	if err != nil {
		return err
	}
	if len(p.Agent) == 0 || len(p.Replication) == 0 {
		return invalidf("database %s: new secrets need the agent's and the replicas'", p.Name)
	}
	if p.First {
		if d.Access != nil {
			return fmt.Errorf("database %q has its secrets already: %w", p.Name, ErrExists)
		}
		d.Access = &Access{Agent: p.Agent, Replication: p.Replication}
		return nil
	}
	if d.Access == nil {
		return fmt.Errorf("database %q has no access control yet (the leader gives it one once every agent is upgraded): %w", p.Name, ErrConflict)
	}
	a := d.Access
	a.PreviousAgent, a.PreviousReplication = a.Agent, a.Replication
	a.Agent, a.Replication = p.Agent, p.Replication
	a.PreviousPassword = nil
	if len(p.Password) > 0 {
		a.PreviousPassword, d.Password = d.Password, p.Password
	}
	a.PreviousUntil, a.RotatedAt = p.PreviousUntil, p.At
	return nil
}

func (f *FSM) applyPutDatabaseUser(p PutDatabaseUser) error {
	d, err := f.database(p.Name)
	if err != nil {
		return err
	}
	u := p.User
	u.Keys, u.Channels = slices.Clone(u.Keys), slices.Clone(u.Channels)
	if err := checkUser(p.Name, &u); err != nil {
		return err
	}
	if d.Access == nil {
		return fmt.Errorf("database %q has no access control yet (the leader gives it one once every agent is upgraded): %w", p.Name, ErrConflict)
	}
	i := slices.IndexFunc(d.Access.Users, func(x User) bool { return x.Name == u.Name })
	switch {
	case p.Create && i >= 0:
		return fmt.Errorf("user %q of database %s %w", u.Name, p.Name, ErrExists)
	case p.Create && len(d.Access.Users) >= MaxUsers:
		return fmt.Errorf("database %s has %d users already, the most it may have: %w", p.Name, MaxUsers, ErrConflict)
	case p.Create:
		d.Access.Users = append(d.Access.Users, u)
	case i < 0:
		return fmt.Errorf("user %q of database %s %w", u.Name, p.Name, ErrNotFound)
	default:
		d.Access.Users[i] = u
	}
	return nil
}

func (f *FSM) applyDeleteDatabaseUser(p DeleteDatabaseUser) error {
	d, err := f.database(p.Name)
	if err != nil {
		return err
	}
	i := -1
	if d.Access != nil {
		i = slices.IndexFunc(d.Access.Users, func(x User) bool { return x.Name == p.User })
	}
	if i < 0 {
		return fmt.Errorf("user %q of database %s %w", cutMessage(p.User), p.Name, ErrNotFound)
	}
	d.Access.Users = slices.Delete(d.Access.Users, i, i+1)
	return nil
}
