package raftstate

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the format of a snapshot written by this agent.
const snapshotVersion = 1

// snapshotFile is the on-disk form of a snapshot: typed records, versioned.
type snapshotFile struct {
	Version int    `json:"version"`
	State   *State `json:"state"`
}

type fsmSnapshot struct {
	state *State
}

// Persist writes the snapshot; the state is a private copy, so this can run
// concurrently with Apply.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := json.NewEncoder(sink).Encode(snapshotFile{Version: snapshotVersion, State: s.state})
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

func readSnapshot(r io.Reader) (*State, error) {
	var f snapshotFile
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if f.Version != snapshotVersion {
		return nil, fmt.Errorf("snapshot format %d is not known to this agent (knows %d); upgrade it", f.Version, snapshotVersion)
	}
	s := NewState()
	if f.State != nil {
		for k, d := range f.State.Databases {
			s.Databases[k] = d
		}
		for k, n := range f.State.Nodes {
			s.Nodes[k] = n
		}
		for k, t := range f.State.Tokens {
			s.Tokens[k] = t
		}
		s.Events = f.State.Events
		s.KeyChain = f.State.KeyChain
		s.DatabaseCA = f.State.DatabaseCA
	}
	return s, nil
}
