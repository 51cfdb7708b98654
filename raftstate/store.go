package raftstate

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrAlreadyBootstrapped is returned by Bootstrap on a node that already has
// Raft state (it is, or was, a member of a cluster).
var ErrAlreadyBootstrapped = errors.New("this node already belongs to a cluster")

// Config is what Open needs.
type Config struct {
	// NodeName is this node's Raft server ID and node name.
	NodeName string
	// Dir holds raft.db and the snapshots; created 0700.
	Dir string
	// BindAddr is the TCP address Raft listens on, e.g. 127.0.0.1:7481.
	BindAddr string
	// AdvertiseAddr is the address peers dial; BindAddr if empty.
	AdvertiseAddr string
	// Logger receives Raft's own logs.
	Logger *slog.Logger
	// ServerTLS and ClientTLS, when set, run Raft over mutual TLS (see
	// NewTLSStreamLayer); without them Raft speaks plain TCP (tests only).
	ServerTLS, ClientTLS *tls.Config
	// PeerName reads the node name from a peer's verified certificate
	// (pki.NodeName); required with ServerTLS, for VerifyPeer.
	PeerName func(*x509.Certificate) (string, error)
	// AgentVersion is this agent's release, recorded with the node when
	// Bootstrap registers it (at most 64 printable characters).
	AgentVersion string
}

// Store is the replicated state: Raft plus the FSM.
type Store struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *FSM
	logs      *raftboltdb.BoltStore
	snaps     raft.SnapshotStore
	transport *raft.NetworkTransport
	// heard is the TLS stream layer's (nil over plain TCP): see Heard.
	heard   <-chan struct{}
	changes chan struct{}
	// leading receives Raft's leadership changes (raft.Config.NotifyCh);
	// done ends watchLeadership.
	leading   chan bool
	done      chan struct{}
	closeOnce sync.Once
	// observed receives Raft's leader observations (see watchLeadership).
	observed chan raft.Observation
	// leadMu guards leadChanged, previous, leaderID and leaderMoved.
	leadMu sync.Mutex
	// leadChanged is closed when this node gains or loses leadership.
	leadChanged chan struct{}
	// previous is the last node other than this one seen leading.
	previous string
	// leaderID is the leader as last observed ("" unknown); leaderMoved
	// is closed when that changes (see LeaderChanged).
	leaderID    string
	leaderMoved chan struct{}
	// levelOf is commandLevel; tests give a command another level.
	levelOf func(CommandType) (uint32, bool)
	// confirmMu guards confirmedAt and confirmCh (see Confirmed).
	confirmMu   sync.Mutex
	confirmedAt time.Time
	confirmCh   chan struct{}
	subMu       sync.Mutex
	subs        []chan struct{}
	log         *slog.Logger
	// layer is Raft's TLS stream layer (nil over plain TCP); recheck
	// asks recheckPeers to look at its connections again.
	layer   *TLSStreamLayer
	recheck chan struct{}
	// ready is set once WaitReady has seen this node's state replayed:
	// until then VerifyPeer also trusts the servers of the Raft
	// configuration (see peerVerdict).
	ready atomic.Bool
}

// applyTimeout bounds one Raft write; a longer stall means no quorum.
const applyTimeout = 10 * time.Second

// Open opens (or creates) the Raft state in cfg.Dir and starts Raft. It does
// not bootstrap a new cluster: see Bootstrap.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if cfg.ServerTLS != nil && cfg.PeerName == nil {
		return nil, errors.New("raft over TLS needs PeerName (pki.NodeName) to check peers against the membership")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft directory: %w", err)
	}
	s := &Store{
		cfg: cfg, changes: make(chan struct{}, 1), recheck: make(chan struct{}, 1), confirmCh: make(chan struct{}), log: cfg.Logger,
		leadChanged: make(chan struct{}), leaderMoved: make(chan struct{}), levelOf: commandLevel,
	}
	s.fsm = NewFSM(s.notify)
	s.fsm.OnApplyError(func(e ApplyError) {
		// Loud, once per entry: this node's state now lacks that entry
		// until its agent is upgraded (it replays the entry then).
		s.log.Error("raft log entry not applied: this agent cannot decode it (a newer agent wrote it?); upgrade the agent on this node to the leader's version",
			"index", e.Index, "command", e.Command, "payload_version", e.PayloadVersion, "err", e.Err)
	})

	hlog := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Info,
		Output: &slogWriter{log: cfg.Logger},
	})
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(cfg.Dir, "raft.db"),
		// Without a timeout a second agent on the same directory would hang
		// on bbolt's file lock instead of saying so.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s (is another agent using this data directory?): %w", cfg.Dir, err)
	}
	s.logs = logs
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, hlog)
	if err != nil {
		_ = logs.Close()
		return nil, fmt.Errorf("open raft snapshots: %w", err)
	}
	s.snaps = snaps
	adv, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
	if err != nil {
		_ = logs.Close()
		return nil, fmt.Errorf("raft advertise address %q: %w", cfg.AdvertiseAddr, err)
	}
	var tr *raft.NetworkTransport
	if cfg.ServerTLS != nil {
		// Both ways, a peer is accepted only as a current member with its
		// pinned certificate (VerifyPeer), not merely as a holder of a
		// certificate from the cluster CA.
		layer, lerr := NewTLSStreamLayer(cfg.BindAddr, adv,
			withPeerCheck(cfg.ServerTLS, s.verifyConnection), withPeerCheck(cfg.ClientTLS, s.verifyConnection))
		err = lerr
		if err == nil {
			s.layer = layer
			s.heard = layer.Heard()
			tr = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
				Stream: layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog,
			})
		}
	} else {
		tr, err = raft.NewTCPTransportWithLogger(cfg.BindAddr, adv, 3, 10*time.Second, hlog)
	}
	if err != nil {
		_ = logs.Close()
		return nil, fmt.Errorf("listen for raft on %s (is the port free?): %w", cfg.BindAddr, err)
	}
	s.transport = tr

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.Logger = hlog
	rc.HeartbeatTimeout = HeartbeatTimeout
	rc.ElectionTimeout = HeartbeatTimeout
	rc.LeaderLeaseTimeout = LeaderLeaseTimeout
	s.leading, s.done = make(chan bool, 8), make(chan struct{})
	rc.NotifyCh = s.leading
	rc.SnapshotThreshold = 1024
	// Followers learn that an entry is committed from the next
	// AppendEntries that carries the commit index. Apply sends one at once
	// (see pushCommit), so this timer only paces the idle leader, where
	// hashicorp/raft's 50 ms default costs more CPU than anything else the
	// agent does.
	rc.CommitTimeout = CommitTimeout
	holdVotes()
	r, err := raft.NewRaft(rc, s.fsm, logs, logs, snaps, tr)
	if err != nil {
		_ = tr.Close()
		_ = logs.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	s.observed = make(chan raft.Observation, 16)
	r.RegisterObserver(raft.NewObserver(s.observed, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	go s.watchLeadership()
	if s.layer != nil {
		go s.recheckPeers()
	}
	return s, nil
}

// recheckPeers closes the Raft connections of peers that are no longer
// members (or no longer hold their pinned certificate) after every change
// of the state: a removed node is cut off at once, not when its
// connection next breaks.
func (s *Store) recheckPeers() {
	for {
		select {
		case <-s.done:
			return
		case <-s.recheck:
		}
		if n := s.layer.Recheck(s.verifyConnection); n > 0 {
			s.log.Warn("closed raft connections of peers that are no longer members", "connections", n)
		}
	}
}

// watchLeadership follows who leads: it remembers the last other leader
// (PreviousLeader), tells LeaderChanged's readers when the leader changes
// and LeadershipChanged's when this node gains or loses leadership, paces
// heartbeats, and runs confirmLeadership while this node leads.
func (s *Store) watchLeadership() {
	var stopConfirming chan struct{}
	for {
		var leader bool
		select {
		case leader = <-s.leading:
			// Observations are dropped when their channel is full; this
			// catches up with one that was.
			_, id := s.raft.LeaderWithID()
			s.observeLeader(string(id))
		case o := <-s.observed:
			s.observeLeader(string(o.Data.(raft.LeaderObservation).LeaderID))
			continue
		case <-s.done:
			return
		}
		s.paceHeartbeats(leader)
		if stopConfirming != nil {
			close(stopConfirming)
			stopConfirming = nil
		}
		if leader {
			stopConfirming = make(chan struct{})
			go s.confirmLeadership(stopConfirming)
		}
		s.leadMu.Lock()
		close(s.leadChanged)
		s.leadChanged = make(chan struct{})
		s.leadMu.Unlock()
	}
}

// observeLeader records the leader Raft reports ("" when it knows none).
func (s *Store) observeLeader(id string) {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if id != "" && id != s.cfg.NodeName {
		s.previous = id
	}
	if id != s.leaderID {
		s.leaderID = id
		close(s.leaderMoved)
		s.leaderMoved = make(chan struct{})
	}
}

// LeaderChanged returns a channel closed when the leader this node knows
// next changes: another node takes over, this node gains or loses
// leadership, or the leader becomes unknown (an election). Take the
// channel before reading Leader, so that a change between the two is not
// missed: the channel is then already closed.
func (s *Store) LeaderChanged() <-chan struct{} {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	return s.leaderMoved
}

// Heard receives when a peer's Raft traffic arrives (on a follower: the
// leader's heartbeat, every BeatInterval); nil, which never receives, over
// plain TCP. It has one reader.
func (s *Store) Heard() <-chan struct{} { return s.heard }

// LeadershipChanged returns a channel closed when this node next gains or
// loses leadership: loops that only act on the leader wait on it instead
// of polling IsLeader.
func (s *Store) LeadershipChanged() <-chan struct{} {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	return s.leadChanged
}

// PreviousLeader is the last node other than this one seen leading ("" if
// none): a new leader learns from it whose silence it may already count.
func (s *Store) PreviousLeader() string {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	return s.previous
}

// paceHeartbeats sets the heartbeat timeout to LeaderHeartbeatTimeout
// while this node leads and back to HeartbeatTimeout when it follows.
// hashicorp/raft uses the one setting for two things: how long a follower
// waits before standing for election, and (a tenth of it) how often a
// leader sends heartbeats. Followers keep the short wait; the leader's
// heartbeats come from confirmLeadership, every BeatInterval, and
// hashicorp/raft's own only when a confirmation is late. Only the
// leader's config changes: the followers' timers, and so the election
// time, stay as they were.
func (s *Store) paceHeartbeats(leader bool) {
	rc := s.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = HeartbeatTimeout, HeartbeatTimeout
	if leader {
		rc.HeartbeatTimeout, rc.ElectionTimeout = LeaderHeartbeatTimeout, LeaderHeartbeatTimeout
	}
	if err := s.raft.ReloadConfig(rc); err != nil {
		s.log.Warn("cannot pace raft heartbeats", "leader", leader, "err", err)
	}
}

// HasState reports whether this node has been bootstrapped or joined.
func (s *Store) HasState() (bool, error) {
	return raft.HasExistingState(s.logs, s.logs, s.snaps)
}

// Bootstrap makes this node a cluster of one voter, itself, and registers it
// as a node. It refuses a node that already has Raft state.
func (s *Store) Bootstrap(ctx context.Context) error {
	has, err := s.HasState()
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	if has {
		return ErrAlreadyBootstrapped
	}
	f := s.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(s.cfg.NodeName),
		Address:  s.transport.LocalAddr(),
	}}})
	if err := f.Error(); err != nil {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	if err := s.WaitLeader(ctx); err != nil {
		return err
	}
	return s.Apply(ctx, CmdRegisterNode, RegisterNode{
		Name: s.cfg.NodeName, RaftAddr: s.cfg.AdvertiseAddr,
		FeatureLevel: FeatureLevel, AgentVersion: s.cfg.AgentVersion,
	})
}

// WaitLeader waits until the cluster has a leader.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no raft leader elected: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// WaitReady returns once this node's FSM holds every committed entry it had
// before starting, so a reconciler acting on State never undoes work because
// it read a state that was still being replayed.
func (s *Store) WaitReady(ctx context.Context) error {
	if err := s.WaitLeader(ctx); err != nil {
		return err
	}
	if s.IsLeader() {
		d := applyTimeout
		if dl, ok := ctx.Deadline(); ok {
			d = time.Until(dl)
		}
		if err := s.raft.Barrier(d).Error(); err != nil {
			return fmt.Errorf("raft barrier: %w", err)
		}
		s.ready.Store(true)
		return nil
	}
	target, err := s.lastCommand(s.raft.LastIndex())
	if err != nil {
		return err
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.fsm.Applied() < target {
		select {
		case <-ctx.Done():
			return fmt.Errorf("raft replay stuck at %d of %d: %w", s.fsm.Applied(), target, ctx.Err())
		case <-t.C:
		}
	}
	s.ready.Store(true)
	return nil
}

// lastCommand is the index of the last command entry at or before index
// that a snapshot does not already hold: what the FSM must have applied
// before its state is the one this node had. Barriers and configuration
// changes never reach the FSM, so they cannot be waited for. 0: nothing
// to wait for (the snapshot, restored before Open returned, holds it all).
func (s *Store) lastCommand(index uint64) (uint64, error) {
	var snapIndex uint64
	if metas, err := s.snaps.List(); err == nil && len(metas) > 0 {
		snapIndex = metas[0].Index
	}
	first, err := s.logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("read the raft log: %w", err)
	}
	for i := index; i > snapIndex && i >= first && i > 0; i-- {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return 0, fmt.Errorf("read raft log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	return 0, nil
}

// IsLeader reports whether this node is the Raft leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Apply proposes a command and returns the FSM's verdict. Domain errors come
// back wrapped around ErrNotFound, ErrExists, ErrInvalid or ErrConflict.
// Before writing anything it refuses, with ErrNotLeader, a node that does
// not lead, and with ErrFeatureLevel a command some voter's agent is too
// old to apply. ErrNotLeader means nothing was written; ErrLeadershipLost
// that the entry was written and may yet commit.
func (s *Store) Apply(ctx context.Context, t CommandType, payload any) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	need, known := s.levelOf(t)
	if !known {
		return fmt.Errorf("%s is not a command this agent knows; nothing was written: %w", t, ErrInvalid)
	}
	// Every agent applies level 1: only a newer command costs a look at
	// the voters.
	if need > 1 {
		if err := s.checkLevel(t, need); err != nil {
			return err
		}
	}
	data, err := Encode(t, payload)
	if err != nil {
		return err
	}
	f := s.raft.Apply(data, timeoutOf(ctx))
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Refused before it was appended: the leader may take it.
			return ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			noteWrite(ctx)
			return fmt.Errorf("raft apply %s: %w", t, ErrLeadershipLost)
		}
		return fmt.Errorf("raft apply %s: %w", t, err)
	}
	noteWrite(ctx)
	s.pushCommit()
	if res, ok := f.Response().(error); ok && res != nil {
		return res
	}
	return nil
}

// wroteKey carries the mark TrackWrites reads.
type wroteKey struct{}

// TrackWrites returns a context whose Applies note when they append an
// entry (committed, or perhaps committed: ErrLeadershipLost), and a
// function that says whether any did. A request that fails with
// ErrNotLeader may be sent on to the leader only if it wrote nothing
// before: forwarding one that had written half would do that half twice.
func TrackWrites(ctx context.Context) (context.Context, func() bool) {
	var wrote atomic.Bool
	return context.WithValue(ctx, wroteKey{}, &wrote), wrote.Load
}

func noteWrite(ctx context.Context) {
	if w, ok := ctx.Value(wroteKey{}).(*atomic.Bool); ok {
		w.Store(true)
	}
}

// ApplyErrors returns the last 16 log entries this node could not decode
// (and so did not apply), oldest first, and how many there have been since
// the agent started: any at all means this agent needs an upgrade.
func (s *Store) ApplyErrors() (recent []ApplyError, total uint64) {
	return s.fsm.ApplyErrors()
}

// ClusterLevel is the feature level the cluster can apply: the lowest
// among the servers of the Raft configuration, each at the level its node
// record says (no record, or none said: level 1). behind lists the servers
// at that level when it is below this agent's FeatureLevel: the agents to
// upgrade. Non-voters count too, for they apply the log as well (the
// appliance adds only voters). A node with no configuration is at level 1.
func (s *Store) ClusterLevel() (level uint32, behind []string, err error) {
	levels, err := s.serverLevels()
	if err != nil {
		return 0, nil, err
	}
	if len(levels) == 0 {
		return 1, nil, nil
	}
	level = math.MaxUint32
	for _, l := range levels {
		level = min(level, l)
	}
	if level < FeatureLevel {
		for id, l := range levels {
			if l == level {
				behind = append(behind, id)
			}
		}
		sort.Strings(behind)
	}
	return level, behind, nil
}

// serverLevels is the feature level of each server of the Raft
// configuration, by name.
func (s *Store) serverLevels() (map[string]uint32, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	levels := map[string]uint32{}
	for _, srv := range f.Configuration().Servers {
		l := uint32(1)
		if n, ok := s.fsm.Node(string(srv.ID)); ok {
			l = n.Level()
		}
		levels[string(srv.ID)] = l
	}
	return levels, nil
}

// checkLevel refuses command t, which needs feature level need, unless
// every server is at that level or above.
func (s *Store) checkLevel(t CommandType, need uint32) error {
	levels, err := s.serverLevels()
	if err != nil {
		return fmt.Errorf("%s needs every voter at feature level %d, and their levels cannot be read (nothing was written; retry): %w", t, need, err)
	}
	var names, runs []string
	for id, l := range levels {
		if l < need {
			names = append(names, id)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	for _, id := range names {
		runs = append(runs, fmt.Sprintf("%s runs level %d", id, levels[id]))
	}
	return &refusal{kind: ErrFeatureLevel, msg: fmt.Sprintf("%s needs every voter at feature level %d; %s: upgrade the agent on %s first",
		t, need, strings.Join(runs, ", "), strings.Join(names, ", "))}
}

// CommitTimeout is raft.Config.CommitTimeout (see Open): with no write,
// followers learn the commit index every one to two of these.
const CommitTimeout = 500 * time.Millisecond

// HeartbeatTimeout is how long a follower waits without hearing from the
// leader before it stands for election (hashicorp/raft waits between one
// and two of these). Short enough that a lost leader is replaced in about
// a second, which failover needs.
const HeartbeatTimeout = 500 * time.Millisecond

// LeaderHeartbeatTimeout is the leader's own setting (see
// paceHeartbeats). hashicorp/raft sends a heartbeat to a follower a tenth
// to a fifth of it (240–480 ms) after the last one; confirmLeadership
// sends one every BeatInterval, so these fire only when a confirmation
// is late (by 40 ms or more: with 200 ms, a round a millisecond late lost
// the race to them one time in ten), and still reach a follower within
// its shortest wait (HeartbeatTimeout).
const LeaderHeartbeatTimeout = 2400 * time.Millisecond

// LeaderHeartbeatMax is how long a leader goes between two heartbeats to
// a follower while its confirmations keep time.
const LeaderHeartbeatMax = BeatInterval

// LeaderLeaseTimeout is how long a leader stays leader without hearing
// from a majority: a leader cut off steps down within it (plus
// hashicorp/raft's 10 ms check interval). Two heartbeats fit in it, so one
// late heartbeat does not depose a healthy leader. Failover counts on it.
const LeaderLeaseTimeout = 400 * time.Millisecond

// pushCommit appends a barrier after a committed write so that the leader
// replicates at once, carrying the new commit index: followers apply the
// write (and their reconcilers act on it) within a round trip instead of
// after CommitTimeout. Nothing waits for the barrier itself.
func (s *Store) pushCommit() {
	go func() { _ = s.raft.Barrier(time.Second) }()
}

// AppliedIndex is the index of the last entry applied to the state here.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// View returns the current state for reading only (shared; do not modify).
func (s *Store) View() *State { return s.fsm.View() }

// State returns a deep copy of the current state.
func (s *Store) State() *State { return s.fsm.State() }

// Node returns one node's record.
func (s *Store) Node(name string) (Node, bool) { return s.fsm.Node(name) }

// Changes receives a value after the state changes; it coalesces bursts.
// It has one reader, the reconciler; others call Subscribe.
func (s *Store) Changes() <-chan struct{} { return s.changes }

// Subscribe returns a channel of its own that, like Changes, receives a
// value after the state changes.
func (s *Store) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subMu.Lock()
	s.subs = append(s.subs, ch)
	s.subMu.Unlock()
	return ch
}

func (s *Store) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
	select {
	case s.recheck <- struct{}{}:
	default:
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Status is a summary of this node's Raft view.
type Status struct {
	Node         string `json:"node"`
	State        string `json:"state"`
	Leader       string `json:"leader"`
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Voters       int    `json:"voters"`
}

// Status reports this node's Raft view.
func (s *Store) Status() Status {
	_, leader := s.raft.LeaderWithID()
	st := Status{
		Node:         s.cfg.NodeName,
		State:        strings.ToLower(s.raft.State().String()),
		Leader:       string(leader),
		LastIndex:    s.raft.LastIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				st.Voters++
			}
		}
	}
	return st
}

// Server is one member of the Raft configuration.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Voter    bool   `json:"voter"`
	IsLeader bool   `json:"leader"`
}

// Servers returns the Raft configuration's members.
func (s *Store) Servers() ([]Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	_, leader := s.raft.LeaderWithID()
	var out []Server
	for _, srv := range f.Configuration().Servers {
		out = append(out, Server{
			ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, IsLeader: srv.ID == leader,
		})
	}
	return out, nil
}

// Leader returns the leader's server ID, or "" when there is none.
func (s *Store) Leader() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// LastContact is how long ago this follower last heard from the leader
// (zero on the leader itself, -1 when it never has).
func (s *Store) LastContact() time.Duration {
	if s.IsLeader() {
		return 0
	}
	last := s.raft.LastContact()
	if last.IsZero() {
		return -1
	}
	return time.Since(last)
}

// LeaderContact is when this node last heard from a leader while it
// followed one (zero if never). Unlike LastContact it keeps its value once
// this node leads: a new leader learns from it how long the previous one
// has been silent.
func (s *Store) LeaderContact() time.Time { return s.raft.LastContact() }

// AddVoter adds a node as a voter. Only the leader can.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, timeoutOf(ctx)).Error(); err != nil {
		return fmt.Errorf("add voter %s at %s: %w", id, addr, err)
	}
	return nil
}

// RemoveServer removes a node from the Raft configuration. Only the leader
// can.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// TransferLeadership asks another voter to take over.
func (s *Store) TransferLeadership() error {
	return s.raft.LeadershipTransfer().Error()
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < applyTimeout {
		return time.Until(dl)
	}
	return applyTimeout
}

// Snapshot forces a snapshot (used by tests and before upgrades).
func (s *Store) Snapshot() error { return s.raft.Snapshot().Error() }

// Close shuts Raft down and closes the log.
func (s *Store) Close() error {
	err := s.raft.Shutdown().Error()
	quiet.mu.Lock()
	quiet.since = time.Now()
	quiet.mu.Unlock()
	s.closeOnce.Do(func() { close(s.done) })
	if cerr := s.transport.Close(); err == nil {
		err = cerr
	}
	if cerr := s.logs.Close(); err == nil {
		err = cerr
	}
	return err
}

// quiet.since bounds when a store in this process can last have heard
// from a leader: the process's start, then each Close.
var quiet = struct {
	mu    sync.Mutex
	since time.Time
}{since: time.Now()}

// holdVotes waits until HeartbeatTimeout has passed since quiet.since,
// before Raft starts.
//
// Why: a new leader's failure detector counts its predecessor's node
// silent from a HeartbeatTimeout before the election (appliance/control,
// seedPrevious), because hashicorp/raft refuses votes while it knows a
// leader, and forgets it only after a HeartbeatTimeout of silence. A node
// that has just (re)started knows no leader and would vote at once, though
// it may have answered the old leader a moment before it went down; held
// back, it votes no sooner than anyone else could. It costs a restart at
// most HeartbeatTimeout.
func holdVotes() {
	quiet.mu.Lock()
	wait := time.Until(quiet.since.Add(HeartbeatTimeout))
	quiet.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
}

// slogWriter turns hclog's text lines into structured slog records.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		line := sc.Text()
		level := slog.LevelInfo
		switch {
		case strings.Contains(line, "[ERROR]"):
			level = slog.LevelError
		case strings.Contains(line, "[WARN]"):
			level = slog.LevelWarn
		case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
			level = slog.LevelDebug
		}
		w.log.Log(context.Background(), level, line)
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
