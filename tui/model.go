package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/components/clusterview"
	"github.com/redis-appliance/redis-appliance/tui/components/confirm"
	"github.com/redis-appliance/redis-appliance/tui/components/createform"
	"github.com/redis-appliance/redis-appliance/tui/components/credentials"
	"github.com/redis-appliance/redis-appliance/tui/components/dbdetail"
	"github.com/redis-appliance/redis-appliance/tui/components/dblist"
	"github.com/redis-appliance/redis-appliance/tui/components/events"
	"github.com/redis-appliance/redis-appliance/tui/components/userform"
	"github.com/redis-appliance/redis-appliance/tui/source"
	"github.com/redis-appliance/redis-appliance/tui/uictx"
)

// Tab is one of the top-level views.
type Tab int

// The views, in the order of their keys (1, 2, 3).
const (
	TabCluster Tab = iota
	TabDatabases
	TabEvents
	nTabs
)

var tabNames = [...]string{"Cluster", "Databases", "Events"}

// TickMsg drives the refresh and the clock on screen.
type TickMsg time.Time

// successFor is how long a success message stays; errors stay until
// dismissed or replaced, so none is missed.
const successFor = 5 * time.Second

type flash struct {
	text string
	err  bool
	at   time.Time
}

// op is an action sent to the agent and not answered yet.
type op struct {
	action source.Action
	target string
	since  time.Time
	// req is a create's request; to a failover's target node ("" lets
	// the agent pick the most up-to-date replica).
	req api.CreateDatabaseRequest
	to  string
	// user is the application user of a user create or rotate, and
	// userReq a user create's request (never a password: the agent
	// makes it).
	user    string
	userReq api.CreateUserRequest
}

// subject names what o acts on, for the messages: the database or node,
// or a user of a database.
func (o op) subject() string {
	if o.user != "" {
		return o.user + " of " + o.target
	}
	return o.target
}

// Model is the root of the UI: it owns the shared context, routes
// messages to the components, runs the refresh and the actions, and draws
// the frame (header, tabs, banner, content, messages, keys).
type Model struct {
	ctx *uictx.Context
	src *source.Source
	tab Tab

	cluster clusterview.Model
	dbs     dblist.Model
	events  events.Model

	detail    dbdetail.Model
	inDetail  bool
	form      createform.Model
	inForm    bool
	confirm   confirm.Model
	inConfirm bool
	inHelp    bool
	// userForm adds an application user to the database of the detail.
	userForm   userform.Model
	inUserForm bool
	// secrets are the passwords the agent gave once (a user created or
	// rotated), not dismissed yet, oldest first: the first is on screen,
	// above everything. A dismissed one is dropped at once.
	secrets []credentials.Model

	status    api.ClusterStatus
	hasStatus bool
	nodes     []api.Node
	// loaded says databases and nodes each arrived at least once: until
	// then an empty list would be a lie.
	dbsLoaded, nodesLoaded bool
	refreshing             bool
	// lastErr is the error of the last refresh, nil if it fully succeeded.
	lastErr     error
	statusErr   error
	versions    []api.Version
	versionsErr error

	pending []op
	flash   *flash
	// selectNext is a database to put the cursor on once it is listed
	// (one just created).
	selectNext string
}

// New returns the root model. Its Init starts the first refresh.
func New(ctx *uictx.Context, src *source.Source) Model {
	m := Model{
		ctx:        ctx,
		src:        src,
		cluster:    clusterview.New(ctx),
		dbs:        dblist.New(ctx),
		events:     events.New(ctx),
		refreshing: true,
	}
	m.updateStale()
	return m
}

// Init starts the first refresh, reads the versions and starts the clock.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.src.Refresh(), m.src.Versions(), m.tick())
}

func (m Model) tick() tea.Cmd {
	return tea.Tick(m.ctx.Refresh, func(t time.Time) tea.Msg { return TickMsg(t) })
}

// Update routes a message and lays the screen out again.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := m.update(msg)
	m.layout()
	return m, cmd
}

func (m Model) update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.ctx.Width, m.ctx.Height = msg.Width, msg.Height
		return m, nil
	case TickMsg:
		return m.onTick(time.Time(msg))
	case source.SnapshotMsg:
		return m.onSnapshot(msg), nil
	case source.URLMsg:
		if m.inDetail && m.detail.Name() == msg.Name {
			m.detail.SetURL(msg.URL, msg.Err)
		}
		return m, nil
	case source.VersionsMsg:
		m.versions, m.versionsErr = msg.Versions, msg.Err
		if m.inForm {
			m.form.SetVersions(m.versions, m.versionsErr)
		}
		return m, nil
	case source.ActionMsg:
		return m.onAction(msg)
	case createform.ValidateMsg:
		if !m.inForm {
			return m, nil
		}
		return m, m.src.Validate(msg.Request)
	case source.ValidationMsg:
		if !m.inForm {
			return m, nil
		}
		var cmd tea.Cmd
		m.form, cmd = m.form.Update(msg)
		return m, cmd
	case createform.SubmitMsg:
		m.form.SetPending(m.ctx.Now)
		return m, m.start(op{action: source.Create, target: msg.Request.Name, req: msg.Request})
	case createform.CancelMsg:
		m.inForm = false
		if msg.Pending {
			m.setFlash(false, fmt.Sprintf("creating %s goes on in the background", m.form.Name()))
		}
		return m, nil
	case confirm.ConfirmedMsg:
		m.inConfirm = false
		o := msg.Tag.(op)
		if o.action == source.RotateUser {
			o.user = msg.Choice
		} else {
			o.to = msg.Choice
		}
		return m, m.start(o)
	case confirm.CancelledMsg:
		m.inConfirm = false
		return m, nil
	case userform.SubmitMsg:
		m.userForm.SetPending(m.ctx.Now)
		return m, m.start(op{action: source.CreateUser, target: msg.Database, user: msg.Request.Name, userReq: msg.Request})
	case userform.CancelMsg:
		m.inUserForm = false
		if msg.Pending {
			m.setFlash(false, fmt.Sprintf("creating user %s of %s goes on in the background; its password is shown when it is done", m.userForm.Name(), m.userForm.Database()))
		}
		return m, nil
	case credentials.DismissedMsg:
		m.dropSecret()
		return m, nil
	case tea.KeyMsg:
		return m.onKey(msg)
	}
	return m, nil
}

// showSecret puts a password the agent gave once on screen, above
// everything, until dismissed.
func (m *Model) showSecret(c api.Credentials, rotated bool) {
	p := credentials.New(m.ctx, c, rotated)
	p.SetSize(m.ctx.Width, m.contentHeight())
	m.secrets = append(m.secrets, p)
}

// dropSecret forgets the password on screen. Its element is zeroed, not
// only sliced off: the backing array would still hold it.
func (m *Model) dropSecret() {
	if len(m.secrets) == 0 {
		return
	}
	m.secrets[0] = credentials.Model{}
	m.secrets = m.secrets[1:]
	if len(m.secrets) == 0 {
		m.secrets = nil
	}
}

func (m Model) onTick(now time.Time) (Model, tea.Cmd) {
	m.ctx.Now = now
	cmds := []tea.Cmd{m.tick()}
	// One refresh at a time: a slow agent is not sent a pile of requests,
	// and the age on screen tells the user it is slow.
	if !m.refreshing {
		m.refreshing = true
		cmds = append(cmds, m.src.Refresh())
	}
	if m.flash != nil && !m.flash.err && now.Sub(m.flash.at) > successFor {
		m.flash = nil
	}
	m.updateStale()
	return m, tea.Batch(cmds...)
}

func (m Model) onSnapshot(s source.SnapshotMsg) Model {
	m.refreshing = false
	if s.At.After(m.ctx.Now) {
		m.ctx.Now = s.At
	}
	m.statusErr = s.StatusErr
	if s.StatusErr == nil {
		m.status, m.hasStatus = s.Status, true
		m.cluster.SetStatus(s.Status)
	}
	if s.NodesErr == nil {
		m.nodes, m.nodesLoaded = s.Nodes, true
		m.cluster.SetNodes(s.Nodes)
		if m.inForm {
			m.form.SetNodes(s.Nodes)
		}
	}
	if s.DatabasesErr == nil {
		m.dbsLoaded = true
		m.dbs.SetDatabases(s.Databases)
		m.cluster.SetDatabases(s.Databases)
		if m.inDetail {
			m.detail.SetDatabases(s.Databases)
		}
		if m.selectNext != "" {
			for _, db := range s.Databases {
				if db.Name == m.selectNext {
					m.dbs.Select(db.Name)
					m.selectNext = ""
				}
			}
		}
	}
	// The events have their own error and age, shown in their view: an
	// agent that cannot list them still shows the cluster live.
	if s.EventsErr == nil {
		m.events.SetEvents(s.Events, s.Started)
	} else {
		m.events.SetError(s.EventsErr)
		m.ctx.Log.Debug("reading the events failed", "err", s.EventsErr)
	}
	if m.inDetail {
		m.detail.SetEvents(m.events.Events(), m.events.Err())
	}
	m.lastErr = s.Err()
	if m.lastErr == nil {
		// The data is as old as the moment it was asked for.
		m.ctx.DataAt = s.Started
	} else {
		m.ctx.Log.Debug("refresh failed", "err", m.lastErr)
	}
	m.updateStale()
	return m
}

func (m *Model) updateStale() {
	m.ctx.Stale = m.ctx.DataAt.IsZero() || m.lastErr != nil || m.ctx.Now.Sub(m.ctx.DataAt) > StaleAfter(m.ctx.Refresh)
}

// start sends an action to the agent and tracks it until it answers.
func (m *Model) start(o op) tea.Cmd {
	o.since = m.ctx.Now
	m.pending = append(m.pending, o)
	// Never a password: the op has none, and the answer is not logged.
	m.ctx.Log.Info("action", "action", o.action.String(), "target", o.target, "to", o.to, "user", o.user)
	switch o.action {
	case source.Create:
		return m.src.Create(o.req)
	case source.Restart:
		return m.src.Restart(o.target)
	case source.Delete:
		return m.src.Delete(o.target)
	case source.Drain:
		return m.src.Drain(o.target)
	case source.Failover:
		return m.src.Failover(o.target, o.to)
	case source.Promote:
		return m.src.Promote(o.target)
	case source.Unlink:
		return m.src.Unlink(o.target)
	case source.CreateUser:
		return m.src.CreateUser(o.target, o.userReq)
	case source.RotateUser:
		return m.src.RotateUser(o.target, o.user)
	}
	return nil
}

func (m Model) onAction(r source.ActionMsg) (Model, tea.Cmd) {
	for i, p := range m.pending {
		if p.action == r.Action && p.target == r.Target && p.user == r.User {
			m.pending = append(m.pending[:i:i], m.pending[i+1:]...)
			break
		}
	}
	if r.Err != nil {
		m.ctx.Log.Info("action failed", "action", r.Action.String(), "target", r.Target, "user", r.User, "err", r.Err)
	}
	took := uictx.FormatAge(r.Took)
	switch r.Action {
	case source.Create:
		formShown := m.inForm && m.form.Pending() && m.form.Name() == r.Target
		switch {
		case r.Err != nil && formShown:
			// The form stays open with the agent's answer, to fix it.
			m.form.SetResult(r.Err)
		case r.Err != nil:
			m.setFlash(true, fmt.Sprintf("create %s: %v", r.Target, r.Err))
		default:
			if formShown {
				// Show the new database where the user will look for it;
				// a create left in the background does not move the view.
				m.inForm = false
				m.tab, m.inDetail = TabDatabases, false
			}
			m.selectNext = r.Target
			m.dbs.Select(r.Target)
			text := fmt.Sprintf("created %s on %s in %s: %s", r.Target, dblist.PrimaryNode(r.Database), took, r.Database.State)
			if n := len(dblist.Replicas(r.Database)); n > 0 {
				text += fmt.Sprintf(", with %d replica(s)", n)
			}
			if r.Database.Follows != "" {
				text += ", following " + r.Database.Follows
			}
			m.setFlash(false, text)
		}
	case source.Restart:
		if r.Err != nil {
			m.setFlash(true, fmt.Sprintf("restart %s: %v", r.Target, r.Err))
		} else {
			m.setFlash(false, fmt.Sprintf("restarted %s in %s: %s", r.Target, took, r.Database.State))
		}
	case source.Delete:
		if r.Err != nil {
			m.setFlash(true, fmt.Sprintf("delete %s: %v", r.Target, r.Err))
		} else {
			if m.inDetail && m.detail.Name() == r.Target {
				m.inDetail = false
			}
			m.setFlash(false, fmt.Sprintf("deleted %s", r.Target))
		}
	case source.Failover:
		// A failover can be committed and still fail to settle: the
		// agent then says so in its error, which is shown whole.
		if r.Err != nil {
			m.setFlash(true, fmt.Sprintf("failover %s: %v", r.Target, r.Err))
		} else {
			f := r.Failover
			m.setFlash(false, fmt.Sprintf("failed over %s from %s to %s in %s (epoch %d); writes paused %.1f ms",
				r.Target, f.From, f.To, took, f.Database.Epoch, f.WritePauseMs))
		}
	case source.Promote:
		if r.Err != nil {
			m.setFlash(true, fmt.Sprintf("promote %s: %v", r.Target, r.Err))
		} else {
			m.setFlash(false, fmt.Sprintf("promoted %s in %s: a writable primary, for good (epoch %d)", r.Target, took, r.Database.Epoch))
		}
	case source.Unlink:
		if r.Err != nil {
			m.setFlash(true, fmt.Sprintf("unlink %s: %v", r.Target, r.Err))
		} else {
			m.setFlash(false, fmt.Sprintf("unlinked %s in %s: it follows nothing and refuses writes until promoted (P)", r.Target, took))
		}
	case source.CreateUser:
		formShown := m.inUserForm && m.userForm.Pending() && m.userForm.Database() == r.Target && m.userForm.Name() == r.User
		switch {
		case r.Err != nil && formShown:
			// The form stays open with the agent's answer, to fix it.
			m.userForm.SetResult(r.Err)
		case r.Err != nil:
			m.setFlash(true, fmt.Sprintf("create user %s of %s: %v", r.User, r.Target, r.Err))
		default:
			if formShown {
				m.inUserForm = false
			}
			m.showSecret(r.Credentials, false)
			m.setFlash(false, fmt.Sprintf("created user %s of %s in %s", r.User, r.Target, took))
		}
	case source.RotateUser:
		if r.Err != nil {
			m.setFlash(true, fmt.Sprintf("rotate user %s of %s: %v", r.User, r.Target, r.Err))
		} else {
			m.showSecret(r.Credentials, true)
			m.setFlash(false, fmt.Sprintf("rotated the password of user %s of %s in %s", r.User, r.Target, took))
		}
	case source.Drain:
		switch {
		case r.Err != nil:
			m.setFlash(true, fmt.Sprintf("drain %s: %v", r.Target, r.Err))
		default:
			text := fmt.Sprintf("node %s is draining: no new databases go there", r.Target)
			if len(r.Drain.Moved) > 0 {
				text += "; primaries switched over to a replica elsewhere: " + strings.Join(r.Drain.Moved, ", ")
			}
			if len(r.Drain.Remaining) > 0 {
				text += "; still there (replicas, primaries with no healthy replica): " + strings.Join(r.Drain.Remaining, ", ")
			}
			m.setFlash(false, text)
		}
	}
	// Show the effect now rather than at the next tick.
	if !m.refreshing {
		m.refreshing = true
		return m, m.src.Refresh()
	}
	return m, nil
}

func (m *Model) setFlash(isErr bool, text string) {
	m.flash = &flash{text: text, err: isErr, at: m.ctx.Now}
}

func (m Model) onKey(k tea.KeyMsg) (Model, tea.Cmd) {
	// Keys typed faster than bubbletea reads them arrive as one message
	// ("2n" rather than "2" then "n"). Taken one by one they do what they
	// would have done typed slowly: the "2" switches views, the "n" opens
	// the form, and what follows goes into its first field.
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		var cmds []tea.Cmd
		for _, r := range k.Runes {
			var cmd tea.Cmd
			m, cmd = m.onKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt})
			cmds = append(cmds, cmd)
		}
		return m, tea.Batch(cmds...)
	}
	km := m.ctx.Keys
	var cmd tea.Cmd
	switch {
	case key.Matches(k, km.ForceQuit):
		return m, tea.Quit
	case len(m.secrets) > 0:
		m.secrets[0], cmd = m.secrets[0].Update(k)
		return m, cmd
	case m.inConfirm:
		m.confirm, cmd = m.confirm.Update(k)
		return m, cmd
	case m.inForm:
		m.form, cmd = m.form.Update(k)
		return m, cmd
	case m.inUserForm:
		m.userForm, cmd = m.userForm.Update(k)
		return m, cmd
	case m.inHelp:
		if key.Matches(k, km.Help, km.Back, km.Quit) {
			m.inHelp = false
		}
		return m, nil
	case m.tab == TabDatabases && !m.inDetail && m.dbs.Capturing():
		m.dbs, cmd = m.dbs.Update(k)
		return m, cmd
	case m.tab == TabEvents && m.events.Capturing():
		m.events, cmd = m.events.Update(k)
		return m, cmd
	}

	switch {
	case key.Matches(k, km.Quit):
		return m, tea.Quit
	case key.Matches(k, km.Help):
		m.inHelp = true
		return m, nil
	case key.Matches(k, km.Cluster):
		m.tab = TabCluster
		return m, nil
	case key.Matches(k, km.Databases):
		m.tab = TabDatabases
		return m, nil
	case key.Matches(k, km.Events):
		m.tab = TabEvents
		return m, nil
	case key.Matches(k, km.NextTab):
		m.tab = (m.tab + 1) % nTabs
		return m, nil
	case key.Matches(k, km.PrevTab):
		m.tab = (m.tab + nTabs - 1) % nTabs
		return m, nil
	case key.Matches(k, km.New):
		return m.openForm()
	}

	switch {
	case m.tab == TabDatabases && m.inDetail:
		if key.Matches(k, km.Back) {
			m.inDetail = false
			return m, nil
		}
		if !m.detail.Gone() {
			db := m.detail.Database()
			switch {
			case key.Matches(k, km.NewUser):
				m.userForm = userform.New(m.ctx, db.Name)
				m.inUserForm = true
				return m, nil
			case key.Matches(k, km.RotateUser):
				m.askRotate(db)
				return m, nil
			}
			if next, cmd, ok := m.onDatabaseKey(k, db); ok {
				return next, cmd
			}
		}
		m.detail, cmd = m.detail.Update(k)
		return m, cmd
	case m.tab == TabDatabases:
		db, ok := m.dbs.Selected()
		if ok {
			if next, cmd, ok := m.onDatabaseKey(k, db); ok {
				return next, cmd
			}
		}
		switch {
		case key.Matches(k, km.Open) && ok:
			m.detail = dbdetail.New(m.ctx, db)
			m.detail.SetEvents(m.events.Events(), m.events.Err())
			m.inDetail = true
			return m, m.src.URL(db.Name)
		case key.Matches(k, km.Back) && m.dbs.Filter() == "":
			m.flash = nil
			return m, nil
		}
		m.dbs, cmd = m.dbs.Update(k)
		return m, cmd
	case m.tab == TabCluster:
		if n, ok := m.cluster.Selected(); ok && key.Matches(k, km.Drain) {
			m.askDrain(n)
			return m, nil
		}
		if key.Matches(k, km.Back) {
			m.flash = nil
			return m, nil
		}
		m.cluster, cmd = m.cluster.Update(k)
		return m, cmd
	case m.tab == TabEvents:
		if key.Matches(k, km.Back) && m.events.Filter() == "" {
			m.flash = nil
			return m, nil
		}
		m.events, cmd = m.events.Update(k)
		return m, cmd
	}
	if key.Matches(k, km.Back) {
		m.flash = nil
	}
	return m, nil
}

// onDatabaseKey runs the actions on one database, the same in the list
// (on the database under the cursor) and in its detail. ok says k was one
// of them.
func (m Model) onDatabaseKey(k tea.KeyMsg, db api.Database) (_ Model, _ tea.Cmd, ok bool) {
	km := m.ctx.Keys
	switch {
	case key.Matches(k, km.Restart):
		m.askRestart(db)
	case key.Matches(k, km.Delete):
		m.askDelete(db)
	case key.Matches(k, km.Failover):
		m.askFailover(db)
	case key.Matches(k, km.Promote):
		m.askPromote(db)
	case key.Matches(k, km.Unlink):
		m.askUnlink(db)
	case key.Matches(k, km.Replicate):
		next, cmd := m.openLinkedForm(db)
		return next, cmd, true
	default:
		return m, nil, false
	}
	return m, nil, true
}

func (m Model) openForm() (Model, tea.Cmd) {
	return m.showForm(createform.New(m.ctx))
}

// openLinkedForm opens the form of a linked replica of src. Whether src
// can be followed (not itself a replica, not read-only) is the agent's
// rule: the form asks the agent, and shows its answer, as for any other.
func (m Model) openLinkedForm(src api.Database) (Model, tea.Cmd) {
	return m.showForm(createform.NewLinked(m.ctx, src))
}

func (m Model) showForm(f createform.Model) (Model, tea.Cmd) {
	m.form = f
	m.form.SetVersions(m.versions, m.versionsErr)
	m.form.SetNodes(m.nodes)
	m.inForm = true
	if m.versions == nil {
		// The first read failed or has not answered: ask again.
		return m, m.src.Versions()
	}
	return m, nil
}

func (m *Model) askRestart(db api.Database) {
	body := fmt.Sprintf("Every instance of %s restarts; connected clients are dropped and reconnect.", db.Name)
	if db.Flavor == "nordb" {
		body += " It is a nordb (memory only) database: its data is LOST."
	} else {
		body += fmt.Sprintf(" Its data is kept (%s).", db.Flavor)
	}
	m.confirm = confirm.NewYesNo(m.ctx, "Restart "+db.Name+"?", body, op{action: source.Restart, target: db.Name})
	m.inConfirm = true
}

func (m *Model) askDelete(db api.Database) {
	body := fmt.Sprintf("This deletes %s: its units, its configuration and ALL ITS DATA (%s plan, %s used). It cannot be undone.",
		db.Name, formatSize(db.MemoryBytes), formatSize(db.MemoryUsedBytes))
	m.confirm = confirm.NewTyped(m.ctx, "Delete "+db.Name+"?", body, db.Name, op{action: source.Delete, target: db.Name})
	m.inConfirm = true
}

func (m *Model) askDrain(n api.Node) {
	body := fmt.Sprintf("No new database will be placed on %s, and each primary there with a healthy replica on another node is switched over to it (a planned failover: writes pause briefly). The rest of its %d instance(s) stay: replicas, and primaries without one, cannot move without losing their data.", n.Name, n.Databases)
	if n.Draining {
		body = fmt.Sprintf("%s is already draining. Drain again to list what is still there.", n.Name)
	}
	m.confirm = confirm.NewYesNo(m.ctx, "Drain node "+n.Name+"?", body, op{action: source.Drain, target: n.Name})
	m.inConfirm = true
}

// askFailover asks which replica takes over, the most up-to-date one
// first, with how each stands: the agent refuses one that is down,
// syncing or too far behind, and the user sees that before choosing. How
// far is too far is the agent's setting, so the text names the setting,
// not a figure that may not be the cluster's.
func (m *Model) askFailover(db api.Database) {
	reps := dblist.Replicas(db)
	if len(reps) == 0 {
		m.setFlash(true, fmt.Sprintf("cannot fail over %s: it has no replica; a database created with replicas can fail over to one", db.Name))
		return
	}
	choices := []confirm.Choice{{Value: "", Label: "most up-to-date", Detail: "the replica with the highest offset"}}
	for _, in := range reps {
		detail := in.State
		if r := in.Replication; r != nil {
			detail += " · link " + r.LinkStatus
			switch {
			case r.SyncInProgress:
				detail += " · syncing"
			case r.LagBytes >= 0:
				detail += " · lag " + formatSize(r.LagBytes)
			}
		}
		choices = append(choices, confirm.Choice{Value: in.Node, Label: in.Node, Detail: detail})
	}
	body := fmt.Sprintf("Writes to %s pause (for about 10 ms) until the chosen replica has every one; it then becomes the primary (epoch %d), the other instances follow it, and clients still on %s are disconnected to find the new primary. No acknowledged write is lost. The agent refuses a replica that is down, syncing or too far behind (failover.switchover_max_lag), and nothing changes.",
		db.Name, db.Epoch+1, dblist.PrimaryNode(db))
	m.confirm = confirm.NewChoice(m.ctx, "Fail over "+db.Name+"?", body, "fail over", choices, op{action: source.Failover, target: db.Name})
	m.inConfirm = true
}

// askPromote confirms a promote: it is for good, the database stops
// following its source and takes writes.
func (m *Model) askPromote(db api.Database) {
	var body string
	switch {
	case db.Follows != "":
		body = fmt.Sprintf("%s stops following %s and takes writes, for good: the promotion is recorded in the cluster, so no restart makes it follow again. Writes to %s from now on are not copied to it.", db.Name, db.Follows, db.Follows)
	case db.ReadOnly:
		body = fmt.Sprintf("%s is read-only (unlinked). Promoted, it takes writes, for good.", db.Name)
	default:
		m.setFlash(true, fmt.Sprintf("cannot promote %s: it is already a writable primary; only a linked or unlinked replica can be promoted", db.Name))
		return
	}
	m.confirm = confirm.NewYesNo(m.ctx, "Promote "+db.Name+"?", body, op{action: source.Promote, target: db.Name})
	m.inConfirm = true
}

// askUnlink confirms an unlink: the database stops following for good,
// keeps its data, and stays read-only.
func (m *Model) askUnlink(db api.Database) {
	if db.Follows == "" {
		why := "it follows nothing; unlink applies to a linked replica"
		if db.ReadOnly {
			why = "it is unlinked already; P promotes it"
		}
		m.setFlash(true, fmt.Sprintf("cannot unlink %s: %s", db.Name, why))
		return
	}
	body := fmt.Sprintf("%s stops following %s and keeps its data as it is now, read-only: writes get NOPERM until it is promoted. This cannot be undone: to follow %s again, create a new linked replica of it (L).", db.Name, db.Follows, db.Follows)
	m.confirm = confirm.NewYesNo(m.ctx, "Unlink "+db.Name+"?", body, op{action: source.Unlink, target: db.Name})
	m.inConfirm = true
}

// askRotate asks which user of db gets a new password. The old one keeps
// working for the agent's default grace, a day (as db user rotate).
func (m *Model) askRotate(db api.Database) {
	if len(db.Users) == 0 {
		why := "it has no application users; a adds one"
		if !db.AccessControl {
			why = "it has no access control yet, until every node is upgraded"
		}
		m.setFlash(true, fmt.Sprintf("cannot rotate a password of %s: %s", db.Name, why))
		return
	}
	choices := make([]confirm.Choice, len(db.Users))
	for i, u := range db.Users {
		detail := u.Role + " · never rotated"
		if !u.RotatedAt.IsZero() {
			detail = u.Role + " · rotated " + uictx.FormatAge(m.ctx.Now.Sub(u.RotatedAt)) + " ago"
		}
		choices[i] = confirm.Choice{Value: u.Name, Label: u.Name, Detail: detail}
	}
	body := fmt.Sprintf("The chosen user of %s gets a new password, shown once. Its old password keeps working for a day (the agent's default grace), for the applications to be given the new one; then it stops.", db.Name)
	m.confirm = confirm.NewChoice(m.ctx, "Rotate a password of "+db.Name+"?", body, "rotate", choices, op{action: source.RotateUser, target: db.Name})
	m.inConfirm = true
}
