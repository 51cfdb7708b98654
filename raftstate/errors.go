package raftstate

import "errors"

// Domain errors returned by Apply as values. The API translates them into
// HTTP statuses; wrap them with %w so errors.Is keeps working.
var (
	// ErrNotLeader means the write must go to the leader.
	ErrNotLeader = errors.New("this node is not the Raft leader")
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
)
