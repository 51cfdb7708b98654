package systemd

import (
	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processLogMax is the size at which a unit's log is rotated to LOG.1 on
// the next start; there is no logrotate for it.
const processLogMax = 16 << 20

// processTimings are the process supervisor's equivalents of the unit's
// RestartSec, TimeoutStartSec, TimeoutStopSec and StartLimitBurst. They are
// a package variable so that tests can shorten them before NewProcess.
type processTimings struct {
	restartDelay time.Duration
	readyTimeout time.Duration
	stopTimeout  time.Duration
	// pollInterval is how often a reattached process (not our child, so
	// no wait status) is checked for life.
	pollInterval time.Duration
	// startLimit failed attempts in a row make the unit "failed".
	startLimit int
}

var defaultProcessTimings = processTimings{
	restartDelay: time.Second,
	readyTimeout: 2 * time.Minute,
	stopTimeout:  90 * time.Second,
	pollInterval: 250 * time.Millisecond,
	startLimit:   5,
}

// servicePath is the PATH of supervised processes: the agent's environment
// is not passed on, so nothing of it (tokens, proxies) leaks into redis.
const servicePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Process supervises instances as child processes of the agent, for hosts
// where systemd is not PID 1. It emulates what the unit file asks of
// systemd: Type=notify readiness, Restart=always, a start limit, stop with
// SIGTERM then SIGKILL, and units that keep running while the agent is
// down (a restarted agent reattaches through the pidfile). It cannot
// sandbox the process or set its umask; give each instance a 0700
// directory.
type Process struct {
	stateDir string
	log      *slog.Logger
	t        processTimings
	root     bool

	mu      sync.Mutex
	units   map[string]*procUnit
	closed  bool
	changes chan string
	wg      sync.WaitGroup
}

var _ Supervisor = (*Process)(nil)

// procUnit is one installed unit. Fields are guarded by Process.mu.
type procUnit struct {
	spec  UnitSpec
	state UnitState
	// failures counts start attempts in a row that never became ready.
	failures int
	run      *procRun
	notify   *notifySocket
	// waiters get the outcome of the next start attempt.
	waiters []chan error
}

// procRun controls the goroutine that keeps one unit running.
type procRun struct {
	stop       chan struct{} // closed: terminate the process, then end
	detach     chan struct{} // closed: end and leave the process running
	done       chan struct{} // closed when the goroutine has returned
	stopOnce   sync.Once
	detachOnce sync.Once
}

func (r *procRun) requestStop()   { r.stopOnce.Do(func() { close(r.stop) }) }
func (r *procRun) requestDetach() { r.detachOnce.Do(func() { close(r.detach) }) }

var (
	errStopRequested = errors.New("stop requested")
	errDetached      = errors.New("supervisor closed")
)

// NewProcess opens the process supervisor whose specs and pidfiles live in
// stateDir. Units whose pidfile names a live redis-server are reattached;
// units that were running when the agent stopped but have died since are
// started again, as systemd's Restart=always would have done.
func NewProcess(stateDir string, log *slog.Logger) (*Process, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process supervisor: create state directory %s: %w", stateDir, err)
	}
	if err := ownStateDir(stateDir); err != nil {
		return nil, err
	}
	p := &Process{
		stateDir: stateDir,
		log:      log.With("supervisor", "process"),
		t:        defaultProcessTimings,
		root:     os.Geteuid() == 0,
		units:    map[string]*procUnit{},
		changes:  make(chan string, changesBuffer),
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return nil, fmt.Errorf("process supervisor: read state directory %s: %w", stateDir, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !strings.HasPrefix(name, UnitPrefix) || strings.HasSuffix(name, ".proc") {
			continue
		}
		spec, err := p.readSpec(name)
		if err != nil {
			p.log.Error("ignoring unreadable unit spec; reinstall the unit", "unit", name, "err", err)
			continue
		}
		u := &procUnit{spec: spec, state: UnitState{Name: name, ActiveState: "inactive", SubState: "dead"}}
		p.units[name] = u
		if err := p.recover(u); err != nil {
			p.log.Error("cannot resume unit", "unit", name, "err", err)
		}
	}
	return p, nil
}

// recover reattaches to u's process or restarts it if the pidfile says it
// should be running. Called before p is shared, so no lock is needed.
func (p *Process) recover(u *procUnit) error {
	name := u.spec.Name
	pid, err := readPidfile(p.pidPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pr, err := p.attach(u.spec, pid)
	if err == nil {
		p.log.Info("reattached to running process", "unit", name, "pid", pid)
		u.state = UnitState{Name: name, ActiveState: "active", SubState: "running", MainPID: pid}
		return p.startRunner(u, pr)
	}
	p.log.Warn("unit was running when the agent stopped but its process is gone; starting it again", "unit", name, "pid", pid, "why", err)
	u.state.Restarts = 1
	return p.startRunner(u, nil)
}

// Kind implements Supervisor.
func (p *Process) Kind() string { return "process" }

// Changes implements Supervisor. The channel is closed by Close.
func (p *Process) Changes() <-chan string { return p.changes }

func (p *Process) specPath(name string) string { return filepath.Join(p.stateDir, name+".json") }
func (p *Process) pidPath(name string) string  { return filepath.Join(p.stateDir, name+".pid") }

// LogPath is the file that receives the unit's stdout and stderr (systemd
// sends them to the journal instead). It is in the state directory, which
// only the agent can write: in the instance directory, which the
// instance's user can write, a symbolic link put in its place would make
// the agent, as root, append to any file it names.
func (p *Process) LogPath(name string) string { return filepath.Join(p.stateDir, name+".log") }
func (p *Process) identPath(name string) string {
	return filepath.Join(p.stateDir, name+".proc.json")
}

func (p *Process) readSpec(name string) (UnitSpec, error) {
	var spec UnitSpec
	data, err := os.ReadFile(p.specPath(name))
	if err != nil {
		return spec, err
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return spec, fmt.Errorf("decode %s: %w", p.specPath(name), err)
	}
	if spec.Name != name {
		return spec, fmt.Errorf("%s holds unit %q", p.specPath(name), spec.Name)
	}
	return spec, spec.Validate()
}

// Install implements Supervisor: the spec is saved as JSON (0600) so that a
// restarted agent knows the unit. A changed spec applies at the next start,
// as a changed unit file does under systemd.
func (p *Process) Install(ctx context.Context, spec UnitSpec) (bool, error) {
	if err := spec.Validate(); err != nil {
		return false, fmt.Errorf("install unit: %w", err)
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return false, fmt.Errorf("install unit %s: encode spec: %w", spec.Name, err)
	}
	data = append(data, '\n')
	path := p.specPath(spec.Name)
	old, err := os.ReadFile(path)
	changed := err != nil || !bytes.Equal(old, data)
	if changed {
		if err := atomicfile.Write(path, data, 0o600); err != nil {
			return false, fmt.Errorf("install unit %s: %w", spec.Name, err)
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return changed, errors.New("install unit: process supervisor is closed")
	}
	u, ok := p.units[spec.Name]
	if ok {
		u.spec = spec
	} else {
		p.units[spec.Name] = &procUnit{spec: spec, state: UnitState{Name: spec.Name, ActiveState: "inactive", SubState: "dead"}}
	}
	p.mu.Unlock()
	if !ok {
		p.emit(spec.Name)
	}
	if changed {
		p.log.Info("unit installed", "unit", spec.Name, "path", path)
	}
	return changed, nil
}

// startWaitBound is the longest a Start caller waits for one attempt: a
// backoff in progress plus the readiness timeout plus slack.
func (p *Process) startWaitBound() time.Duration {
	return p.t.restartDelay + p.t.readyTimeout + 10*time.Second
}

// Start implements Supervisor. Like a systemd start job it reports the
// outcome of the first attempt; if that attempt fails the unit keeps being
// restarted in the background until the start limit makes it "failed".
func (p *Process) Start(ctx context.Context, name string) error {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return fmt.Errorf("start %s: process supervisor is closed", name)
		}
		u, ok := p.units[name]
		if !ok {
			p.mu.Unlock()
			return fmt.Errorf("start %s: %w (install it first)", name, ErrUnitNotFound)
		}
		if r := u.run; r != nil {
			select {
			case <-r.stop:
				// A stop is in progress: let it finish, then start.
				p.mu.Unlock()
				if err := p.waitRun(ctx, name, r); err != nil {
					return fmt.Errorf("start %s: %w", name, err)
				}
				continue
			default:
			}
			if u.state.ActiveState == "active" {
				p.mu.Unlock()
				return nil
			}
		}
		ch := make(chan error, 1)
		u.waiters = append(u.waiters, ch)
		if u.run == nil {
			// A manual start clears the failed state and the restart
			// counter, as systemctl start does.
			u.failures = 0
			u.state.Restarts = 0
			if err := p.startRunner(u, nil); err != nil {
				u.waiters = slices.DeleteFunc(u.waiters, func(c chan error) bool { return c == ch })
				p.mu.Unlock()
				return fmt.Errorf("start %s: %w", name, err)
			}
		}
		p.mu.Unlock()

		timer := time.NewTimer(p.startWaitBound())
		defer timer.Stop()
		select {
		case err := <-ch:
			if err != nil {
				return fmt.Errorf("start %s: %w", name, err)
			}
			p.log.Info("unit started", "unit", name)
			return nil
		case <-timer.C:
			return fmt.Errorf("start %s: no outcome within %s (state %s); it goes on in the background", name, p.startWaitBound(), p.describe(name))
		case <-ctx.Done():
			return fmt.Errorf("start %s: gave up waiting: %w", name, ctx.Err())
		}
	}
}

// waitRun waits, bounded, for a unit's runner to end.
func (p *Process) waitRun(ctx context.Context, name string, r *procRun) error {
	bound := p.t.stopTimeout + 10*time.Second
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-r.done:
		return nil
	case <-timer.C:
		return fmt.Errorf("unit %s did not stop within %s (state %s)", name, bound, p.describe(name))
	case <-ctx.Done():
		return fmt.Errorf("waiting for unit %s to stop: %w", name, ctx.Err())
	}
}

// Stop implements Supervisor: SIGTERM, then SIGKILL after the stop timeout.
func (p *Process) Stop(ctx context.Context, name string) error {
	p.mu.Lock()
	u, ok := p.units[name]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("stop %s: %w", name, ErrUnitNotFound)
	}
	r := u.run
	if r == nil {
		p.mu.Unlock()
		return nil
	}
	r.requestStop()
	p.mu.Unlock()
	if err := p.waitRun(ctx, name, r); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	p.log.Info("unit stopped", "unit", name)
	return nil
}

// Restart implements Supervisor.
func (p *Process) Restart(ctx context.Context, name string) error {
	if err := p.Stop(ctx, name); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if err := p.Start(ctx, name); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Remove implements Supervisor: stop, then forget the unit and delete its
// files in the state directory. The instance directory is left alone.
func (p *Process) Remove(ctx context.Context, name string) error {
	if err := p.Stop(ctx, name); err != nil {
		if errors.Is(err, ErrUnitNotFound) {
			return nil
		}
		return fmt.Errorf("remove: %w", err)
	}
	p.mu.Lock()
	if u := p.units[name]; u != nil && u.run != nil {
		p.mu.Unlock()
		return fmt.Errorf("remove %s: it was started again while being removed; retry the removal", name)
	}
	delete(p.units, name)
	p.mu.Unlock()
	for _, path := range []string{p.pidPath(name), p.identPath(name), p.specPath(name), p.LogPath(name), p.LogPath(name) + ".1"} {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: delete %s: %w", name, path, err)
		}
	}
	p.emit(name)
	p.log.Info("unit removed", "unit", name)
	return nil
}

// State implements Supervisor.
func (p *Process) State(ctx context.Context, name string) (UnitState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.units[name]
	if !ok {
		return UnitState{}, fmt.Errorf("state of %s: %w", name, ErrUnitNotFound)
	}
	return u.state, nil
}

// States implements Supervisor.
func (p *Process) States(ctx context.Context, names []string) (map[string]UnitState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]UnitState, len(names))
	for _, n := range names {
		if u, ok := p.units[n]; ok {
			out[n] = u.state
		}
	}
	return out, nil
}

// List implements Supervisor.
func (p *Process) List(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.units))
	for n := range p.units {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Close stops supervising. Processes keep running and their pidfiles stay,
// so the next NewProcess on the same state directory reattaches to them.
func (p *Process) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var runs []*procRun
	for _, u := range p.units {
		if u.run != nil {
			u.run.requestDetach()
			runs = append(runs, u.run)
		}
	}
	p.mu.Unlock()

	bound := time.NewTimer(p.t.stopTimeout + 10*time.Second)
	defer bound.Stop()
	for _, r := range runs {
		select {
		case <-r.done:
		case <-bound.C:
			return errors.New("close process supervisor: a unit did not let go in time; its goroutine is still running")
		}
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-bound.C:
		return errors.New("close process supervisor: notify readers did not stop in time")
	}
	close(p.changes)
	return nil
}

// emit queues a change without blocking.
func (p *Process) emit(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.emitLocked(name)
}

func (p *Process) emitLocked(name string) {
	if p.closed {
		return
	}
	select {
	case p.changes <- name:
	default:
		p.log.Debug("changes channel full; dropping notification", "unit", name)
	}
}

// setState records a state and announces it if it differs.
func (p *Process) setState(u *procUnit, active, sub string, pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u.state.ActiveState == active && u.state.SubState == sub && u.state.MainPID == pid {
		return
	}
	u.state.ActiveState, u.state.SubState, u.state.MainPID = active, sub, pid
	p.emitLocked(u.spec.Name)
}

func (p *Process) describe(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.units[name]
	if !ok {
		return "not installed"
	}
	return fmt.Sprintf("%s/%s, main pid %d, %d restarts", u.state.ActiveState, u.state.SubState, u.state.MainPID, u.state.Restarts)
}

// startRunner opens the unit's notify socket and starts the goroutine that
// keeps it running. cur is a process to watch (reattach) or nil to spawn
// one. The caller holds p.mu or owns p exclusively.
func (p *Process) startRunner(u *procUnit, cur *proc) error {
	ns, err := openNotifySocket(p.stateDir, u.spec.Name, p.log)
	if err != nil {
		return err
	}
	r := &procRun{stop: make(chan struct{}), detach: make(chan struct{}), done: make(chan struct{})}
	u.run, u.notify = r, ns
	p.wg.Add(2)
	go func() { defer p.wg.Done(); ns.serve() }()
	go p.run(u, r, ns, cur)
	return nil
}

// run keeps one unit running until it is stopped, fails too often, or the
// supervisor is closed.
func (p *Process) run(u *procUnit, r *procRun, ns *notifySocket, cur *proc) {
	defer p.wg.Done()
	// Install replaces u.spec under p.mu while the unit runs.
	p.mu.Lock()
	name := u.spec.Name
	p.mu.Unlock()
	// end leaves the unit in its final state and wakes every waiter.
	end := func(active, sub string, waitErr error) {
		ns.close()
		p.mu.Lock()
		u.run, u.notify = nil, nil
		for _, w := range u.waiters {
			w <- waitErr
		}
		u.waiters = nil
		if active != "" {
			u.state.ActiveState, u.state.SubState, u.state.MainPID = active, sub, 0
			p.emitLocked(name)
		}
		p.mu.Unlock()
		close(r.done)
	}
	// interrupted ends the runner after a stop or close request that came
	// while no process was running.
	interrupted := func(why error) {
		if errors.Is(why, errStopRequested) {
			p.removeRunFiles(name)
			end("inactive", "dead", errors.New("stopped before it became ready"))
			return
		}
		end("", "", errors.New("supervisor closed before the unit became ready"))
	}
	for {
		if cur == nil {
			pr, err := p.attempt(u, r, ns)
			switch {
			case errors.Is(err, errStopRequested), errors.Is(err, errDetached):
				interrupted(err)
				return
			case err != nil:
				p.log.Warn("start attempt failed", "unit", name, "err", err)
				if p.attemptFailed(u, err) {
					p.removeRunFiles(name)
					p.log.Error("unit failed: too many start attempts in a row; fix the cause and start it again", "unit", name, "attempts", p.t.startLimit)
					end("failed", "failed", err)
					return
				}
				if why := p.backoff(u, r); why != nil {
					interrupted(why)
					return
				}
				continue
			}
			cur = pr
		}
		if cur.attached {
			go cur.poll(p.t.pollInterval, r.done)
		}
		select {
		case <-cur.exited:
			p.mu.Lock()
			noRestart := u.spec.NoRestart
			p.mu.Unlock()
			if noRestart {
				p.log.Warn("process exited; left down (Restart=no)", "unit", name, "pid", cur.pid, "status", cur.status)
				p.removeRunFiles(name)
				end("failed", "failed", fmt.Errorf("exited: %s", cur.status))
				return
			}
			p.log.Warn("process exited; restarting it", "unit", name, "pid", cur.pid, "status", cur.status)
			cur = nil
			if why := p.backoff(u, r); why != nil {
				interrupted(why)
				return
			}
		case <-r.stop:
			p.terminate(u, cur)
			p.removeRunFiles(name)
			end("inactive", "dead", errors.New("stopped"))
			return
		case <-r.detach:
			end("", "", errors.New("supervisor closed"))
			return
		}
	}
}

// attempt spawns the process and waits for READY=1. On success the unit is
// active and the process is returned.
func (p *Process) attempt(u *procUnit, r *procRun, ns *notifySocket) (*proc, error) {
	p.mu.Lock()
	spec := u.spec
	p.mu.Unlock()
	p.setState(u, "activating", "start", 0)
	pr, err := p.spawn(spec, ns)
	if err != nil {
		return nil, err
	}
	p.setState(u, "activating", "start", pr.pid)
	err = p.awaitReady(spec, r, ns, pr)
	switch {
	case errors.Is(err, errDetached):
		return nil, err
	case errors.Is(err, errStopRequested):
		p.terminate(u, pr)
		return nil, err
	case err != nil:
		p.killGroup(pr)
		return nil, err
	}
	p.mu.Lock()
	u.failures = 0
	u.state.ActiveState, u.state.SubState, u.state.MainPID = "active", "running", pr.pid
	for _, w := range u.waiters {
		w <- nil
	}
	u.waiters = nil
	p.emitLocked(spec.Name)
	p.mu.Unlock()
	return pr, nil
}

// attemptFailed counts a failed attempt, reports it to waiters and says
// whether the start limit is reached.
func (p *Process) attemptFailed(u *procUnit, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	u.failures++
	for _, w := range u.waiters {
		w <- err
	}
	u.waiters = nil
	return u.failures >= p.t.startLimit
}

// backoff waits RestartSec in state activating/auto-restart, as systemd
// does, and counts the restart. It returns errStopRequested or errDetached
// if that happened meanwhile.
func (p *Process) backoff(u *procUnit, r *procRun) error {
	p.setState(u, "activating", "auto-restart", 0)
	timer := time.NewTimer(p.t.restartDelay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.stop:
		return errStopRequested
	case <-r.detach:
		return errDetached
	}
	p.mu.Lock()
	u.state.Restarts++
	p.mu.Unlock()
	return nil
}

// spawn starts the process in its own process group (so that signals to the
// agent's group, like Ctrl-C, do not reach it) with a clean environment and
// writes the pidfile.
func (p *Process) spawn(spec UnitSpec, ns *notifySocket) (*proc, error) {
	if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("instance directory %s is missing; create it (owned by the service user) before starting", spec.Dir)
	}
	logPath := p.LogPath(spec.Name)
	if fi, err := os.Lstat(logPath); err == nil && fi.Size() > processLogMax {
		if err := os.Rename(logPath, logPath+".1"); err != nil {
			p.log.Warn("cannot rotate process log", "path", logPath, "err", err)
		}
	}
	// O_NOFOLLOW as well: never write through a link, wherever it is.
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log file %s: %w", logPath, err)
	}
	defer logf.Close() // the child has its own copy
	offset, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "-- redis-appliance: starting %s at %s --\n", spec.Name, time.Now().Format(time.RFC3339))

	cmd := exec.Command(spec.ExecStart[0], spec.ExecStart[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = []string{servicePath, "NOTIFY_SOCKET=" + ns.addr}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	switch {
	case spec.User != "" && p.root:
		cred, err := lookupCredential(spec.User, spec.Group)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr.Credential = cred
	case spec.User != "":
		p.log.Debug("not root: running the unit as the agent's own user", "unit", spec.Name, "user", spec.User)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot execute %s: %w; check that it is installed and executable", spec.ExecStart[0], err)
	}
	pr := &proc{pid: cmd.Process.Pid, exited: make(chan struct{}), logPath: logPath, logOffset: offset}
	go func() {
		err := cmd.Wait()
		pr.status = exitStatus(cmd.ProcessState, err)
		close(pr.exited)
	}()
	if st, err := readProcStat(pr.pid); err == nil {
		pr.startTicks = st.startTicks
	}
	if err := p.writeRunFiles(spec.Name, pr); err != nil {
		// Without a pidfile a restarted agent would start a second
		// copy: refuse to run this one.
		p.killGroup(pr)
		return nil, err
	}
	p.log.Info("process started", "unit", spec.Name, "pid", pr.pid, "log", logPath)
	return pr, nil
}

// awaitReady waits for READY=1 from the process's own PID (as
// NotifyAccess=main), its exit, the timeout, or a stop/close request.
func (p *Process) awaitReady(spec UnitSpec, r *procRun, ns *notifySocket, pr *proc) error {
	timer := time.NewTimer(p.t.readyTimeout)
	defer timer.Stop()
	for {
		select {
		case pid := <-ns.ready:
			if pid == pr.pid {
				return nil
			}
		case <-pr.exited:
			return fmt.Errorf("%s %s before it was ready%s", spec.ExecStart[0], pr.status, pr.logTail())
		case <-timer.C:
			status := ns.lastStatus()
			if status != "" {
				status = fmt.Sprintf(" (last status %q)", status)
			}
			return fmt.Errorf("%s sent no READY=1 within %s%s; is \"supervised systemd\" in its config?%s", spec.ExecStart[0], p.t.readyTimeout, status, pr.logTail())
		case <-r.stop:
			return errStopRequested
		case <-r.detach:
			return errDetached
		}
	}
}

// terminate stops a process like KillMode=mixed: SIGTERM to the main
// process (redis stops its own fork children and saves), SIGKILL to the
// whole group after the stop timeout, and to any leftover afterwards.
func (p *Process) terminate(u *procUnit, pr *proc) {
	name := u.spec.Name
	p.setState(u, "deactivating", "stop-sigterm", pr.pid)
	if err := pr.signal(syscall.SIGTERM); err != nil {
		p.log.Debug("SIGTERM failed", "unit", name, "pid", pr.pid, "err", err)
	}
	timer := time.NewTimer(p.t.stopTimeout)
	defer timer.Stop()
	select {
	case <-pr.exited:
		p.log.Info("process stopped", "unit", name, "pid", pr.pid, "status", pr.status)
	case <-timer.C:
		p.log.Warn("process ignored SIGTERM; killing it", "unit", name, "pid", pr.pid, "after", p.t.stopTimeout)
		p.setState(u, "deactivating", "stop-sigkill", pr.pid)
	}
	p.killGroup(pr)
}

// killGroup SIGKILLs the process group and waits, bounded, for the main
// process to be gone.
func (p *Process) killGroup(pr *proc) {
	_ = syscall.Kill(-pr.pid, syscall.SIGKILL)
	_ = pr.signal(syscall.SIGKILL)
	select {
	case <-pr.exited:
	case <-time.After(10 * time.Second):
		p.log.Error("process survived SIGKILL for 10s", "pid", pr.pid)
	}
}

// procIdentity is stored next to the pidfile so that a reused PID is never
// mistaken for our process: same boot, same start time.
type procIdentity struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
	BootID     string `json:"boot_id"`
}

func (p *Process) writeRunFiles(name string, pr *proc) error {
	id := procIdentity{PID: pr.pid, StartTicks: pr.startTicks, BootID: bootID()}
	data, _ := json.Marshal(id)
	if err := atomicfile.Write(p.identPath(name), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record process identity: %w", err)
	}
	if err := atomicfile.Write(p.pidPath(name), []byte(strconv.Itoa(pr.pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// removeRunFiles marks the unit as not running for a future agent.
func (p *Process) removeRunFiles(name string) {
	for _, path := range []string{p.pidPath(name), p.identPath(name)} {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.log.Warn("cannot delete run file; a restarted agent may try to reattach", "path", path, "err", err)
		}
	}
}

func readPidfile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pidfile %s does not hold a PID: %q", path, data)
	}
	return pid, nil
}

// attach checks that pid is still the process the pidfile was written for
// and returns a handle that notices its death by polling, since it is not
// our child and sends us no SIGCHLD.
func (p *Process) attach(spec UnitSpec, pid int) (*proc, error) {
	var id procIdentity
	data, err := os.ReadFile(p.identPath(spec.Name))
	if err != nil {
		return nil, fmt.Errorf("no identity record: %w", err)
	}
	if err := json.Unmarshal(data, &id); err != nil {
		return nil, fmt.Errorf("bad identity record %s: %w", p.identPath(spec.Name), err)
	}
	if id.PID != pid || id.BootID != bootID() {
		return nil, errors.New("pidfile is from another boot")
	}
	st, err := readProcStat(pid)
	if err != nil {
		return nil, err
	}
	if st.startTicks != id.StartTicks {
		return nil, fmt.Errorf("PID %d was reused by another process", pid)
	}
	if err := matchExecutable(pid, spec.ExecStart); err != nil {
		return nil, err
	}
	return &proc{pid: pid, startTicks: st.startTicks, exited: make(chan struct{}), attached: true,
		logPath: p.LogPath(spec.Name)}, nil
}

// matchExecutable compares /proc/PID/exe with the unit's binary and the
// first word of /proc/PID/cmdline with its name. redis-server rewrites its
// command line into a title ("redis-server 127.0.0.1:6379"), so only the
// first word can be compared.
func matchExecutable(pid int, argv []string) error {
	want := argv[0]
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return fmt.Errorf("read executable of PID %d: %w", pid, err)
	}
	exeOK := false
	if a, err := os.Stat(want); err == nil {
		if b, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && os.SameFile(a, b) {
			exeOK = true
		}
	}
	if !exeOK {
		// The binary was replaced by a package upgrade while running.
		if real, err := filepath.EvalSymlinks(want); err == nil && strings.TrimSuffix(exe, " (deleted)") == real {
			exeOK = true
		}
	}
	if !exeOK {
		return fmt.Errorf("PID %d runs %s, not %s", pid, exe, want)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return fmt.Errorf("read command line of PID %d: %w", pid, err)
	}
	first, _, _ := strings.Cut(string(cmdline), "\x00")
	first, _, _ = strings.Cut(first, " ")
	if filepath.Base(first) != filepath.Base(want) {
		return fmt.Errorf("PID %d has command line %q, not %s", pid, first, want)
	}
	return nil
}

// proc is a running process: our child, or one reattached from a pidfile.
type proc struct {
	pid        int
	startTicks uint64
	attached   bool
	// exited is closed when the process is gone; status says how.
	exited chan struct{}
	status string

	logPath   string
	logOffset int64
}

// signal sends sig unless the process is already gone, so that a PID the
// kernel may have recycled is never hit.
func (pr *proc) signal(sig syscall.Signal) error {
	select {
	case <-pr.exited:
		return nil
	default:
	}
	if pr.attached && !pr.alive() {
		return nil
	}
	return syscall.Kill(pr.pid, sig)
}

func (pr *proc) alive() bool {
	st, err := readProcStat(pr.pid)
	// A zombie is dead: whoever spawned it has not reaped it yet.
	return err == nil && st.startTicks == pr.startTicks && st.state != 'Z' && st.state != 'X'
}

// poll closes exited when a reattached process dies, or returns when quit
// is closed (the supervisor let go of it).
func (pr *proc) poll(every time.Duration, quit <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !pr.alive() {
				pr.status = "exited (reattached process; exit status unknown)"
				close(pr.exited)
				return
			}
		case <-quit:
			return
		}
	}
}

// logTail returns the last lines the process wrote, for error messages.
func (pr *proc) logTail() string {
	const maxBytes, maxLines = 8192, 15
	f, err := os.Open(pr.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	from := max(pr.logOffset, fi.Size()-maxBytes)
	buf := make([]byte, fi.Size()-from)
	n, _ := f.ReadAt(buf, from)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "-- redis-appliance: starting ") || strings.TrimSpace(l) == ""
	})
	if len(lines) == 0 {
		return fmt.Sprintf("; %s is empty", pr.logPath)
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return fmt.Sprintf("; last lines of %s:\n  %s", pr.logPath, strings.Join(lines, "\n  "))
}

func exitStatus(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprintf("could not be waited for: %v", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			return fmt.Sprintf("exited with status %d", ws.ExitStatus())
		case ws.Signaled():
			return fmt.Sprintf("was killed by signal %s", ws.Signal())
		}
	}
	return ps.String()
}

type procStat struct {
	state      byte
	startTicks uint64
}

// readProcStat reads the state and start time (clock ticks after boot) from
// /proc/PID/stat. The command name in parentheses may hold spaces, so
// fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("process %d is gone: %w", pid, err)
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("cannot parse /proc/%d/stat", pid)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("cannot parse start time in /proc/%d/stat: %w", pid, err)
	}
	return procStat{state: f[0][0], startTicks: ticks}, nil
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// lookupCredential resolves User= and Group= like systemd: the group
// defaults to the user's primary group, and the user's supplementary groups
// are kept.
func lookupCredential(userName, groupName string) (*syscall.Credential, error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w; create it (adduser --system %s) or leave User empty", userName, err, userName)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q has a non-numeric uid %q", userName, u.Uid)
	}
	gidStr := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w; create it or leave Group empty", groupName, err)
		}
		gidStr = g.Gid
	}
	gid, err := strconv.ParseUint(gidStr, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("group of %q has a non-numeric gid %q", userName, gidStr)
	}
	groups := []uint32{uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil && !slices.Contains(groups, uint32(g)) {
				groups = append(groups, uint32(g))
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// ownStateDir makes sure the state directory is the agent's alone: owned
// by this process's user and writable by nobody else, since the agent
// writes pidfiles and logs there, as root in production.
func ownStateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("process supervisor: state directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("process supervisor: state directory %s must be a directory owned by uid %d (not a link, not another user's); remove it or fix its owner", dir, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("process supervisor: make state directory %s private: %w", dir, err)
		}
	}
	return nil
}
