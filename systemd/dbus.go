package systemd

import (
	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// DefaultUnitDir is where NewDBus writes unit files when given "": the
// directory for the administrator's units, which package upgrades never
// touch.
const DefaultUnitDir = "/etc/systemd/system"

// Bounds on every wait. Job timeouts are longer than the unit's own
// TimeoutStopSec so that systemd, not us, decides when a stop has failed.
const (
	dbusDialTimeout     = 15 * time.Second
	dbusCallTimeout     = 30 * time.Second
	dbusStartJobTimeout = 5 * time.Minute
	dbusStopJobTimeout  = 6 * time.Minute
	// dbusConnCheckInterval is a safety net: a lost signal connection is
	// normally seen at once, when godbus closes its signal channel. A
	// check every second was a wake-up a second of every idle agent.
	dbusConnCheckInterval = 10 * time.Second
	dbusRedialBackoff     = 2 * time.Second
	// changesBuffer absorbs bursts (a reload touches every unit); a
	// consumer that falls further behind misses names, which is fine for a
	// level-triggered reconciler that also runs on a timer.
	changesBuffer = 256
)

// dbusErrNoSuchUnit is the D-Bus error systemd returns for a unit that has
// no file and is not loaded.
const dbusErrNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"

// DBus supervises instances as systemd units over D-Bus. It is the
// production Supervisor: systemd restarts crashed instances, starts them at
// boot and keeps them running while the agent is down.
type DBus struct {
	unitDir string
	log     *slog.Logger

	// Job timeouts are fields so that tests can shorten them.
	startTimeout time.Duration
	stopTimeout  time.Duration

	// base lives until Close; the connection is bound to it (godbus closes
	// a connection when its dial context ends), so it must not be a
	// caller's short-lived context.
	base   context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conn   *sddbus.Conn
	sigs   *unitWatch // the current change subscription
	closed bool

	changes chan string
	wg      sync.WaitGroup

	// facts caches MainPID and NRestarts between change signals.
	facts unitFacts
}

var _ Supervisor = (*DBus)(nil)

// NewDBus connects to systemd (the system bus, or systemd's private socket
// when running as root without a bus) and starts watching unit changes.
// unitDir is where unit files are written; "" means DefaultUnitDir. ctx
// bounds only the connection attempt; call Close to release the connection.
func NewDBus(ctx context.Context, unitDir string, log *slog.Logger) (*DBus, error) {
	if unitDir == "" {
		unitDir = DefaultUnitDir
	}
	if log == nil {
		log = slog.Default()
	}
	base, cancel := context.WithCancel(context.Background())
	d := &DBus{
		unitDir:      unitDir,
		log:          log.With("supervisor", "systemd"),
		startTimeout: dbusStartJobTimeout,
		stopTimeout:  dbusStopJobTimeout,
		base:         base,
		cancel:       cancel,
		changes:      make(chan string, changesBuffer),
	}
	if _, err := d.connection(ctx); err != nil {
		cancel()
		return nil, err
	}
	// Subscribe before returning so that no change after NewDBus is missed.
	w, err := d.subscribe(ctx)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.wg.Add(1)
	go d.watch(w)
	return d, nil
}

// Kind implements Supervisor.
func (d *DBus) Kind() string { return "systemd" }

// Changes implements Supervisor. The channel is closed by Close.
func (d *DBus) Changes() <-chan string { return d.changes }

// Close stops watching and closes the D-Bus connection. Units keep running.
func (d *DBus) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	conn, sigs := d.conn, d.sigs
	d.conn, d.sigs = nil, nil
	d.mu.Unlock()

	d.cancel()
	if conn != nil {
		conn.Close()
	}
	if sigs != nil {
		sigs.conn.Close()
	}
	d.wg.Wait()
	close(d.changes)
	return nil
}

// connection returns the live connection, dialling a new one when there is
// none or the old one was closed (dbus-daemon restarted, systemd
// re-executed).
func (d *DBus) connection(ctx context.Context) (*sddbus.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("systemd supervisor is closed")
	}
	if d.conn != nil && d.conn.Connected() {
		return d.conn, nil
	}
	if d.conn != nil {
		d.log.Warn("systemd D-Bus connection lost; reconnecting")
		d.conn.Close()
		d.conn = nil
	}
	conn, err := dialSystemd(ctx, d.base)
	if err != nil {
		return nil, err
	}
	d.conn = conn
	return conn, nil
}

// dialSystemd connects go-systemd's client within dbusDialTimeout (and
// ctx); the connection lives until life ends.
func dialSystemd(ctx, life context.Context) (*sddbus.Conn, error) {
	c, err := dialBounded(ctx, func() (*sddbus.Conn, error) { return sddbus.NewWithContext(life) }, (*sddbus.Conn).Close)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus (is systemd PID 1 and dbus running? otherwise use the process supervisor): %w", err)
	}
	return c, nil
}

// dialBounded runs dial within dbusDialTimeout and ctx. godbus's
// authentication handshake takes no deadline, so the dial runs in a
// goroutine, and a connection that arrives after we gave up is closed.
func dialBounded[C any](ctx context.Context, dial func() (C, error), closeConn func(C)) (C, error) {
	type result struct {
		conn C
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := dial()
		ch <- result{c, err}
	}()
	timer := time.NewTimer(dbusDialTimeout)
	defer timer.Stop()
	abandon := func() {
		go func() {
			if r := <-ch; r.err == nil {
				closeConn(r.conn)
			}
		}()
	}
	var zero C
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-timer.C:
		abandon()
		return zero, fmt.Errorf("no answer within %s; check that dbus.service is running", dbusDialTimeout)
	case <-ctx.Done():
		abandon()
		return zero, ctx.Err()
	}
}

// dropConn forgets conn if it is still the current connection, so the next
// call dials again.
func (d *DBus) dropConn(conn *sddbus.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == conn {
		d.conn = nil
		conn.Close()
	}
}

// do runs f with a connection and retries once on a fresh connection when
// the old one turned out to be closed, as runc's systemd driver does.
func (d *DBus) do(ctx context.Context, f func(ctx context.Context, c *sddbus.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := d.connection(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := boundCtx(ctx, dbusCallTimeout)
		err = f(cctx, c)
		cancel()
		if err == nil || attempt > 0 || ctx.Err() != nil || !isDisconnected(c, err) {
			return err
		}
		d.log.Warn("systemd D-Bus call failed on a closed connection; retrying once", "err", err)
		d.dropConn(c)
	}
}

// boundCtx adds a timeout to ctx unless it already has an earlier deadline.
func boundCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func isDisconnected(c *sddbus.Conn, err error) bool {
	return errors.Is(err, godbus.ErrClosed) || !c.Connected() ||
		dbusErrorName(err) == "org.freedesktop.DBus.Error.NoReply" ||
		dbusErrorName(err) == "org.freedesktop.DBus.Error.Disconnected"
}

func dbusErrorName(err error) string {
	var v godbus.Error
	if errors.As(err, &v) {
		return v.Name
	}
	var p *godbus.Error
	if errors.As(err, &p) && p != nil {
		return p.Name
	}
	return ""
}

func isNoSuchUnit(err error) bool { return dbusErrorName(err) == dbusErrNoSuchUnit }

// unitGone reports whether systemd's view of a unit means "does not exist":
// no file, and nothing left running (a unit whose file was deleted keeps
// running until stopped, and must still be visible then).
func unitGone(loadState, activeState any) bool {
	return loadState == "not-found" && (activeState == "inactive" || activeState == "failed" || activeState == "" || activeState == nil)
}

func (d *DBus) unitPath(name string) string { return filepath.Join(d.unitDir, name) }

// Install implements Supervisor: it writes the unit file atomically, reloads
// systemd only when the file changed (or systemd has not seen it yet) and
// enables the unit for boot.
func (d *DBus) Install(ctx context.Context, spec UnitSpec) (bool, error) {
	if err := spec.Validate(); err != nil {
		return false, fmt.Errorf("install unit: %w", err)
	}
	data := RenderUnit(spec)
	path := d.unitPath(spec.Name)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("install unit %s: read %s: %w", spec.Name, path, err)
	}
	changed := err != nil || !bytes.Equal(old, data)
	if !changed && d.facts.installedRecently(spec.Name, data) {
		// Checked with systemd lately and the file is the same: every
		// reconcile pass installs every unit, and asking systemd for all
		// of a unit's properties each time costs it (and us) more than
		// anything else the agent does when idle.
		return false, nil
	}
	if changed {
		if err := os.MkdirAll(d.unitDir, 0o755); err != nil {
			return false, fmt.Errorf("install unit %s: create %s: %w", spec.Name, d.unitDir, err)
		}
		if err := atomicfile.Write(path, data, UnitFileMode); err != nil {
			return false, fmt.Errorf("install unit %s: %w", spec.Name, err)
		}
	}

	var props map[string]any
	err = d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
		var err error
		props, err = c.GetUnitPropertiesContext(ctx, spec.Name)
		return err
	})
	if err != nil {
		return changed, fmt.Errorf("install unit %s: read its state from systemd: %w", spec.Name, err)
	}
	// A file written by an agent that died before reloading is unchanged
	// now but still unknown to systemd: reload for that too.
	reload := changed || props["NeedDaemonReload"] == true || props["LoadState"] == "not-found"

	if props["UnitFileState"] != "enabled" {
		// Names in systemd's search path are enabled by name; a file
		// elsewhere is linked in by its full path.
		target := path
		if d.unitDir == DefaultUnitDir || d.unitDir == "/run/systemd/system" {
			target = spec.Name
		}
		if !reload {
			// systemd has to know the file before it can enable it.
			if err := d.reload(ctx); err != nil {
				return changed, fmt.Errorf("install unit %s: %w", spec.Name, err)
			}
		}
		err = d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
			_, _, err := c.EnableUnitFilesContext(ctx, []string{target}, false, true)
			return err
		})
		if err != nil {
			return changed, fmt.Errorf("install unit %s: enable it: %w", spec.Name, err)
		}
		reload = true
	}
	if reload {
		if err := d.reload(ctx); err != nil {
			return changed, fmt.Errorf("install unit %s: %w", spec.Name, err)
		}
	}
	if changed {
		d.log.Info("unit installed", "unit", spec.Name, "path", path)
	}
	d.facts.installed(spec.Name, data)
	return changed, nil
}

func (d *DBus) reload(ctx context.Context) error {
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error { return c.ReloadContext(ctx) })
	if err != nil {
		return fmt.Errorf("reload systemd (systemctl daemon-reload): %w", err)
	}
	return nil
}

// jobFunc enqueues one systemd job whose result goes to ch.
type jobFunc func(ctx context.Context, c *sddbus.Conn, ch chan<- string) (int, error)

// runJob enqueues a job and waits for its result on a buffered channel, so
// go-systemd's signal dispatcher never blocks on us, with a timeout. If the
// connection drops while waiting, the JobRemoved signal is lost with it, so
// the outcome is read from the unit's state instead.
func (d *DBus) runJob(ctx context.Context, name, op string, timeout time.Duration, enqueue jobFunc) (string, error) {
	ch := make(chan string, 1)
	var conn *sddbus.Conn
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
		conn = c
		_, err := enqueue(ctx, c, ch)
		return err
	})
	if err != nil {
		if isNoSuchUnit(err) {
			return "", fmt.Errorf("%s %s: %w (install it first)", op, name, ErrUnitNotFound)
		}
		return "", fmt.Errorf("%s %s: enqueue systemd job: %w", op, name, err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	check := time.NewTicker(dbusConnCheckInterval)
	defer check.Stop()
	for {
		select {
		case res := <-ch:
			return res, nil
		case <-check.C:
			if !conn.Connected() {
				d.log.Warn("systemd D-Bus connection lost while waiting for a job; polling the unit state", "unit", name, "op", op)
				return d.settle(ctx, name, op, deadline.C)
			}
		case <-deadline.C:
			return "", fmt.Errorf("%s %s: systemd job did not finish within %s (%s); it goes on in the background, check systemctl status %s", op, name, timeout, d.describe(ctx, name), name)
		case <-ctx.Done():
			return "", fmt.Errorf("%s %s: gave up waiting for the systemd job: %w", op, name, ctx.Err())
		}
	}
}

// settle polls the unit until it leaves the transitional states and turns
// the outcome into a job result.
func (d *DBus) settle(ctx context.Context, name, op string, deadline <-chan time.Time) (string, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := d.State(ctx, name)
		if err == nil {
			switch {
			case op == "stop" && (st.ActiveState == "inactive" || st.ActiveState == "failed"):
				return "done", nil
			case op != "stop" && st.ActiveState == "active":
				return "done", nil
			case op != "stop" && st.ActiveState == "failed":
				return "failed", nil
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			return "", fmt.Errorf("%s %s: unit did not settle in time after the D-Bus connection was lost (%s)", op, name, d.describe(ctx, name))
		case <-ctx.Done():
			return "", fmt.Errorf("%s %s: %w", op, name, ctx.Err())
		}
	}
}

// describe summarises a unit's state for error messages; it never fails.
func (d *DBus) describe(ctx context.Context, name string) string {
	var unit, svc map[string]any
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
		var err error
		if unit, err = c.GetUnitPropertiesContext(ctx, name); err != nil {
			return err
		}
		svc, err = c.GetUnitTypePropertiesContext(ctx, name, "Service")
		return err
	})
	if err != nil {
		return "state unknown: " + err.Error()
	}
	s := fmt.Sprintf("state %v/%v, result %v", unit["ActiveState"], unit["SubState"], svc["Result"])
	if code, ok := svc["ExecMainCode"].(int32); ok && code != 0 {
		s += fmt.Sprintf(", main process %s %v", exitCodeWord(code), svc["ExecMainStatus"])
	}
	if t, ok := svc["StatusText"].(string); ok && t != "" {
		s += fmt.Sprintf(", status %q", t)
	}
	return s
}

// exitCodeWord names the siginfo si_code systemd reports as ExecMainCode.
func exitCodeWord(code int32) string {
	switch code {
	case 1:
		return "exited with status"
	case 2:
		return "killed by signal"
	case 3:
		return "dumped core on signal"
	}
	return fmt.Sprintf("ended (code %d) with", code)
}

// Start implements Supervisor. It clears a previous failed state first,
// because systemd refuses to start a unit that hit its start limit.
func (d *DBus) Start(ctx context.Context, name string) error {
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	if err != nil && !isNoSuchUnit(err) {
		d.log.Warn("reset-failed before start did not work", "unit", name, "err", err)
	}
	res, err := d.runJob(ctx, name, "start", d.startTimeout, func(ctx context.Context, c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StartUnitContext(ctx, name, "replace", ch)
	})
	if err != nil {
		return err
	}
	if res != "done" {
		return fmt.Errorf("start %s: systemd job %s (%s); see journalctl -u %s", name, res, d.describe(ctx, name), name)
	}
	d.log.Info("unit started", "unit", name)
	return nil
}

// Stop implements Supervisor.
func (d *DBus) Stop(ctx context.Context, name string) error {
	res, err := d.runJob(ctx, name, "stop", d.stopTimeout, func(ctx context.Context, c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, name, "replace", ch)
	})
	if err != nil {
		return err
	}
	if res != "done" {
		return fmt.Errorf("stop %s: systemd job %s (%s); see journalctl -u %s", name, res, d.describe(ctx, name), name)
	}
	d.log.Info("unit stopped", "unit", name)
	return nil
}

// Restart implements Supervisor.
func (d *DBus) Restart(ctx context.Context, name string) error {
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	if err != nil && !isNoSuchUnit(err) {
		d.log.Warn("reset-failed before restart did not work", "unit", name, "err", err)
	}
	res, err := d.runJob(ctx, name, "restart", d.startTimeout+d.stopTimeout, func(ctx context.Context, c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.RestartUnitContext(ctx, name, "replace", ch)
	})
	if err != nil {
		return err
	}
	if res != "done" {
		return fmt.Errorf("restart %s: systemd job %s (%s); see journalctl -u %s", name, res, d.describe(ctx, name), name)
	}
	d.log.Info("unit restarted", "unit", name)
	return nil
}

// Remove implements Supervisor. Removing a unit that does not exist is not
// an error, so a reconciler can repeat it.
func (d *DBus) Remove(ctx context.Context, name string) error {
	if !strings.HasPrefix(name, UnitPrefix) {
		return fmt.Errorf("remove %s: not a redis-appliance unit (name must start with %q)", name, UnitPrefix)
	}
	path := d.unitPath(name)
	d.facts.forget(name)
	_, statErr := os.Stat(path)
	if _, err := d.State(ctx, name); errors.Is(err, ErrUnitNotFound) && errors.Is(statErr, fs.ErrNotExist) {
		return nil // already removed
	}
	if err := d.Stop(ctx, name); err != nil && !errors.Is(err, ErrUnitNotFound) {
		return fmt.Errorf("remove: %w", err)
	}
	target := name
	if d.unitDir != DefaultUnitDir && d.unitDir != "/run/systemd/system" {
		target = path
	}
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
		_, err := c.DisableUnitFilesContext(ctx, []string{target}, false)
		return err
	})
	if err != nil && !isNoSuchUnit(err) && !os.IsNotExist(err) {
		// Disabling a unit whose file is already gone fails; the
		// symlinks went with it, so only log.
		d.log.Warn("disable unit failed", "unit", name, "err", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: delete %s: %w", name, path, err)
	}
	if err := atomicfile.SyncDir(d.unitDir); err != nil {
		d.log.Warn("sync unit directory failed", "dir", d.unitDir, "err", err)
	}
	if err := d.reload(ctx); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	err = d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error { return c.ResetFailedUnitContext(ctx, name) })
	if err != nil && !isNoSuchUnit(err) {
		d.log.Warn("reset-failed after remove did not work", "unit", name, "err", err)
	}
	d.emit(name)
	d.log.Info("unit removed", "unit", name)
	return nil
}

// State implements Supervisor.
func (d *DBus) State(ctx context.Context, name string) (UnitState, error) {
	return stateOf(ctx, d, name)
}

// States implements Supervisor with one ListUnitsByNames call for all the
// names. MainPID and NRestarts are asked for only when a unit is new to
// us, its state moved, or systemd signalled a change to it since: the
// agent observes every instance every few seconds, and both the agent and
// systemd pay for each call.
func (d *DBus) States(ctx context.Context, names []string) (map[string]UnitState, error) {
	out := map[string]UnitState{}
	if len(names) == 0 {
		return out, nil
	}
	gen := d.facts.generation()
	err := d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
		clear(out)
		units, err := c.ListUnitsByNamesContext(ctx, names)
		if err != nil {
			return err
		}
		for _, u := range units {
			if unitGone(u.LoadState, u.ActiveState) {
				continue
			}
			st := UnitState{Name: u.Name, ActiveState: u.ActiveState, SubState: u.SubState}
			if f, ok := d.facts.get(st); ok {
				st.MainPID, st.Restarts = f.MainPID, f.Restarts
				out[u.Name] = st
				continue
			}
			p, err := c.GetServicePropertyContext(ctx, u.Name, "MainPID")
			if isNoSuchUnit(err) {
				continue // gone between the two calls
			}
			if err != nil {
				return err
			}
			n, err := c.GetServicePropertyContext(ctx, u.Name, "NRestarts")
			if isNoSuchUnit(err) {
				continue
			}
			if err != nil {
				return err
			}
			if v, ok := p.Value.Value().(uint32); ok {
				st.MainPID = int(v)
			}
			if v, ok := n.Value.Value().(uint32); ok {
				st.Restarts = int(v)
			}
			d.facts.put(gen, st)
			out[u.Name] = st
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", strings.Join(names, ", "), err)
	}
	return out, nil
}

// List implements Supervisor: unit files in the unit directory plus units
// systemd has loaded (a unit can outlive its file until it stops).
func (d *DBus) List(ctx context.Context) ([]string, error) {
	var names []string
	entries, err := os.ReadDir(d.unitDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list units: read %s: %w", d.unitDir, err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, UnitPrefix) && strings.HasSuffix(n, ".service") && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	var loaded []sddbus.UnitStatus
	err = d.do(ctx, func(ctx context.Context, c *sddbus.Conn) error {
		var err error
		loaded, err = c.ListUnitsByPatternsContext(ctx, nil, []string{UnitPrefix + "*.service"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list units from systemd: %w", err)
	}
	for _, u := range loaded {
		// Merely referenced names (someone asked for their state) are
		// loaded as not-found; they do not exist.
		if unitGone(u.LoadState, u.ActiveState) {
			continue
		}
		names = append(names, u.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// emit forgets what is cached about the unit and queues the change
// without blocking; see changesBuffer.
func (d *DBus) emit(name string) {
	d.facts.forget(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	select {
	case d.changes <- name:
	default:
		d.log.Debug("changes channel full; dropping notification", "unit", name)
	}
}
