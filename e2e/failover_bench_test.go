package e2e

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/lab"
)

// Automatic failover as a client sees it (docs/failover.md, issue 5 point
// 6), and Redis Sentinel on the same hosts for comparison. It prints
// figures and asserts no limit: plain-write losses are reported, not
// failed on (replication is asynchronous). Run it with
//
//	go test ./e2e/ -run '^$' -bench Failover -benchtime 1x -timeout 60m
//
// FAILOVER_BENCH_ROUNDS=N runs N rounds of each fault instead of
// failoverBenchRounds (the table says how many ran). Targets: host
// power-off ≤ 1.5 s median and ≤ 3 s max; redis-server crash ≤ 1 s median.

// failoverBenchRounds is how many times each fault is injected.
const failoverBenchRounds = 10

// The benchmark's lab network (unique on the machine).
const (
	fbBridge = "racs0"
	fbPrefix = "10.213.5"
)

// fbCooldown is the lab's failover.cooldown. The default (30 s) only
// spaces the rounds out: a fault within it of the last failover would be
// refused. Detection and lease stay at their defaults, written out.
const fbCooldown = 5 * time.Second

// The Redis Sentinel setup beside the appliance: one redis-server and one
// redis-sentinel per host, on ports the appliance does not use (its
// instances take 6400-6999, its discovery 26379).
const (
	fbRedisPort    = 7200
	fbSentinelPort = 26400
	fbMaster       = "bench"
	fbSentinelDir  = "/root/fbsentinel"
	// fbFailoverTimeout is Sentinel's failover-timeout (ms).
	fbFailoverTimeout = 10000
)

// fbDownAfter are the Sentinel down-after-milliseconds measured, in order.
var fbDownAfter = []int{1000, 5000}

// fbRecovered is how many writes the client must have acknowledged after
// a fault before the round counts as over for the client.
const fbRecovered = 100

// fbRound is one fault as measured.
type fbRound struct {
	fault    time.Time
	from, to string        // the primary's host before and after
	named    time.Duration // fault → a survivor names the new primary (polled)
	// The longest gap between acknowledged writes around it, for the
	// client with go-redis's dial settings and the one tuned for a dead
	// host (fbWriters), and the longest time no instance took a probe
	// write (the outage as the servers had it).
	gapMs, fastGapMs, downMs float64
	lost, fastLost           int    // plain writes acknowledged before it and lost
	epochs                   uint64 // appliance: epochs the database moved on by
	note                     string
}

// fbSeries is one kind of fault, measured over rounds.
type fbSeries struct {
	name, target string
	medianTarget float64 // ms; 0: none
	maxTarget    float64
	metric       string
	rounds       []fbRound
	planned      int
	finalPrimary string
	// What the writers saw: through go-redis's defaults, and tuned.
	acked, failed         int
	lastErr               error
	lostTotal             int
	fastAcked, fastFailed int
	fastLastErr           error
	fastLostTotal         int
	lostCheck             string // why the loss count is missing, if it is
}

// fbClient is go-redis's Sentinel-aware client, the same for the
// appliance's discovery and for Redis Sentinel. Plain, it has the options
// of failoverClient, and go-redis's own dial retries (5 attempts of
// DialTimeout each): when the discovery port it last used is on a host
// that is gone, finding another costs it seconds. fast is tuned for that
// (docs/replication.md, "Client settings"), because of how go-redis
// v9 looks the primary up: inside each new connection's dial, within one
// DialTimeout, by asking the discovery port it used last. It drops that
// port only after an error that is not its own deadline, so every step of
// the lookup must fail before DialTimeout does:
//   - TCP connects give up after fbConnectTimeout (the Dialer), well
//     inside DialTimeout, so a dead discovery port fails as an error;
//   - reads and writes after fbIOTimeout, also inside DialTimeout, so an
//     idle connection to a dead port does too;
//   - no command retries (MaxRetries -1): a retry's backoff runs into the
//     same deadline;
//   - idle connections are kept (ConnMaxIdleTime -1), so the lookup
//     usually finds one and fails on the read;
//   - a failed dial is tried three times, 50 ms apart, each time asking
//     for the primary again, so a SET during the failover waits for the
//     new primary instead of failing at once; and go-redis stops dialing
//     for a second after PoolSize failed dials (counted over the client's
//     life), so PoolSize 100 rather than the default 20, which a crashed
//     primary's refused connections reached within one or two failovers.
//
// With 250 ms for everything, a dead discovery port was dropped only once
// go-redis had stopped dialing after 20 failures in a row: 6.7 s without
// a write.
func fbClient(t testing.TB, sentinels []string, master, password string, fast bool) *redis.Client {
	opt := &redis.FailoverOptions{
		MasterName:       master,
		SentinelAddrs:    sentinels,
		SentinelPassword: password,
		Password:         password,
		DialTimeout:      time.Second,
		ReadTimeout:      time.Second,
		WriteTimeout:     time.Second,
	}
	if fast {
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = fbFastTimeout, fbIOTimeout, fbIOTimeout
		opt.DialerRetries, opt.DialerRetryTimeout, opt.PoolSize = 3, 50*time.Millisecond, 100
		opt.MaxRetries, opt.ConnMaxIdleTime = -1, -1
		opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: fbConnectTimeout, KeepAlive: 30 * time.Second}
			return d.DialContext(ctx, network, addr)
		}
	}
	c := redis.NewFailoverClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// The tuned client's timeouts: finding the primary and connecting to it
// (DialTimeout), one TCP connect, and a read or write.
const (
	fbFastTimeout    = 400 * time.Millisecond
	fbConnectTimeout = 100 * time.Millisecond
	fbIOTimeout      = 200 * time.Millisecond
)

// fbLoad is what runs during a series: a writer through each client and
// the probe.
type fbLoad struct {
	def, fast *ackWriter
	probe     *fbProbe
}

// startFbLoad starts a writer through each client (keys prefix:d: and
// prefix:f:) and waits until both write.
func startFbLoad(ctx context.Context, b *testing.B, def, fast *redis.Client, probe *fbProbe, prefix string) *fbLoad {
	b.Helper()
	ld := &fbLoad{
		def:   startWriter(ctx, def, prefix+":d:", writeEvery, 10_000_000, 50*time.Minute),
		fast:  startWriter(ctx, fast, prefix+":f:", writeEvery, 10_000_000, 50*time.Minute),
		probe: probe,
	}
	now := time.Now()
	fbWaitWrites(b, ld, now, 200, "both writers to get going")
	return ld
}

// fbProbe sends, every fbProbeEvery, a SET straight to every instance (no
// discovery, 200 ms timeouts, one loop per instance so that a dead one
// does not hold the others up), and records when one was taken: the
// longest time none was is the outage as the servers had it, whatever a
// client library makes of it.
type fbProbe struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	taken []time.Time
}

// fbProbeEvery is the probe's pace per instance.
const fbProbeEvery = 10 * time.Millisecond

func startFbProbe(ctx context.Context, targets []string, password string, maxRun time.Duration) *fbProbe {
	p := &fbProbe{stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	for _, addr := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{
				Addr: addr, Password: password,
				DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
				PoolSize: 1, MaxRetries: -1, DialerRetries: 1,
			})
			defer c.Close()
			paced(ctx, p.stop, fbProbeEvery, math.MaxInt, maxRun, func(n int) {
				pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				err := c.Set(pctx, "fbprobe:"+addr, n, 0).Err()
				cancel()
				if err == nil {
					p.mu.Lock()
					p.taken = append(p.taken, time.Now())
					p.mu.Unlock()
				}
			})
		}()
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return p
}

// outage is the longest time, in ms, no instance took a probe write, from
// the last one taken before from to the first one after to.
func (p *fbProbe) outage(from, to time.Time) float64 {
	p.mu.Lock()
	at := slices.Clone(p.taken)
	p.mu.Unlock()
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	acks := make([]ack, len(at))
	for i, t := range at {
		acks[i] = ack{at: t}
	}
	return longestGap(acks, from, to)
}

func (p *fbProbe) finish() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// fbAddrs are the hosts' addresses with port.
func fbAddrs(hosts []clusterHost, port int) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, net.JoinHostPort(h.Addr(), strconv.Itoa(port)))
	}
	return out
}

// fbRoundCount is failoverBenchRounds, or FAILOVER_BENCH_ROUNDS when set.
func fbRoundCount(b *testing.B) int {
	if s := os.Getenv("FAILOVER_BENCH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("FAILOVER_BENCH_ROUNDS=%q: want a number of rounds, at least 1", s)
		}
		return n
	}
	return failoverBenchRounds
}

// bootFbLab is bootGatewayLab with fbCooldown in every node's
// configuration; every host keeps its disk across power loss.
func bootFbLab(b *testing.B) *clusterLab {
	b.Helper()
	br := lab.NewBridge(b, fbBridge, fbPrefix)
	br.Gateway()
	l := &clusterLab{}
	for i := 1; i <= 3; i++ {
		network := br.Attach(i)
		name := fmt.Sprintf("lab%d", i)
		config := clusterConfig(name, network.Address) + fmt.Sprintf(
			"failover:\n  detection: %s\n  lease: %s\n  max_lag: 1mb\n  cooldown: %s\n", foDetection, foLease, fbCooldown)
		n := bootAgent(b, lab.Options{Name: fbBridge + "-" + name, Persistent: true, Network: network}, config)
		l.hosts = append(l.hosts, clusterHost{node: n, name: name})
	}
	return l
}

// BenchmarkFailover boots three hosts, forms the cluster through the CLI,
// creates a nordb database with two replicas and writes a unique key
// every 5 ms through go-redis's Sentinel-aware client (the hosts' discovery
// ports, from the test process). It measures, for each fault, the longest
// gap between two acknowledged writes:
//
//   - power-off of the primary's host (link cut, then PID 1 killed), the
//     host booted again and the database fully linked before the next
//     round;
//   - kill -9 of the primary's redis-server, waiting until it is back as a
//     linked replica.
//
// Then, on the same hosts, the same client against Redis Sentinel (a
// redis-server and a redis-sentinel per host, quorum 2), with
// down-after-milliseconds 1000 and then 5000: power-off of the Sentinel
// primary's host, which takes that host's sentinel (and its appliance
// agent) with it. It prints a table; plain writes lost are counted per
// round (a write is blamed on the first fault after it was acknowledged).
func BenchmarkFailover(b *testing.B) {
	rounds := fbRoundCount(b)
	l := bootFbLab(b)
	ctx := timeout(b, 55*time.Minute)
	var series []*fbSeries
	// Printed even when a step fails: the rounds measured so far.
	defer func() { fmt.Print(fbTable(series, rounds)) }()

	l.form(ctx, 3)
	leader := l.leaderOf(ctx, l.hosts[0])
	const db = "fbench"
	leader.mustCLI(ctx, "db", "create", db, "--memory", "64mb", "--flavor", "nordb", "--replicas", "2")
	d := leader.waitReplicated(ctx, db, 3)
	pw := leader.url(ctx, db).Password
	waitReplicasLinked(b, ctx, d, pw)
	disc := fbAddrs(l.hosts, sentinelPort)
	fc, ff := fbClient(b, disc, db, pw, false), fbClient(b, disc, db, pw, true)
	for _, c := range []*redis.Client{fc, ff} {
		waitFor(b, timeout(b, 30*time.Second), "go-redis's failover client to reach the primary through discovery", func() (bool, string) {
			err := c.Ping(ctx).Err()
			return err == nil, fmt.Sprint(err)
		})
	}
	var targets []string
	for _, in := range d.Instances {
		targets = append(targets, in.addr())
	}
	probe := startFbProbe(ctx, targets, pw, 50*time.Minute)
	defer probe.finish()

	b.ResetTimer()
	power := &fbSeries{name: "appliance: host power-off", target: "≤ 1500 ms median, ≤ 3000 ms max",
		medianTarget: 1500, maxTarget: 3000, metric: "appliance-poweroff", planned: rounds}
	// Whichever host the primary is on: the Raft leader's or not, as it
	// comes. This series makes it the leader's every time, the slow case
	// (an election first), by a planned switchover before each round.
	leaderPower := &fbSeries{name: "appliance: power-off of the Raft leader's host (the primary moved there)", target: "≤ 1500 ms median, ≤ 3000 ms max",
		medianTarget: 1500, maxTarget: 3000, metric: "appliance-poweroff-leader", planned: rounds}
	kill := &fbSeries{name: "appliance: kill -9 redis-server", target: "≤ 1000 ms median",
		medianTarget: 1000, metric: "appliance-kill9", planned: rounds}
	series = append(series, power, leaderPower, kill)
	var lastFailover time.Time
	for _, s := range []*fbSeries{power, leaderPower, kill} {
		ld := startFbLoad(ctx, b, fc, ff, probe, s.metric)
		for i := 1; i <= rounds; i++ {
			// A fault within the cooldown of the last failover would be
			// refused, by design.
			time.Sleep(time.Until(lastFailover.Add(fbCooldown + time.Second)))
			fault := fbPowerOff
			switch s {
			case kill:
				fault = fbKill
			case leaderPower:
				d = fbPrimaryOnLeader(b, ctx, l, db, pw, d)
			}
			var r fbRound
			r, d = fbApplianceRound(b, ctx, l, db, pw, d, ld, fault)
			lastFailover = r.fault.Add(r.named)
			s.rounds = append(s.rounds, r)
			fbPrintRound(s, i, r)
		}
		p, _ := d.primary()
		fbFinish(b, ctx, s, ld, p.addr(), pw)
	}
	probe.finish()

	// Redis Sentinel on the same hosts.
	snt := newFbSentinels(b, ctx, l, fbDownAfter[0])
	sdisc := fbAddrs(l.hosts, fbSentinelPort)
	sc, sf := fbClient(b, sdisc, fbMaster, snt.pw, false), fbClient(b, sdisc, fbMaster, snt.pw, true)
	for _, c := range []*redis.Client{sc, sf} {
		waitFor(b, timeout(b, 30*time.Second), "go-redis's failover client to reach the primary through Redis Sentinel", func() (bool, string) {
			err := c.Ping(ctx).Err()
			return err == nil, fmt.Sprint(err)
		})
	}
	sprobe := startFbProbe(ctx, fbAddrs(l.hosts, fbRedisPort), snt.pw, 50*time.Minute)
	defer sprobe.finish()
	for _, down := range fbDownAfter {
		snt.setDownAfter(ctx, down)
		s := fbSentinel(down, rounds)
		series = append(series, s)
		ld := startFbLoad(ctx, b, sc, sf, sprobe, s.metric)
		for i := 1; i <= rounds; i++ {
			r := snt.powerOffRound(ctx, ld)
			s.rounds = append(s.rounds, r)
			fbPrintRound(s, i, r)
		}
		fbFinish(b, ctx, s, ld, snt.master, snt.pw)
	}
	b.StopTimer()

	for _, s := range series {
		if len(s.rounds) == 0 {
			continue
		}
		for _, m := range []struct {
			name string
			v    []float64
		}{{"gap", s.gaps(func(r fbRound) float64 { return r.gapMs })},
			{"gap-fast", s.gaps(func(r fbRound) float64 { return r.fastGapMs })},
			{"down", s.gaps(func(r fbRound) float64 { return r.downMs })}} {
			b.ReportMetric(median(m.v), s.metric+"-"+m.name+"-median-ms")
			b.ReportMetric(slices.Max(m.v), s.metric+"-"+m.name+"-max-ms")
		}
		b.ReportMetric(float64(s.lostTotal+s.fastLostTotal), s.metric+"-lost-writes")
	}
}

// fbPrintRound prints a round as soon as it is measured: a run cut short
// still shows what it measured.
func fbPrintRound(s *fbSeries, i int, r fbRound) {
	fmt.Printf("%s, round %d: %s → %s, new primary named after %s, outage (probe) %.0f ms, write gap %.0f ms (tuned client) / %.0f ms (go-redis defaults) %s\n",
		s.name, i, r.from, r.to, r.named.Round(time.Millisecond), r.downMs, r.fastGapMs, r.gapMs, r.note)
}

// fbSentinel is the series of Sentinel power-offs with down-after down.
func fbSentinel(down, rounds int) *fbSeries {
	return &fbSeries{name: fmt.Sprintf("Redis Sentinel, down-after %d ms: host power-off", down),
		target: "(comparison)", metric: fmt.Sprintf("sentinel%d-poweroff", down), planned: rounds}
}

// gaps is one figure of every round.
func (s *fbSeries) gaps(f func(fbRound) float64) []float64 {
	var v []float64
	for _, r := range s.rounds {
		v = append(v, f(r))
	}
	return v
}

// fbWaitWrites waits until both writers of ld have n writes
// acknowledged after since.
func fbWaitWrites(b *testing.B, ld *fbLoad, since time.Time, n int, what string) {
	b.Helper()
	// Two minutes: go-redis can take long to give up on a discovery port
	// on a host that is gone, whatever the servers do.
	waitFor(b, timeout(b, 2*time.Minute), fmt.Sprintf("%s (%d writes acknowledged by each writer)", what, n), func() (bool, string) {
		var why []string
		ok := true
		for _, w := range []*ackWriter{ld.def, ld.fast} {
			if !w.running() {
				b.Fatal("a writer stopped")
			}
			acked, fails, last := w.snapshot()
			got := w.since(since)
			ok = ok && got >= n
			why = append(why, fmt.Sprintf("%d since, %d in all, %d failed (last: %v)", got, acked, fails, last))
		}
		return ok, strings.Join(why, "; ")
	})
}

// fbMeasure fills in r's gaps and outage from the fault until now.
func fbMeasure(r *fbRound, ld *fbLoad) {
	now := time.Now()
	r.gapMs = longestGap(fbAcks(ld.def), r.fault, now)
	r.fastGapMs = longestGap(fbAcks(ld.fast), r.fault, now)
	r.downMs = ld.probe.outage(r.fault, now)
}

// fbApplianceRound injects one fault on the database's primary (power-off
// of its host, or kill -9 of its redis-server), waits until the client
// writes again and the database is whole again (the old primary a linked
// replica), and returns the round and the database then.
func fbApplianceRound(b *testing.B, ctx context.Context, l *clusterLab, db, pw string, d replDatabase, ld *fbLoad, fault fbFault) (fbRound, replDatabase) {
	b.Helper()
	powerOff := fault == fbPowerOff
	old, _ := d.primary()
	h := l.host(old.Node)
	asker := others(l.hosts, h)[0]
	var pid int
	if !powerOff {
		pid = h.mainPID(ctx, old.Unit)
	}
	// The Raft leader's own host failing takes an election before the
	// detection can start (docs/failover.md: a new leader counts from the
	// moment it took over).
	leaderHost := l.leaderOf(ctx, asker).name == old.Node
	r := fbRound{from: old.Node, fault: time.Now()}
	if leaderHost {
		r.note = "the Raft leader's host"
	}
	if powerOff {
		// Link first, then power: no FIN or RST leaves the host.
		h.Disconnect()
		h.PowerLoss()
	} else {
		h.MustExec(ctx, "kill", "-9", strconv.Itoa(pid))
	}
	waitFor(b, timeout(b, 2*time.Minute), fmt.Sprintf("%s to promote a replica in place of %s", db, old.ID), func() (bool, string) {
		nd, err := asker.tryShow(ctx, db)
		if err != nil {
			return false, err.Error()
		}
		p, ok := nd.primary()
		if ok && p.ID != old.ID && nd.Epoch > d.Epoch {
			r.named, r.to = time.Since(r.fault), p.Node
			return true, ""
		}
		return false, nd.summary()
	})
	fbWaitWrites(b, ld, r.fault, fbRecovered, "the clients to write again")
	fbMeasure(&r, ld)

	if powerOff {
		h.Boot()
		h.waitAgent(ctx)
		l.waitFormed(ctx, l.hosts)
	}
	nd := asker.waitReplicated(ctx, db, 3)
	waitReplicasLinked(b, ctx, nd, pw)
	p, _ := nd.primary()
	r.epochs = nd.Epoch - d.Epoch
	if p.Node != r.to || r.epochs != 1 {
		r.note += fmt.Sprintf("; settled with the primary on %s, %d epochs on", p.Node, r.epochs)
	}
	if in, _ := nd.on(old.Node); in.Role != "replica" {
		r.note += fmt.Sprintf("; the old primary's instance is %s", in.Role)
	}
	if !powerOff {
		if now := h.mainPID(ctx, old.Unit); now == pid {
			r.note += "; redis-server was not restarted"
		}
	}
	return r, nd
}

// fbFault is what fbApplianceRound does to the primary.
type fbFault int

const (
	fbPowerOff fbFault = iota // its host loses power (link cut first)
	fbKill                    // kill -9 of its redis-server
)

// fbPrimaryOnLeader moves db's primary to the Raft leader's host by a
// planned switchover, unless it is there, and returns the database once
// its replicas are linked again.
func fbPrimaryOnLeader(b *testing.B, ctx context.Context, l *clusterLab, db, pw string, d replDatabase) replDatabase {
	b.Helper()
	leader := l.leaderOf(ctx, l.hosts[0])
	if p, _ := d.primary(); p.Node == leader.name {
		return d
	}
	leader.mustCLI(ctx, "db", "failover", db, "--to", leader.name)
	waitFor(b, timeout(b, time.Minute), fmt.Sprintf("%s's primary on %s", db, leader.name), func() (bool, string) {
		nd, err := leader.tryShow(ctx, db)
		if err != nil {
			return false, err.Error()
		}
		p, _ := nd.primary()
		return p.Node == leader.name, nd.summary()
	})
	nd := leader.waitReplicated(ctx, db, 3)
	waitReplicasLinked(b, ctx, nd, pw)
	return nd
}

// fbAcks is what w acknowledged so far.
func fbAcks(w *ackWriter) []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

// fbFinish stops the writers, reads every acknowledged key on the final
// primary and blames each one lost on the first fault after it was
// acknowledged.
func fbFinish(b *testing.B, ctx context.Context, s *fbSeries, ld *fbLoad, primary, pw string) {
	b.Helper()
	s.finalPrimary = primary
	c := directClient(b, primary, pw)
	for _, fast := range []bool{false, true} {
		w := ld.def
		if fast {
			w = ld.fast
		}
		acks, fails, lastErr := w.finish()
		lost, err := lostWrites(ctx, c, acks)
		if fast {
			s.fastAcked, s.fastFailed, s.fastLastErr, s.fastLostTotal = len(acks), fails, lastErr, len(lost)
		} else {
			s.acked, s.failed, s.lastErr, s.lostTotal = len(acks), fails, lastErr, len(lost)
		}
		if err != nil {
			s.lostCheck = err.Error()
			continue
		}
		at := map[string]time.Time{}
		for _, a := range acks {
			at[a.key] = a.at
		}
		for _, k := range lost {
			for i := range s.rounds {
				if !at[k].After(s.rounds[i].fault) {
					if fast {
						s.rounds[i].fastLost++
					} else {
						s.rounds[i].lost++
					}
					break
				}
			}
		}
	}
}

// fbSentinels is the Redis Sentinel setup on the lab's hosts.
type fbSentinels struct {
	b       *testing.B
	l       *clusterLab
	pw      string
	down    int
	myid    map[string]string // per host: a sentinel keeps its ID across reboots
	clients map[string]*redis.SentinelClient
	master  string // the primary's address, as the sentinels last agreed
}

// newFbSentinels starts a redis-server on every host (the first the
// primary, the others its replicas) and a sentinel on every host watching
// it, and waits until every sentinel knows both replicas and both other
// sentinels.
func newFbSentinels(b *testing.B, ctx context.Context, l *clusterLab, down int) *fbSentinels {
	b.Helper()
	s := &fbSentinels{b: b, l: l, pw: randomHex(20), down: down, myid: map[string]string{}, clients: map[string]*redis.SentinelClient{}}
	s.master = net.JoinHostPort(l.hosts[0].Addr(), strconv.Itoa(fbRedisPort))
	for _, h := range l.hosts {
		s.myid[h.name] = randomHex(20)
		c := redis.NewSentinelClient(&redis.Options{
			Addr: net.JoinHostPort(h.Addr(), strconv.Itoa(fbSentinelPort)), Password: s.pw,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1,
		})
		b.Cleanup(func() { _ = c.Close() })
		s.clients[h.name] = c
	}
	for _, h := range l.hosts {
		s.startRedis(ctx, h)
	}
	for _, h := range l.hosts {
		s.startSentinel(ctx, h)
	}
	s.waitReady(ctx)
	return s
}

// startRedis writes the host's redis.conf (a replica of the current
// primary unless it is the primary) and starts it as a transient unit.
func (s *fbSentinels) startRedis(ctx context.Context, h clusterHost) {
	s.b.Helper()
	self := net.JoinHostPort(h.Addr(), strconv.Itoa(fbRedisPort))
	conf := fmt.Sprintf("bind %s\nport %d\nprotected-mode no\nrequirepass %s\nmasterauth %s\ndir %s\nsave \"\"\nappendonly no\n",
		h.Addr(), fbRedisPort, s.pw, s.pw, fbSentinelDir)
	if self != s.master {
		mh, mp, _ := net.SplitHostPort(s.master)
		conf += fmt.Sprintf("replicaof %s %s\n", mh, mp)
	}
	h.writeFile(ctx, fbSentinelDir+"/redis.conf", "0600", conf)
	h.MustExec(ctx, "systemd-run", "--unit=fb-redis", "--collect", "redis-server", fbSentinelDir+"/redis.conf")
	c := directClient(s.b, self, s.pw)
	waitFor(s.b, timeout(s.b, 30*time.Second), "redis-server on "+h.name+" to answer PING", func() (bool, string) {
		err := c.Ping(ctx).Err()
		return err == nil, fmt.Sprint(err)
	})
	_ = c.Close()
}

// startSentinel writes the host's sentinel.conf (its fixed ID, watching
// the current primary) and starts it as a transient unit.
func (s *fbSentinels) startSentinel(ctx context.Context, h clusterHost) {
	s.b.Helper()
	mh, mp, _ := net.SplitHostPort(s.master)
	conf := fmt.Sprintf(`bind %s
port %d
protected-mode no
dir %s
requirepass %s
sentinel sentinel-pass %s
sentinel myid %s
sentinel monitor %s %s %s 2
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, h.Addr(), fbSentinelPort, fbSentinelDir, s.pw, s.pw, s.myid[h.name],
		fbMaster, mh, mp, fbMaster, s.pw, fbMaster, s.down, fbMaster, fbFailoverTimeout, fbMaster)
	h.writeFile(ctx, fbSentinelDir+"/sentinel.conf", "0600", conf)
	h.MustExec(ctx, "systemd-run", "--unit=fb-sentinel", "--collect", "redis-server", fbSentinelDir+"/sentinel.conf", "--sentinel")
}

// setDownAfter changes down-after-milliseconds on every sentinel.
func (s *fbSentinels) setDownAfter(ctx context.Context, down int) {
	s.b.Helper()
	s.down = down
	for _, h := range s.l.hosts {
		if err := s.clients[h.name].Set(ctx, fbMaster, "down-after-milliseconds", strconv.Itoa(down)).Err(); err != nil {
			s.b.Fatalf("SENTINEL SET %s down-after-milliseconds %d on %s: %v", fbMaster, down, h.name, err)
		}
	}
	s.waitReady(ctx)
}

// ready reports whether every sentinel names s.master as the primary,
// knows two replicas of it with their links up and two other sentinels,
// none of them down.
func (s *fbSentinels) ready(ctx context.Context) (bool, string) {
	for _, h := range s.l.hosts {
		c := s.clients[h.name]
		m, err := c.Master(ctx, fbMaster).Result()
		if err != nil {
			return false, fmt.Sprintf("%s: SENTINEL MASTER: %v", h.name, err)
		}
		if addr := net.JoinHostPort(m["ip"], m["port"]); addr != s.master || m["flags"] != "master" ||
			m["num-slaves"] != "2" || m["num-other-sentinels"] != "2" || m["down-after-milliseconds"] != strconv.Itoa(s.down) {
			return false, fmt.Sprintf("%s: master %s flags %s, %s replicas, %s other sentinels, down-after %s", h.name, addr, m["flags"], m["num-slaves"], m["num-other-sentinels"], m["down-after-milliseconds"])
		}
		reps, err := c.Replicas(ctx, fbMaster).Result()
		if err != nil {
			return false, fmt.Sprintf("%s: SENTINEL REPLICAS: %v", h.name, err)
		}
		for _, r := range reps {
			if r["flags"] != "slave" || r["master-link-status"] != "ok" || net.JoinHostPort(r["master-host"], r["master-port"]) != s.master {
				return false, fmt.Sprintf("%s: replica %s:%s flags %s link %s master %s:%s", h.name, r["ip"], r["port"], r["flags"], r["master-link-status"], r["master-host"], r["master-port"])
			}
		}
		sents, err := c.Sentinels(ctx, fbMaster).Result()
		if err != nil {
			return false, fmt.Sprintf("%s: SENTINEL SENTINELS: %v", h.name, err)
		}
		for _, x := range sents {
			if x["flags"] != "sentinel" {
				return false, fmt.Sprintf("%s: sentinel %s:%s flags %s", h.name, x["ip"], x["port"], x["flags"])
			}
		}
	}
	return true, ""
}

func (s *fbSentinels) waitReady(ctx context.Context) {
	s.b.Helper()
	waitFor(s.b, timeout(s.b, 2*time.Minute), "every sentinel to agree on "+s.master+" with two linked replicas and two other sentinels", func() (bool, string) {
		return s.ready(ctx)
	})
}

// powerOffRound powers off the host of the Sentinel primary, waits until
// a surviving sentinel names another primary and the client writes again,
// boots the host, starts its redis-server (a replica of the new primary)
// and its sentinel again, and waits until the setup is whole.
func (s *fbSentinels) powerOffRound(ctx context.Context, ld *fbLoad) fbRound {
	s.b.Helper()
	mh, _, _ := net.SplitHostPort(s.master)
	var h clusterHost
	for _, x := range s.l.hosts {
		if x.Addr() == mh {
			h = x
		}
	}
	if h.node == nil {
		s.b.Fatalf("the Sentinel primary %s is on no lab host", s.master)
	}
	survivor := s.clients[others(s.l.hosts, h)[0].name]
	r := fbRound{from: h.name, fault: time.Now()}
	h.Disconnect()
	h.PowerLoss()
	var next string
	waitFor(s.b, timeout(s.b, 2*time.Minute), "Redis Sentinel to promote a replica in place of "+s.master, func() (bool, string) {
		a, err := survivor.GetMasterAddrByName(ctx, fbMaster).Result()
		if err != nil || len(a) != 2 {
			return false, fmt.Sprint(a, err)
		}
		if addr := net.JoinHostPort(a[0], a[1]); addr != s.master {
			r.named, next = time.Since(r.fault), addr
			return true, ""
		}
		return false, "still " + s.master
	})
	fbWaitWrites(s.b, ld, r.fault, fbRecovered, "the clients to write again")
	fbMeasure(&r, ld)
	s.master = next
	nh, _, _ := net.SplitHostPort(next)
	for _, x := range s.l.hosts {
		if x.Addr() == nh {
			r.to = x.name
		}
	}

	h.Boot()
	// The appliance on the host too: the next round may cut another host,
	// and its cluster needs two of three.
	h.waitAgent(ctx)
	s.l.waitFormed(ctx, s.l.hosts)
	s.startRedis(ctx, h)
	s.startSentinel(ctx, h)
	s.waitReady(ctx)
	return r
}

// fbTable prints every series' rounds and the summary with the targets.
func fbTable(series []*fbSeries, planned int) string {
	var t strings.Builder
	fmt.Fprintf(&t, "\nfailover on the three-host systemd lab (3 nspawn hosts sharing this machine's %d CPUs), go-redis failover clients\n", runtime.NumCPU())
	fmt.Fprintf(&t, "in the test process writing a unique key every %s each:\n", writeEvery)
	fmt.Fprintf(&t, "  named   fault → a survivor names the new primary (db show / SENTINEL get-master-addr-by-name, polled)\n")
	fmt.Fprintf(&t, "  down    longest time no instance took a SET sent straight to it every %s (the outage as the servers had it)\n", fbProbeEvery)
	fmt.Fprintf(&t, "  tuned   longest gap between acknowledged writes, client tuned for failover (DialTimeout %s, connect %s, read/write %s, 3 dial attempts, PoolSize 100)\n", fbFastTimeout, fbConnectTimeout, fbIOTimeout)
	fmt.Fprintf(&t, "  default longest gap between acknowledged writes, client with go-redis's dial retries (5) and 1 s timeouts\n")
	fmt.Fprintf(&t, "  lost    plain writes acknowledged before the fault and missing on the final primary (tuned + default)\n")
	fmt.Fprintf(&t, "appliance failover settings: detection %s, lease %s (defaults), cooldown %s (default 30s: rounds closer together);\n", foDetection, foLease, fbCooldown)
	fmt.Fprintf(&t, "Redis Sentinel: quorum 2, failover-timeout %d ms, no persistence (the appliance database is nordb)\n", fbFailoverTimeout)
	for _, s := range series {
		fmt.Fprintf(&t, "%s (%d of %d rounds)\n", s.name, len(s.rounds), planned)
		fmt.Fprintf(&t, "  %-6s %-12s %-9s %-9s %-9s %-9s %-9s %s\n", "round", "from → to", "named", "down", "tuned", "default", "lost", "")
		for i, r := range s.rounds {
			fmt.Fprintf(&t, "  %-6d %-12s %-9s %-9s %-9s %-9s %-9s %s\n", i+1, r.from+" → "+r.to,
				fmt.Sprintf("%.0f ms", float64(r.named.Microseconds())/1000), fmt.Sprintf("%.0f ms", r.downMs),
				fmt.Sprintf("%.0f ms", r.fastGapMs), fmt.Sprintf("%.0f ms", r.gapMs), fmt.Sprintf("%d + %d", r.fastLost, r.lost), r.note)
		}
	}
	row := func(what, value, target string) { fmt.Fprintf(&t, "  %-60s %-24s %s\n", what, value, target) }
	fmt.Fprintf(&t, "summary\n")
	fmt.Fprintf(&t, "  %-60s %-24s %s\n", "", "median / max", "target")
	for _, s := range series {
		if len(s.rounds) == 0 {
			row(s.name, "not measured", s.target)
			continue
		}
		fmt.Fprintf(&t, "%s, %d of %d rounds\n", s.name, len(s.rounds), planned)
		for _, m := range []struct {
			what string
			v    []float64
		}{
			{"new primary named", s.gaps(func(r fbRound) float64 { return float64(r.named.Microseconds()) / 1000 })},
			{"outage as the servers had it (probe)", s.gaps(func(r fbRound) float64 { return r.downMs })},
			{"longest write gap, tuned client", s.gaps(func(r fbRound) float64 { return r.fastGapMs })},
			{"longest write gap, go-redis defaults", s.gaps(func(r fbRound) float64 { return r.gapMs })},
		} {
			target := ""
			if s.medianTarget > 0 && m.what != "new primary named" {
				ok := median(m.v) <= s.medianTarget && (s.maxTarget == 0 || slices.Max(m.v) <= s.maxTarget)
				target = s.target + map[bool]string{true: ": met", false: ": NOT met"}[ok]
			}
			row("  "+m.what, fmt.Sprintf("%.0f / %.0f ms", median(m.v), slices.Max(m.v)), target)
		}
		lost := fmt.Sprintf("%d of %d (tuned), %d of %d (defaults)", s.fastLostTotal, s.fastAcked, s.lostTotal, s.acked)
		if s.lostCheck != "" {
			lost = "not checked: " + s.lostCheck
		} else if s.acked == 0 {
			lost = "not checked (the series did not finish)"
		}
		row("  acknowledged plain writes lost", lost, "reported")
		if s.acked > 0 {
			last := func(err error) string {
				if err == nil {
					return "none"
				}
				return err.Error()
			}
			row("  writes that failed (never acknowledged), tuned", fmt.Sprintf("%d (last: %s)", s.fastFailed, last(s.fastLastErr)), "")
			row("  writes that failed (never acknowledged), defaults", fmt.Sprintf("%d (last: %s)", s.failed, last(s.lastErr)), "")
		}
	}
	return t.String()
}
