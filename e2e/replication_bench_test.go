package e2e

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The planned switchover's write pause, as a client sees it and as the
// server reports it (docs/replication.md). It prints figures and asserts
// only that no acknowledged write is lost. Run it with
//
//	go test ./e2e/ -run '^$' -bench Switchover -benchtime 1x -timeout 30m

// switchoverRounds is how many planned switchovers the benchmark makes.
const switchoverRounds = 10

// writeEvery is the benchmark writer's pace: one unique key every 5 ms.
const writeEvery = 5 * time.Millisecond

// maxRefusals bounds the refused switchovers the benchmark runs again.
const maxRefusals = 3

// switchRound is one switchover as measured.
type switchRound struct {
	from, to        string
	serverMs        float64   // write_pause_ms of db failover -o json
	clientMs        float64   // longest gap between acknowledged writes around it
	asked, returned time.Time // when the CLI was run, and when it returned
	failedBefore    int       // the writer's failed writes before the round
	failedAfter     int       // and once the writer wrote on the new primary
	refusal         string    // the CLI's message when it was refused
}

// BenchmarkSwitchover boots a three-host lab, forms the cluster through the
// CLI, creates an HA database with two replicas and writes a unique key
// every 5 ms through go-redis's Sentinel-aware client (from the test
// process, through the bridge's gateway), recording each acknowledged write
// and when its reply came. It makes 10 planned switchovers rotating
// through the nodes (lab1 → lab2 → lab3 → lab1 ...), waiting between
// them until the writer writes on the new primary and every replica is
// linked again and streaming. For each, the write pause the client saw is
// the longest gap between consecutive acknowledged writes from when the CLI
// was run to the first write acknowledged after it returned; the server's
// is the write_pause_ms the CLI reports. A refused switchover is shown with
// the gap it caused and run again (at most 3 times in all). It ends with a
// table, and fails if any acknowledged write is missing on the final
// primary.
func BenchmarkSwitchover(b *testing.B) {
	l, _ := bootGatewayLab(b, replBridge, replPrefix, 3, 0)
	ctx := timeout(b, 25*time.Minute)
	l.form(ctx, 3)
	leader := l.leaderOf(ctx, l.hosts[0])
	leader.mustCLI(ctx, "db", "create", "sessions", "--memory", "64mb", "--replicas", "2")
	d := leader.waitReplicated(ctx, "sessions", 3)
	password := leader.url(ctx, "sessions").Password
	waitReplicasLinked(b, ctx, d, password)

	fc := failoverClient(b, l.hosts, "sessions", password)
	waitFor(b, timeout(b, 30*time.Second), "go-redis's failover client to reach the primary through discovery", func() (bool, string) {
		err := fc.Ping(ctx).Err()
		return err == nil, fmt.Sprint(err)
	})
	w := startWriter(ctx, fc, "w:", writeEvery, 1_000_000, 20*time.Minute)
	defer w.finish()
	waitFor(b, timeout(b, 30*time.Second), "the writer to have 200 writes acknowledged", func() (bool, string) {
		return w.count() >= 200, fmt.Sprintf("%d acknowledged", w.count())
	})

	b.ResetTimer()
	var rounds, refused []switchRound
	for len(rounds) < switchoverRounds {
		p, _ := d.primary()
		to := l.hosts[(slices.IndexFunc(l.hosts, func(h clusterHost) bool { return h.name == p.Node })+1)%len(l.hosts)].name
		// Asked on a follower, as an operator on any host would: the CLI
		// forwards it to the leader.
		asker := others(l.hosts, l.leaderOf(ctx, l.hosts[len(rounds)%len(l.hosts)]))[0]
		_, failedBefore, _ := w.snapshot()
		r := switchRound{from: p.Node, to: to, asked: time.Now(), failedBefore: failedBefore}
		res, err := asker.tryFailover(ctx, "sessions", to)
		r.returned = time.Now()
		if err != nil {
			// A refusal changes nothing (docs/replication.md) but may
			// have held writes up: it is reported, and the round is run
			// again, a bounded number of times.
			r.refusal = err.Error()
			_, r.failedAfter, _ = w.snapshot()
			refused = append(refused, r)
			if len(refused) > maxRefusals {
				b.Fatalf("%d switchovers refused, the last: %s", len(refused), r.refusal)
			}
			b.Logf("round %d refused, run again: %s", len(rounds)+1, r.refusal)
		} else {
			checkFailover(b, res, "sessions", to, d)
			r.serverMs = res.WritePauseMs
			waitFor(b, timeout(b, 30*time.Second), "the writer to write on the new primary on "+to, func() (bool, string) {
				if !w.running() {
					b.Fatal("the writer stopped")
				}
				return w.since(r.returned) >= 100, fmt.Sprintf("%d acknowledged since the switchover", w.since(r.returned))
			})
			_, r.failedAfter, _ = w.snapshot()
			rounds = append(rounds, r)
		}
		// The next switchover needs every replica linked and streaming,
		// the old primary included.
		d = asker.waitReplicated(ctx, "sessions", 3)
		waitReplicasLinked(b, ctx, d, password)
	}
	b.StopTimer()

	acks, fails, lastErr := w.finish()
	for i := range rounds {
		rounds[i].clientMs = longestGap(acks, rounds[i].asked, rounds[i].returned)
	}
	for i := range refused {
		refused[i].clientMs = longestGap(acks, refused[i].asked, refused[i].returned)
	}
	final, _ := d.primary()
	lost, err := lostWrites(ctx, directClient(b, final.addr(), password), acks)
	if err != nil {
		b.Fatal(err)
	}

	var client, server []float64
	for _, r := range rounds {
		client = append(client, r.clientMs)
		server = append(server, r.serverMs)
	}
	b.ReportMetric(median(client), "client-pause-median-ms")
	b.ReportMetric(slices.Max(client), "client-pause-max-ms")
	b.ReportMetric(median(server), "server-pause-median-ms")
	b.ReportMetric(slices.Max(server), "server-pause-max-ms")
	b.ReportMetric(float64(len(lost)), "lost-writes")
	b.ReportMetric(float64(len(acks)), "acked-writes")
	b.ReportMetric(float64(len(refused)), "refused-switchovers")
	// Printed rather than logged, as BenchmarkCluster's table.
	fmt.Print(switchoverTable(rounds, refused, len(acks), fails, lastErr, len(lost)))
	if len(lost) > 0 {
		b.Fatalf("%d of %d acknowledged writes are not on the final primary %s, e.g. %v", len(lost), len(acks), final.addr(), lost[:min(len(lost), 10)])
	}
}

// switchoverTable prints the rounds and the summary.
func switchoverTable(rounds, refused []switchRound, acked, fails int, lastErr error, lost int) string {
	var t strings.Builder
	fmt.Fprintf(&t, "\nplanned switchover on the three-host systemd lab (3 nspawn hosts sharing this machine's %d CPUs),\n", runtime.NumCPU())
	fmt.Fprintf(&t, "HA database with 2 replicas, go-redis failover client writing a unique key every %s\n", writeEvery)
	fmt.Fprintf(&t, "  %-6s %-14s %-22s %-22s %-14s %s\n", "round", "from → to", "server write pause", "client write pause", "CLI took", "failed writes")
	for i, r := range rounds {
		fmt.Fprintf(&t, "  %-6d %-14s %-22s %-22s %-14s %d\n", i+1, r.from+" → "+r.to,
			fmt.Sprintf("%.1f ms", r.serverMs), fmt.Sprintf("%.1f ms", r.clientMs),
			r.returned.Sub(r.asked).Round(time.Millisecond).String(), r.failedAfter-r.failedBefore)
	}
	for _, r := range refused {
		fmt.Fprintf(&t, "  %-6s %-14s %-22s %-22s %-14s %d\n", "refused", r.from+" → "+r.to, "-", fmt.Sprintf("%.1f ms", r.clientMs),
			r.returned.Sub(r.asked).Round(time.Millisecond).String(), r.failedAfter-r.failedBefore)
		fmt.Fprintf(&t, "         %s\n", r.refusal)
	}
	var client, server []float64
	for _, r := range rounds {
		client = append(client, r.clientMs)
		server = append(server, r.serverMs)
	}
	row := func(what, value string) { fmt.Fprintf(&t, "  %-62s %s\n", what, value) }
	fmt.Fprintf(&t, "summary of %d switchovers\n", len(rounds))
	if len(rounds) > 0 {
		row("server write pause (db failover -o json), median / max", fmt.Sprintf("%.1f / %.1f ms", median(server), slices.Max(server)))
		row("client write pause (longest gap between acks), median / max", fmt.Sprintf("%.1f / %.1f ms", median(client), slices.Max(client)))
	}
	row("switchovers refused (and run again)", fmt.Sprint(len(refused)))
	row("writes acknowledged", fmt.Sprint(acked))
	last := "none"
	if lastErr != nil {
		last = lastErr.Error()
	}
	row("writes that failed (never acknowledged)", fmt.Sprintf("%d (last: %s)", fails, last))
	row("acknowledged writes lost on the final primary", fmt.Sprintf("%d (must be 0)", lost))
	return t.String()
}
