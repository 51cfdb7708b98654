package failover

import (
	"testing"
)

// Every path of the fencer, without clocks, Raft or redis-server: a
// primary takes writes only after the lease is back, this node has caught
// up with the leader's log, and a reconcile pass has applied the roles.
func TestStep_FencesOnLossAndUnfencesOnlyAfterCatchUpAndAPass(t *testing.T) {
	held := fenceInput{held: true}
	lost := fenceInput{}
	type want = fenceStep
	cases := []struct {
		name    string
		from    Phase
		decided bool
		in      fenceInput
		want    want
	}{
		{"start, no lease yet, within the grace: running primaries left as they are", Starting, false, lost, fenceStep{next: Starting}},
		{"start, no leader within the grace: fence them", Starting, false, fenceInput{graceOver: true}, fenceStep{next: Fenced, decided: true, assert: true, event: "fenced"}},
		{"start, lease comes: catch up before anything", Starting, false, held, fenceStep{next: CatchingUp}},
		{"start, lease comes, already caught up: ask for a pass at once", Starting, false, fenceInput{held: true, caughtUp: true}, fenceStep{next: Applying, pass: true}},
		{"catching up from the start, not caught up yet", CatchingUp, false, held, fenceStep{next: CatchingUp}},
		{"caught up: ask for a pass", CatchingUp, false, fenceInput{held: true, caughtUp: true}, fenceStep{next: Applying, pass: true}},
		{"pass done after a start: writable, no unfence event", Applying, false, fenceInput{held: true, caughtUp: true, passed: true}, fenceStep{next: Writable, decided: true, assert: true}},
		{"writable and held: nothing", Writable, true, held, fenceStep{next: Writable, decided: true}},
		{"writable, lease lost: fence at once", Writable, true, lost, fenceStep{next: Fenced, decided: true, assert: true, event: "fenced"}},
		{"fenced, lease still lost", Fenced, true, lost, fenceStep{next: Fenced, decided: true}},
		{"fenced, lease back: catch up first, still fenced", Fenced, true, held, fenceStep{next: CatchingUp, decided: true}},
		{"fenced, lease back, already caught up: a pass at once, still fenced", Fenced, true, fenceInput{held: true, caughtUp: true}, fenceStep{next: Applying, decided: true, pass: true}},
		{"catching up, lease lost again: back to fenced", CatchingUp, true, lost, fenceStep{next: Fenced, decided: true}},
		{"applying, lease lost again: back to fenced, the pass forgotten", Applying, true, fenceInput{passed: true}, fenceStep{next: Fenced, decided: true}},
		{"applying from the start, lease lost: undecided again", Applying, false, lost, fenceStep{next: Starting}},
		{"applying, pass not done yet", Applying, true, fenceInput{held: true, caughtUp: true}, fenceStep{next: Applying, decided: true}},
		{"applying, pass done: writable, with an unfence event", Applying, true, fenceInput{held: true, caughtUp: true, passed: true}, fenceStep{next: Writable, decided: true, assert: true, event: "unfenced"}},
	}
	for _, c := range cases {
		s := step(c.from, c.decided, c.in)
		got := s
		if got != c.want {
			t.Errorf("%s: step(%s) = %+v, want %+v", c.name, c.from, got, c.want)
		}
	}
}

// The reconciler starts a primary fenced unless the fencer has decided it
// may take writes, and leaves running primaries alone while undecided.
func TestDecision_WritableOnlyInWritable(t *testing.T) {
	for _, c := range []struct {
		p             Phase
		decided       bool
		fenced, known bool
	}{
		{Starting, false, true, false},
		{CatchingUp, false, true, false},
		{Applying, false, true, false},
		{Writable, true, false, true},
		{Fenced, true, true, true},
		{CatchingUp, true, true, true},
		{Applying, true, true, true},
	} {
		if f, k := decision(c.p, c.decided); f != c.fenced || k != c.known {
			t.Errorf("decision(%s, decided %t) = fenced %t known %t, want %t %t", c.p, c.decided, f, k, c.fenced, c.known)
		}
	}
}
