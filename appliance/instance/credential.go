package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Credential is a Redis user and its password. User "" is the default
// user (AUTH with the password alone).
type Credential struct {
	User     string
	Password string
}

// String names the user, never the password, so %v is safe in logs.
func (c Credential) String() string {
	if c.User == "" {
		return "default"
	}
	return c.User
}

// LogValue makes slog print the user only.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// IsAuthError says whether err is a server refusing the credentials
// (wrong password, unknown or disabled user), as opposed to a server that
// did not answer.
func IsAuthError(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") ||
		strings.Contains(msg, "invalid username-password pair") || strings.Contains(msg, "invalid password")
}

// Dial returns a client to addr authenticated with the first of creds the
// server accepts, tried in order: after a rotation an instance may know
// only the new secret or only the old one, or (an instance from before
// access control) only the default user. With one credential nothing is
// sent until the client is used. A server that does not answer gets the
// first credential: the caller finds out on its first command.
func Dial(ctx context.Context, addr string, creds []Credential, name string, timeout time.Duration) (*redis.Client, error) {
	if len(creds) == 0 {
		return nil, fmt.Errorf("no credential for %s", addr)
	}
	if len(creds) == 1 {
		return Connect(addr, creds[0], name, timeout), nil
	}
	var last error
	for _, cr := range creds {
		c := Connect(addr, cr, name, timeout)
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.Ping(pctx).Err()
		cancel()
		if !IsAuthError(err) {
			return c, nil
		}
		_ = c.Close()
		last = err
	}
	return nil, fmt.Errorf("%s refuses every credential the agent has for it (%d tried): %w", addr, len(creds), last)
}
