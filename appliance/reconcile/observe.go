package reconcile

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// Observation is what this node sees of one of its instances.
type Observation struct {
	// State is running, starting, failed or stopped.
	State         string
	ActiveState   string
	PID           int
	Restarts      int
	MemoryUsed    int64
	ServerVersion string
	Role          string
	// ReplOffset is master_repl_offset: how far this instance's replication
	// stream has come.
	ReplOffset int64
	// Error says why the instance is not running, when known.
	Error string
	// Link is set when the instance replicates something.
	Link *health.Link
	// OpsPerSec and Clients are instantaneous_ops_per_sec and
	// connected_clients (the agent's own connection included).
	OpsPerSec int64
	Clients   int
}

// probeTimeout bounds one INFO call: observation must never hang the API.
const probeTimeout = 700 * time.Millisecond

// Observe reports the unit's state and, when it runs, what redis-server says.
func (r *Reconciler) Observe(ctx context.Context, db *raftstate.Database, in raftstate.Instance) Observation {
	us, err := r.sup.State(ctx, UnitName(in.ID))
	return r.observe(ctx, db, in, us, err)
}

// observeParallel bounds how many instances ObserveAll asks at once.
const observeParallel = 16

// ObserveAll observes each of the instances, asking the supervisor for all
// their units at once and the redis-servers side by side: their answers
// then come back together, one wake-up of the agent for many instances
// rather than one each (on an idle agent, waking up costs more than the
// work), and a few wedged instances cannot make the round take their
// timeouts one after the other.
func (r *Reconciler) ObserveAll(ctx context.Context, placed []raftstate.PlacedInstance) []Observation {
	names := make([]string, len(placed))
	for i, pi := range placed {
		names[i] = UnitName(pi.Instance.ID)
	}
	states, err := r.sup.States(ctx, names)
	out := make([]Observation, len(placed))
	slots := make(chan struct{}, observeParallel)
	var wg sync.WaitGroup
	for i, pi := range placed {
		us, uerr := states[names[i]], err
		if _, ok := states[names[i]]; !ok && err == nil {
			uerr = systemd.ErrUnitNotFound
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = r.observe(ctx, pi.Database, pi.Instance, us, uerr)
			<-slots
		}()
	}
	wg.Wait()
	return out
}

func (r *Reconciler) observe(ctx context.Context, db *raftstate.Database, in raftstate.Instance, us systemd.UnitState, err error) Observation {
	var o Observation
	switch {
	case errors.Is(err, systemd.ErrUnitNotFound):
		o.State, o.ActiveState = "starting", "not-installed"
	case err != nil:
		o.State, o.Error = "unknown", err.Error()
	default:
		o.ActiveState, o.PID, o.Restarts = us.ActiveState, us.MainPID, us.Restarts
		switch us.ActiveState {
		case "active":
			o.State = "running"
		case "activating", "reloading":
			o.State = "starting"
		case "failed":
			o.State = "failed"
		default:
			o.State = "stopped"
		}
	}
	if f, ok := r.failure(in.ID); ok && o.State != "running" {
		o.Error = f.err.Error()
		if o.State == "stopped" {
			o.State = "failed"
		}
	}
	if o.State != "running" {
		return o
	}
	info, err := r.probes.info(ctx, r.keys, db, in)
	if err != nil {
		// The unit is up but redis-server does not answer yet (loading the
		// dataset, or wedged): not running as far as a client is concerned.
		o.State, o.Error = "starting", "redis-server does not answer: "+err.Error()
		return o
	}
	o.MemoryUsed, _ = strconv.ParseInt(info["used_memory"], 10, 64)
	o.ServerVersion = info["redis_version"]
	o.Role = info["role"]
	o.ReplOffset, _ = strconv.ParseInt(info["master_repl_offset"], 10, 64)
	o.OpsPerSec, _ = strconv.ParseInt(info["instantaneous_ops_per_sec"], 10, 64)
	o.Clients, _ = strconv.Atoi(info["connected_clients"])
	if o.Role == "slave" {
		l := &health.Link{MasterHost: info["master_host"], Up: info["master_link_status"] == "up",
			SyncInProgress: info["master_sync_in_progress"] == "1", LastIOSeconds: -1}
		l.MasterPort, _ = strconv.Atoi(info["master_port"])
		if l.Up {
			l.LastIOSeconds, _ = strconv.Atoi(info["master_last_io_seconds_ago"])
		}
		o.Link = l
	}
	if info["loading"] == "1" {
		o.State = "starting"
	}
	return o
}

// prober keeps one small client per instance for INFO.
type prober struct {
	host    string
	mu      sync.Mutex
	clients map[string]*redis.Client
}

func newProber(bind []string) *prober {
	host := "127.0.0.1"
	if len(bind) > 0 && bind[0] != "0.0.0.0" && bind[0] != "::" {
		host = bind[0]
	}
	return &prober{host: host, clients: map[string]*redis.Client{}}
}

func (p *prober) client(keys *secrets.Keyring, db *raftstate.Database, in raftstate.Instance) (*redis.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := net.JoinHostPort(p.host, strconv.Itoa(in.Port))
	if c, ok := p.clients[in.ID]; ok && c.Options().Addr == addr {
		return c, nil
	}
	pw, err := keys.Open(db.Password)
	if err != nil {
		return nil, err
	}
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: string(pw),
		DialTimeout: probeTimeout, ReadTimeout: probeTimeout, WriteTimeout: probeTimeout,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1,
		// Identify the agent's own connection in CLIENT LIST.
		ClientName: "redis-appliance-agent",
		// INFO is all we need; the handshake must not fail on HELLO quirks.
		Protocol: 2, DisableIdentity: true,
	})
	if old, ok := p.clients[in.ID]; ok {
		_ = old.Close()
	}
	p.clients[in.ID] = c
	return c, nil
}

func (p *prober) info(ctx context.Context, keys *secrets.Keyring, db *raftstate.Database, in raftstate.Instance) (map[string]string, error) {
	c, err := p.client(keys, db, in)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	raw, err := c.Info(ctx, "server", "clients", "memory", "stats", "replication", "persistence").Result()
	if err != nil {
		return nil, err
	}
	return parseInfo(raw), nil
}

func (p *prober) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[id]; ok {
		_ = c.Close()
		delete(p.clients, id)
	}
}

func (p *prober) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, c := range p.clients {
		_ = c.Close()
		delete(p.clients, id)
	}
}
