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
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/control"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
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

	keys, err := secrets.LoadOrCreate(cfg.KeyPath())
	if err != nil {
		return err
	}
	store, err := raftstate.Open(raftstate.Config{
		NodeName: cfg.NodeName, Dir: cfg.RaftDir(), BindAddr: cfg.RaftAddr,
		Logger: log.With("subsystem", "raft"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Warn("closing raft", "err", err)
		}
	}()
	has, err := store.HasState()
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	switch {
	case !has && cfg.Bootstrap == "auto":
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := store.Bootstrap(bctx)
		cancel()
		if err != nil {
			return fmt.Errorf("bootstrap single-node cluster: %w", err)
		}
		log.Info("bootstrapped a new single-node cluster", "node", cfg.NodeName)
	case !has:
		log.Info("no cluster yet: run `redis-appliance cluster init` on this node", "node", cfg.NodeName)
	}

	sup, err := systemd.New(ctx, cfg.Supervisor, cfg.UnitDir, cfg.SupervisorDir(), log.With("subsystem", "supervisor"))
	if err != nil {
		return err
	}
	defer sup.Close()
	log.Info("supervisor ready", "kind", sup.Kind())

	installed, err := versions.Discover(ctx, cfg.RedisPaths)
	if err != nil {
		log.Warn("some redis-server binaries could not be used", "err", err)
	}
	if len(installed) == 0 {
		log.Warn("no redis-server found; install redis-server (apt-get install redis-server) before creating databases")
	}
	for _, i := range installed {
		log.Info("redis-server found", "version", i.Full, "path", i.Path)
	}

	var ctl *control.Controller
	rec := reconcile.New(reconcile.Config{
		Node: cfg.NodeName, InstancesDir: cfg.InstancesDir(), Bind: cfg.Bind,
		User: cfg.InstanceUser, Group: groupName(gid), UID: uid, GID: gid,
		Binary: func(v string) (string, error) { return ctl.Binary(v) },
	}, store, sup, keys, log.With("subsystem", "reconcile"))
	ctl = control.New(cfg, store, keys, rec, sup.Kind(), installed, log.With("subsystem", "control"))

	l, err := api.ListenUnix(cfg.Socket, cfg.SocketGroup)
	if err != nil {
		return err
	}
	srv := api.NewServer(ctl, log.With("subsystem", "api"))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, l) }()

	go func() {
		// Acting on a state that is still being replayed could remove
		// instances that are merely not replayed yet.
		if err := store.WaitReady(ctx); err != nil {
			if ctx.Err() == nil {
				log.Error("raft never became ready; instances are not reconciled", "err", err)
			}
			return
		}
		log.Info("state ready; reconciling", "databases", len(store.State().Databases))
		ctl.MarkReady()
		rec.Run(ctx)
	}()

	log.Info("agent ready", "node", cfg.NodeName, "socket", cfg.Socket, "raft", cfg.RaftAddr, "data_dir", cfg.DataDir)
	if ready != nil {
		close(ready)
	}
	systemd.Ready()
	go systemd.WatchdogLoop(ctx)

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
