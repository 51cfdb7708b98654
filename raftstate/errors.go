package raftstate

import "errors"

// Domain errors returned by Apply as values. The API translates them into
// HTTP statuses; wrap them with %w so errors.Is keeps working.
var (
	// ErrNotLeader means the write must go to the leader: this node was
	// not leader and nothing was appended to the log, so the caller may
	// send the command to the leader.
	ErrNotLeader = errors.New("this node is not the Raft leader")
	// ErrLeadershipLost means this node lost leadership after the command
	// was appended to its log but before it was known to commit: the entry
	// may or may not commit under the next leader. The caller must not
	// blindly retry it elsewhere (it could apply twice); read the state
	// again, or rely on the command being refused a second time (an epoch
	// or a name already taken), before retrying.
	ErrLeadershipLost = errors.New("leadership was lost while the command was being committed; it may or may not have been applied")
	// ErrNotFound means the named database does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means the name is already taken.
	ErrExists = errors.New("already exists")
	// ErrInvalid means the command's content is not acceptable.
	ErrInvalid = errors.New("invalid")
	// ErrConflict means the command conflicts with the current state (a port
	// already allocated, an unknown node).
	ErrConflict = errors.New("conflict")
	// ErrTokenRefused means a join token is unknown, spent or expired.
	ErrTokenRefused = errors.New("join token refused")
	// ErrUndecodable is the response of a log entry this agent cannot
	// decode: too short, an unknown command type, a newer payload version,
	// or a payload that does not parse. The entry was not applied (see
	// FSM.ApplyErrors); upgrade this agent to the leader's version.
	ErrUndecodable = errors.New("log entry cannot be decoded by this agent; upgrade it")
	// ErrFeatureLevel means the command needs a feature level some voter
	// does not have yet: nothing was written. Upgrade the agents named in
	// the error, then retry.
	ErrFeatureLevel = errors.New("a voter's agent is too old for this command")
)

// refusal is an error whose message is complete on its own (what was
// wrong and what to do instead) and that matches one of the sentinels
// above, without the sentinel's text appended to it.
type refusal struct {
	msg  string
	kind error
}

func (e *refusal) Error() string { return e.msg }

// Is makes errors.Is(err, e.kind) hold.
func (e *refusal) Is(target error) bool { return target == e.kind }
