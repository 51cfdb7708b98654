package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// A create goes through here whole: plan validates the request and places
// its instances (every rule a create is held to is decided in plan or in
// the FSM, and nowhere else: the TUI and the CLI ask ValidateDatabase);
// CreateDatabase then seals a password, commits, and waits for the
// instances to run.

// CreateDatabase validates, sizes and places a new database, commits it and
// waits for its instances to run.
func (c *Controller) CreateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.Database, error) {
	db, err := c.commitCreate(ctx, req)
	if err != nil {
		return api.Database{}, err
	}
	from := ""
	if db.Follows != nil {
		from = db.Follows.Describe()
	}
	c.log.Info("database created", "database", db.Name, "version", db.Version, "flavor", db.Flavor, "memory", db.MemoryBytes,
		"node", db.Instances[0].Node, "port", db.Instances[0].Port, "replicas", len(db.Instances)-1, "follows", from)
	return c.waitFor(ctx, db.Name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.State != api.StateRunning {
				return false
			}
		}
		return true
	})
}

// commitCreate plans and commits a create under placeMu, which it holds
// no longer: the wait for the instances to run must not hold up other
// creates, nor the checks the TUI asks as a form is filled in.
func (c *Controller) commitCreate(ctx context.Context, req api.CreateDatabaseRequest) (raftstate.Database, error) {
	c.placeMu.Lock()
	defer c.placeMu.Unlock()
	db, err := c.plan(ctx, &req)
	if err != nil {
		return db, err
	}
	pw, err := secrets.NewPassword()
	if err != nil {
		return db, err
	}
	if db.Password, err = c.keys().Seal([]byte(pw)); err != nil {
		return db, err
	}
	// Users only once every voter keeps them: an older agent would drop
	// them from its copy of the state (KeepAccess adds them later).
	if c.accessReady() {
		db.Access = &raftstate.Access{}
		if db.Access.Agent, db.Access.Replication, err = c.newAccess(); err != nil {
			return db, err
		}
	}
	return db, c.store().Apply(ctx, raftstate.CmdCreateDatabase, raftstate.CreateDatabase{Database: db})
}

// ValidateDatabase answers whether a create would be accepted now, and
// where its instances would go, without creating anything.
func (c *Controller) ValidateDatabase(ctx context.Context, req api.CreateDatabaseRequest) (api.CreatePlan, error) {
	c.placeMu.Lock()
	defer c.placeMu.Unlock()
	db, err := c.plan(ctx, &req)
	if err != nil {
		return api.CreatePlan{}, err
	}
	st := c.store().View()
	v := api.Database{
		Name: db.Name, Version: db.Version, Flavor: string(db.Flavor), MemoryBytes: db.MemoryBytes,
		CreatedAt: db.CreatedAt, State: api.StatePlanned,
	}
	if db.Follows != nil {
		v.Follows = db.Follows.Describe()
	}
	for _, in := range db.Instances {
		v.Instances = append(v.Instances, api.Instance{
			ID: in.ID, Node: in.Node, Host: instance.Host(st, in.Node, c.cfg.AdvertiseAddr), Port: in.Port,
			Role: string(in.Role), State: api.StatePlanned,
		})
	}
	v.Port = db.Instances[0].Port
	mem, disk := sizing.Need(db.Flavor, db.MemoryBytes)
	return api.CreatePlan{Database: v, NeedMemory: mem, NeedDisk: disk}, nil
}

// plan checks a create request and places it: the database it would
// commit, without a password. The caller holds placeMu.
func (c *Controller) plan(ctx context.Context, req *api.CreateDatabaseRequest) (raftstate.Database, error) {
	if err := raftstate.CheckName("database", req.Name); err != nil {
		return raftstate.Database{}, badRequest("%s", strings.TrimSuffix(err.Error(), ": "+raftstate.ErrInvalid.Error()))
	}
	st := c.store().State()
	if _, ok := st.Databases[req.Name]; ok {
		return raftstate.Database{}, conflict("%s", loopMessage(st, req.Name, req.Follows))
	}
	// Before the defaults below: a linked replica takes its source's.
	follows, err := c.linkedSource(ctx, st, req)
	if err != nil {
		return raftstate.Database{}, err
	}
	flavor, err := raftstate.ParseFlavor(req.Flavor)
	if err != nil {
		return raftstate.Database{}, badRequest("%s", strings.TrimSuffix(err.Error(), ": "+raftstate.ErrInvalid.Error()))
	}
	if req.Memory == "" {
		return raftstate.Database{}, badRequest("a memory plan is required, e.g. --memory 256mb")
	}
	mem, err := sizing.ParseSize(req.Memory)
	if err != nil {
		return raftstate.Database{}, badRequest("%v", err)
	}
	if req.Replicas < 0 {
		return raftstate.Database{}, badRequest("--replicas must be 0 or more")
	}
	nodes := c.nodeVersions(st)
	inst, err := versions.Resolve(req.Version, versions.Union(nodes), c.Now())
	switch {
	case errors.Is(err, versions.ErrNotInstalled) && req.Version != "":
		return raftstate.Database{}, badRequest("version %s is not installed on any node (%s); install it on a node (on Debian: apt-get install redis-server) or add its path to redis_paths, or ask for an installed version (see redis-appliance versions)", req.Version, describeNodes(nodes))
	case err != nil:
		return raftstate.Database{}, badRequest("%v", err)
	}
	instances, err := c.placeAll(st, req.Name, req.Node, req.Replicas, flavor, mem, inst.Version, nodes)
	if err != nil {
		return raftstate.Database{}, err
	}
	return raftstate.Database{
		Name: req.Name, Version: inst.Version, Flavor: flavor, MemoryBytes: mem,
		CreatedAt: c.Now().UTC(), Instances: instances, Follows: follows,
	}, nil
}

// nodeVersions is what each node has installed: this node's binaries as
// last discovered (at most a minute ago, or when `versions` last ran: a
// create, and the TUI's checks as a form is filled in, do not run every
// binary again), the others' as they last reported (a node whose agent
// is too old to say is absent: it is not asked, as before).
func (c *Controller) nodeVersions(st *raftstate.State) map[string][]versions.Installed {
	out := map[string][]versions.Installed{c.cfg.NodeName: c.local.Current()}
	for name, n := range st.Nodes {
		if name == c.cfg.NodeName || n.Versions == nil {
			continue
		}
		var ins []versions.Installed
		for _, v := range n.Versions {
			ins = append(ins, versions.Installed{Version: v, Full: v})
		}
		out[name] = ins
	}
	return out
}

// describeNodes says what each node has, for messages: "n1 has 7.0; n2
// has 7.0, 7.2".
func describeNodes(nodes map[string][]versions.Installed) string {
	names := slices.Sorted(maps.Keys(nodes))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " has " + versions.Names(nodes[n])
	}
	return strings.Join(parts, "; ")
}

// nodeFacts are what placement knows of a node: its hardware and port range,
// from this process for the local node and from reports for the others.
type nodeFacts struct {
	hw               sizing.Hardware
	portMin, portMax int
}

func (c *Controller) facts(node string) (nodeFacts, error) {
	if node == c.cfg.NodeName {
		hw, err := sizing.Read(c.ProcRoot, c.cfg.DataDir)
		if err != nil {
			return nodeFacts{}, fmt.Errorf("read this node's hardware: %w", err)
		}
		return nodeFacts{hw: hw, portMin: c.cfg.PortMin, portMax: c.cfg.PortMax}, nil
	}
	e, ok := c.live.Node(node)
	if !ok || e.Age() > health.StaleAfter {
		return nodeFacts{}, fmt.Errorf("node %s has not reported for a while (no heartbeat); it cannot take new databases now", node)
	}
	hb := e.Heartbeat
	return nodeFacts{hw: hb.Hardware, portMin: hb.PortMin, portMax: hb.PortMax}, nil
}

// placeAll places a primary (pinned or not) and replicas on as many other
// nodes, each with the most free memory that fits and has version.
func (c *Controller) placeAll(st *raftstate.State, name, pin string, replicas int, flavor raftstate.Flavor, mem int64, version string, nodes map[string][]versions.Installed) ([]raftstate.Instance, error) {
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
		node, port, err := c.place(st, p, used, flavor, mem, version, nodes)
		if err != nil {
			if i > 0 {
				return nil, conflict("cannot place replica %d of %d on a node other than %s: %v", i, replicas, strings.Join(placedNodes(out), ", "), err)
			}
			return nil, err
		}
		used[node] = true
		out = append(out, raftstate.Instance{ID: raftstate.InstanceID(name, i), Node: node, Port: port, Role: role})
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

// place picks the node with the most free memory that fits and has
// version (or checks the pinned one) and a free port on it.
func (c *Controller) place(st *raftstate.State, pin string, exclude map[string]bool, flavor raftstate.Flavor, mem int64, version string, nodes map[string][]versions.Installed) (string, int, error) {
	candidates := st.NodeNames()
	if pin != "" {
		n, ok := st.Nodes[pin]
		if !ok {
			return "", 0, badRequest("unknown node %q; see redis-appliance node list", pin)
		}
		if n.Draining {
			return "", 0, conflict("node %s is draining and takes no new databases", pin)
		}
		candidates = []string{pin}
	}
	var best string
	var bestFree int64
	var bestFacts nodeFacts
	var firstErr error
	var without []string // nodes that lack the version
	for _, name := range candidates {
		if st.Nodes[name].Draining || exclude[name] {
			continue
		}
		if ins, known := nodes[name]; known && !versions.Has(ins, version) {
			without = append(without, fmt.Sprintf("%s has %s", name, versions.Names(ins)))
			continue
		}
		f, err := c.facts(name)
		if err == nil {
			err = sizing.Check(f.hw, sizing.DefaultPolicy(f.hw), sizing.Allocated(st, name, ""), flavor, mem, name)
		}
		if err != nil {
			if errors.Is(err, sizing.ErrBelowMinimum) {
				return "", 0, badRequest("%v", err)
			}
			if firstErr == nil || pin != "" {
				firstErr = err
			}
			continue
		}
		free := f.hw.MemTotal - sizing.DefaultPolicy(f.hw).ReserveMemory - sizing.Allocated(st, name, "").Memory
		if best == "" || free > bestFree {
			best, bestFree, bestFacts = name, free, f
		}
	}
	if best == "" {
		switch {
		case firstErr != nil:
			return "", 0, firstErr
		case len(without) > 0:
			return "", 0, conflict("version %s is installed on no node that can take it (%s); install it there (on Debian: apt-get install redis-server), or ask for an installed version (see redis-appliance versions)", version, strings.Join(without, "; "))
		}
		return "", 0, conflict("no node can take new databases (all draining?); see redis-appliance node list")
	}
	port, err := c.freePort(st, best, bestFacts)
	return best, port, err
}

// freePort returns the lowest port in the node's range that no instance on
// it holds; on this node it must also be free on the host.
func (c *Controller) freePort(st *raftstate.State, node string, f nodeFacts) (int, error) {
	used := st.PortsInUse(node)
	for p := f.portMin; p <= f.portMax; p++ {
		if _, ok := used[p]; ok {
			continue
		}
		if node == c.cfg.NodeName && !c.bindable(p) {
			continue
		}
		return p, nil
	}
	return 0, conflict("no free port in the port range %d-%d on node %s; widen port_range or delete a database", f.portMin, f.portMax, node)
}

func (c *Controller) bindable(port int) bool {
	for _, addr := range c.cfg.BindAddrs() {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// linkedSource fills in a linked replica's defaults from its source and
// returns what it follows. It returns nil, nil for an ordinary database.
func (c *Controller) linkedSource(ctx context.Context, st *raftstate.State, req *api.CreateDatabaseRequest) (*raftstate.Follow, error) {
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
	if err := raftstate.CheckHost(u.Hostname()); err != nil {
		return external{}, badRequest("--from has no valid host; use redis://:PASSWORD@HOST:PORT")
	}
	e := external{host: u.Hostname(), port: 6379}
	if p := u.Port(); p != "" {
		if e.port, err = strconv.Atoi(p); err != nil || raftstate.CheckPort(e.port) != nil {
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

// externalTimeout bounds checking an external Redis before following it.
const externalTimeout = 3 * time.Second

// checkExternal connects to an external Redis as the new replica will, so
// that a wrong password or an unreachable host is refused before anything
// is created.
func checkExternal(ctx context.Context, e external) error {
	addr := net.JoinHostPort(e.host, strconv.Itoa(e.port))
	cl := instance.Connect(addr, instance.Credential{Password: e.password}, instance.NameCheck, externalTimeout)
	defer cl.Close()
	info, err := instance.ReadInfo(ctx, cl, "replication")
	switch {
	case err == nil:
	case strings.Contains(err.Error(), "WRONGPASS"), strings.Contains(err.Error(), "invalid password"):
		return badRequest("%s refused the password in --from; check it", addr)
	case strings.Contains(err.Error(), "NOAUTH"):
		return badRequest("%s needs a password; put it in --from as redis://:PASSWORD@%s", addr, addr)
	default:
		return badRequest("cannot reach %s to follow it: %v; check the address and that this host can reach it", addr, err)
	}
	if !info.Primary() {
		return badRequest("%s is itself a replica; follow its primary instead", addr)
	}
	return nil
}
