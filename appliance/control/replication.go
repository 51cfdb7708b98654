package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Switchover bounds. The pause is redis-server's own safety net: if this
// leader dies mid-way, the old primary takes writes again after it, and
// Raft still names it primary unless the switchover was committed.
const (
	switchoverPause = 10 * time.Second
	// catchUpWait is how long the target may take to reach the paused
	// primary's offset before the switchover is called off.
	catchUpWait = 2 * time.Second
	// settleWait is how long the nodes may take to apply the new roles.
	settleWait = 8 * time.Second
	// maxSwitchoverLag refuses a target further behind than this before
	// writes are paused at all: catching up would pause writes too long.
	maxSwitchoverLag = 64 << 20
	// directTimeout bounds each command the leader sends to an instance.
	directTimeout = 2 * time.Second
)

func conflict(format string, args ...any) error {
	return &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf(format, args...)}
}

// external is a parsed --from URL.
type external struct {
	host     string
	port     int
	password string
}

// parseExternal reads redis://[default]:PASSWORD@HOST[:PORT]. Errors never
// repeat the URL: it holds a password.
func parseExternal(raw string) (external, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return external{}, badRequest("--from is not a URL; use redis://:PASSWORD@HOST:PORT")
	}
	if u.Scheme != "redis" {
		return external{}, badRequest("--from scheme %q is not supported; use redis://:PASSWORD@HOST:PORT", u.Scheme)
	}
	if u.Hostname() == "" {
		return external{}, badRequest("--from has no host; use redis://:PASSWORD@HOST:PORT")
	}
	e := external{host: u.Hostname(), port: 6379}
	if p := u.Port(); p != "" {
		if e.port, err = strconv.Atoi(p); err != nil || e.port < 1 || e.port > 65535 {
			return external{}, badRequest("--from port %q is not a port number", p)
		}
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" && name != "default" {
			return external{}, badRequest("--from user %q: only the default user can be followed; leave the user out", name)
		}
		e.password, _ = u.User.Password()
	}
	return e, nil
}

// checkExternal connects to an external Redis as the new replica will, so
// that a wrong password or an unreachable host is refused before anything
// is created.
func checkExternal(ctx context.Context, e external) error {
	c := redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort(e.host, strconv.Itoa(e.port)), Password: e.password,
		DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1, Protocol: 2, DisableIdentity: true,
	})
	defer c.Close()
	info, err := c.Info(ctx, "replication").Result()
	addr := net.JoinHostPort(e.host, strconv.Itoa(e.port))
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "WRONGPASS"), strings.Contains(err.Error(), "invalid password"):
		return badRequest("%s refused the password in --from; check it", addr)
	case strings.Contains(err.Error(), "NOAUTH"):
		return badRequest("%s needs a password; put it in --from as redis://:PASSWORD@%s", addr, addr)
	default:
		return badRequest("cannot reach %s to follow it: %v; check the address and that this host can reach it", addr, err)
	}
	if !strings.Contains(info, "role:master") {
		return badRequest("%s is itself a replica; follow its primary instead", addr)
	}
	return nil
}

// linkedSource fills in a linked replica's defaults from its source and
// returns what it follows. It returns nil, nil for an ordinary database.
func (c *Controller) linkedSource(ctx context.Context, st *raftstate.State, req *api.CreateDatabaseRequest) (*raftstate.Follow, error) {
	if _, ok := st.Databases[req.Name]; ok {
		return nil, &api.Error{Status: http.StatusConflict, Message: loopMessage(st, req.Name, req.Follows)}
	}
	switch {
	case req.Follows != "" && req.FromURL != "":
		return nil, badRequest("give a source database or --from URL, not both")
	case req.Follows != "":
		src, ok := st.Databases[req.Follows]
		if !ok {
			return nil, &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("source database %q does not exist; see redis-appliance db list", req.Follows)}
		}
		if src.Follows != nil {
			return nil, conflict("source %s is itself a replica of %s; replicate from %s, or promote %s first", src.Name, src.Follows.Describe(), src.Follows.Describe(), src.Name)
		}
		if src.ReadOnly {
			return nil, conflict("source %s is read-only (unlinked); promote it first", src.Name)
		}
		if req.Version == "" {
			req.Version = src.Version
		}
		if req.Flavor == "" {
			req.Flavor = string(src.Flavor)
		}
		if req.Memory == "" {
			req.Memory = strconv.FormatInt(src.MemoryBytes, 10) + "b"
		}
		return &raftstate.Follow{Database: src.Name}, nil
	case req.FromURL != "":
		e, err := parseExternal(req.FromURL)
		if err != nil {
			return nil, err
		}
		if err := checkExternal(ctx, e); err != nil {
			return nil, err
		}
		sealed, err := c.keys().Seal([]byte(e.password))
		if err != nil {
			return nil, err
		}
		return &raftstate.Follow{Host: e.host, Port: e.port, Password: sealed}, nil
	}
	return nil, nil
}

// loopMessage explains why NEW cannot follow SRC when NEW already exists
// and SRC follows it: the replication loop a user tried to make.
func loopMessage(st *raftstate.State, newName, src string) string {
	if s, ok := st.Databases[src]; ok && s.Follows != nil && s.Follows.Database == newName {
		return fmt.Sprintf("%s already follows %s; %s following %s would make a replication loop", src, newName, newName, src)
	}
	return fmt.Sprintf("database %q already exists; pick another name or delete it first", newName)
}

// placeAll places a primary (pinned or not) and replicas on as many other
// nodes, each with the most free memory that fits.
func (c *Controller) placeAll(st *raftstate.State, name, pin string, replicas int, flavor raftstate.Flavor, mem int64) ([]raftstate.Instance, error) {
	if replicas < 0 {
		return nil, badRequest("--replicas must be 0 or more")
	}
	if n := len(st.Nodes); replicas+1 > n {
		return nil, conflict("--replicas %d needs %d nodes (each instance on its own node); the cluster has %d; add nodes with redis-appliance cluster join, or ask for fewer replicas", replicas, replicas+1, n)
	}
	used := map[string]bool{}
	var out []raftstate.Instance
	for i := 0; i <= replicas; i++ {
		p := ""
		role := raftstate.RoleReplica
		if i == 0 {
			p, role = pin, raftstate.RolePrimary
		}
		node, port, err := c.place(st, p, used, flavor, mem)
		if err != nil {
			if i > 0 {
				return nil, conflict("cannot place replica %d of %d on a node other than %s: %v", i, replicas, strings.Join(placedNodes(out), ", "), err)
			}
			return nil, err
		}
		used[node] = true
		out = append(out, raftstate.Instance{ID: fmt.Sprintf("%s-%d", name, i), Node: node, Port: port, Role: role})
	}
	return out, nil
}

func placedNodes(in []raftstate.Instance) []string {
	var out []string
	for _, i := range in {
		out = append(out, i.Node)
	}
	return out
}

// dial opens a short-lived connection from this node to an instance.
func (c *Controller) dial(st *raftstate.State, db *raftstate.Database, in raftstate.Instance) (*redis.Client, error) {
	pw, err := c.keys().Open(db.Password)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort(c.host(st, in.Node), strconv.Itoa(in.Port)), Password: string(pw),
		DialTimeout: directTimeout, ReadTimeout: directTimeout, WriteTimeout: directTimeout,
		PoolSize: 1, MaxRetries: -1, DialerRetries: 1, Protocol: 2, DisableIdentity: true,
		ClientName: "redis-appliance-switchover",
	}), nil
}

// replInfo is INFO replication of an instance.
func replInfo(ctx context.Context, c *redis.Client) (map[string]string, error) {
	raw, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(raw, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

func offsetOf(m map[string]string) int64 {
	n, _ := strconv.ParseInt(m["master_repl_offset"], 10, 64)
	return n
}

// FailoverDatabase is a planned switchover: pause writes on the primary,
// wait until the target has everything the primary acknowledged, commit
// the new primary with a new epoch, let every node apply the roles (the
// old primary drops its clients as it is demoted), then resume. No write
// the old primary acknowledged is lost: it acknowledged nothing after the
// pause, and the target had everything before it.
func (c *Controller) FailoverDatabase(ctx context.Context, name string, req api.FailoverRequest) (api.FailoverResult, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.FailoverResult{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.FailoverResult{}, err
		}
		v, err := f.lc.FailoverDatabase(f.ctx, name, req)
		return v, f.done(err)
	}
	c.placeMu.Lock()
	defer c.placeMu.Unlock()
	st := c.store().State()
	db, ok := st.Databases[name]
	if !ok {
		return api.FailoverResult{}, notFound(name)
	}
	old, ok := db.Primary()
	if !ok {
		return api.FailoverResult{}, conflict("database %s has no primary right now", name)
	}
	target, err := c.switchoverTarget(ctx, st, db, old, req.To)
	if err != nil {
		return api.FailoverResult{}, err
	}
	pc, err := c.dial(st, db, old)
	if err != nil {
		return api.FailoverResult{}, err
	}
	defer pc.Close()
	tc, err := c.dial(st, db, target)
	if err != nil {
		return api.FailoverResult{}, err
	}
	defer tc.Close()

	dctx, cancel := context.WithTimeout(ctx, switchoverPause)
	defer cancel()
	start := time.Now()
	if err := pc.Do(dctx, "CLIENT", "PAUSE", switchoverPause.Milliseconds(), "WRITE").Err(); err != nil {
		return api.FailoverResult{}, conflict("cannot pause writes on the primary %s on %s: %v; no change", old.ID, old.Node, err)
	}
	unpause := func() {
		uctx, cancel := context.WithTimeout(context.Background(), directTimeout)
		defer cancel()
		if err := pc.Do(uctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			c.log.Warn("cannot resume writes on the old primary; its pause expires by itself", "instance", old.ID, "err", err, "within", switchoverPause)
		}
	}
	if err := c.catchUp(dctx, pc, tc, target); err != nil {
		unpause()
		return api.FailoverResult{}, err
	}
	err = c.store().Apply(ctx, raftstate.CmdSetPrimary, raftstate.SetPrimary{
		Name: name, Instance: target.ID, Epoch: db.Epoch, Reason: "planned switchover", At: c.Now().UTC(),
	})
	if err != nil {
		unpause()
		return api.FailoverResult{}, fmt.Errorf("switchover of %s not committed, nothing changed: %w", name, err)
	}
	c.reconciler().Trigger()
	settled := c.awaitRoles(dctx, pc, tc, net.JoinHostPort(c.host(st, target.Node), strconv.Itoa(target.Port)))
	unpause()
	pause := time.Since(start)
	c.event("switchover", name, target.Node, fmt.Sprintf("planned switchover of %s from %s to %s (epoch %d); writes paused %s", name, old.Node, target.Node, db.Epoch+1, pause.Round(time.Millisecond)))
	v, _ := c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.ID == target.ID {
				return in.Role == string(raftstate.RolePrimary) && in.State == api.StateRunning
			}
		}
		return false
	})
	res := api.FailoverResult{Database: v, From: old.Node, To: target.Node, WritePauseMs: float64(pause.Microseconds()) / 1000}
	if settled != nil {
		return res, fmt.Errorf("switchover of %s to %s committed (epoch %d), but %v; the nodes keep converging, see redis-appliance db show %s", name, target.Node, db.Epoch+1, settled, name)
	}
	return res, nil
}

// switchoverTarget picks the replica to promote: the one on node to, or
// the most up-to-date one; it refuses one that is down or lagging.
func (c *Controller) switchoverTarget(ctx context.Context, st *raftstate.State, db *raftstate.Database, old raftstate.Instance, to string) (raftstate.Instance, error) {
	var replicas []raftstate.Instance
	for _, in := range db.Instances {
		if in.Role == raftstate.RoleReplica {
			replicas = append(replicas, in)
		}
	}
	if len(replicas) == 0 {
		return raftstate.Instance{}, conflict("database %s has no replica to switch over to; create it with --replicas N", db.Name)
	}
	if to == old.Node {
		return raftstate.Instance{}, conflict("the primary of %s is already on %s", db.Name, to)
	}
	primaryOffset, err := c.primaryNow(ctx, st, db, old)
	if err != nil {
		return raftstate.Instance{}, conflict("the primary of %s on %s %v; a planned switchover needs a running primary", db.Name, old.Node, err)
	}
	var best raftstate.Instance
	var bestOffset int64 = -1
	var why []string
	for _, in := range replicas {
		if to != "" && in.Node != to {
			continue
		}
		// Asked directly, not from heartbeats that may be seconds old:
		// a replica that is down must be refused before writes pause.
		offset, problem := c.replicaNow(ctx, st, db, in, primaryOffset)
		switch {
		case problem != "":
			why = append(why, fmt.Sprintf("the replica on %s %s", in.Node, problem))
		case offset > bestOffset:
			best, bestOffset = in, offset
		}
	}
	if bestOffset >= 0 {
		return best, nil
	}
	if to != "" && len(why) == 0 {
		return raftstate.Instance{}, &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("database %s has no replica on node %q; its replicas are on %s", db.Name, to, strings.Join(placedNodes(replicas), ", "))}
	}
	return raftstate.Instance{}, conflict("no replica of %s can take over: %s; no change", db.Name, strings.Join(why, "; "))
}

// primaryNow checks the primary over a direct connection and returns its
// replication offset.
func (c *Controller) primaryNow(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance) (int64, error) {
	pc, err := c.dial(st, db, in)
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	info, err := replInfo(ctx, pc)
	switch {
	case err != nil:
		return 0, fmt.Errorf("does not answer (%v)", err)
	case info["role"] != "master":
		return 0, fmt.Errorf("is not a primary yet (role %s)", info["role"])
	}
	return offsetOf(info), nil
}

// replicaNow checks a replica over a direct connection: running, linked
// to its primary, not syncing, and not too far behind primaryOffset. It
// returns the replica's offset, or what is wrong with it.
func (c *Controller) replicaNow(ctx context.Context, st *raftstate.State, db *raftstate.Database, in raftstate.Instance, primaryOffset int64) (int64, string) {
	rc, err := c.dial(st, db, in)
	if err != nil {
		return 0, err.Error()
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	info, err := replInfo(ctx, rc)
	switch {
	case err != nil:
		return 0, fmt.Sprintf("does not answer (%v)", err)
	case info["role"] != "slave":
		return 0, fmt.Sprintf("is not replicating (role %s)", info["role"])
	case info["master_link_status"] != "up":
		return 0, "has its replication link down"
	case info["master_sync_in_progress"] == "1":
		return 0, "is still syncing"
	}
	offset := offsetOf(info)
	if lag := primaryOffset - offset; lag > maxSwitchoverLag {
		return 0, fmt.Sprintf("is %d bytes behind", lag)
	}
	return offset, ""
}

// catchUp waits until the target's offset reaches the paused primary's.
func (c *Controller) catchUp(ctx context.Context, pc, tc *redis.Client, target raftstate.Instance) error {
	pi, err := replInfo(ctx, pc)
	if err != nil {
		return conflict("cannot read the primary's replication offset: %v; no change", err)
	}
	want := offsetOf(pi)
	deadline := time.Now().Add(catchUpWait)
	for {
		ti, err := replInfo(ctx, tc)
		if err == nil && ti["master_link_status"] == "up" && offsetOf(ti) >= want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return conflict("the replica on %s stopped answering (%v); writes resumed, no change", target.Node, err)
			}
			return conflict("the replica on %s did not catch up within %s (%d bytes behind, link %s); writes resumed, no change", target.Node, catchUpWait, want-offsetOf(ti), ti["master_link_status"])
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// awaitRoles waits until the target is a primary and the old primary
// replicates it, as the nodes' reconcilers make them.
func (c *Controller) awaitRoles(ctx context.Context, pc, tc *redis.Client, targetAddr string) error {
	host, port, _ := net.SplitHostPort(targetAddr)
	ctx, cancel := context.WithTimeout(ctx, settleWait)
	defer cancel()
	for {
		ti, terr := replInfo(ctx, tc)
		pi, perr := replInfo(ctx, pc)
		if terr == nil && perr == nil && ti["role"] == "master" && pi["role"] == "slave" && pi["master_host"] == host && pi["master_port"] == port {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the old primary was not seen replicating the new one in time")
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// PromoteDatabase makes a linked or unlinked replica a standalone, writable
// primary. The promotion is in Raft, so no restart makes it follow again.
func (c *Controller) PromoteDatabase(ctx context.Context, name string) (api.Database, error) {
	return c.changeLink(ctx, name, raftstate.CmdPromoteDatabase, raftstate.PromoteDatabase{Name: name, At: c.Now().UTC()},
		func(f *forward) (api.Database, error) { return f.lc.PromoteDatabase(f.ctx, name) })
}

// UnlinkDatabase stops a linked replica following its source; it keeps its
// data and refuses writes until promoted.
func (c *Controller) UnlinkDatabase(ctx context.Context, name string) (api.Database, error) {
	return c.changeLink(ctx, name, raftstate.CmdUnlinkDatabase, raftstate.UnlinkDatabase{Name: name, At: c.Now().UTC()},
		func(f *forward) (api.Database, error) { return f.lc.UnlinkDatabase(f.ctx, name) })
}

// changeLink commits a promote or unlink and waits until the database's
// primary no longer replicates anything.
func (c *Controller) changeLink(ctx context.Context, name string, ct raftstate.CommandType, payload any, fwd func(*forward) (api.Database, error)) (api.Database, error) {
	if err := c.waitReady(ctx); err != nil {
		return api.Database{}, err
	}
	if f, err := c.leader(ctx); err != nil || f != nil {
		if err != nil {
			return api.Database{}, err
		}
		v, err := fwd(f)
		return v, f.done(err)
	}
	if _, ok := c.store().State().Databases[name]; !ok {
		return api.Database{}, notFound(name)
	}
	if err := c.store().Apply(ctx, ct, payload); err != nil {
		return api.Database{}, err
	}
	kind := map[raftstate.CommandType]string{raftstate.CmdPromoteDatabase: "promote", raftstate.CmdUnlinkDatabase: "unlink"}[ct]
	c.event(kind, name, "", fmt.Sprintf("%s: %s", kind, name))
	v, err := c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.Role == string(raftstate.RolePrimary) {
				return in.State == api.StateRunning && in.Replication == nil
			}
		}
		return false
	})
	if err == nil && v.State != api.StateRunning {
		err = fmt.Errorf("%s of %s is committed but its primary is %s; see redis-appliance db show %s", ct, name, v.State, name)
	}
	return v, err
}

// replicationView says what an instance follows and how far behind it is,
// from its observation and the offsets observed of the primaries.
func replicationView(st *raftstate.State, db *raftstate.Database, in raftstate.Instance, offsets map[string]int64, o health.InstanceReport) *api.Replication {
	if o.Link == nil {
		return nil
	}
	r := &api.Replication{
		Primary:    net.JoinHostPort(o.Link.MasterHost, strconv.Itoa(o.Link.MasterPort)),
		LinkStatus: "down", SyncInProgress: o.Link.SyncInProgress, LastIOSeconds: o.Link.LastIOSeconds, LagBytes: -1,
	}
	if o.Link.Up {
		r.LinkStatus = "up"
	}
	// The primary it follows: its own database's, or the source's.
	src := db
	if in.Role == raftstate.RolePrimary && db.Follows != nil {
		src = st.Databases[db.Follows.Database]
	}
	if src != nil {
		if p, ok := src.Primary(); ok {
			if off, ok := offsets[p.ID]; ok {
				r.LagBytes = max(off-o.ReplOffset, 0)
			}
		}
	}
	return r
}
