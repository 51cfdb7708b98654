package raftstate

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// RecoverResult says what Recover wrote.
type RecoverResult struct {
	// Node is the node that was recovered (Config.NodeName).
	Node string `json:"node"`
	// Voters is the new Raft configuration: exactly the voters asked for,
	// with the Raft addresses the replicated state records for them.
	Voters []Server `json:"voters"`
	// Previous is the Raft configuration this node knew before.
	Previous []Server `json:"previous"`
	// LastIndex is the Raft index of the recovered state.
	LastIndex uint64 `json:"last_index"`
	// Databases is how many databases the recovered state holds.
	Databases int `json:"databases"`
}

// Recover rewrites this node's Raft configuration so that exactly voters
// (node names) are its voters, the way Consul and rqlite recover from
// peers.json. It is for a cluster that lost quorum: with too few voters
// alive no leader can be elected, and no command (not even a removal of the
// dead nodes) can be committed, so the configuration can only be changed
// offline, on every survivor, with the same list.
//
// It runs with the node's agent stopped: a running agent holds the lock on
// raft.db and Recover then fails within a second, saying so. It rebuilds the
// replicated state from the newest readable snapshot and the log after it,
// takes each voter's Raft address from that state, and calls
// raft.RecoverCluster, which writes a new snapshot of the state carrying the
// new configuration and empties the log. Every check runs before anything
// is written: a refused recovery leaves cfg.Dir byte for byte as it was.
//
// Only cfg.NodeName, cfg.Dir, cfg.AdvertiseAddr and cfg.Logger are used (a
// nil log falls back to cfg.Logger, then slog.Default). When
// cfg.AdvertiseAddr is set it must equal the Raft address the state records
// for this node, or peers would dial an address this node does not serve.
//
// The tail of the log may hold entries that were never committed (appended
// by a leader that lost its quorum before a majority stored them). Recover
// replays them like committed ones, as raft.RecoverCluster itself does. That
// is the outcome Raft allows anyway: an entry in the log of the node that
// wins the next election is committed by that leader, and the client that
// proposed it was told its write timed out, which Raft reports as "unknown
// outcome", never as "not done". When several survivors are recovered, the
// one with the most up-to-date log wins the first election (Raft's election
// restriction) and brings the others to its log or snapshot, so they
// converge on one history.
func Recover(cfg Config, voters []string, log *slog.Logger) (RecoverResult, error) {
	if log == nil {
		log = cfg.Logger
	}
	if log == nil {
		log = slog.Default()
	}
	if err := checkVoters(cfg.NodeName, voters); err != nil {
		return RecoverResult{}, err
	}
	if cfg.Dir == "" {
		return RecoverResult{}, fmt.Errorf("recover: no Raft directory given: %w", ErrInvalid)
	}
	dbPath := filepath.Join(cfg.Dir, "raft.db")
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return RecoverResult{}, fmt.Errorf("raft state %w in %s: this node never joined a cluster, so there is nothing to recover (check data_dir in the config)", ErrNotFound, cfg.Dir)
	} else if err != nil {
		return RecoverResult{}, fmt.Errorf("read Raft state: %w", err)
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: &slogWriter{log: log}})

	// First pass read-only: rebuild the state and check the voters against
	// it without writing a byte.
	plan, err := planRecovery(cfg, voters, dbPath, hlog)
	if err != nil {
		return RecoverResult{}, err
	}

	logs, snaps, err := openOffline(cfg.Dir, dbPath, false, hlog)
	if err != nil {
		return RecoverResult{}, err
	}
	defer logs.Close()
	// The store was closed between the passes; if anything wrote to it
	// meanwhile (an agent started and stopped), the plan is stale.
	last, err := logs.LastIndex()
	if err != nil {
		return RecoverResult{}, fmt.Errorf("read Raft log: %w", err)
	}
	if last != plan.lastLogIndex || newestSnapshot(snaps) != plan.snapshotID {
		return RecoverResult{}, fmt.Errorf("the Raft state in %s changed while recover was reading it; is an agent running? stop it and run recover again", cfg.Dir)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.Logger = hlog
	// RecoverCluster only asks the transport to encode peer addresses into
	// the snapshot's metadata; an in-memory one needs no port.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(plan.selfAddr))
	defer trans.Close()
	fsm := NewFSM(nil)
	log.Info("recovering raft configuration", "node", cfg.NodeName, "dir", cfg.Dir, "voters", strings.Join(voters, ","), "index", plan.index)
	if err := raft.RecoverCluster(rc, fsm, logs, logs, snaps, trans, plan.configuration); err != nil {
		return RecoverResult{}, fmt.Errorf("recover raft state in %s: %w", cfg.Dir, err)
	}

	res := RecoverResult{
		Node:      cfg.NodeName,
		Voters:    servers(plan.configuration),
		Previous:  servers(plan.previous),
		LastIndex: plan.index,
		Databases: len(fsm.State().Databases),
	}
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		res.LastIndex = metas[0].Index
	}
	log.Info("raft configuration recovered", "node", cfg.NodeName, "voters", strings.Join(voters, ","), "index", res.LastIndex, "databases", res.Databases)
	return res, nil
}

// checkVoters validates the list itself, before any file is touched.
func checkVoters(self string, voters []string) error {
	if len(voters) == 0 {
		return fmt.Errorf("no voters given: name the surviving nodes, this one (%s) included, e.g. --voters %s,NODE: %w", self, self, ErrInvalid)
	}
	seen := map[string]bool{}
	for _, v := range voters {
		if !NameRE.MatchString(v) {
			return fmt.Errorf("voter %q is not a node name (1 to 40 lowercase letters, digits and hyphens): %w", v, ErrInvalid)
		}
		if seen[v] {
			return fmt.Errorf("voter %s is listed twice: %w", v, ErrInvalid)
		}
		seen[v] = true
	}
	if !seen[self] {
		return fmt.Errorf("this node (%s) is not among the voters %s; recover runs on each surviving voter, and only with itself in the list: %w", self, strings.Join(voters, ","), ErrInvalid)
	}
	return nil
}

// recoveryPlan is what the read-only pass found and decided.
type recoveryPlan struct {
	configuration raft.Configuration
	previous      raft.Configuration
	selfAddr      string
	index         uint64
	lastLogIndex  uint64
	snapshotID    string
}

func planRecovery(cfg Config, voters []string, dbPath string, hlog hclog.Logger) (*recoveryPlan, error) {
	logs, snaps, err := openOffline(cfg.Dir, dbPath, true, hlog)
	if err != nil {
		return nil, err
	}
	defer logs.Close()
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("read Raft state in %s: %w", cfg.Dir, err)
	}
	if !has {
		return nil, fmt.Errorf("raft state %w in %s (it is empty): this node never joined a cluster, so there is nothing to recover", ErrNotFound, cfg.Dir)
	}
	rb, err := rebuild(cfg.Dir, logs, snaps)
	if err != nil {
		return nil, err
	}
	st := rb.fsm.State()
	p := &recoveryPlan{previous: rb.configuration, index: rb.index, lastLogIndex: rb.lastLogIndex, snapshotID: rb.snapshotID}

	members := map[raft.ServerID]bool{}
	for _, srv := range rb.configuration.Servers {
		members[srv.ID] = true
	}
	var unknown, outside []string
	for _, v := range voters {
		n, ok := st.Nodes[v]
		switch {
		case !ok:
			unknown = append(unknown, v)
			continue
		case !members[raft.ServerID(v)]:
			// Registered but not in Raft: a join that never completed, or a
			// removal half done. Such a node holds no copy of the log.
			outside = append(outside, v)
			continue
		case n.RaftAddr == "":
			return nil, fmt.Errorf("the state records no Raft address for node %s; it cannot be a voter: %w", v, ErrInvalid)
		}
		p.configuration.Servers = append(p.configuration.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(v), Address: raft.ServerAddress(n.RaftAddr),
		})
		if v == cfg.NodeName {
			p.selfAddr = n.RaftAddr
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("voter(s) %s %w among the nodes this node's state knows (%s); check the spelling",
			strings.Join(unknown, ", "), ErrNotFound, strings.Join(st.NodeNames(), ", "))
	}
	if len(outside) > 0 {
		return nil, fmt.Errorf("node(s) %s are not members of the last Raft configuration this node knows (%s), so they hold no copy of the log and cannot be voters; recover with the survivors, then join them again: %w",
			strings.Join(outside, ", "), serverIDs(rb.configuration), ErrInvalid)
	}
	if cfg.AdvertiseAddr != "" && cfg.AdvertiseAddr != p.selfAddr {
		return nil, fmt.Errorf("this node advertises Raft address %s but the cluster state records %s for %s; peers would dial the wrong address. Put the old address back in the config (advertise_addr, raft_addr) for the recovery: %w",
			cfg.AdvertiseAddr, p.selfAddr, cfg.NodeName, ErrConflict)
	}
	return p, nil
}

// openOffline opens the bolt log store and the file snapshot store of a
// stopped node. readOnly takes a shared lock and writes nothing.
func openOffline(dir, dbPath string, readOnly bool, hlog hclog.Logger) (*raftboltdb.BoltStore, raft.SnapshotStore, error) {
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path: dbPath,
		// A running agent holds an exclusive lock: give up quickly and say
		// why instead of waiting for it forever.
		BoltOptions: &bbolt.Options{Timeout: time.Second, ReadOnly: readOnly},
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, nil, fmt.Errorf("the Raft log %s is in use: stop the agent on this node first (systemctl stop redis-appliance), then run recover again", dbPath)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open Raft log %s: %w", dbPath, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 3, hlog)
	if err != nil {
		_ = logs.Close()
		return nil, nil, fmt.Errorf("open Raft snapshots in %s: %w", dir, err)
	}
	return logs, snaps, nil
}

// rebuilt is the replicated state as this node's disk holds it.
type rebuilt struct {
	fsm           *FSM
	configuration raft.Configuration
	index         uint64
	lastLogIndex  uint64
	snapshotID    string
}

// rebuild restores the newest readable snapshot into a fresh FSM and applies
// the log after it, exactly as raft.RecoverCluster will, and follows the Raft
// configuration along the way.
func rebuild(dir string, logs raft.LogStore, snaps raft.SnapshotStore) (*rebuilt, error) {
	rb := &rebuilt{fsm: NewFSM(nil)}
	metas, err := snaps.List()
	if err != nil {
		return nil, fmt.Errorf("list Raft snapshots in %s: %w", dir, err)
	}
	var failures []string
	for _, m := range metas {
		_, rc, err := snaps.Open(m.ID)
		if err == nil {
			err = rb.fsm.Restore(rc) // Restore closes rc.
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", m.ID, err))
			continue
		}
		rb.index, rb.configuration, rb.snapshotID = m.Index, m.Configuration, m.ID
		break
	}
	if len(metas) > 0 && rb.snapshotID == "" {
		return nil, fmt.Errorf("none of the Raft snapshots in %s can be read (%s); recovery needs one", dir, strings.Join(failures, "; "))
	}
	last, err := logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("read Raft log: %w", err)
	}
	rb.lastLogIndex = last
	for i := rb.index + 1; i <= last; i++ {
		var e raft.Log
		if err := logs.GetLog(i, &e); err != nil {
			return nil, fmt.Errorf("read Raft log entry %d of %d: %w", i, last, err)
		}
		if err := replay(rb, &e); err != nil {
			return nil, err
		}
		rb.index = e.Index
	}
	return rb, nil
}

// replay applies one entry. An entry this agent cannot decode (one written
// by a newer agent) is an error here, reported before anything was
// written: the state recovery would commit to lacks it.
func replay(rb *rebuilt, e *raft.Log) error {
	switch e.Type {
	case raft.LogCommand:
		// A refused command is part of the history too: its error value
		// is what every node got when it was applied.
		if err, ok := rb.fsm.Apply(e).(error); ok && errors.Is(err, ErrUndecodable) {
			return fmt.Errorf("log entry %d cannot be replayed by this agent (%v); run recover with the agent version the cluster last ran", e.Index, err)
		}
	case raft.LogConfiguration:
		rb.configuration = raft.DecodeConfiguration(e.Data)
	}
	return nil
}

func newestSnapshot(snaps raft.SnapshotStore) string {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return ""
	}
	return metas[0].ID
}

func servers(c raft.Configuration) []Server {
	out := make([]Server, 0, len(c.Servers))
	for _, srv := range c.Servers {
		out = append(out, Server{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out
}

func serverIDs(c raft.Configuration) string {
	ids := make([]string, 0, len(c.Servers))
	for _, srv := range c.Servers {
		ids = append(ids, string(srv.ID))
	}
	sort.Strings(ids)
	return strings.Join(ids, ", ")
}
