package raftstate

// EachSecret calls fn with a pointer to every sealed secret in the state,
// in a fixed order (databases by name, then each database's own fields),
// so that `cluster rotate-key` re-seals all of them and the FSM replaces
// the same ones on every node. A new sealed field anywhere in the state
// must be visited here: a secret it misses would stay sealed with a key
// that rotate-key has retired.
func (s *State) EachSecret(fn func(*Sealed)) {
	for _, name := range s.DatabaseNames() {
		d := s.Databases[name]
		if len(d.Password) > 0 {
			fn(&d.Password)
		}
		if d.Follows != nil && len(d.Follows.Password) > 0 {
			fn(&d.Follows.Password)
		}
	}
}
