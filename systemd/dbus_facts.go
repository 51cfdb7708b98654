package systemd

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// factsMaxAge bounds how long a cached MainPID and NRestarts are trusted
// without a signal: a safety net should a signal ever be lost (both change
// only with a state transition, which is seen without them). Re-reading
// them, two calls per unit one after the other, every minute was a
// wake-up a second of an idle agent with 33 instances.
const factsMaxAge = 5 * time.Minute

// unitFacts caches the properties of units that only change together with
// a PropertiesChanged signal or a state transition: MainPID and NRestarts.
type unitFacts struct {
	mu     sync.Mutex
	gen    uint64 // bumped by every forget
	byUnit map[string]cachedFacts
	// files: unit → the file content last installed, loaded and enabled,
	// and when that was checked with systemd.
	files map[string]installedFile
}

type installedFile struct {
	sum [sha256.Size]byte
	at  time.Time
}

// installedFor bounds how long an installed unit is trusted to still be
// loaded and enabled without asking systemd (someone may disable it).
const installedFor = 5 * time.Minute

func (f *unitFacts) installed(name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil {
		f.files = map[string]installedFile{}
	}
	f.files[name] = installedFile{sum: sha256.Sum256(data), at: time.Now()}
}

func (f *unitFacts) installedRecently(name string, data []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.files[name]
	return ok && i.sum == sha256.Sum256(data) && time.Since(i.at) < installedFor
}

type cachedFacts struct {
	UnitState
	at time.Time
}

// generation returns the counter to pass to put: facts read after it was
// taken are cached only if nothing was forgotten meanwhile, so a signal
// that overtakes a slow read cannot leave the old value behind.
func (f *unitFacts) generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// get returns the cached facts of st's unit if they were read in the same
// active and sub state and are recent.
func (f *unitFacts) get(st UnitState) (UnitState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byUnit[st.Name]
	if !ok || c.ActiveState != st.ActiveState || c.SubState != st.SubState || time.Since(c.at) > factsMaxAge {
		return UnitState{}, false
	}
	return c.UnitState, true
}

func (f *unitFacts) put(gen uint64, st UnitState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen {
		return
	}
	if f.byUnit == nil {
		f.byUnit = map[string]cachedFacts{}
	}
	f.byUnit[st.Name] = cachedFacts{UnitState: st, at: time.Now()}
}

func (f *unitFacts) forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	delete(f.byUnit, name)
	// A signal may be a change of the unit's load or enablement too.
	delete(f.files, name)
}

func (f *unitFacts) forgetAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	clear(f.byUnit)
	clear(f.files)
}

// stateOf is State in terms of States.
func stateOf(ctx context.Context, s Supervisor, name string) (UnitState, error) {
	states, err := s.States(ctx, []string{name})
	if err != nil {
		return UnitState{}, err
	}
	st, ok := states[name]
	if !ok {
		return UnitState{}, fmt.Errorf("state of %s: %w", name, ErrUnitNotFound)
	}
	return st, nil
}
