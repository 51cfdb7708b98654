// Package reconcile makes this node's redis-server instances match the
// replicated state: it renders redis.conf from Raft, installs and starts a
// unit per instance, restarts on request, and removes what was deleted. It is
// level-triggered and idempotent: a pass can run at any time and converges.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/redisconf"
	"github.com/redis-appliance/redis-appliance/raftstate"
	"github.com/redis-appliance/redis-appliance/systemd"
)

// Source is the replicated state the reconciler follows.
type Source interface {
	State() *raftstate.State
	Changes() <-chan struct{}
}

// Opener opens the secrets sealed in the state (the cluster's keyring).
type Opener interface {
	Open(sealed []byte) ([]byte, error)
}

// Config is what the reconciler needs to know about this node.
type Config struct {
	// Node is this node's name: only its instances are touched.
	Node string
	// InstancesDir holds one directory per instance.
	InstancesDir string
	// Bind are the addresses instances listen on.
	Bind []string
	// User and Group run redis-server; UID and GID own its files (-1: keep).
	User, Group string
	UID, GID    int
	// Binary returns the redis-server path for a catalogue version.
	Binary func(version string) (string, error)
	// Interval is the period of the level-triggered pass.
	Interval time.Duration
	// Fenced reports whether this node's HA primaries must refuse writes
	// now (no lease from the leader). known is false while the agent does
	// not know yet (just started): their fence is then left as it is.
	// nil means never fenced.
	Fenced func() (fenced, known bool)
	// Now is the clock of password grace periods (nil: time.Now).
	Now func() time.Time
	// MaxClients is every instance's maxclients (0: redis-server's
	// default, 10000).
	MaxClients int
	// TLSHosts are the addresses and names clients dial this node's
	// instances at: every one is in their TLS certificates.
	TLSHosts []string
}

// Reconciler converges this node's instances on the state.
type Reconciler struct {
	cfg     Config
	src     Source
	sup     systemd.Supervisor
	keys    Opener
	log     *slog.Logger
	trigger chan struct{}
	passMu  sync.Mutex

	mu       sync.Mutex
	failures map[string]failure // instance ID → last start failure
	epochs   map[string]uint64  // instance ID → database epoch last ensured
	acl      map[string]string  // instance ID → fingerprint of the users last set
	// fenceFailed is when an instance last failed to take its fence
	// (absent: its last attempt worked), and restarting the instances
	// being restarted because of it (see Fence).
	fenceFailed map[string]time.Time
	restarting  map[string]bool
	lockouts    map[string]int    // instance ID → passes in a row it kept the agent out
	tls         map[string]string // instance ID → TLS settings last set (applyTLS)
	done        chan struct{}     // closed and replaced after every pass
	probes      *prober
}

type failure struct {
	at  time.Time
	err error
}

// retryAfter spaces out start attempts of an instance that keeps failing, so
// a broken config does not spin the agent.
const retryAfter = 5 * time.Second

// New returns a reconciler; call Run to start it.
func New(cfg Config, src Source, sup systemd.Supervisor, keys Opener, log *slog.Logger) *Reconciler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval == 0 {
		// A safety net only: passes run on every applied change and every
		// unit state change. Each pass asks systemd about every instance,
		// so a short period costs CPU on hosts with many databases.
		cfg.Interval = 30 * time.Second
	}
	return &Reconciler{
		cfg: cfg, src: src, sup: sup, keys: keys, log: log,
		trigger:     make(chan struct{}, 1),
		failures:    map[string]failure{},
		epochs:      map[string]uint64{},
		acl:         map[string]string{},
		fenceFailed: map[string]time.Time{},
		restarting:  map[string]bool{},
		lockouts:    map[string]int{},
		tls:         map[string]string{},
		done:        make(chan struct{}),
		probes:      newProber(cfg.Bind),
	}
}

// UnitName is the unit of an instance.
func UnitName(instanceID string) string { return systemd.UnitPrefix + instanceID + ".service" }

// instanceID is the inverse of UnitName.
func instanceID(unit string) string {
	return strings.TrimSuffix(strings.TrimPrefix(unit, systemd.UnitPrefix), ".service")
}

// Dir is an instance's directory: redis.conf and data. It refuses an ID
// that would name anything but a directory of its own right inside
// InstancesDir (a second guard behind the FSM's own check of IDs): the
// agent runs as root and creates, chowns and writes there.
func (r *Reconciler) Dir(instanceID string) (string, error) {
	return r.local(instanceID)
}

// local is name inside InstancesDir, or an error if name is not a plain
// file name there.
func (r *Reconciler) local(name string) (string, error) {
	if name == "" || name == "." || name == ".." || !filepath.IsLocal(name) || filepath.Base(name) != name || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("instance %q: %w", name, ErrNotLocal)
	}
	return filepath.Join(r.cfg.InstancesDir, name), nil
}

// ErrNotLocal is returned for an instance ID that does not name a plain
// directory inside the instances directory.
var ErrNotLocal = errors.New("not a plain name inside the instances directory; refusing to touch it")

// generationFile records the restart generation last applied to an instance.
// It sits beside the instance directory, owned by the agent, so redis-server
// cannot change it.
func (r *Reconciler) generationFile(instanceID string) (string, error) {
	return r.local(instanceID + ".generation")
}

// Trigger asks for a pass soon.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Run runs passes on every state change, unit change, trigger and interval
// until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	defer r.probes.close()
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile pass incomplete", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.src.Changes():
		case <-r.sup.Changes():
		case <-r.trigger:
		case <-t.C:
		}
	}
}

// Passed returns a channel closed when the next pass completes.
func (r *Reconciler) Passed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Pass makes one idempotent pass over this node's instances.
func (r *Reconciler) Pass(ctx context.Context) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	defer func() {
		r.mu.Lock()
		close(r.done)
		r.done = make(chan struct{})
		r.mu.Unlock()
	}()
	st := r.src.State()
	want := map[string]bool{}
	var errs []error
	placed := st.InstancesOn(r.cfg.Node)
	// Instances whose database changed primary (or link) go first: a
	// switchover keeps writes paused until they have their new roles.
	r.mu.Lock()
	slices.SortStableFunc(placed, func(a, b raftstate.PlacedInstance) int {
		ca, cb := r.epochs[a.Instance.ID] != a.Database.Epoch, r.epochs[b.Instance.ID] != b.Database.Epoch
		switch {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})
	r.mu.Unlock()
	// Every unit's state in one call rather than one round trip to
	// systemd per instance; ensure asks again for a unit it changes, or
	// one this call could not tell.
	names := make([]string, len(placed))
	for i, pi := range placed {
		names[i] = UnitName(pi.Instance.ID)
	}
	known, err := r.sup.States(ctx, names)
	if err != nil {
		known = nil
	}
	for _, pi := range placed {
		want[pi.Instance.ID] = true
		if err := r.ensure(ctx, st, pi.Database, pi.Instance, known); err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", pi.Instance.ID, err))
		}
	}
	if err := r.removeUnwanted(ctx, want); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ensure makes one instance's config, unit and process match the state.
// prefetched holds unit states read at the start of the pass.
func (r *Reconciler) ensure(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance, prefetched map[string]systemd.UnitState) error {
	dir, err := r.Dir(in.ID)
	if err != nil {
		return err
	}
	if err := raftstate.CheckInstanceID(db.Name, in.ID); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create instance directory: %w", err)
	}
	if err := r.chown(dir); err != nil {
		return err
	}
	users, err := access.Users(r.keys, db, r.cfg.Now())
	if err != nil {
		return err
	}
	rep, err := r.replicationOf(st, db, in)
	if err != nil {
		return err
	}
	rep.Users = users
	tlsParams, err := r.tlsOf(st, db, in, dir)
	if err != nil {
		return err
	}
	rep.TLS = tlsParams
	conf, err := redisconf.Render(redisconf.Params{
		Port: in.Port, Bind: r.cfg.Bind, Users: users,
		MaxMemory: db.MemoryBytes, Dir: dir, Flavor: db.Flavor,
		ReplicaOf: rep.ReplicaOf, MasterUser: rep.Master.User, MasterAuth: rep.Master.Password,
		Fenced: instance.HAPrimary(db, in), MaxClients: r.cfg.MaxClients, TLS: tlsParams,
	})
	if err != nil {
		return fmt.Errorf("render redis.conf: %w", err)
	}
	confPath := filepath.Join(dir, "redis.conf")
	oldConf, _ := os.ReadFile(confPath)
	wrote, err := redisconf.WriteFile(confPath, conf, r.cfg.UID, r.cfg.GID)
	if err != nil {
		return fmt.Errorf("write redis.conf: %w", err)
	}
	// A change of role or read-only mode is applied to the running
	// instance below; only other changes need a restart.
	confChanged := wrote && redisconf.NeedsRestart(oldConf, conf)
	bin, err := r.cfg.Binary(db.Version)
	if err != nil {
		return err
	}
	name := UnitName(in.ID)
	unitChanged, err := r.sup.Install(ctx, systemd.UnitSpec{
		Name: name,
		// No role here: a switchover must not change the unit, or the
		// instance would restart.
		Description: fmt.Sprintf("Redis %s database %s (instance %s)", db.Version, db.Name, in.ID),
		ExecStart:   []string{bin, filepath.Join(dir, "redis.conf")},
		User:        r.cfg.User, Group: r.cfg.Group, Dir: dir,
		NoRestart: instance.HA(db),
	})
	if err != nil {
		return fmt.Errorf("install unit: %w", err)
	}
	applied, known := r.appliedGeneration(in.ID)
	if !known {
		// A new instance starts fresh: it has nothing to restart for.
		applied = db.RestartGeneration
		if err := r.setAppliedGeneration(in.ID, applied); err != nil {
			return err
		}
	}
	us, ok := prefetched[name]
	if !ok || unitChanged {
		if us, err = r.sup.State(ctx, name); err != nil {
			return fmt.Errorf("unit state: %w", err)
		}
	}
	switch {
	case us.ActiveState == "active" && (confChanged || unitChanged || applied < db.RestartGeneration):
		r.log.Info("restarting instance", "instance", in.ID, "config_changed", confChanged, "unit_changed", unitChanged, "restart_requested", applied < db.RestartGeneration)
		if err := r.sup.Restart(ctx, name); err != nil {
			return r.failed(in.ID, fmt.Errorf("restart: %w", err))
		}
	case us.ActiveState == "active":
		if err := r.applyRole(ctx, db, in, rep); err != nil {
			return r.lockedOut(in, err)
		}
		r.mu.Lock()
		delete(r.lockouts, in.ID)
		r.mu.Unlock()
	case us.ActiveState == "activating":
	case us.ActiveState == "failed" && instance.HAPrimary(db, in) && applied >= db.RestartGeneration:
		// It crashed, and its replicas may hold writes it lost (or, for
		// nordb, everything): restarting it in place would make them sync
		// that. The leader fails over instead; "db restart" overrides.
		return fmt.Errorf("the primary crashed and is left down for the leader to fail over (db restart %s restarts it in place)", db.Name)
	default:
		if f, ok := r.failure(in.ID); ok && time.Since(f.at) < retryAfter && !confChanged && !unitChanged {
			return f.err
		}
		r.log.Info("starting instance", "instance", in.ID, "unit", name, "port", in.Port)
		if err := r.sup.Start(ctx, name); err != nil {
			return r.failed(in.ID, fmt.Errorf("start: %w", err))
		}
		// It started fenced if it is an HA primary: lift that now if the
		// lease allows, rather than at the fencer's next look.
		if err := r.applyRole(ctx, db, in, rep); err != nil {
			return err
		}
	}
	r.clearFailure(in.ID)
	r.mu.Lock()
	r.epochs[in.ID] = db.Epoch
	r.mu.Unlock()
	if applied < db.RestartGeneration {
		return r.setAppliedGeneration(in.ID, db.RestartGeneration)
	}
	return nil
}

// removeUnwanted removes units and directories of instances that are no
// longer in the state for this node.
func (r *Reconciler) removeUnwanted(ctx context.Context, want map[string]bool) error {
	units, err := r.sup.List(ctx)
	if err != nil {
		return fmt.Errorf("list units: %w", err)
	}
	var errs []error
	for _, u := range units {
		id := instanceID(u)
		if want[id] {
			continue
		}
		r.log.Info("removing instance", "instance", id, "unit", u)
		if err := r.sup.Remove(ctx, u); err != nil {
			errs = append(errs, fmt.Errorf("remove unit %s: %w", u, err))
			continue
		}
		r.probes.forget(id)
		r.mu.Lock()
		delete(r.epochs, id)
		delete(r.acl, id)
		delete(r.tls, id)
		r.mu.Unlock()
	}
	entries, err := os.ReadDir(r.cfg.InstancesDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range entries {
		id := strings.TrimSuffix(e.Name(), ".generation")
		if want[id] {
			continue
		}
		path, err := r.local(e.Name())
		if err == nil {
			err = os.RemoveAll(path)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// chown gives an instance directory to the instance user. When the
// directory belongs to someone else (instance_user changed, e.g. by a
// package upgrade) everything in it is re-owned too, or redis-server could
// not write its own data files. dir comes from Dir, and the walk never
// follows a symbolic link (Lchown, and WalkDir does not descend into
// one), so nothing outside the instance's own directory changes owner.
func (r *Reconciler) chown(dir string) error {
	if r.cfg.UID < 0 && r.cfg.GID < 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == r.cfg.UID && int(st.Gid) == r.cfg.GID {
		return nil
	}
	err = filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, r.cfg.UID, r.cfg.GID)
	})
	if err != nil {
		return fmt.Errorf("give %s to the instance user: %w", dir, err)
	}
	return nil
}

func (r *Reconciler) appliedGeneration(id string) (uint64, bool) {
	path, err := r.generationFile(id)
	if err != nil {
		return 0, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	g, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return g, err == nil
}

func (r *Reconciler) setAppliedGeneration(id string, g uint64) error {
	path, err := r.generationFile(id)
	if err == nil {
		err = atomicfile.Write(path, []byte(strconv.FormatUint(g, 10)+"\n"), 0o600)
	}
	if err != nil {
		return fmt.Errorf("record restart generation: %w", err)
	}
	return nil
}

// AppliedGeneration reports the restart generation an instance has applied.
func (r *Reconciler) AppliedGeneration(id string) uint64 {
	g, _ := r.appliedGeneration(id)
	return g
}

func (r *Reconciler) failed(id string, err error) error {
	r.mu.Lock()
	r.failures[id] = failure{at: time.Now(), err: err}
	r.mu.Unlock()
	return err
}

func (r *Reconciler) failure(id string) (failure, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.failures[id]
	return f, ok
}

func (r *Reconciler) clearFailure(id string) {
	r.mu.Lock()
	delete(r.failures, id)
	r.mu.Unlock()
}

// Removed reports whether every instance of db on this node is gone: no
// unit and no directory.
func (r *Reconciler) Removed(ctx context.Context, db *raftstate.Database) bool {
	for _, in := range db.Instances {
		if in.Node != r.cfg.Node {
			continue
		}
		if _, err := r.sup.State(ctx, UnitName(in.ID)); !errors.Is(err, systemd.ErrUnitNotFound) {
			return false
		}
		dir, err := r.Dir(in.ID)
		if err != nil {
			continue // never created
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return false
		}
	}
	return true
}

// Present returns the IDs of the instances that have a unit on this node,
// whether or not the state still wants them (a deleted one is present until
// it is removed).
func (r *Reconciler) Present(ctx context.Context) ([]string, error) {
	units, err := r.sup.List(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(units))
	for _, u := range units {
		ids = append(ids, instanceID(u))
	}
	return ids, nil
}
