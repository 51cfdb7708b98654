package raftstate

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
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
}

// NewFSM returns an FSM over an empty state. changed, if not nil, is called
// after every applied command and every restore (it must not block).
func NewFSM(changed func()) *FSM {
	if changed == nil {
		changed = func() {}
	}
	return &FSM{state: NewState(), changed: changed}
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

// Apply implements raft.FSM. It returns nil or an error value.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, ver, body, err := decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raftstate: undecodable log entry %d: %v", l.Index, err))
	}
	if ver != payloadVersion {
		// An entry from a newer agent: refusing silently would fork the
		// state between nodes, so stop loudly instead.
		panic(fmt.Sprintf("raftstate: log entry %d has %s payload version %d; upgrade this agent", l.Index, t, ver))
	}
	f.mu.Lock()
	res := f.apply(t, body, l.Index)
	f.view.Store(nil)
	f.applied.Store(l.Index)
	f.mu.Unlock()
	f.changed()
	return res
}

func (f *FSM) apply(t CommandType, body []byte, index uint64) error {
	switch t {
	case CmdRegisterNode:
		var p RegisterNode
		mustDecode(t, body, index, &p)
		return f.applyRegisterNode(p)
	case CmdCreateDatabase:
		var p CreateDatabase
		mustDecode(t, body, index, &p)
		return f.applyCreateDatabase(p)
	case CmdDeleteDatabase:
		var p DeleteDatabase
		mustDecode(t, body, index, &p)
		return f.applyDeleteDatabase(p)
	case CmdRestartDatabase:
		var p RestartDatabase
		mustDecode(t, body, index, &p)
		return f.applyRestartDatabase(p)
	case CmdRemoveNode:
		var p RemoveNode
		mustDecode(t, body, index, &p)
		return f.applyRemoveNode(p)
	case CmdSetNodeDraining:
		var p SetNodeDraining
		mustDecode(t, body, index, &p)
		return f.applySetNodeDraining(p)
	case CmdAddJoinToken:
		var p AddJoinToken
		mustDecode(t, body, index, &p)
		return f.applyAddJoinToken(p)
	case CmdConsumeJoinToken:
		var p ConsumeJoinToken
		mustDecode(t, body, index, &p)
		return f.applyConsumeJoinToken(p)
	case CmdSetPrimary:
		var p SetPrimary
		mustDecode(t, body, index, &p)
		return f.applySetPrimary(p)
	case CmdPromoteDatabase:
		var p PromoteDatabase
		mustDecode(t, body, index, &p)
		return f.applyPromoteDatabase(p)
	case CmdUnlinkDatabase:
		var p UnlinkDatabase
		mustDecode(t, body, index, &p)
		return f.applyUnlinkDatabase(p)
	case CmdRecordEvents:
		var p RecordEvents
		mustDecode(t, body, index, &p)
		return f.applyRecordEvents(p)
	}
	panic(fmt.Sprintf("raftstate: log entry %d has unknown command type %d; upgrade this agent", index, t))
}

func mustDecode(t CommandType, body []byte, index uint64, v any) {
	if err := json.Unmarshal(body, v); err != nil {
		panic(fmt.Sprintf("raftstate: log entry %d (%s): %v", index, t, err))
	}
}

func (f *FSM) applyRegisterNode(p RegisterNode) error {
	if !NameRE.MatchString(p.Name) {
		return fmt.Errorf("node name %q: %w", p.Name, ErrInvalid)
	}
	n, ok := f.state.Nodes[p.Name]
	if !ok {
		n = &Node{Name: p.Name, JoinedAt: p.At}
		f.state.Nodes[p.Name] = n
	}
	n.RaftAddr, n.APIAddr, n.Address, n.SentinelPort = p.RaftAddr, p.APIAddr, p.Address, p.SentinelPort
	return nil
}

func (f *FSM) applyRemoveNode(p RemoveNode) error {
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
	if !NameRE.MatchString(d.Name) {
		return fmt.Errorf("database name %q: %w", d.Name, ErrInvalid)
	}
	if _, ok := f.state.Databases[d.Name]; ok {
		return fmt.Errorf("database %q %w", d.Name, ErrExists)
	}
	if !d.Flavor.Valid() {
		return fmt.Errorf("flavor %q: %w", d.Flavor, ErrInvalid)
	}
	if d.MemoryBytes <= 0 || len(d.Password) == 0 || len(d.Instances) == 0 {
		return fmt.Errorf("database %q needs memory, a sealed password and an instance: %w", d.Name, ErrInvalid)
	}
	primaries := 0
	for _, in := range d.Instances {
		if _, ok := f.state.Nodes[in.Node]; !ok {
			return fmt.Errorf("instance %s placed on unknown node %q: %w", in.ID, in.Node, ErrConflict)
		}
		if owner, ok := f.state.PortsInUse(in.Node)[in.Port]; ok {
			return fmt.Errorf("port %d on node %s is already used by %s: %w", in.Port, in.Node, owner, ErrConflict)
		}
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
		if fl.Host == "" || fl.Port < 1 || fl.Port > 65535 {
			return fmt.Errorf("database %q follows an external Redis without a host and port: %w", d.Name, ErrInvalid)
		}
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
	d, ok := f.state.Databases[p.Name]
	if !ok {
		return fmt.Errorf("database %q %w", p.Name, ErrNotFound)
	}
	d.RestartGeneration++
	return nil
}

func (f *FSM) applySetPrimary(p SetPrimary) error {
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

func (f *FSM) applyRecordEvents(p RecordEvents) error {
	// A node resends events whose acknowledgement it lost: keep one.
	recent := map[Event]bool{}
	for _, e := range f.state.Events[max(0, len(f.state.Events)-200):] {
		recent[e] = true
	}
	for _, e := range p.Events {
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
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{state: f.State()}, nil
}

// Restore implements raft.FSM: it builds a new state from the snapshot and
// swaps it in, so a failed restore leaves the old state untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state = s
	f.view.Store(nil)
	f.mu.Unlock()
	f.changed()
	return nil
}
