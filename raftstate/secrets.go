package raftstate

import "fmt"

// EachSecret calls fn with a pointer to every sealed secret in the state,
// in a fixed order (databases by name, then each database's own fields),
// so that `cluster rotate-key` re-seals all of them and the FSM replaces
// the same ones on every node. A new sealed field anywhere in the state
// must be visited here: a secret it misses would stay sealed with a key
// that rotate-key has retired.
func (s *State) EachSecret(fn func(*Sealed)) {
	if s.DatabaseCA != nil && len(s.DatabaseCA.Key) > 0 {
		fn(&s.DatabaseCA.Key)
	}
	for _, name := range s.DatabaseNames() {
		d := s.Databases[name]
		if len(d.Password) > 0 {
			fn(&d.Password)
		}
		if d.Follows != nil && len(d.Follows.Password) > 0 {
			fn(&d.Follows.Password)
		}
		if a := d.Access; a != nil {
			for _, s := range []*Sealed{&a.Agent, &a.Replication, &a.PreviousAgent, &a.PreviousReplication, &a.PreviousPassword} {
				if len(*s) > 0 {
					fn(s)
				}
			}
			for i := range a.Users {
				u := &a.Users[i]
				if len(u.Password) > 0 {
					fn(&u.Password)
				}
				if len(u.Previous) > 0 {
					fn(&u.Previous)
				}
			}
		}
	}
}

// KeyLink is one cluster key made by `cluster rotate-key`: ID names it,
// Prev names the key it replaced, and Sealed is the new key sealed with
// that previous one. A member holding any earlier key follows the chain
// to the newest (a member that was down during a rotation catches up); a
// removed node never receives the entry, for it is refused at the
// handshake before the rotation is written.
type KeyLink struct {
	ID     string `json:"id"`
	Prev   string `json:"prev"`
	Sealed Sealed `json:"sealed"`
}

// Reseal is one secret re-sealed by a rotation: the state's bytes Old are
// replaced by New wherever they are found.
type Reseal struct {
	Old Sealed `json:"old"`
	New Sealed `json:"new"`
}

// RotateKey is the payload of CmdRotateKey: a new cluster key (Key, absent
// when a rotation only re-seals what a first pass missed) and every
// secret of the state re-sealed with it.
type RotateKey struct {
	Key      *KeyLink `json:"key,omitempty"`
	Resealed []Reseal `json:"resealed"`
}

// maxKeyChain bounds the chain the state keeps: a member down for more
// rotations than this must join again.
const maxKeyChain = 32

// keyIDLen is the length of a key ID (hex).
const keyIDLen = 16

func checkKeyLink(l KeyLink) error {
	for _, id := range []string{l.ID, l.Prev} {
		if len(id) != keyIDLen || CheckFingerprint(id+id+id+id) != nil {
			return invalidf("cluster key ID %q is not %d lowercase hex digits", id, keyIDLen)
		}
	}
	if l.ID == l.Prev {
		return invalidf("cluster key %s replaces itself", l.ID)
	}
	if len(l.Sealed) == 0 || len(l.Sealed) > 256 {
		return invalidf("cluster key %s: sealed key of %d bytes", l.ID, len(l.Sealed))
	}
	return nil
}

func checkKeyChain(chain []KeyLink) error {
	if len(chain) > maxKeyChain {
		return invalidf("key chain of %d keys: at most %d", len(chain), maxKeyChain)
	}
	for i, l := range chain {
		if err := checkKeyLink(l); err != nil {
			return err
		}
		if i > 0 && l.Prev != chain[i-1].ID {
			return invalidf("cluster key %s follows %s, not %s", l.ID, l.Prev, chain[i-1].ID)
		}
	}
	return nil
}

// CurrentKeyID is the ID of the newest key rotate-key made, or "" when
// none was (the cluster key is still the first).
func (s *State) CurrentKeyID() string {
	if len(s.KeyChain) == 0 {
		return ""
	}
	return s.KeyChain[len(s.KeyChain)-1].ID
}

func (f *FSM) applyRotateKey(p RotateKey) error {
	if len(p.Resealed) == 0 && p.Key == nil {
		return invalidf("a key rotation needs a new key or secrets to re-seal")
	}
	repl := make(map[string]Sealed, len(p.Resealed))
	for _, r := range p.Resealed {
		if len(r.Old) == 0 || len(r.New) == 0 {
			return invalidf("a re-sealed secret is empty")
		}
		repl[string(r.Old)] = r.New
	}
	if p.Key != nil {
		if err := checkKeyLink(*p.Key); err != nil {
			return err
		}
		if cur := f.state.CurrentKeyID(); cur != "" && p.Key.Prev != cur {
			return &refusal{kind: ErrConflict, msg: fmt.Sprintf("the key rotation replaces key %s, but the cluster key is %s now (another rotation ran); retry", p.Key.Prev, cur)}
		}
	}
	// Everything checked: from here the command cannot fail.
	f.state.EachSecret(func(s *Sealed) {
		if n, ok := repl[string(*s)]; ok {
			*s = append(Sealed(nil), n...)
		}
	})
	if p.Key != nil {
		f.state.KeyChain = append(f.state.KeyChain, *p.Key)
		if n := len(f.state.KeyChain) - maxKeyChain; n > 0 {
			f.state.KeyChain = append([]KeyLink(nil), f.state.KeyChain[n:]...)
		}
	}
	return nil
}
