package raftstate

import (
	"encoding/json"
	"fmt"
	"time"
)

// CommandType identifies a command in the Raft log.
//
// The list is append-only: never renumber, reorder or reuse a value, because
// logs and snapshots written by older agents hold these numbers forever.
//
// Adding a command: append its constant here, give it a String name, a
// case in decodePayload and apply (fsm.go) with its applyX, and one line
// in commandLevels at a feature level above every existing one (raising
// FeatureLevel to it), so that the leader writes it only once every voter
// can apply it.
type CommandType uint8

const (
	// CmdRegisterNode records a node as a member (payload RegisterNode).
	CmdRegisterNode CommandType = 1
	// CmdCreateDatabase records a new database and its placed instances.
	CmdCreateDatabase CommandType = 2
	// CmdDeleteDatabase removes a database.
	CmdDeleteDatabase CommandType = 3
	// CmdRestartDatabase asks every instance of a database to restart.
	CmdRestartDatabase CommandType = 4
	// CmdRemoveNode removes a node from the state.
	CmdRemoveNode CommandType = 5
	// CmdSetNodeDraining marks a node as draining, or not.
	CmdSetNodeDraining CommandType = 6
	// CmdAddJoinToken records the hash of a new join token.
	CmdAddJoinToken CommandType = 7
	// CmdConsumeJoinToken spends a join token for a joining node.
	CmdConsumeJoinToken CommandType = 8
	// CmdSetPrimary makes a replica of a database its primary (payload
	// SetPrimary): a planned switchover or a failover.
	CmdSetPrimary CommandType = 9
	// CmdPromoteDatabase makes a linked or unlinked replica a standalone,
	// writable database (payload PromoteDatabase).
	CmdPromoteDatabase CommandType = 10
	// CmdUnlinkDatabase stops a linked replica following its source and
	// leaves it read-only (payload UnlinkDatabase).
	CmdUnlinkDatabase CommandType = 11
	// CmdRecordEvents appends events (payload RecordEvents).
	CmdRecordEvents CommandType = 12
	// CmdSetDatabaseSecrets gives a database its agent and replication
	// secrets, or rotates them (payload SetDatabaseSecrets).
	CmdSetDatabaseSecrets CommandType = 13
	// CmdPutDatabaseUser adds or replaces an application user.
	CmdPutDatabaseUser CommandType = 14
	// CmdDeleteDatabaseUser removes an application user.
	CmdDeleteDatabaseUser CommandType = 15
)

// Level 3: node identity and the cluster key (issue 16).
const (
	// CmdAdmitNode spends a join token, records the node and pins its
	// certificate, in one entry (payload AdmitNode).
	CmdAdmitNode CommandType = 16
	// CmdPinNode records the certificate a member presents (payload
	// PinNode).
	CmdPinNode CommandType = 17
	// CmdRotateKey records a new cluster key and re-seals every secret
	// with it (payload RotateKey).
	CmdRotateKey CommandType = 18
	// CmdSetDatabaseCA records the cluster's database CA (payload
	// SetDatabaseCA).
	CmdSetDatabaseCA CommandType = 19
	// CmdSetDatabaseTLS sets a database's TLS mode and ports.
	CmdSetDatabaseTLS CommandType = 20
)

func (t CommandType) String() string {
	switch t {
	case CmdAdmitNode:
		return "admit-node"
	case CmdPinNode:
		return "pin-node"
	case CmdSetDatabaseCA:
		return "set-database-ca"
	case CmdSetDatabaseTLS:
		return "set-database-tls"
	case CmdRotateKey:
		return "rotate-key"
	case CmdRegisterNode:
		return "register-node"
	case CmdCreateDatabase:
		return "create-database"
	case CmdDeleteDatabase:
		return "delete-database"
	case CmdRestartDatabase:
		return "restart-database"
	case CmdRemoveNode:
		return "remove-node"
	case CmdSetNodeDraining:
		return "set-node-draining"
	case CmdAddJoinToken:
		return "add-join-token"
	case CmdConsumeJoinToken:
		return "consume-join-token"
	case CmdSetPrimary:
		return "set-primary"
	case CmdPromoteDatabase:
		return "promote-database"
	case CmdUnlinkDatabase:
		return "unlink-database"
	case CmdRecordEvents:
		return "record-events"
	case CmdSetDatabaseSecrets:
		return "set-database-secrets"
	case CmdPutDatabaseUser:
		return "put-database-user"
	case CmdDeleteDatabaseUser:
		return "delete-database-user"
	}
	return fmt.Sprintf("command-%d", uint8(t))
}

// FeatureLevel is the level of commands this build applies. Level 1 is
// every agent from before levels existed (they report none); level 2
// added the levels themselves. A command of a higher level than the
// cluster's (the lowest among the voters, Store.ClusterLevel) is refused
// before it is written: an older voter could not apply it.
const FeatureLevel uint32 = 4

// commandLevels is the feature level each command needs every voter to
// have: a command absent from it is unknown to this build. A new command
// is one line here, at a new level (and FeatureLevel raised to it).
var commandLevels = map[CommandType]uint32{
	// Level 3: node identity and the cluster key (issue 16).
	CmdAdmitNode: 3,
	CmdPinNode:   3,
	CmdRotateKey: 3,
	// Level 4: TLS (issue 17).
	CmdSetDatabaseCA:  4,
	CmdSetDatabaseTLS: 4,
	// Level 1: every agent.
	CmdRegisterNode:     1,
	CmdCreateDatabase:   1,
	CmdDeleteDatabase:   1,
	CmdRestartDatabase:  1,
	CmdRemoveNode:       1,
	CmdSetNodeDraining:  1,
	CmdAddJoinToken:     1,
	CmdConsumeJoinToken: 1,
	CmdSetPrimary:       1,
	CmdPromoteDatabase:  1,
	CmdUnlinkDatabase:   1,
	CmdRecordEvents:     1,
	// Level 3: access control (issue 16).
	CmdSetDatabaseSecrets: 3,
	CmdPutDatabaseUser:    3,
	CmdDeleteDatabaseUser: 3,
}

// commandLevel is the feature level t needs, and whether this build knows
// t at all.
func commandLevel(t CommandType) (uint32, bool) {
	l, ok := commandLevels[t]
	return l, ok
}

// payloadVersion is the payload encoding version written by this agent.
const payloadVersion = 1

// newestPayloadVersion is the newest payload version Apply decodes; it
// decodes every version from 1 up to it. An entry of a newer version
// (written by a newer agent) is not applied but recorded: see
// FSM.ApplyErrors.
const newestPayloadVersion = 1

// RegisterNode is the payload of CmdRegisterNode. Registering a known node
// updates its addresses.
type RegisterNode struct {
	Name     string `json:"name"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Address  string `json:"address,omitempty"`
	// SentinelPort is where the node answers discovery; 0: off.
	SentinelPort int       `json:"sentinel_port,omitempty"`
	At           time.Time `json:"at,omitempty"`
	// FeatureLevel is the level of commands the node's agent applies (0:
	// not said, level 1). Older agents ignore these two fields, so the
	// command stays decodable by them.
	FeatureLevel uint32 `json:"feature_level,omitempty"`
	// AgentVersion is the node's agent release, for people: at most 64
	// printable characters.
	AgentVersion string `json:"agent_version,omitempty"`
	// Versions are the catalogue versions the node has a redis-server
	// for; null when it did not say, which placement treats as unknown,
	// and [] for none (so no omitempty: it would make none unknown).
	Versions []string `json:"versions"`
}

// RemoveNode is the payload of CmdRemoveNode. Without Force it is refused
// while the node hosts instances; with Force the databases whose only copy
// was there are deleted with it.
type RemoveNode struct {
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}

// SetNodeDraining is the payload of CmdSetNodeDraining.
type SetNodeDraining struct {
	Name     string `json:"name"`
	Draining bool   `json:"draining"`
}

// AddJoinToken is the payload of CmdAddJoinToken.
type AddJoinToken struct {
	Token JoinToken `json:"token"`
}

// ConsumeJoinToken is the payload of CmdConsumeJoinToken.
type ConsumeJoinToken struct {
	ID   string    `json:"id"`
	Hash string    `json:"hash"`
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// CreateDatabase is the payload of CmdCreateDatabase. Placement (node and
// port of each instance) is decided by the leader before proposing, because
// it depends on live facts the FSM must not read.
type CreateDatabase struct {
	Database Database `json:"database"`
}

// DeleteDatabase is the payload of CmdDeleteDatabase.
type DeleteDatabase struct {
	Name string `json:"name"`
}

// RestartDatabase is the payload of CmdRestartDatabase.
type RestartDatabase struct {
	Name string `json:"name"`
	// At is when the restart was asked for, from the proposer.
	At time.Time `json:"at"`
}

// SetPrimary is the payload of CmdSetPrimary. Epoch is the database's
// epoch the decision was made at; Apply refuses it if the epoch moved since.
type SetPrimary struct {
	Name     string    `json:"name"`
	Instance string    `json:"instance"`
	Epoch    uint64    `json:"epoch"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	// Automatic marks a failover decided by the leader (not asked for):
	// the failover cooldown counts only these.
	Automatic bool `json:"automatic,omitempty"`
}

// PromoteDatabase is the payload of CmdPromoteDatabase.
type PromoteDatabase struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

// UnlinkDatabase is the payload of CmdUnlinkDatabase.
type UnlinkDatabase struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

// RecordEvents is the payload of CmdRecordEvents.
type RecordEvents struct {
	Events []Event `json:"events"`
}

// Encode serialises a command for the Raft log: one byte of type, one byte
// of payload version, then the JSON payload.
func Encode(t CommandType, payload any) ([]byte, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t), payloadVersion}, body...), nil
}

// decode splits a log entry into its type, version and payload.
func decode(data []byte) (CommandType, uint8, []byte, error) {
	if len(data) < 2 {
		return 0, 0, nil, fmt.Errorf("log entry of %d bytes is too short", len(data))
	}
	return CommandType(data[0]), data[1], data[2:], nil
}
