package instance

import (
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
// password is asked only when a client is made.
func (p *Pool) Get(key, addr string, password func() (string, error)) (*redis.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		if c.Options().Addr == addr {
			return c, nil
		}
		_ = c.Close()
		delete(p.clients, key)
	}
	pw, err := password()
	if err != nil {
		return nil, err
	}
	c := Connect(addr, pw, p.name, p.timeout)
	p.clients[key] = c
	return c, nil
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
