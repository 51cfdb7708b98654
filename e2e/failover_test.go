package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Automatic failover (docs/failover.md) on the three-host systemd lab,
// one fault at a time, each against a fresh HA database (two replicas) on
// the same three hosts, as issue 5 lists them. Every scenario runs:
//
//   - a writer in the test process, through go-redis's Sentinel-aware
//     client (the lab's discovery ports, reached through the bridge's
//     gateway), that records every acknowledged write: plain SETs and
//     SETs followed by WAIT 1 200 on the same connection, counted as
//     WAIT-acknowledged only when WAIT answered at least 1;
//   - a probe that ten times a second sends a SET straight to every
//     instance (no discovery) and records which took it.
//
// and asserts that no WAIT-acknowledged write is lost (every one is on the
// final primary), that two instances never take writes at once (see
// foTwoWriters) from the moment the scenario says, that the old primary
// comes back as a replica of the new one, and that the events an operator
// would look for were recorded (listed oldest first and once each, as
// `events` promises, with no failover verdict on a database before its
// fault). It logs the plain writes lost, the longest gap between two
// writes the client had acknowledged, the longest time no instance took a
// probe write (the outage as the servers had it: go-redis can take far
// longer to find the new primary when the Sentinel it talks to is on the
// failed host), and the time from the fault to the promotion (the
// "promoted" event, stamped by the leader; the hosts share the machine's
// clock).
//
// "Two writers" is checked from the start of each scenario, except after
// SIGCONT of a paused primary: the docs accept that a resumed primary
// acknowledges what it had queued before it is demoted, so writes it takes
// in the first second after SIGCONT are allowed (and measured), later ones
// are not. For a cut-off primary the lease makes any overlap a failure:
// it must refuse writes (NOREPLICAS) once its lease is gone (1 s), before
// the leader may promote anyone (1.5 s), so the new primary's first write
// comes after the old one's last.

// The failover lab's network (unique on the machine).
const (
	foBridge = "racf0"
	foPrefix = "10.213.4"
)

// foScenario is one fault against one fresh HA database.
type foScenario struct {
	t   *testing.T
	ctx context.Context
	l   *clusterLab
	db  string
	pw  string
	pad int

	start  time.Time // before the database was created
	fault  time.Time // when the fault was injected
	before replDatabase
	old    replInstance // the primary before the fault

	fc    *redis.Client
	w     *foWriter
	probe *foProbe
	// extra are writes the old primary took as seen by a writer inside its
	// host (the test process cannot reach a cut-off host).
	extra []foAcceptance
	// hostAcks are that writer's acknowledged writes, checked on the final
	// primary like the test's own.
	hostAcks []foAck
	// undo runs before the lab is restored (SIGCONT, throttle removed).
	undo []func()
}

// foResult is what a scenario measured.
type foResult struct {
	acked, waited         int
	lostPlain, lostWaited []string
	fails                 map[string]int
	gap                   time.Duration // between two writes the client had acknowledged
	down                  time.Duration // with no instance taking a write (probe)
	promotion             time.Duration // 0: no promotion
}

// startFo creates the database db (flavor, two replicas, the primary on
// pin unless empty), waits until it is healthy with both replicas linked,
// and starts the writer and the probe. The lab is restored when t ends:
// links up, powered-off hosts booted, the database deleted.
func startFo(t *testing.T, ctx context.Context, l *clusterLab, db, flavor, pin string, pad int) *foScenario {
	t.Helper()
	s := &foScenario{t: t, ctx: ctx, l: l, db: db, pad: pad, start: time.Now()}
	t.Cleanup(s.restore)
	t.Cleanup(s.dumpJournals) // runs first: the journal as the fault left it
	l.waitFormed(ctx, l.hosts)

	creator := l.hosts[0]
	args := []string{"db", "create", db, "--memory", "32mb", "--flavor", flavor, "--replicas", "2"}
	if pin != "" {
		args = append(args, "--node", pin)
		creator = others(l.hosts, l.host(pin))[0]
	}
	creator.mustCLI(ctx, args...)
	d := creator.waitReplicated(ctx, db, 3)
	s.pw = creator.url(ctx, db).Password
	waitReplicasLinked(t, ctx, d, s.pw)
	s.before = d
	s.old, _ = d.primary()
	if pin != "" && s.old.Node != pin {
		t.Fatalf("%s was created with --node %s but its primary is on %s: %s", db, pin, s.old.Node, d.summary())
	}

	s.fc = failoverClient(t, l.hosts, db, s.pw)
	waitFor(t, timeout(t, 30*time.Second), "go-redis's failover client to reach the primary of "+db, func() (bool, string) {
		err := s.fc.Ping(ctx).Err()
		return err == nil, fmt.Sprint(err)
	})
	var targets []foTarget
	for _, in := range d.Instances {
		targets = append(targets, foTarget{id: in.ID, addr: in.addr()})
	}
	s.probe = startFoProbe(ctx, targets, s.pw, "probe:"+db, 100*time.Millisecond, 15*time.Minute)
	s.w = startFoWriter(ctx, s.fc, db+":w:", pad, 5*time.Millisecond, 2_000_000, 15*time.Minute)
	t.Cleanup(func() {
		_, _, _ = s.w.finish()
		s.probe.finish()
	})
	waitFor(t, timeout(t, 30*time.Second), "200 writes acknowledged, 50 of them by WAIT", func() (bool, string) {
		acked, waited := s.w.counts()
		return acked >= 200 && waited >= 50, fmt.Sprintf("%d acknowledged, %d by WAIT", acked, waited)
	})
	leader := l.leaderOf(ctx, creator)
	t.Logf("%s: %s; Raft leader %s", db, d.summary(), leader.name)
	return s
}

// rel is t relative to the fault, for log lines.
func (s *foScenario) rel(t time.Time) string {
	return fmt.Sprintf("%+.3fs", t.Sub(s.fault).Seconds())
}

// waitPromoted waits until db show on asker names another primary than
// the old one, with a later epoch, and returns what it showed.
func (s *foScenario) waitPromoted(asker clusterHost, bound time.Duration) replDatabase {
	s.t.Helper()
	var d replDatabase
	waitFor(s.t, timeout(s.t, bound), fmt.Sprintf("%s to promote a replica in place of %s on %s", s.db, s.old.ID, s.old.Node), func() (bool, string) {
		var err error
		if d, err = asker.tryShow(s.ctx, s.db); err != nil {
			return false, err.Error()
		}
		p, ok := d.primary()
		return ok && p.ID != s.old.ID && d.Epoch > s.before.Epoch, d.summary()
	})
	p, _ := d.primary()
	s.t.Logf("db show on %s: %s on %s is the primary, epoch %d, seen %s after the fault", asker.name, p.ID, p.Node, d.Epoch, time.Since(s.fault).Round(time.Millisecond))
	return d
}

// settle waits until the database is healthy again with want's primary
// and epoch: three running instances, every replica (the old primary
// among them) replicating the primary with its link up, as redis-server
// itself says.
func (s *foScenario) settle(asker clusterHost, want replDatabase) replDatabase {
	s.t.Helper()
	d := asker.waitReplicated(s.ctx, s.db, 3)
	p, _ := d.primary()
	wp, _ := want.primary()
	if p.ID != wp.ID || d.Epoch != want.Epoch {
		s.t.Errorf("%s settled as %s; want the primary %s at epoch %d: the primary moved again", s.db, d.summary(), wp.ID, want.Epoch)
	}
	waitReplicasLinked(s.t, s.ctx, d, s.pw)
	if in, ok := d.on(s.old.Node); !ok || (in.ID != p.ID && in.Role != "replica") {
		s.t.Errorf("the old primary's instance on %s after settling: %+v, want a replica", s.old.Node, in)
	}
	return d
}

// waitWrites waits until the writer has n more writes acknowledged.
func (s *foScenario) waitWrites(n int, what string) {
	s.t.Helper()
	from := time.Now()
	// 60 s: go-redis's failover client can take 30 s to give up on a
	// Sentinel on a host that is gone (it retries the dial five times a
	// try), whatever the servers do.
	waitFor(s.t, timeout(s.t, 60*time.Second), fmt.Sprintf("%d writes acknowledged %s", n, what), func() (bool, string) {
		got := s.w.since(from)
		acked, _ := s.w.counts()
		_, fails, last := s.w.snapshotFails()
		return got >= n, fmt.Sprintf("%d since, %d in all; failures %s (last: %v)", got, acked, foKinds(fails), last)
	})
}

// snapshotFails returns the writer's tallies so far without stopping it.
func (w *foWriter) snapshotFails() (int, map[string]int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fails := map[string]int{}
	for k, v := range w.fails {
		fails[k] = v
	}
	return len(w.acks), fails, w.last
}

// finish stops the writer (after 100 more writes, when it still runs) and
// the probe, and checks and logs what they saw: every WAIT-acknowledged
// write on final's primary, two instances never taking writes at once
// from from on, and the longest gap and the plain writes lost.
func (s *foScenario) finish(final replDatabase, from time.Time) foResult {
	s.t.Helper()
	if s.w.running() {
		s.waitWrites(100, "on the final primary")
	}
	acks, fails, lastErr := s.w.finish()
	spans := s.w.failSpans()
	accepted, refused, rounds := s.probe.finish()
	end := time.Now()

	p, _ := final.primary()
	pc := directClient(s.t, p.addr(), s.pw)
	res := foResult{fails: fails, gap: foGap(acks, s.fault, end), down: foAcceptGap(append(accepted, s.extra...), s.fault, end)}
	all := append(append([]foAck(nil), acks...), s.hostAcks...)
	for _, a := range all {
		res.acked++
		if a.waited {
			res.waited++
		}
	}
	var err error
	if res.lostWaited, res.lostPlain, err = foMissing(s.ctx, pc, all, s.pad); err != nil {
		s.t.Fatalf("reading the acknowledged writes on the final primary %s: %v", p.addr(), err)
	}
	var failed []string
	for kind, n := range fails {
		failed = append(failed, fmt.Sprintf("%s %d from %s to %s", kind, n, s.rel(spans[kind][0]), s.rel(spans[kind][1])))
	}
	slices.Sort(failed)
	s.t.Logf("%s: %d writes acknowledged (%d by WAIT 1, %d plain), %d failed (%s; last: %v); longest gap between acknowledged writes %s, longest time no instance took a probe write %s",
		s.db, res.acked, res.waited, res.acked-res.waited, foCount(fails), strings.Join(failed, ", "), lastErr, res.gap.Round(time.Millisecond), res.down.Round(time.Millisecond))
	s.t.Logf("%s: on the final primary %s on %s: %d plain writes lost, %d WAIT-acknowledged writes lost", s.db, p.ID, p.Node, len(res.lostPlain), len(res.lostWaited))
	if len(res.lostWaited) > 0 {
		s.t.Errorf("%d writes acknowledged by WAIT 1 are not on the final primary %s, e.g. %v", len(res.lostWaited), p.ID, res.lostWaited[:min(len(res.lostWaited), 10)])
	}

	var refusals []string
	for id, kinds := range refused {
		refusals = append(refusals, fmt.Sprintf("%s: %s", id, foKinds(kinds)))
	}
	slices.Sort(refusals)
	s.t.Logf("%s: probe: %d SETs sent to the instances, %d taken; refused: %s", s.db, rounds, len(accepted), strings.Join(refusals, "; "))
	if conflicts := foTwoWriters(append(accepted, s.extra...), from, s.fault, 10*time.Second); len(conflicts) > 0 {
		s.t.Errorf("two instances of %s took writes at once (%d times, from %s on):\n%s", s.db, len(conflicts), s.rel(from), strings.Join(conflicts[:min(len(conflicts), 10)], "\n"))
	}
	if last, ok := lastAcceptance(append(accepted, s.extra...), s.old.ID, s.fault); ok && p.ID != s.old.ID {
		first, _ := firstAcceptanceNot(accepted, s.old.ID, s.fault)
		s.t.Logf("%s: the old primary last took a write at %s; the new primary first took one at %s", s.db, s.rel(last.at), s.rel(first.at))
	}
	return res
}

// foWant is an event a scenario expects: kind, and node or a message
// fragment when not empty.
type foWant struct{ kind, node, contains string }

// events returns the events recorded since the scenario started about
// its database or about no database (nodes, fences).
func (s *foScenario) events(asker clusterHost) ([]foEvent, error) {
	all, err := foEvents(s.ctx, asker)
	if err != nil {
		return nil, err
	}
	var out []foEvent
	for _, e := range all {
		if !e.At.Before(s.start.Add(-time.Second)) && (e.Database == s.db || e.Database == "") {
			out = append(out, e)
		}
	}
	return out, nil
}

// requireEvents waits (bounded: a cut-off node delivers its own events
// once it is back) until every wanted event is recorded after the fault,
// and returns the scenario's events.
func (s *foScenario) requireEvents(asker clusterHost, wants ...foWant) []foEvent {
	s.t.Helper()
	var evs []foEvent
	var missing []string
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	for {
		var err error
		evs, err = s.events(asker)
		missing = missing[:0]
		if err != nil {
			missing = append(missing, err.Error())
		}
		for _, w := range wants {
			if !slices.ContainsFunc(evs, func(e foEvent) bool {
				return e.Kind == w.kind && !e.At.Before(s.fault) && (w.node == "" || e.Node == w.node) &&
					(w.contains == "" || strings.Contains(e.Message, w.contains)) &&
					(e.Database == s.db || e.Database == "")
			}) {
				missing = append(missing, fmt.Sprintf("%s (node %q, %q)", w.kind, w.node, w.contains))
			}
		}
		if len(missing) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.t.Errorf("events recorded for %s since the fault lack %s; recorded:\n%s", s.db, strings.Join(missing, ", "), s.formatEvents(evs))
			return evs
		case <-time.After(500 * time.Millisecond):
		}
	}
	s.t.Logf("%s: events:\n%s", s.db, s.formatEvents(evs))
	s.checkEventList(evs)
	// Before the fault the database was being created and then healthy:
	// nothing to detect, promote or refuse.
	for _, e := range evs {
		if e.Database == s.db && e.At.Before(s.fault) && (e.Kind == "detected" || e.Kind == "promoted" || e.Kind == "failover-refused") {
			s.t.Errorf("%s was judged failed before any fault, at %s while it was created and started: %s %q", s.db, s.rel(e.At), e.Kind, e.Message)
		}
	}
	return evs
}

// formatEvents lists events one a line, relative to the fault; a run of
// events that differ only in their figures is one line and a count.
func (s *foScenario) formatEvents(evs []foEvent) string {
	var b strings.Builder
	shape := func(e foEvent) string {
		return e.Kind + e.Database + e.Node + foDigits.ReplaceAllString(e.Message, "#")
	}
	for i := 0; i < len(evs); {
		e := evs[i]
		j := i + 1
		for j < len(evs) && shape(evs[j]) == shape(e) {
			j++
		}
		fmt.Fprintf(&b, "  %s %-16s %-10s %-5s %s\n", s.rel(e.At), e.Kind, e.Database, e.Node, e.Message)
		if j-i > 1 {
			fmt.Fprintf(&b, "  … and %d more like it, the last at %s\n", j-i-1, s.rel(evs[j-1].At))
		}
		i = j
	}
	return b.String()
}

// foDigits matches the figures in an event's message.
var foDigits = regexp.MustCompile(`[0-9][0-9.]*`)

// checkEventList asserts what `events` promises of its list: oldest first
// (by the time each event happened), and each event once.
func (s *foScenario) checkEventList(evs []foEvent) {
	s.t.Helper()
	seen := map[foEvent]bool{}
	var dups []string
	for i, e := range evs {
		if i > 0 && e.At.Before(evs[i-1].At) {
			s.t.Errorf("events -o json is not oldest first, as `events --help` says: %s %s on %s (at %s) is listed after %s %s (at %s)",
				e.Kind, e.Message, e.Node, s.rel(e.At), evs[i-1].Kind, evs[i-1].Node, s.rel(evs[i-1].At))
			break
		}
	}
	for _, e := range evs {
		if seen[e] {
			dups = append(dups, fmt.Sprintf("%s %s %s at %s: %q", e.Kind, e.Database, e.Node, s.rel(e.At), e.Message))
		}
		seen[e] = true
	}
	if len(dups) > 0 {
		s.t.Errorf("events -o json lists %d events twice (same time, kind, node and message), e.g.\n%s", len(dups), strings.Join(dups[:min(len(dups), 5)], "\n"))
	}
}

// refusals counts the failover-refused events of the database.
func refusals(evs []foEvent, db, contains string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == "failover-refused" && e.Database == db && strings.Contains(e.Message, contains) {
			n++
		}
	}
	return n
}

// promotions are the "promoted" events of the database since the fault.
func promotions(evs []foEvent, db string, since time.Time) []foEvent {
	var out []foEvent
	for _, e := range evs {
		if e.Kind == "promoted" && e.Database == db && !e.At.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// promotionTime is the time from the fault to the first promotion of the
// database recorded after it.
func (s *foScenario) promotionTime(evs []foEvent) time.Duration {
	s.t.Helper()
	ps := promotions(evs, s.db, s.fault)
	if len(ps) == 0 {
		s.t.Errorf("no promoted event for %s after the fault", s.db)
		return 0
	}
	return ps[0].At.Sub(s.fault)
}

// dumpJournals logs, when the scenario failed, every running host's agent
// journal since the scenario started.
func (s *foScenario) dumpJournals() {
	if !s.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, h := range s.l.hosts {
		if !h.Running() {
			continue
		}
		out, _, _ := h.Exec(ctx, "journalctl", "-u", agentName, "--since", fmt.Sprintf("@%d", s.start.Unix()),
			"--no-pager", "-o", "short-precise")
		// The agent's own records and systemd's about its unit; not the
		// goroutine dump of an agent the watchdog aborted.
		var lines []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "level=") || strings.Contains(line, " systemd[1]: ") {
				lines = append(lines, line)
			}
		}
		lines = lines[max(len(lines)-150, 0):]
		s.t.Logf("journal of the agent on %s since %s was created (last %d records):\n%s", h.name, s.db, len(lines), strings.Join(lines, "\n"))
	}
}

// restore undoes what the scenario did to the lab, whatever state it
// stopped in: processes resumed, throttles removed, links up, hosts
// booted, and the database deleted, so that the next scenario starts on
// three healthy hosts.
func (s *foScenario) restore() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, h := range s.l.hosts {
		if h.Running() {
			h.Reconnect()
			continue
		}
		h.Boot()
		h.waitAgent(ctx)
	}
	for _, h := range s.l.hosts {
		if _, stderr, err := h.cli(ctx, "db", "delete", s.db); err == nil {
			return
		} else if strings.Contains(stderr, "not found") || strings.Contains(stderr, "no database") {
			return
		}
	}
	s.t.Logf("could not delete %s after the scenario", s.db)
}

// sigcont resumes pid inside h when the scenario ends, whatever happens.
func (s *foScenario) sigcont(h clusterHost, pid int) {
	s.undo = append(s.undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, _ = h.Exec(ctx, "kill", "-CONT", strconv.Itoa(pid))
	})
}

// foRow is one line of the summary the test logs at its end.
type foRow struct {
	scenario              string
	promotion, gap, down  time.Duration
	acked, waited         int
	lostPlain, lostWaited int
	note                  string
}

// TestFailover_ThreeHostLabFailsOverEveryFaultWithoutTwoWritablePrimariesOrLosingAWaitedWrite
// proves docs/failover.md on real hosts: a kill -9 of the primary's
// redis-server, a power loss of its host, its host cut from the cluster
// while its own clients still reach it, the Raft leader's host (holding
// the primary) cut off, the primary paused past the detection window, the
// primary host's agent paused for a minute (no failover), ten flapping
// partitions (at most one failover per cooldown), a lagging replica (not
// promoted over a fresh one) and a restart of every host after a failover
// (the promotion persists). See the comment at the top of the file for
// what every scenario asserts.
//
// The scenarios share the three hosts and run in order; each starts from
// three healthy hosts (the previous one restores them, even when it
// failed) and a database of its own, so one failing does not stop the
// others.
func TestFailover_ThreeHostLabFailsOverEveryFaultWithoutTwoWritablePrimariesOrLosingAWaitedWrite(t *testing.T) {
	t.Parallel()
	all, gw := bootGatewayLab(t, foBridge, foPrefix, 3, 3)
	ctx := timeout(t, 30*time.Minute)
	t.Logf("the test process reaches the lab through the gateway address %s", gw)
	var rows []foRow
	report := func(name string, s *foScenario, res foResult, note string) {
		rows = append(rows, foRow{name, res.promotion, res.gap, res.down, res.acked, res.waited, len(res.lostPlain), len(res.lostWaited), note})
	}
	if !t.Run("Form", func(t *testing.T) { all.in(t).form(ctx, 3) }) {
		t.FailNow()
	}
	scenario := func(name string, f func(t *testing.T, l *clusterLab)) {
		t.Helper()
		t.Run(name, func(t *testing.T) { f(t, all.in(t)) })
	}

	// 1. kill -9 of the primary's redis-server.
	scenario("KillNineOfThePrimaryRedisServer", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		s := startFo(t, ctx, l, "kill", "nordb", others(l.hosts, leader)[0].name, 0)
		h := l.host(s.old.Node)
		pid := h.mainPID(ctx, s.old.Unit)
		s.fault = time.Now()
		h.MustExec(ctx, "kill", "-9", strconv.Itoa(pid))
		d := s.waitPromoted(leader, 30*time.Second)
		final := s.settle(leader, d)
		if now := h.mainPID(ctx, s.old.Unit); now == pid || now == 0 {
			t.Errorf("the old primary's redis-server (pid %d) was not started again: MainPID %d", pid, now)
		}
		res := s.finish(final, s.start)
		evs := s.requireEvents(leader, foWant{kind: "detected", node: s.old.Node}, foWant{kind: "promoted"})
		res.promotion = s.promotionTime(evs)
		report("kill -9 redis-server", s, res, "")
	})

	// 2. Power-off of the primary's host, then boot.
	scenario("PowerOffOfThePrimaryHostThenBoot", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		s := startFo(t, ctx, l, "power", "nordb", others(l.hosts, leader)[0].name, 0)
		h := l.host(s.old.Node)
		// Link first, then power: no FIN or RST leaves the host.
		s.fault = time.Now()
		h.Disconnect()
		h.PowerLoss()
		d := s.waitPromoted(leader, 30*time.Second)
		s.waitWrites(200, "while the old primary's host is off")
		h.Boot()
		h.waitAgent(ctx)
		l.waitFormed(ctx, l.hosts)
		final := s.settle(leader, d)
		res := s.finish(final, s.start)
		evs := s.requireEvents(leader, foWant{kind: "node-lost", node: h.name}, foWant{kind: "detected", node: h.name},
			foWant{kind: "promoted"}, foWant{kind: "node-back", node: h.name})
		res.promotion = s.promotionTime(evs)
		report("power-off of the primary's host", s, res, "")
	})

	// 3 and 4. The primary's host cut off while a writer inside it goes on
	// writing to it; in 4 the host is also the Raft leader's.
	cut := func(t *testing.T, l *clusterLab, db string, leaderHost bool) {
		leader := l.leaderOf(ctx, l.hosts[0])
		pin := others(l.hosts, leader)[0]
		if leaderHost {
			pin = leader
		}
		s := startFo(t, ctx, l, db, "nordb", pin.name, 0)
		h := l.host(s.old.Node)
		asker := others(l.hosts, h)[0]
		hw := startFoHostWriter(t, ctx, h, s.old.Port, s.pw, db+":in:")
		waitFor(t, timeout(t, 30*time.Second), "the writer inside "+h.name+" to have 100 writes acknowledged", func() (bool, string) {
			n := hw.oks()
			return n >= 100, fmt.Sprintf("%d", n)
		})

		s.fault = time.Now()
		h.Disconnect()
		if leaderHost {
			waitFor(t, timeout(t, 30*time.Second), "the two other hosts to elect a leader", func() (bool, string) {
				st, err := asker.status(ctx)
				if err != nil {
					return false, err.Error()
				}
				return st.Leader != "" && st.Leader != h.name, "leader " + st.Leader
			})
			t.Logf("%s leads %s after the cut", asker.mustStatus(ctx).Leader, time.Since(s.fault).Round(time.Millisecond))
		}
		d := s.waitPromoted(asker, 30*time.Second)
		// The isolated primary goes on refusing for a while before the
		// partition heals.
		time.Sleep(time.Until(s.fault.Add(5 * time.Second)))
		h.Reconnect()
		healed := time.Now()
		l.waitFormed(ctx, l.hosts)
		final := s.settle(asker, d)
		settled := time.Now()
		waitFor(t, timeout(t, 30*time.Second), "the writer inside "+h.name+" to try 50 more writes after the heal", func() (bool, string) {
			hw.mu.Lock()
			defer hw.mu.Unlock()
			n := 0
			for _, w := range hw.writes {
				if w.sent.After(settled) {
					n++
				}
			}
			return n >= 50, fmt.Sprintf("%d", n)
		})
		writes, err := hw.finish()
		if err != nil {
			t.Error(err)
		}

		// What the writer inside the cut-off host saw.
		var lastOK, firstRefusal foHostWrite
		var okAfterHeal []foHostWrite
		kinds := map[string]int{}
		for _, w := range writes {
			switch {
			case w.ok && w.at.After(s.fault):
				lastOK = w
				if w.sent.After(healed) {
					okAfterHeal = append(okAfterHeal, w)
				}
			case !w.ok && w.sent.After(s.fault):
				kinds[w.kind]++
				if w.kind == "NOREPLICAS" && firstRefusal.key == "" {
					firstRefusal = w
				}
			}
			if w.ok {
				s.extra = append(s.extra, foAcceptance{id: s.old.ID, sent: w.sent, at: w.at})
			}
		}
		s.hostAcks = foAcks(writes)
		t.Logf("writer inside %s: last write taken at %s, first NOREPLICAS at %s; failures after the cut: %s",
			h.name, s.rel(lastOK.at), s.rel(firstRefusal.at), foKinds(kinds))
		// The lease: 700 ms without the leader, then NOREPLICAS, before
		// the leader may promote (detection, 1 s). The leader's own host
		// keeps its lease until Raft makes it step down (LeaderLeaseTimeout
		// 400 ms): half a second more.
		bound := foDetection
		if leaderHost {
			bound += 500 * time.Millisecond
		}
		if !lastOK.at.IsZero() && lastOK.at.Sub(s.fault) > bound {
			t.Errorf("the cut-off primary on %s took a write %s after the cut (sent at %s); with a %s lease it must refuse writes within %s",
				h.name, s.rel(lastOK.at), s.rel(lastOK.sent), foLease, bound)
		}
		if firstRefusal.key == "" {
			t.Errorf("the writer inside the cut-off host never got NOREPLICAS after the cut: %s", foKinds(kinds))
		}
		if len(okAfterHeal) > 0 {
			t.Errorf("the old primary on %s took %d writes after the partition healed (first at %s): it must come back as a replica",
				h.name, len(okAfterHeal), s.rel(okAfterHeal[0].at))
		}
		res := s.finish(final, s.start)
		if leaderHost {
			if st := h.mustStatus(ctx); st.RaftState != "follower" || st.Leader == h.name {
				t.Errorf("%s came back as %s under %s, want a follower", h.name, st.RaftState, st.Leader)
			}
		}
		evs := s.requireEvents(asker, foWant{kind: "fenced", node: h.name}, foWant{kind: "node-lost", node: h.name},
			foWant{kind: "detected", node: h.name}, foWant{kind: "promoted"})
		res.promotion = s.promotionTime(evs)
		var lostIn int
		for _, k := range res.lostPlain {
			if strings.HasPrefix(k, db+":in:") {
				lostIn++
			}
		}
		note := fmt.Sprintf("inside the host: last write taken %s, NOREPLICAS from %s, %d of its plain writes lost",
			s.rel(lastOK.at), s.rel(firstRefusal.at), lostIn)
		t.Logf("%s: %s", db, note)
		name := "primary's host cut off"
		if leaderHost {
			name = "leader's host (with the primary) cut off"
		}
		report(name, s, res, note)
	}
	scenario("PrimaryHostCutOffRefusesWritesAndRejoinsAsAReplica", func(t *testing.T, l *clusterLab) {
		cut(t, l, "cut", false)
	})
	scenario("RaftLeaderHostWithThePrimaryCutOff", func(t *testing.T, l *clusterLab) {
		cut(t, l, "leadercut", true)
	})

	// 5. SIGSTOP of the primary's redis-server past the detection window,
	// then SIGCONT.
	scenario("PrimaryRedisServerPausedPastDetectionThenResumed", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		s := startFo(t, ctx, l, "pause", "nordb", others(l.hosts, leader)[0].name, 0)
		h := l.host(s.old.Node)
		pid := h.mainPID(ctx, s.old.Unit)
		s.sigcont(h, pid)
		s.fault = time.Now()
		h.MustExec(ctx, "kill", "-STOP", strconv.Itoa(pid))
		d := s.waitPromoted(leader, 30*time.Second)
		h.MustExec(ctx, "kill", "-CONT", strconv.Itoa(pid))
		resumed := time.Now()
		t.Logf("redis-server pid %d resumed at %s", pid, s.rel(resumed))
		final := s.settle(leader, d)
		if now := h.mainPID(ctx, s.old.Unit); now != pid {
			t.Logf("the resumed redis-server was restarted (pid %d, was %d)", now, pid)
		}
		res := s.finish(final, resumed.Add(time.Second))
		accepted, _, _ := s.probe.finish()
		note := "the resumed primary took no probe write"
		if last, ok := lastAcceptance(accepted, s.old.ID, resumed); ok {
			note = fmt.Sprintf("the resumed primary took probe writes until %s after SIGCONT", last.at.Sub(resumed).Round(time.Millisecond))
		}
		t.Logf("pause: %s", note)
		evs := s.requireEvents(leader, foWant{kind: "detected", node: h.name}, foWant{kind: "promoted"})
		res.promotion = s.promotionTime(evs)
		report("SIGSTOP redis-server, then SIGCONT", s, res, note)
	})

	// 6. SIGSTOP of the primary host's agent for 60 s: redis-server still
	// serves its replicas, so nothing is failed over.
	scenario("PrimaryHostAgentPausedAMinuteNoFailover", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		s := startFo(t, ctx, l, "agentstop", "nordb", others(l.hosts, leader)[0].name, 0)
		h := l.host(s.old.Node)
		apid := h.mainPID(ctx, agentName)
		s.sigcont(h, apid)
		s.fault = time.Now()
		h.MustExec(ctx, "kill", "-STOP", strconv.Itoa(apid))
		var restarted time.Time
		var status string
		for end := s.fault.Add(60 * time.Second); time.Now().Before(end); {
			d, err := leader.tryShow(ctx, s.db)
			if err == nil {
				if p, ok := d.primary(); !ok || p.ID != s.old.ID || d.Epoch != s.before.Epoch {
					t.Errorf("at %s with only the agent of %s stopped, %s changed: %s (was %s)", s.rel(time.Now()), h.name, s.db, d.summary(), s.before.summary())
					break
				}
			}
			if status == "" && time.Since(s.fault) > 5*time.Second {
				out, _, _ := leader.cli(ctx, "db", "show", s.db, "-o", "json")
				var fs struct {
					FailoverStatus string `json:"failover_status"`
				}
				if json.Unmarshal([]byte(out), &fs) == nil && fs.FailoverStatus != "" {
					status = fs.FailoverStatus
					t.Logf("db show %s at %s: failover_status %q", s.db, s.rel(time.Now()), status)
				}
			}
			if restarted.IsZero() {
				if now := h.mainPID(ctx, agentName); now != apid {
					restarted = time.Now()
					t.Logf("the stopped agent on %s was replaced at %s (pid %d, now %d): systemd's watchdog (WatchdogSec=30s) killed it", h.name, s.rel(restarted), apid, now)
				}
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(time.Second):
			}
		}
		resumed := time.Now()
		if restarted.IsZero() {
			h.MustExec(ctx, "kill", "-CONT", strconv.Itoa(apid))
		}
		h.waitAgent(ctx)
		l.waitFormed(ctx, l.hosts)
		final := s.settle(leader, s.before)
		res := s.finish(final, s.start)
		if len(res.lostPlain) > 0 {
			t.Errorf("%d plain writes lost with no failover, e.g. %v", len(res.lostPlain), res.lostPlain[:min(len(res.lostPlain), 5)])
		}
		if res.gap > 2*time.Second {
			t.Errorf("writes stopped for %s while only the agent of the primary's host was stopped", res.gap.Round(time.Millisecond))
		}
		// The agent is restarted (by the watchdog) or resumed while the
		// leader answers at once: its running primary keeps taking writes
		// (fence.go: "Those already running when the agent restarts keep
		// taking writes, unless no leader answers within the lease window").
		_, refused, _ := s.probe.finish()
		if n, p := res.fails["NOREPLICAS"], refused[s.old.ID]["NOREPLICAS"]; n+p > 0 {
			t.Errorf("%d writes of the writer and %d of the probe were refused NOREPLICAS around the agent's restart on %s, though a leader answered it at once: the restarted agent fenced its running primary", n, p, h.name)
		}
		evs := s.requireEvents(leader, foWant{kind: "node-lost", node: h.name}, foWant{kind: "failover-refused"}, foWant{kind: "node-back", node: h.name})
		// One refusal, for one reason, lasting as long as the agent is
		// stopped: an event says so once (refuse: "an event the first
		// time"), not once per look of the detector.
		if n := refusals(evs, s.db, ""); n > 3 {
			t.Errorf("%d failover-refused events for %s during one refusal (the agent of %s stopped): the reason's changing figures make every 100 ms look a new event, flooding the %d-event history", n, s.db, h.name, 1000)
		}
		if ps := promotions(evs, s.db, s.fault); len(ps) > 0 {
			t.Errorf("%s was failed over while only the agent of its primary's host was stopped: %+v", s.db, ps)
		}
		if final.Epoch != s.before.Epoch {
			t.Errorf("the epoch of %s went from %d to %d", s.db, s.before.Epoch, final.Epoch)
		}
		note := "agent resumed by SIGCONT after 60 s"
		if !restarted.IsZero() {
			note = fmt.Sprintf("agent killed by systemd's watchdog and restarted at %s; resumed nothing at %s", s.rel(restarted), s.rel(resumed))
		}
		if fails := res.fails["NOREPLICAS"]; fails > 0 {
			note += fmt.Sprintf("; %d writes refused NOREPLICAS", fails)
		}
		report("SIGSTOP of the primary host's agent, 60 s", s, res, note)
	})

	// 7. Flapping partitions: ten times, the current primary's host is cut
	// for 4 s and healed for 4 s. The cooldown (30 s) allows at most one
	// automatic failover per 30 s: the primary does not bounce.
	scenario("FlappingPrimaryHostFailsOverAtMostOncePerCooldown", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		s := startFo(t, ctx, l, "flap", "nordb", others(l.hosts, leader)[0].name, 0)
		s.fault = time.Now()
		var cuts []string
		var cutAt, healAt []time.Time
		for i := 1; i <= 10; i++ {
			// The newest view any host has: a host healed a moment ago may
			// not have caught up yet.
			var cur replDatabase
			for _, h := range l.hosts {
				if d, err := h.tryShow(ctx, s.db); err == nil && d.Epoch >= cur.Epoch {
					if _, ok := d.primary(); ok {
						cur = d
					}
				}
			}
			p, ok := cur.primary()
			if !ok {
				t.Fatalf("round %d: no host shows a primary of %s", i, s.db)
			}
			h := l.host(p.Node)
			cuts = append(cuts, fmt.Sprintf("%d:%s(epoch %d)", i, h.name, cur.Epoch))
			cutAt = append(cutAt, time.Now())
			h.Disconnect()
			time.Sleep(4 * time.Second)
			healAt = append(healAt, time.Now())
			h.Reconnect()
			time.Sleep(4 * time.Second)
		}
		flapped := time.Now()
		t.Logf("cut the primary's host: %s", strings.Join(cuts, " "))
		l.waitFormed(ctx, l.hosts)
		final := leader.waitReplicated(ctx, s.db, 3)
		waitReplicasLinked(t, ctx, final, s.pw)
		res := s.finish(final, s.start)
		// Each cut as the servers had it: how long until an instance took
		// a write again, by promotion (during the cut) or by the fence
		// lifting (after the heal).
		accepted, _, _ := s.probe.finish()
		var outages []string
		for i, c := range cutAt {
			a, ok := firstAcceptanceNot(accepted, "", c)
			switch {
			case !ok:
				outages = append(outages, fmt.Sprintf("%d: none", i+1))
			case a.at.After(healAt[i]):
				outages = append(outages, fmt.Sprintf("%d: %.1fs (%.1fs after the heal)", i+1, a.at.Sub(c).Seconds(), a.at.Sub(healAt[i]).Seconds()))
			default:
				outages = append(outages, fmt.Sprintf("%d: %.1fs", i+1, a.at.Sub(c).Seconds()))
			}
		}
		t.Logf("flap: from each cut to the next write an instance took: %s", strings.Join(outages, "; "))
		evs := s.requireEvents(leader, foWant{kind: "promoted"}, foWant{kind: "failover-refused", contains: "cooldown"},
			foWant{kind: "fenced"}, foWant{kind: "unfenced"})
		ps := promotions(evs, s.db, s.fault)
		res.promotion = s.promotionTime(evs)
		allowed := 1 + int(flapped.Sub(s.fault)/foCooldown)
		if len(ps) > allowed {
			t.Errorf("%d automatic failovers in %s of flapping; the %s cooldown allows %d", len(ps), flapped.Sub(s.fault).Round(time.Second), foCooldown, allowed)
		}
		var at []string
		for i, e := range ps {
			at = append(at, s.rel(e.At))
			if i > 0 && e.At.Sub(ps[i-1].At) < foCooldown-time.Second {
				t.Errorf("failovers of %s at %s and %s: less than the %s cooldown apart", s.db, s.rel(ps[i-1].At), s.rel(e.At), foCooldown)
			}
		}
		if got := final.Epoch - s.before.Epoch; got != uint64(len(ps)) {
			t.Errorf("the epoch of %s went from %d to %d, but %d promotions were recorded", s.db, s.before.Epoch, final.Epoch, len(ps))
		}
		refused := refusals(evs, s.db, "cooldown")
		if refused > 3*len(cuts) {
			t.Errorf("%d failover-refused events for the cooldown in %d cuts: each cut refused for one reason is one event, not one every 100 ms", refused, len(cuts))
		}
		note := fmt.Sprintf("%d failovers (at %s), epoch %d→%d, %d refused for the cooldown", len(ps), strings.Join(at, ", "), s.before.Epoch, final.Epoch, refused)
		t.Logf("flap: %s", note)
		report("10 × (cut 4 s, heal 4 s)", s, res, note)
	})

	// 8. A lagging replica is not promoted over a fresh one. The kernel
	// has no netem, so the lag comes from a slow link: the replication
	// stream into one replica's host is throttled to 8 KiB/s while the
	// writer sends 1 KiB values; once that replica is 128 KiB behind, the
	// primary is killed (a fixed delay would let it catch up on what was
	// in flight before the leader decides).
	scenario("LaggingReplicaIsNotPromotedOverAFreshOne", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		pin := others(l.hosts, leader)[0]
		s := startFo(t, ctx, l, "lag", "nordb", pin.name, 1024)
		slowHost := others(l.hosts, leader, pin)[0]
		slow, _ := s.before.on(slowHost.name)
		fresh, _ := s.before.on(leader.name)
		slowHost.ThrottleIncoming(8<<10, s.old.addr())
		s.undo = append(s.undo, slowHost.ClearThrottle)
		clients := map[string]*redis.Client{}
		for _, in := range s.before.Instances {
			clients[in.addr()] = directClient(t, in.addr(), s.pw)
		}
		offset := func(addr string) int64 {
			v, err := infoField(ctx, clients[addr], "replication", "master_repl_offset")
			if err != nil {
				t.Fatalf("INFO replication of %s: %v", addr, err)
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
		var lag, freshLag int64
		waitFor(t, timeout(t, 30*time.Second), "the throttled replica on "+slowHost.name+" to fall 128 KiB behind", func() (bool, string) {
			po := offset(s.old.addr())
			lag, freshLag = po-offset(slow.addr()), po-offset(fresh.addr())
			return lag >= 128<<10, fmt.Sprintf("%d bytes behind", lag)
		})
		t.Logf("before the kill: the replica on %s is %d bytes behind the primary, the one on %s %d", slowHost.name, lag, leader.name, freshLag)
		h := l.host(s.old.Node)
		pid := h.mainPID(ctx, s.old.Unit)
		s.fault = time.Now()
		h.MustExec(ctx, "kill", "-9", strconv.Itoa(pid))
		d := s.waitPromoted(leader, 30*time.Second)
		if p, _ := d.primary(); p.ID != fresh.ID {
			t.Errorf("%s promoted %s on %s, %d bytes behind, over %s on %s (%d behind)", s.db, p.ID, p.Node, lag, fresh.ID, fresh.Node, freshLag)
		}
		slowHost.ClearThrottle()
		final := s.settle(leader, d)
		res := s.finish(final, s.start)
		evs := s.requireEvents(leader, foWant{kind: "detected", node: h.name}, foWant{kind: "promoted", node: leader.name})
		res.promotion = s.promotionTime(evs)
		report("kill -9 with a lagging replica", s, res, fmt.Sprintf("lagging replica %d bytes behind, fresh %d; promoted the fresh one", lag, freshLag))
	})

	// 9. Every host restarted at once after a failover: the promotion
	// persists.
	scenario("EveryHostRestartedAfterAFailoverKeepsThePromotion", func(t *testing.T, l *clusterLab) {
		leader := l.leaderOf(ctx, l.hosts[0])
		s := startFo(t, ctx, l, "restart", "aof", others(l.hosts, leader)[0].name, 0)
		h := l.host(s.old.Node)
		pid := h.mainPID(ctx, s.old.Unit)
		s.fault = time.Now()
		h.MustExec(ctx, "kill", "-9", strconv.Itoa(pid))
		d := s.waitPromoted(leader, 30*time.Second)
		final := s.settle(leader, d)
		s.waitWrites(200, "on the new primary")
		evs := s.requireEvents(leader, foWant{kind: "detected", node: h.name}, foWant{kind: "promoted"})
		prom := promotions(evs, s.db, s.fault)
		np, _ := final.primary()

		// Stop writing and make everything durable: the restart is a power
		// cut of the whole cluster.
		acks, _, _ := s.w.finish()
		for _, in := range final.Instances {
			l.host(in.Node).waitAOFDurable(timeout(t, time.Minute), endpoint{Host: in.Host, Port: in.Port, Password: s.pw})
		}
		pc := directClient(t, np.addr(), s.pw)
		lostWaited, lostPlain, err := foMissing(ctx, pc, acks, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A failover the restart might wrongly cause must not be hidden by
		// the cooldown of the one just made.
		if len(prom) > 0 {
			time.Sleep(time.Until(prom[0].At.Add(foCooldown + time.Second)))
		}

		// Every link first, at once (no host can then act on the others'
		// silence), then the power, the primary's host last.
		down := time.Now()
		order := append(others(l.hosts, l.host(np.Node)), l.host(np.Node))
		for _, h := range order {
			h.Disconnect()
		}
		for _, h := range order {
			h.PowerLoss()
		}
		off := time.Now()
		for _, h := range l.hosts {
			h.Boot()
		}
		booted := time.Now()
		for _, h := range l.hosts {
			h.waitAgent(ctx)
		}
		l.waitFormed(ctx, l.hosts)
		t.Logf("the three hosts were off %s after the cut, booted %s later, and formed a cluster again %s after that",
			off.Sub(down).Round(time.Millisecond), booted.Sub(off).Round(time.Millisecond), time.Since(booted).Round(time.Millisecond))
		after := l.hosts[0].waitReplicated(ctx, s.db, 3)
		t.Logf("all three hosts lost power together; %s healthy again %s later: %s", s.db, time.Since(down).Round(time.Millisecond), after.summary())
		ap, _ := after.primary()
		if ap.ID != np.ID || after.Epoch != final.Epoch {
			t.Errorf("after every host restarted, %s; want the promoted %s on %s at epoch %d", after.summary(), np.ID, np.Node, final.Epoch)
		}
		if in, _ := after.on(s.old.Node); in.Role != "replica" {
			t.Errorf("the old primary's instance on %s came back as %s, want a replica", s.old.Node, in.Role)
		}
		waitReplicasLinked(t, ctx, after, s.pw)
		staysFor(t, ctx, 5*time.Second, "the promotion", func() (bool, string) {
			d, err := l.hosts[1].tryShow(ctx, s.db)
			if err != nil {
				return false, err.Error()
			}
			p, _ := d.primary()
			return p.ID == np.ID && d.Epoch == final.Epoch, d.summary()
		})
		waitFor(t, timeout(t, 30*time.Second), "a write acknowledged by WAIT 1 through discovery after the restart", func() (bool, string) {
			var set *redis.StatusCmd
			var wait *redis.Cmd
			_, _ = s.fc.Pipelined(ctx, func(p redis.Pipeliner) error {
				set = p.Set(ctx, "restart:after", "1", 0)
				wait = p.Do(ctx, "WAIT", 1, 200)
				return nil
			})
			n, werr := wait.Int64()
			return set.Err() == nil && n >= 1, fmt.Sprintf("SET %v, WAIT %d %v", set.Err(), n, werr)
		})
		pc = directClient(t, np.addr(), s.pw)
		lw, lp, err := foMissing(ctx, pc, acks, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(lw) != len(lostWaited) || len(lp) != len(lostPlain) {
			t.Errorf("the restart lost writes: before it %d plain and %d WAIT-acknowledged were missing, after it %d and %d",
				len(lostPlain), len(lostWaited), len(lp), len(lw))
		}
		res := s.finish(after, s.start)
		evs = s.requireEvents(l.hosts[0], foWant{kind: "promoted"})
		if ps := promotions(evs, s.db, down); len(ps) > 0 {
			t.Errorf("%s was failed over again after the restart: %+v", s.db, ps)
		}
		res.promotion = s.promotionTime(evs)
		report("every host restarted after a failover", s, res, fmt.Sprintf("primary %s and epoch %d kept across the power cut", np.Node, final.Epoch))
	})

	var b strings.Builder
	fmt.Fprintf(&b, "%-44s %10s %9s %9s %8s %8s %6s %6s  %s\n", "scenario", "promotion", "gap", "down", "acked", "waited", "lost", "lostW", "")
	for _, r := range rows {
		promotion := "none"
		if r.promotion > 0 {
			promotion = r.promotion.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "%-44s %10s %9s %9s %8d %8d %6d %6d  %s\n", r.scenario, promotion, r.gap.Round(time.Millisecond),
			r.down.Round(time.Millisecond), r.acked, r.waited, r.lostPlain, r.lostWaited, r.note)
	}
	t.Logf("summary (promotion: fault to the promoted event; gap: longest time between two writes the go-redis client had acknowledged; "+
		"down: longest time no instance took a probe write; lost: plain writes lost; lostW: WAIT-acknowledged writes lost):\n%s", b.String())
}
