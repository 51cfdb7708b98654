// Package agent wires one node's daemon together: the data-directory lock,
// the cluster key, the Raft store, the supervisor, the reconciler, the
// controller and the API server, started in that order and stopped in
// reverse.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/control"
	"github.com/redis-appliance/redis-appliance/appliance/failover"
	"github.com/redis-appliance/redis-appliance/appliance/forward"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// Run runs the agent until ctx ends. ready, if not nil, is closed once the
// API serves requests (tests use it; systemd hears READY=1).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, ready chan<- struct{}) error {
	uid, gid, err := instanceOwner(cfg.InstanceUser)
	if err != nil {
		return err
	}
	if err := prepareDirs(cfg); err != nil {
		return err
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	local := versions.NewLocal(cfg.NodeName, cfg.RedisPaths, log.With("subsystem", "versions"))
	installed := local.Refresh(ctx)
	if len(installed) == 0 {
		log.Warn("no redis-server found; install redis-server (apt-get install redis-server) before creating databases")
	}
	for _, i := range installed {
		log.Info("redis-server found", "version", i.Full, "path", i.Path)
	}

	cl, err := cluster.New(cfg, local, log.With("subsystem", "cluster"))
	if err != nil {
		return err
	}
	defer func() {
		if err := cl.Close(); err != nil {
			log.Warn("closing raft", "err", err)
		}
	}()
	if err := cl.Start(ctx); err != nil {
		return err
	}

	sup, err := systemd.New(ctx, cfg.Supervisor, cfg.UnitDir, cfg.SupervisorDir(), log.With("subsystem", "supervisor"))
	if err != nil {
		return err
	}
	defer sup.Close()
	log.Info("supervisor ready", "kind", sup.Kind())

	// Everything is made here, before this node has a cluster: the parts
	// that need the store or the keys reach them through cl when they act.
	live := health.NewView()
	events := &health.EventQueue{}
	lease := failover.NewLease(cfg.Failover.Lease)
	fencer := failover.NewFencer(cfg.NodeName, lease, events, log.With("subsystem", "fence"))
	rec := reconcile.New(reconcile.Config{
		Node: cfg.NodeName, InstancesDir: cfg.InstancesDir(), Bind: cfg.BindAddrs(),
		User: cfg.InstanceUser, Group: groupName(gid), UID: uid, GID: gid,
		Binary: local.Binary, Fenced: fencer.Decision, TLSHosts: tlsHosts(cfg),
	}, cl, sup, cl, log.With("subsystem", "reconcile"))
	status := failover.NewStatus()
	failoverCluster := func() failover.Cluster {
		return failover.Cluster{
			Node: cfg.NodeName, Fallback: cfg.AdvertiseAddr, Store: cl.Store(), Keys: cl, Live: live, Local: rec,
			Settings: cfg.Failover.Settings, Now: time.Now, Log: log.With("subsystem", "failover"),
		}
	}
	ctl := control.New(control.Deps{
		Config: cfg, Cluster: cl, Live: live, Reconciler: rec, Versions: local,
		Failover: status, FailoverCluster: failoverCluster, Supervisor: sup.Kind(), Log: log.With("subsystem", "control"),
	})
	srv := api.NewServer(ctl, api.Authorizer{
		NodeName: pki.NodeName,
		IsMember: func(node string) bool {
			st := cl.Store()
			if st == nil {
				return false
			}
			_, ok := st.Node(node)
			return ok
		},
		// Agents before feature level 2 forward without saying from
		// whom: taken as before only while one of them is a voter.
		LegacyForwarding: func() bool {
			st := cl.Store()
			if st == nil {
				return false
			}
			level, _, err := st.ClusterLevel()
			return err != nil || level < 2
		},
		// Only a member's pinned certificate; members from before pins
		// are pinned by the leader on their first call.
		Verify: cl.VerifyPeer,
		Seen:   cl.NotePeer,
	}, forward.New(cl), log.With("subsystem", "api"))

	l, err := api.ListenUnix(cfg.Socket, cfg.SocketGroup)
	if err != nil {
		return err
	}
	discoveryListeners, err := listenDiscovery(cfg)
	if err != nil {
		l.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ctx, l) }()

	go func() {
		// Everything below needs the store: a fresh node with bootstrap:
		// manual gets it from cluster init or join.
		select {
		case <-ctx.Done():
			return
		case <-cl.Opened():
		}
		tlsCfg, err := cl.ServerTLS()
		if err == nil {
			var cll net.Listener
			cll, err = api.ListenCluster(cfg.ClusterAddr, tlsCfg)
			if err == nil {
				go func() { serveErr <- srv.Serve(ctx, cll) }()
			}
		}
		if err != nil {
			serveErr <- err
			return
		}
		probes := failover.NewProbes(cfg.NodeName, cfg.AdvertiseAddr)
		reporter := &failover.Reporter{
			Node: cfg.NodeName, PortMin: cfg.PortMin, PortMax: cfg.PortMax, DataDir: cfg.DataDir, ProcRoot: sizing.DefaultProcRoot,
			Local: rec, Lease: lease, Probes: probes, Events: events,
			Facts: func() ([]string, string, uint32) { return local.Versions(), cfg.AgentVersion, raftstate.FeatureLevel },
			Deliver: func(ctx context.Context, hb health.Heartbeat, here bool) (uint64, error) {
				if here {
					return ctl.RecordHeartbeat(ctx, hb)
				}
				lc, _, err := cl.LeaderClient()
				if err != nil {
					return 0, err
				}
				sctx, cancel := context.WithTimeout(ctx, failover.ReportTimeout)
				defer cancel()
				ack, err := lc.Heartbeat(sctx, hb)
				return ack.AppliedIndex, err
			},
			Log: log.With("subsystem", "heartbeat"),
		}
		go probes.Run(ctx, cl.Store, cl)
		go reporter.Run(ctx, cl.Store)
		go fencer.Run(ctx, rec, func() failover.StateSource {
			if st := cl.Store(); st != nil {
				return st
			}
			return nil
		})
		store := cl.Store()
		// Acting on a state that is still being replayed could remove
		// instances that are merely not replayed yet.
		if err := store.WaitReady(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("raft never became ready; instances are not reconciled", "err", err)
			}
			return
		}
		log.Info("state ready; reconciling", "databases", len(store.View().Databases))
		ctl.MarkReady()
		go serveDiscovery(ctx, cfg, cl, live, discoveryListeners, log.With("subsystem", "discovery"))
		go cl.WhileLeader(ctx, func(lctx context.Context) { failover.Detect(lctx, failoverCluster(), status) })
		go cl.WhileLeader(ctx, func(lctx context.Context) { register(lctx, cl, log) })
		go cl.WhileLeader(ctx, ctl.KeepAccess)
		rec.Run(ctx)
	}()

	log.Info("agent ready", "node", cfg.NodeName, "version", cfg.AgentVersion, "feature_level", raftstate.FeatureLevel,
		"socket", cfg.Socket, "raft", cfg.RaftAddr, "cluster_api", cfg.ClusterAddr, "data_dir", cfg.DataDir)
	if ready != nil {
		close(ready)
	}
	systemd.Ready()
	go systemd.WatchdogLoop(ctx)
	go serveDebug(ctx, log)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("api server: %w", err)
		}
	}
	systemd.Stopping()
	log.Info("agent stopping; instances keep running")
	return nil
}

// tlsHosts are the names and addresses clients may dial this node's
// instances at: the advertised address, the host's name, and loopback.
func tlsHosts(cfg *config.Config) []string {
	var out []string
	add := func(h string) {
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) || slices.Contains(out, h) {
			return
		}
		out = append(out, h)
	}
	add(cfg.AdvertiseAddr)
	if name, err := os.Hostname(); err == nil {
		add(name)
	}
	add("localhost")
	add("127.0.0.1")
	return out
}

// registerRetry is how long the leader waits before it tries again to
// record its own addresses.
const registerRetry = time.Second

// register keeps this node's addresses in the state current while it
// leads (others are recorded when they join): it retries until it
// succeeds or leadership ends.
func register(ctx context.Context, cl *cluster.Manager, log *slog.Logger) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cl.Register(rctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("registering this node's addresses", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(registerRetry):
		}
	}
}

// instanceOwner resolves the user that runs redis-server; -1 means keep the
// agent's own.
func instanceOwner(name string) (int, int, error) {
	if name == "" {
		return -1, -1, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("instance_user %q does not exist: install redis-server (it creates the redis user) or set instance_user in the config", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func groupName(gid int) string {
	if gid < 0 {
		return ""
	}
	g, err := user.LookupGroupId(strconv.Itoa(gid))
	if err != nil {
		return ""
	}
	return g.Name
}

// prepareDirs creates the data directory tree, root-owned and 0711: the
// instance user may traverse it to reach its own 0700 instance directory but
// may not list it, and the key and the Raft state stay 0600/0700. The owner
// stays root:root on purpose: systemd's StateDirectory= re-owns the whole
// tree, instance data included, whenever the top directory's owner differs
// from the agent's.
func prepareDirs(cfg *config.Config) error {
	for _, d := range []string{cfg.DataDir, cfg.InstancesDir()} {
		if err := os.MkdirAll(d, dataDirMode); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.Chmod(d, dataDirMode); err != nil {
			return err
		}
	}
	return nil
}

// dataDirMode lets others traverse but not list the data directories.
const dataDirMode = 0o711

// lockDataDir takes an exclusive lock so that a second agent on the same
// data directory stops at once with a clear message.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another agent (pid %s) is already using data directory %s; stop it first or point this one at another data_dir", strings.TrimSpace(string(owner)), dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
