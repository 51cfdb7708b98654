package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// The cluster key seals every secret in the state. `cluster rotate-key`
// replaces it, for the day a member's disk may have been read (a removed,
// lost or stolen host): the leader makes a new key, seals it with the
// current one, and writes it in one Raft entry with every secret re-sealed
// with it (raftstate.RotateKey). Every member, applying that entry, opens
// the new key with the one it holds, writes it to cluster.key (atomically)
// and switches to it (followKeys). A removed node is refused at the
// handshake, so it never receives the entry: the key it took away opens
// nothing written afterwards.

// rotateMu makes rotations one at a time on this leader.
var rotateMu sync.Mutex

// resealPasses bounds the passes a rotation makes for secrets sealed with
// the old key while it ran (a database created at that moment).
const resealPasses = 3

// RotateKey replaces the cluster key (on the leader) and returns its ID
// and how many secrets were sealed again with it.
func (m *Manager) RotateKey(ctx context.Context) (api.RotateKeyResult, error) {
	st, keys := m.Store(), m.Keys()
	if st == nil {
		return api.RotateKeyResult{}, ErrNotMember
	}
	if !st.IsLeader() {
		return api.RotateKeyResult{}, raftstate.ErrNotLeader
	}
	rotateMu.Lock()
	defer rotateMu.Unlock()
	if cur := st.View().CurrentKeyID(); cur != "" && cur != keys.ID() {
		return api.RotateKeyResult{}, &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("this leader has not switched to the cluster's key %s yet (it holds %s); retry in a moment", cur, keys.ID())}
	}
	next, err := secrets.NewKey()
	if err != nil {
		return api.RotateKeyResult{}, err
	}
	sealedNext, err := keys.Seal(next)
	if err != nil {
		return api.RotateKeyResult{}, err
	}
	link := raftstate.KeyLink{ID: secrets.KeyID(next), Prev: keys.ID(), Sealed: sealedNext}
	resealed, err := reseal(st.View(), keys.Open, next, func([]byte) bool { return true })
	if err != nil {
		return api.RotateKeyResult{}, err
	}
	if err := st.Apply(ctx, raftstate.CmdRotateKey, raftstate.RotateKey{Key: &link, Resealed: resealed}); err != nil {
		return api.RotateKeyResult{}, err
	}
	if err := m.useKey(keys, next); err != nil {
		return api.RotateKeyResult{}, fmt.Errorf("the cluster switched to key %s but this node could not write it: %w; fix the cause and restart the agent (it catches up from the state)", link.ID, err)
	}
	n := len(resealed)
	// A secret sealed with the old key between the two reads (a database
	// created meanwhile) is sealed again with the new one.
	for range resealPasses {
		stale, err := reseal(st.View(), keys.Open, next, func(s []byte) bool { _, err := keys.OpenCurrent(s); return err != nil })
		if err != nil || len(stale) == 0 {
			break
		}
		if err := st.Apply(ctx, raftstate.CmdRotateKey, raftstate.RotateKey{Resealed: stale}); err != nil {
			return api.RotateKeyResult{}, fmt.Errorf("the cluster key is now %s, but %d secrets written during the rotation are still sealed with the old key (%w); run redis-appliance cluster rotate-key again", link.ID, len(stale), err)
		}
		n += len(stale)
	}
	m.log.Warn("cluster key rotated", "key_id", link.ID, "previous", link.Prev, "resealed", n)
	return api.RotateKeyResult{KeyID: link.ID, Resealed: n}, nil
}

// reseal opens each secret of s that want selects and seals it with next.
func reseal(s *raftstate.State, open func([]byte) ([]byte, error), next []byte, want func([]byte) bool) ([]raftstate.Reseal, error) {
	var out []raftstate.Reseal
	var err error
	s.EachSecret(func(old *raftstate.Sealed) {
		if err != nil || !want(*old) {
			return
		}
		pt, oerr := open(*old)
		if oerr != nil {
			err = fmt.Errorf("a secret in the state does not open with this node's cluster key (%v); nothing was changed", oerr)
			return
		}
		n, serr := secrets.SealWith(next, pt)
		if serr != nil {
			err = serr
			return
		}
		out = append(out, raftstate.Reseal{Old: append(raftstate.Sealed(nil), *old...), New: n})
	})
	return out, err
}

// useKey writes raw to this node's cluster.key (atomically, 0600) and
// makes the keyring seal with it.
func (m *Manager) useKey(keys *secrets.Keyring, raw []byte) error {
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	if keys.ID() == secrets.KeyID(raw) {
		return nil
	}
	if err := secrets.WriteKey(m.cfg.KeyPath(), raw); err != nil {
		return err
	}
	return keys.Use(raw)
}

// followKeys switches this node to the cluster's newest key whenever the
// state's key chain moves past the one it holds (on every member, the
// leader included), until quit closes.
func (m *Manager) followKeys(st *raftstate.Store, keys *secrets.Keyring, quit <-chan struct{}) {
	changes := st.Subscribe()
	var warned string
	for {
		err := m.catchUpKey(st.View(), keys)
		switch {
		case err == nil:
			warned = ""
		case err.Error() != warned:
			warned = err.Error()
			m.log.Error("cannot switch to the cluster's new key; secrets sealed with it do not open here", "err", err)
		}
		select {
		case <-quit:
			return
		case <-changes:
		case <-time.After(30 * time.Second):
		}
	}
}

// errKeyNotInChain means this node's key is not one the chain continues.
var errKeyNotInChain = errors.New("this node's cluster key is not in the cluster's chain of keys (it was replaced more rotations ago than the state keeps, or it is not this cluster's): remove this node and join it again")

// catchUpKey follows the state's key chain from the key this node holds
// to the newest.
func (m *Manager) catchUpKey(s *raftstate.State, keys *secrets.Keyring) error {
	for {
		cur := s.CurrentKeyID()
		if cur == "" || cur == keys.ID() {
			return nil
		}
		var link *raftstate.KeyLink
		for i := range s.KeyChain {
			if s.KeyChain[i].Prev == keys.ID() {
				link = &s.KeyChain[i]
			}
		}
		if link == nil {
			return errKeyNotInChain
		}
		raw, err := keys.OpenCurrent(link.Sealed)
		if err != nil {
			return fmt.Errorf("key %s in the chain does not open with key %s: %w", link.ID, link.Prev, err)
		}
		if secrets.KeyID(raw) != link.ID {
			return fmt.Errorf("key %s in the chain opens to a key with another ID; refusing it", link.ID)
		}
		if err := m.useKey(keys, raw); err != nil {
			return fmt.Errorf("write the new cluster key %s: %w", link.ID, err)
		}
		m.log.Info("switched to the cluster's new key", "key_id", link.ID)
	}
}
