package instance

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pool keeps one client per key (an instance, or a primary's address and
// password), so that the agent's frequent calls (INFO every few seconds,
// PING four times a second) reuse their connection instead of dialing
// each time.
type Pool struct {
	name    string
	timeout time.Duration

	mu      sync.Mutex
	clients map[string]*redis.Client
}

// NewPool returns a pool of clients named name (CLIENT LIST shows it)
// with timeout on dial, read and write.
func NewPool(name string, timeout time.Duration) *Pool {
	return &Pool{name: name, timeout: timeout, clients: map[string]*redis.Client{}}
}

// Get returns the client for key, connected to addr. A client for key to
// another address (the instance moved port) is closed and replaced.
// creds is asked only when a client is made, which Dial authenticates
// with the first credential the server takes.
func (p *Pool) Get(ctx context.Context, key, addr string, creds func() ([]Credential, error)) (*redis.Client, error) {
	p.mu.Lock()
	if c, ok := p.clients[key]; ok {
		if c.Options().Addr == addr {
			p.mu.Unlock()
			return c, nil
		}
		_ = c.Close()
		delete(p.clients, key)
	}
	p.mu.Unlock()
	cs, err := creds()
	if err != nil {
		return nil, err
	}
	// Dialing may take a round trip per credential: not under the lock,
	// which every other instance's caller needs.
	c, err := Dial(ctx, addr, cs, p.name, p.timeout)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.clients[key]; ok && old.Options().Addr == addr {
		_ = c.Close()
		return old, nil
	}
	p.clients[key] = c
	return c, nil
}

// Refused forgets the client for key if err says the server refused its
// credentials (they were rotated since it connected) or the command (its
// user lost the right: the default user of an instance from before
// access control), so that the next Get tries every credential again.
func (p *Pool) Refused(key string, err error) {
	if IsAuthError(err) || (err != nil && strings.HasPrefix(err.Error(), "NOPERM")) {
		p.Forget(key)
	}
}

// Forget closes the client for key, if any.
func (p *Pool) Forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		_ = c.Close()
		delete(p.clients, key)
	}
}

// Keep closes every client whose key is not in keep.
func (p *Pool) Keep(keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.clients {
		if !keep[k] {
			_ = c.Close()
			delete(p.clients, k)
		}
	}
}

// Close closes every client.
func (p *Pool) Close() { p.Keep(nil) }
