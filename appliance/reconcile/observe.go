package reconcile

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// probeTimeout bounds one INFO call: observation must never hang the API.
const probeTimeout = 700 * time.Millisecond

// Observe reports one of this node's instances: the unit's state and, when
// it runs, what redis-server says.
func (r *Reconciler) Observe(ctx context.Context, db *raftstate.Database, in raftstate.Instance) health.InstanceReport {
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
func (r *Reconciler) ObserveAll(ctx context.Context, placed []raftstate.PlacedInstance) []health.InstanceReport {
	names := make([]string, len(placed))
	for i, pi := range placed {
		names[i] = UnitName(pi.Instance.ID)
	}
	states, err := r.sup.States(ctx, names)
	out := make([]health.InstanceReport, len(placed))
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

func (r *Reconciler) observe(ctx context.Context, db *raftstate.Database, in raftstate.Instance, us systemd.UnitState, err error) health.InstanceReport {
	o := instance.Observed{ID: in.ID, Unit: us, UnitErr: err, Generation: r.AppliedGeneration(in.ID)}
	if f, ok := r.failure(in.ID); ok {
		o.StartErr = f.err
	}
	if err == nil && us.ActiveState == "active" {
		o.Info, o.InfoErr = r.probes.info(ctx, r.keys, db, in)
	}
	return o.Report()
}

// prober keeps one small client per local instance, for INFO and for the
// commands that change its role and fence.
type prober struct {
	host string
	pool *instance.Pool
}

func newProber(bind []string) *prober {
	host := "127.0.0.1"
	if len(bind) > 0 && bind[0] != "0.0.0.0" && bind[0] != "::" {
		host = bind[0]
	}
	return &prober{host: host, pool: instance.NewPool(instance.NameAgent, probeTimeout)}
}

func (p *prober) client(ctx context.Context, keys Opener, db *raftstate.Database, in raftstate.Instance) (*redis.Client, error) {
	return p.pool.Get(ctx, in.ID, net.JoinHostPort(p.host, strconv.Itoa(in.Port)), func() ([]instance.Credential, error) {
		return access.AgentCredentials(keys, db)
	})
}

func (p *prober) info(ctx context.Context, keys Opener, db *raftstate.Database, in raftstate.Instance) (instance.Info, error) {
	c, err := p.client(ctx, keys, db, in)
	if err != nil {
		return instance.Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	info, err := instance.ReadInfo(ctx, c)
	p.refused(in.ID, err)
	return info, err
}

func (p *prober) forget(id string) { p.pool.Forget(id) }

// refused drops the client of instance id if err says its credentials
// were refused (rotated since it connected).
func (p *prober) refused(id string, err error) { p.pool.Refused(id, err) }

func (p *prober) close() { p.pool.Close() }
