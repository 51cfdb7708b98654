package raftstate

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// NameRE is the rule for database and node names: they become parts of unit
// names, file names and Sentinel master names, so keep them plain.
var NameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// FSM applies commands to the State. It is deterministic and does no I/O;
// domain errors are returned as values from Apply.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	changed func()
	// view is a read-only copy of state shared by View callers, dropped on
	// every change: the agent's loops read the state many times a second
	// and it changes rarely, so they share one copy per change.
	view atomic.Pointer[State]
	// applied is the index of the last command this FSM has applied.
	// hashicorp/raft's own AppliedIndex moves when entries are handed to
	// the FSM goroutine, before they are applied: not good enough to know
	// that the state is replayed.
	applied atomic.Uint64
	// applyErrs are the last maxApplyErrors entries this FSM could not
	// decode, oldest first, and applyErrTotal counts them all (under mu).
	applyErrs     []ApplyError
	applyErrTotal uint64
	// skippedAt is the first entry not applied since the state was last
	// whole (0: none), under mu. While it is set Snapshot refuses: a
	// snapshot would compact the skipped entry out of the log, and an
	// upgraded agent could then never replay it. A restored snapshot
	// (the leader's) replaces the state and clears it.
	skippedAt uint64
	// onApplyError, if set, hears of every entry not applied.
	onApplyError atomic.Pointer[func(ApplyError)]
}

// ApplyError is a Raft log entry this FSM could not decode and so did not
// apply: too short, an unknown command type, a newer payload version (a
// newer agent wrote it), or a payload that does not parse.
type ApplyError struct {
	// Index is the entry's index in the Raft log.
	Index uint64 `json:"index"`
	// Command names the command type ("command-13" for one this agent
	// does not know; "" when the entry is too short to hold one).
	Command string `json:"command"`
	// PayloadVersion is the entry's payload version.
	PayloadVersion uint8 `json:"payload_version"`
	// Err says what could not be decoded.
	Err string `json:"error"`
}

// maxApplyErrors is how many ApplyErrors the FSM keeps: the first is
// enough to act on (upgrade), the rest show whether it goes on.
const maxApplyErrors = 16

// NewFSM returns an FSM over an empty state. changed, if not nil, is called
// after every applied command and every restore (it must not block).
func NewFSM(changed func()) *FSM {
	if changed == nil {
		changed = func() {}
	}
	return &FSM{state: NewState(), changed: changed}
}

// OnApplyError sets fn to be called, once per entry, for every entry the
// FSM cannot decode (on the FSM's goroutine: it must not block). Set it
// before handing the FSM to Raft.
func (f *FSM) OnApplyError(fn func(ApplyError)) {
	f.onApplyError.Store(&fn)
}

// ApplyErrors returns the last 16 entries this FSM could not decode,
// oldest first, and how many there have been since it started.
func (f *FSM) ApplyErrors() (recent []ApplyError, total uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]ApplyError(nil), f.applyErrs...), f.applyErrTotal
}

// State returns a deep copy of the current state.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone()
}

// Applied is the index of the last command applied to the state.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// View returns the current state for reading only: callers share it and
// must not modify it. Use State for a copy of one's own.
func (f *FSM) View() *State {
	if v := f.view.Load(); v != nil {
		return v
	}
	// Under the read lock no change can land between the clone and its
	// publication (Apply drops the view under the write lock).
	f.mu.RLock()
	defer f.mu.RUnlock()
	if v := f.view.Load(); v != nil {
		return v
	}
	v := f.state.Clone()
	f.view.CompareAndSwap(nil, v)
	return f.view.Load()
}

// Node returns a copy of one node's record, without copying the whole state
// (the API checks membership on every call between members).
func (f *FSM) Node(name string) (Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.state.Nodes[name]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Apply implements raft.FSM. It returns nil or an error value: a domain
// error, or one wrapping ErrUndecodable for an entry this agent cannot
// decode. Such an entry is not applied, but recorded (ApplyErrors) and
// counted as applied: stopping would crash every older node on every
// restart during a rolling upgrade, and the feature levels keep a leader
// from writing what a voter cannot apply.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, ver, body, err := decode(l.Data)
	var p any
	if err == nil {
		p, err = decodePayload(t, ver, body)
	}
	if err != nil {
		return f.refuse(l, t, ver, err)
	}
	f.mu.Lock()
	res := f.apply(p)
	f.view.Store(nil)
	f.applied.Store(l.Index)
	f.mu.Unlock()
	f.changed()
	return res
}

// refuse records an entry it could not decode, leaving the state as it
// was, and returns the entry's response.
func (f *FSM) refuse(l *raft.Log, t CommandType, ver uint8, err error) error {
	e := ApplyError{Index: l.Index, PayloadVersion: ver, Err: err.Error()}
	if len(l.Data) >= 2 {
		e.Command = t.String()
	}
	f.mu.Lock()
	if len(f.applyErrs) == maxApplyErrors {
		copy(f.applyErrs, f.applyErrs[1:])
		f.applyErrs = f.applyErrs[:maxApplyErrors-1]
	}
	f.applyErrs = append(f.applyErrs, e)
	f.applyErrTotal++
	if f.skippedAt == 0 {
		f.skippedAt = l.Index
	}
	f.applied.Store(l.Index)
	f.mu.Unlock()
	if fn := f.onApplyError.Load(); fn != nil && *fn != nil {
		(*fn)(e)
	}
	what := e.Command
	if what == "" {
		what = "no command"
	}
	return fmt.Errorf("log entry %d (%s, payload version %d) not applied: %v: %w", l.Index, what, ver, err, ErrUndecodable)
}

// decodePayload decodes an entry's payload into a pointer to its command's
// payload struct. Adding a command: add its case here and in apply.
func decodePayload(t CommandType, ver uint8, body []byte) (any, error) {
	if ver < 1 || ver > newestPayloadVersion {
		return nil, fmt.Errorf("payload version %d is not one this agent knows (1 to %d)", ver, newestPayloadVersion)
	}
	var p any
	switch t {
	case CmdAdmitNode:
		p = &AdmitNode{}
	case CmdPinNode:
		p = &PinNode{}
	case CmdRotateKey:
		p = &RotateKey{}
	case CmdSetDatabaseCA:
		p = &SetDatabaseCA{}
	case CmdSetDatabaseTLS:
		p = &SetDatabaseTLS{}
	case CmdRegisterNode:
		p = &RegisterNode{}
	case CmdCreateDatabase:
		p = &CreateDatabase{}
	case CmdDeleteDatabase:
		p = &DeleteDatabase{}
	case CmdRestartDatabase:
		p = &RestartDatabase{}
	case CmdRemoveNode:
		p = &RemoveNode{}
	case CmdSetNodeDraining:
		p = &SetNodeDraining{}
	case CmdAddJoinToken:
		p = &AddJoinToken{}
	case CmdConsumeJoinToken:
		p = &ConsumeJoinToken{}
	case CmdSetPrimary:
		p = &SetPrimary{}
	case CmdPromoteDatabase:
		p = &PromoteDatabase{}
	case CmdUnlinkDatabase:
		p = &UnlinkDatabase{}
	case CmdRecordEvents:
		p = &RecordEvents{}
	case CmdSetDatabaseSecrets:
		p = &SetDatabaseSecrets{}
	case CmdPutDatabaseUser:
		p = &PutDatabaseUser{}
	case CmdDeleteDatabaseUser:
		p = &DeleteDatabaseUser{}
	default:
		return nil, fmt.Errorf("unknown command type %d", uint8(t))
	}
	if err := json.Unmarshal(body, p); err != nil {
		return nil, fmt.Errorf("payload does not decode: %w", err)
	}
	return p, nil
}

func (f *FSM) apply(p any) error {
	switch p := p.(type) {
	case *AdmitNode:
		return f.applyAdmitNode(*p)
	case *PinNode:
		return f.applyPinNode(*p)
	case *RotateKey:
		return f.applyRotateKey(*p)
	case *SetDatabaseCA:
		return f.applySetDatabaseCA(*p)
	case *SetDatabaseTLS:
		return f.applySetDatabaseTLS(*p)
	case *RegisterNode:
		return f.applyRegisterNode(*p)
	case *CreateDatabase:
		return f.applyCreateDatabase(*p)
	case *DeleteDatabase:
		return f.applyDeleteDatabase(*p)
	case *RestartDatabase:
		return f.applyRestartDatabase(*p)
	case *RemoveNode:
		return f.applyRemoveNode(*p)
	case *SetNodeDraining:
		return f.applySetNodeDraining(*p)
	case *AddJoinToken:
		return f.applyAddJoinToken(*p)
	case *ConsumeJoinToken:
		return f.applyConsumeJoinToken(*p)
	case *SetPrimary:
		return f.applySetPrimary(*p)
	case *PromoteDatabase:
		return f.applyPromoteDatabase(*p)
	case *UnlinkDatabase:
		return f.applyUnlinkDatabase(*p)
	case *RecordEvents:
		return f.applyRecordEvents(*p)
	case *SetDatabaseSecrets:
		return f.applySetDatabaseSecrets(*p)
	case *PutDatabaseUser:
		return f.applyPutDatabaseUser(*p)
	case *DeleteDatabaseUser:
		return f.applyDeleteDatabaseUser(*p)
	}
	// decodePayload returns only the types above.
	return fmt.Errorf("payload %T has no apply: %w", p, ErrInvalid)
}

func (f *FSM) applyRegisterNode(p RegisterNode) error {
	rec := Node{
		Name: p.Name, RaftAddr: p.RaftAddr, APIAddr: p.APIAddr, Address: p.Address,
		SentinelPort: p.SentinelPort, FeatureLevel: p.FeatureLevel, AgentVersion: p.AgentVersion, Versions: p.Versions,
	}
	if err := checkNode(&rec); err != nil {
		return err
	}
	n, ok := f.state.Nodes[p.Name]
	if !ok {
		n = &Node{Name: p.Name, JoinedAt: p.At}
		f.state.Nodes[p.Name] = n
	}
	n.RaftAddr, n.APIAddr, n.Address, n.SentinelPort = p.RaftAddr, p.APIAddr, p.Address, p.SentinelPort
	// Overwritten even when zero: an agent downgraded to one from before
	// levels registers without them, and is level 1 again.
	n.FeatureLevel, n.AgentVersion, n.Versions = p.FeatureLevel, p.AgentVersion, slices.Clone(p.Versions)
	return nil
}

func (f *FSM) applyRemoveNode(p RemoveNode) error {
	if err := CheckName("node", p.Name); err != nil {
		return err
	}
	if _, ok := f.state.Nodes[p.Name]; !ok {
		return fmt.Errorf("node %q %w", p.Name, ErrNotFound)
	}
	// onlyCopy: every instance is on the node; primaryHere: the primary is,
	// and replicas elsewhere could take over.
	var onlyCopy, primaryHere []string
	for _, name := range f.state.DatabaseNames() {
		d := f.state.Databases[name]
		here, primary := 0, false
		for _, in := range d.Instances {
			if in.Node == p.Name {
				here++
				primary = primary || in.Role == RolePrimary
			}
		}
		switch {
		case here == 0:
		case here == len(d.Instances):
			onlyCopy = append(onlyCopy, name)
		case primary:
			primaryHere = append(primaryHere, name)
		}
	}
	if len(onlyCopy) > 0 && !p.Force {
		return fmt.Errorf("node %s holds the only copy of %s: %w", p.Name, strings.Join(onlyCopy, ", "), ErrConflict)
	}
	if len(primaryHere) > 0 && !p.Force {
		return fmt.Errorf("node %s holds the primary of %s; move it with redis-appliance db failover first: %w", p.Name, strings.Join(primaryHere, ", "), ErrConflict)
	}
	for _, name := range onlyCopy {
		delete(f.state.Databases, name)
		// Whatever followed a deleted database keeps its data, read-only.
		for _, l := range f.state.LinkedReplicas(name) {
			f.state.Databases[l].Follows, f.state.Databases[l].ReadOnly = nil, true
		}
	}
	for _, d := range f.state.Databases {
		kept := d.Instances[:0]
		lostPrimary := false
		for _, in := range d.Instances {
			if in.Node == p.Name {
				lostPrimary = lostPrimary || in.Role == RolePrimary
				continue
			}
			kept = append(kept, in)
		}
		d.Instances = kept
		if lostPrimary {
			// Forced: the first replica takes over without knowing offsets.
			d.Instances[0].Role = RolePrimary
			d.Epoch++
		}
	}
	delete(f.state.Nodes, p.Name)
	return nil
}

func (f *FSM) applySetNodeDraining(p SetNodeDraining) error {
	if err := CheckName("node", p.Name); err != nil {
		return err
	}
	n, ok := f.state.Nodes[p.Name]
	if !ok {
		return fmt.Errorf("node %q %w", p.Name, ErrNotFound)
	}
	n.Draining = p.Draining
	return nil
}

// tokenRetention is how long a spent or expired token is kept, so that a
// reuse is refused as "already used" rather than "unknown".
const tokenRetention = 24 * time.Hour

func (f *FSM) applyAddJoinToken(p AddJoinToken) error {
	t := p.Token
	if t.ID == "" || t.Hash == "" || !t.Expires.After(t.CreatedAt) {
		return fmt.Errorf("join token needs an id, a hash and an expiry after its creation: %w", ErrInvalid)
	}
	if t.ConsumedBy != "" {
		if err := CheckName("node", t.ConsumedBy); err != nil {
			return fmt.Errorf("join token %s: %w", t.ID, err)
		}
	}
	if _, ok := f.state.Tokens[t.ID]; ok {
		return fmt.Errorf("join token %s %w", t.ID, ErrExists)
	}
	for id, old := range f.state.Tokens {
		if old.Expires.Add(tokenRetention).Before(t.CreatedAt) {
			delete(f.state.Tokens, id)
		}
	}
	f.state.Tokens[t.ID] = &t
	return nil
}

func (f *FSM) applyConsumeJoinToken(p ConsumeJoinToken) error {
	if err := CheckName("node", p.Node); err != nil {
		return err
	}
	t, ok := f.state.Tokens[p.ID]
	switch {
	case !ok || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(p.Hash)) != 1:
		return fmt.Errorf("unknown token; create one with redis-appliance cluster token: %w", ErrTokenRefused)
	case t.ConsumedBy != "":
		return fmt.Errorf("token already used by node %s; create a new one with redis-appliance cluster token: %w", t.ConsumedBy, ErrTokenRefused)
	case !p.At.Before(t.Expires):
		return fmt.Errorf("token expired at %s; create a new one with redis-appliance cluster token: %w", t.Expires.UTC().Format(time.RFC3339), ErrTokenRefused)
	}
	if _, taken := f.state.Nodes[p.Node]; taken {
		return fmt.Errorf("a node named %s is already a member; give the joining node another node_name: %w", p.Node, ErrExists)
	}
	t.ConsumedBy = p.Node
	return nil
}

func (f *FSM) applyCreateDatabase(p CreateDatabase) error {
	d := p.Database
	// Name, version, flavor, instance IDs, ports, roles and the source's
	// address are checked here, not only by the proposer: the reconciler
	// (root) joins IDs onto directories and dials the addresses.
	if err := checkDatabase(&d); err != nil {
		return err
	}
	if _, ok := f.state.Databases[d.Name]; ok {
		return fmt.Errorf("database %q %w", d.Name, ErrExists)
	}
	if d.MemoryBytes <= 0 || len(d.Password) == 0 || len(d.Instances) == 0 {
		return fmt.Errorf("database %q needs memory, a sealed password and an instance: %w", d.Name, ErrInvalid)
	}
	primaries := 0
	// mine is the ports this database takes, by node: two of its own
	// instances on one port of a node would collide too.
	mine := map[string]map[int]string{}
	for _, in := range d.Instances {
		if _, ok := f.state.Nodes[in.Node]; !ok {
			return fmt.Errorf("instance %s placed on unknown node %q: %w", in.ID, in.Node, ErrConflict)
		}
		if owner, ok := f.state.PortsInUse(in.Node)[in.Port]; ok {
			return fmt.Errorf("port %d on node %s is already used by %s: %w", in.Port, in.Node, owner, ErrConflict)
		}
		if owner, ok := mine[in.Node][in.Port]; ok {
			return fmt.Errorf("instances %s and %s both take port %d on node %s: %w", owner, in.ID, in.Port, in.Node, ErrConflict)
		}
		if mine[in.Node] == nil {
			mine[in.Node] = map[int]string{}
		}
		mine[in.Node][in.Port] = in.ID
		if in.Role == RolePrimary {
			primaries++
		}
	}
	if primaries != 1 {
		return fmt.Errorf("database %q has %d primaries, want 1: %w", d.Name, primaries, ErrInvalid)
	}
	if err := f.checkFollow(d); err != nil {
		return err
	}
	if d.Epoch == 0 {
		d.Epoch = 1
	}
	if d.PrimarySince.IsZero() {
		d.PrimarySince = d.CreatedAt
	}
	stored := d
	stored.Instances = append([]Instance(nil), d.Instances...)
	f.state.Databases[d.Name] = &stored
	return nil
}

// checkFollow refuses a linked replica whose source is missing, is itself
// a replica, or is the database itself. Because a source must follow
// nothing, no chain and so no loop can form.
func (f *FSM) checkFollow(d Database) error {
	fl := d.Follows
	if fl == nil {
		return nil
	}
	if fl.Database == "" {
		// An external Redis: checkDatabase checked its host and port.
		return nil
	}
	src, ok := f.state.Databases[fl.Database]
	switch {
	case fl.Database == d.Name:
		return fmt.Errorf("database %q cannot follow itself: %w", d.Name, ErrInvalid)
	case !ok:
		return fmt.Errorf("source database %q %w", fl.Database, ErrNotFound)
	case src.Follows != nil:
		return fmt.Errorf("source %s is itself a replica of %s; replicate from %s, or promote %s first: %w",
			src.Name, src.Follows.Describe(), src.Follows.Describe(), src.Name, ErrConflict)
	case src.ReadOnly:
		return fmt.Errorf("source %s is read-only (unlinked); promote it first: %w", src.Name, ErrConflict)
	}
	return nil
}

func (f *FSM) applyDeleteDatabase(p DeleteDatabase) error {
	if err := CheckName("database", p.Name); err != nil {
		return err
	}
	if _, ok := f.state.Databases[p.Name]; !ok {
		return fmt.Errorf("database %q %w", p.Name, ErrNotFound)
	}
	if linked := f.state.LinkedReplicas(p.Name); len(linked) > 0 {
		return fmt.Errorf("database %s has linked replicas: %s; unlink, promote or delete them first: %w",
			p.Name, strings.Join(linked, ", "), ErrConflict)
	}
	delete(f.state.Databases, p.Name)
	return nil
}

func (f *FSM) applyRestartDatabase(p RestartDatabase) error {
	if err := CheckName("database", p.Name); err != nil {
		return err
	}
	d, ok := f.state.Databases[p.Name]
	if !ok {
		return fmt.Errorf("database %q %w", p.Name, ErrNotFound)
	}
	d.RestartGeneration++
	return nil
}

func (f *FSM) applySetPrimary(p SetPrimary) error {
	if err := CheckName("database", p.Name); err != nil {
		return err
	}
	d, ok := f.state.Databases[p.Name]
	if !ok {
		return fmt.Errorf("database %q %w", p.Name, ErrNotFound)
	}
	if p.Epoch != d.Epoch {
		return fmt.Errorf("database %s is at epoch %d, the change was decided at %d; look again and retry: %w", d.Name, d.Epoch, p.Epoch, ErrConflict)
	}
	target, ok := d.Instance(p.Instance)
	if !ok {
		return fmt.Errorf("instance %q of database %s %w", p.Instance, d.Name, ErrNotFound)
	}
	if target.Role == RolePrimary {
		return fmt.Errorf("instance %s is already the primary of %s: %w", p.Instance, d.Name, ErrConflict)
	}
	for i := range d.Instances {
		if d.Instances[i].ID == p.Instance {
			d.Instances[i].Role = RolePrimary
		} else {
			d.Instances[i].Role = RoleReplica
		}
	}
	d.Epoch++
	d.PrimarySince = p.At
	if p.Automatic {
		d.FailedOverAt = p.At
	}
	return nil
}

func (f *FSM) applyPromoteDatabase(p PromoteDatabase) error {
	if err := CheckName("database", p.Name); err != nil {
		return err
	}
	d, ok := f.state.Databases[p.Name]
	if !ok {
		return fmt.Errorf("database %q %w", p.Name, ErrNotFound)
	}
	if d.Follows == nil && !d.ReadOnly {
		return fmt.Errorf("database %s is already a writable primary; only a linked or unlinked replica can be promoted: %w", d.Name, ErrConflict)
	}
	if d.Follows != nil {
		d.PromotedFrom = d.Follows.Describe()
	}
	d.Follows, d.ReadOnly, d.PromotedAt, d.PrimarySince = nil, false, p.At, p.At
	d.Epoch++
	return nil
}

// applyRecordEvents appends the well-formed events and drops the others
// (see wellFormedEvent), cutting a message longer than MaxEventMessage.
// Dropping, not refusing the command: a node resends its queue until the
// leader takes it, so one bad event refused would hold back every good
// one behind it forever.
func (f *FSM) applyRecordEvents(p RecordEvents) error {
	// A node resends events whose acknowledgement it lost: keep one.
	recent := map[Event]bool{}
	for _, e := range f.state.Events[max(0, len(f.state.Events)-200):] {
		recent[e] = true
	}
	for _, e := range p.Events {
		if !wellFormedEvent(e) {
			continue
		}
		e.Message = cutMessage(e.Message)
		if !recent[e] {
			recent[e] = true
			f.state.Events = append(f.state.Events, e)
		}
	}
	if n := len(f.state.Events) - MaxEvents; n > 0 {
		f.state.Events = append([]Event(nil), f.state.Events[n:]...)
	}
	return nil
}

func (f *FSM) applyUnlinkDatabase(p UnlinkDatabase) error {
	if err := CheckName("database", p.Name); err != nil {
		return err
	}
	d, ok := f.state.Databases[p.Name]
	if !ok {
		return fmt.Errorf("database %q %w", p.Name, ErrNotFound)
	}
	if d.Follows == nil {
		return fmt.Errorf("database %s follows nothing; unlink applies to a linked replica: %w", d.Name, ErrConflict)
	}
	d.Follows, d.ReadOnly = nil, true
	return nil
}

// Snapshot implements raft.FSM: a copy of the whole state, written later.
// It refuses while the state lacks an entry this agent could not decode,
// so that the log keeps that entry for an upgraded agent to replay.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.skippedAt != 0 {
		return nil, &refusal{kind: ErrUndecodable, msg: fmt.Sprintf("no snapshot while log entry %d is not applied (this agent cannot decode it; the log keeps it for an upgraded agent to replay): upgrade this agent to the leader's version", f.skippedAt)}
	}
	return &fsmSnapshot{state: f.state.Clone()}, nil
}

// Restore implements raft.FSM: it builds a new state from the snapshot,
// checks every database and node in it as Apply would have, and swaps it
// in, so a failed or refused restore leaves the old state untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	// Snapshots arrive from the leader over the network: they are held to
	// what Apply accepts.
	if err := checkState(s); err != nil {
		return fmt.Errorf("refuse snapshot: %w", err)
	}
	f.mu.Lock()
	f.state = s
	// While running, Raft restores only the leader's snapshot, which
	// covers this node's applied entries: the skipped ones are in it.
	f.skippedAt = 0
	f.view.Store(nil)
	f.mu.Unlock()
	f.changed()
	return nil
}
