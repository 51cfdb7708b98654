package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/sentinel"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// discovery answers Sentinel-protocol clients from this node's copy of the
// Raft state: who is primary, at which address, at which epoch. Whether an
// instance is down comes from the heartbeats, which only the leader has;
// a follower presents every instance as up and lets clients find out.
type discovery struct {
	cfg  *config.Config
	cl   *cluster.Manager
	live *health.View

	mu        sync.Mutex
	passwords map[string]string // sealed → plaintext, so commands do not decrypt
}

var _ sentinel.Source = (*discovery)(nil)

func (d *discovery) password(sealed raftstate.Sealed) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pw, ok := d.passwords[string(sealed)]; ok {
		return pw
	}
	pw, err := d.cl.Keys().Open(sealed)
	if err != nil {
		return "" // a master without a password is shown to nobody
	}
	if len(d.passwords) > 10000 {
		clear(d.passwords) // deleted databases' passwords must not pile up
	}
	d.passwords[string(sealed)] = string(pw)
	return string(pw)
}

// users are the passwords each application user of db may discover with:
// its own, and the one its last rotation replaced while that still works.
func (d *discovery) users(db *raftstate.Database) map[string][]string {
	if db.Access == nil || len(db.Access.Users) == 0 {
		return nil
	}
	now := time.Now()
	out := make(map[string][]string, len(db.Access.Users))
	for _, u := range db.Access.Users {
		pws := []string{d.password(u.Password)}
		if len(u.Previous) > 0 && now.Before(u.PreviousUntil) {
			pws = append(pws, d.password(u.Previous))
		}
		out[u.Name] = pws
	}
	return out
}

func (d *discovery) addr(st *raftstate.State, in raftstate.Instance) sentinel.Addr {
	return sentinel.Addr{IP: instance.Host(st, in.Node, d.cfg.AdvertiseAddr), Port: in.Port}
}

// observed is what the heartbeats say of an instance; ok is false when
// they say nothing fresh (on a follower: always).
func (d *discovery) observed(in raftstate.Instance) (health.InstanceReport, bool) {
	store := d.cl.Store()
	if store == nil || !store.IsLeader() {
		return health.InstanceReport{}, false
	}
	return d.live.Fresh(in.Node, in.ID)
}

// Masters implements sentinel.Source.
func (d *discovery) Masters() []sentinel.Master {
	store := d.cl.Store()
	if store == nil {
		return nil
	}
	st := store.View()
	var out []sentinel.Master
	for _, name := range st.DatabaseNames() {
		db := st.Databases[name]
		p, ok := db.Primary()
		if !ok {
			continue
		}
		m := sentinel.Master{Name: name, Addr: d.addr(st, p), Epoch: db.Epoch, Password: d.password(db.Password), Users: d.users(db)}
		if a := db.Access; a != nil && len(a.PreviousPassword) > 0 && time.Now().Before(a.PreviousUntil) {
			m.PreviousPassword = d.password(a.PreviousPassword)
		}
		if r, ok := d.observed(p); ok && r.State != api.StateRunning {
			m.Down = true
		}
		for _, in := range db.Instances {
			if in.Role != raftstate.RoleReplica {
				continue
			}
			rep := sentinel.Replica{Addr: d.addr(st, in), LinkUp: true}
			if r, ok := d.observed(in); ok {
				rep.Down = r.State != api.StateRunning
				rep.LinkUp = r.Link != nil && r.Link.Up
				rep.Offset = r.ReplOffset
			}
			m.Replicas = append(m.Replicas, rep)
		}
		out = append(out, m)
	}
	return out
}

// Peers implements sentinel.Source: the other nodes that serve discovery.
func (d *discovery) Peers() []sentinel.Peer {
	store := d.cl.Store()
	if store == nil {
		return nil
	}
	var out []sentinel.Peer
	for name, n := range store.View().Nodes {
		if name == d.cfg.NodeName || n.SentinelPort == 0 || n.Address == "" {
			continue
		}
		out = append(out, sentinel.Peer{ID: sentinel.RunID(name), Addr: sentinel.Addr{IP: n.Address, Port: n.SentinelPort}})
	}
	return out
}

// listenDiscovery opens the discovery port on every bind address, before
// anything else starts, so a port taken by Redis Sentinel itself is a clear
// start-up error rather than a silent gap.
func listenDiscovery(cfg *config.Config) ([]net.Listener, error) {
	if cfg.SentinelPort == 0 {
		return nil, nil
	}
	var ls []net.Listener
	for _, a := range cfg.BindAddrs() {
		addr := net.JoinHostPort(a, strconv.Itoa(cfg.SentinelPort))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, fmt.Errorf("discovery cannot listen on %s: %w; is Redis Sentinel running on this host? set sentinel_port to another port, or 0 to turn discovery off", addr, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// serveDiscovery serves the listeners until ctx ends, telling the server
// whenever the state changes so it can publish +switch-master.
func serveDiscovery(ctx context.Context, cfg *config.Config, cl *cluster.Manager, live *health.View, ls []net.Listener, log *slog.Logger) {
	if len(ls) == 0 {
		return
	}
	d := &discovery{cfg: cfg, cl: cl, live: live, passwords: map[string]string{}}
	srv := sentinel.New(d, sentinel.RunID(cfg.NodeName), log)
	for _, l := range ls {
		go func() {
			if err := srv.Serve(l); err != nil {
				log.Warn("discovery stopped serving", "addr", l.Addr(), "err", err)
			}
		}()
	}
	log.Info("discovery (Sentinel protocol) listening", "port", cfg.SentinelPort)
	changes := cl.Store().Subscribe()
	srv.Changed()
	for {
		select {
		case <-ctx.Done():
			_ = srv.Close()
			return
		case <-changes:
			srv.Changed()
		}
	}
}
