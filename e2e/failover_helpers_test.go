package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// What the failover tests (failover_test.go) measure with: a writer that
// records every acknowledged write and whether WAIT 1 counted a replica
// for it, the same inside a host (redis-py), a probe that asks every
// instance directly, ten times a second, whether it takes a write, and the
// scenario around them.

// The failover settings the lab runs with: clusterConfig sets none, so
// these are the documented defaults (docs/failover.md).
const (
	foLease     = 700 * time.Millisecond
	foDetection = 1000 * time.Millisecond
	foCooldown  = 30 * time.Second
)

// foAck is one write the server acknowledged.
type foAck struct {
	key      string
	sent, at time.Time
	// waited: WAIT 1 200, sent right after the SET on the same
	// connection, answered at least 1: a replica had the write.
	waited bool
}

// foValue is what the writers store under key: the key, padded with pad
// bytes (a bigger replication stream when a scenario needs one).
func foValue(key string, pad int) string {
	if pad <= 0 {
		return key
	}
	return key + ":" + strings.Repeat("x", pad)
}

// foErrKind names a failed write for the tallies: the error's first word
// for a reply (NOREPLICAS, READONLY, LOADING), timeout or connection
// otherwise.
func foErrKind(err error) string {
	var re redis.Error
	if errors.As(err, &re) {
		if f := strings.Fields(re.Error()); len(f) > 0 {
			return f[0]
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	if strings.Contains(err.Error(), "refused") {
		return "refused"
	}
	return "connection"
}

// foWriter writes unique keys through one client, one at a time, at most
// one every interval: odd ones with a plain SET, even ones with SET and
// WAIT 1 200 pipelined on the same connection. It records every
// acknowledged SET and runs until stopped, its context ends, it has
// written limit keys or it has run for maxRun.
type foWriter struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	acks  []foAck
	fails map[string]int
	spans map[string][2]time.Time // kind → first and last failure
	last  error
}

func startFoWriter(ctx context.Context, c *redis.Client, prefix string, pad int, every time.Duration, limit int, maxRun time.Duration) *foWriter {
	w := &foWriter{stop: make(chan struct{}), done: make(chan struct{}), fails: map[string]int{}, spans: map[string][2]time.Time{}}
	go func() {
		defer close(w.done)
		paced(ctx, w.stop, every, limit, maxRun, func(i int) {
			key := fmt.Sprintf("%s%07d", prefix, i)
			val := foValue(key, pad)
			sent := time.Now()
			var err error
			waited := false
			if i%2 == 0 {
				var set *redis.StatusCmd
				var wait *redis.Cmd
				_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
					set = p.Set(ctx, key, val, 0)
					wait = p.Do(ctx, "WAIT", 1, 200)
					return nil
				})
				err = set.Err()
				n, werr := wait.Int64()
				waited = err == nil && werr == nil && n >= 1
			} else {
				err = c.Set(ctx, key, val, 0).Err()
			}
			at := time.Now()
			w.mu.Lock()
			if err == nil {
				w.acks = append(w.acks, foAck{key: key, sent: sent, at: at, waited: waited})
			} else {
				kind := foErrKind(err)
				w.fails[kind]++
				sp, ok := w.spans[kind]
				if !ok {
					sp[0] = at
				}
				sp[1] = at
				w.spans[kind] = sp
				w.last = err
			}
			w.mu.Unlock()
		})
	}()
	return w
}

// counts is how many writes were acknowledged so far, and how many of them
// with a replica counted by WAIT.
func (w *foWriter) counts() (acked, waited int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.acks {
		if a.waited {
			waited++
		}
	}
	return len(w.acks), waited
}

// since counts the writes acknowledged after t.
func (w *foWriter) since(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i := len(w.acks) - 1; i >= 0 && w.acks[i].at.After(t); i-- {
		n++
	}
	return n
}

func (w *foWriter) running() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

// finish stops the writer (once) and returns what it recorded.
func (w *foWriter) finish() ([]foAck, map[string]int, error) {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	fails := map[string]int{}
	for k, v := range w.fails {
		fails[k] = v
	}
	return append([]foAck(nil), w.acks...), fails, w.last
}

// failSpans returns when each kind of failure was first and last seen.
func (w *foWriter) failSpans() map[string][2]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][2]time.Time{}
	for k, v := range w.spans {
		out[k] = v
	}
	return out
}

// foAcceptGap is the longest time no instance took a write, from the last
// write taken before from to the first one after to: the outage as the
// servers had it, whatever a client library made of it.
func foAcceptGap(acc []foAcceptance, from, to time.Time) time.Duration {
	acks := make([]foAck, len(acc))
	for i, a := range acc {
		acks[i] = foAck{key: a.id, sent: a.sent, at: a.at}
	}
	sort.SliceStable(acks, func(i, j int) bool { return acks[i].at.Before(acks[j].at) })
	return foGap(acks, from, to)
}

// foGap is the longest time between consecutive acknowledged writes from
// the last one before from to the first one after to: what a client saw
// of the fault.
func foGap(acks []foAck, from, to time.Time) time.Duration {
	plain := make([]ack, len(acks))
	for i, a := range acks {
		plain[i] = ack{key: a.key, at: a.at}
	}
	return time.Duration(longestGap(plain, from, to) * float64(time.Millisecond))
}

// foMissing reads every acknowledged key on c (one instance) and returns
// those missing or holding another value, split by whether WAIT had
// counted a replica for them.
func foMissing(ctx context.Context, c *redis.Client, acks []foAck, pad int) (waited, plain []string, err error) {
	keys := make([]string, len(acks))
	for i, a := range acks {
		keys[i] = a.key
	}
	vals, err := readKeys(ctx, c, keys)
	if err != nil {
		return nil, nil, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok && s == foValue(keys[i], pad) {
			continue
		}
		if acks[i].waited {
			waited = append(waited, keys[i])
		} else {
			plain = append(plain, keys[i])
		}
	}
	return waited, plain, nil
}

// foHostWriterScript runs inside a host: redis-py against one instance on
// the host's loopback (port $1, password in $PW), writing keys $2NNNNNNN
// as foWriter does (odd plain, even with WAIT 1 200 on the same
// connection) until stdin closes, $3 keys are written or $4 seconds
// passed. Per write it prints "ok KEY SENT AT WAITED" or "err KEY SENT
// AT KIND", times in seconds since the epoch: the host shares the
// machine's clock, so they compare with the test's own.
const foHostWriterScript = `
import os, re, sys, threading, time
import redis

pw = os.environ['PW']
port, prefix, limit, max_run = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
stop = threading.Event()

def watch():
    sys.stdin.read()
    stop.set()

threading.Thread(target=watch, daemon=True).start()
r = redis.Redis(host='127.0.0.1', port=port, password=pw, socket_timeout=0.5, socket_connect_timeout=0.5)
deadline = time.monotonic() + max_run
i = 0
while not stop.is_set() and i < limit and time.monotonic() < deadline:
    i += 1
    key = '%s%07d' % (prefix, i)
    sent = time.time()
    try:
        if i % 2 == 0:
            p = r.pipeline(transaction=False)
            p.set(key, key)
            p.execute_command('WAIT', 1, 200)
            n = p.execute()[1]
        else:
            r.set(key, key)
            n = -1
        print('ok', key, repr(sent), repr(time.time()), n, flush=True)
    except redis.exceptions.ReadOnlyError:
        # redis-py strips the READONLY prefix it maps to this class.
        print('err', key, repr(sent), repr(time.time()), 'READONLY', flush=True)
        time.sleep(0.005)
    except redis.exceptions.ResponseError as e:
        m = re.search(r'\b(NOREPLICAS|LOADING|MASTERDOWN|NOAUTH|WRONGPASS|NOPERM)\b', str(e))
        print('err', key, repr(sent), repr(time.time()), m.group(1) if m else type(e).__name__, flush=True)
        time.sleep(0.005)
    except redis.exceptions.RedisError as e:
        print('err', key, repr(sent), repr(time.time()), type(e).__name__, flush=True)
        time.sleep(0.05)
    time.sleep(0.005)
`

// foHostWrite is one line the script printed.
type foHostWrite struct {
	key      string
	ok       bool
	sent, at time.Time
	waited   int    // WAIT's answer; -1 for a plain SET
	kind     string // why it failed
}

// foHostWriter is the script running inside a host.
type foHostWriter struct {
	mu     sync.Mutex
	writes []foHostWrite
	bad    []string // lines it could not parse
	stdin  io.WriteCloser
	read   chan struct{}
	wait   func() error
}

func startFoHostWriter(t testing.TB, ctx context.Context, h clusterHost, port int, password, prefix string) *foHostWriter {
	t.Helper()
	cmd, stdin, stdout, stderr := startHostPython(t, ctx, h, "the writer", password, foHostWriterScript, strconv.Itoa(port), prefix, "200000", "600")
	w := &foHostWriter{stdin: stdin, read: make(chan struct{})}
	go func() {
		defer close(w.read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			hw, ok := parseFoHostWrite(line)
			w.mu.Lock()
			if ok {
				w.writes = append(w.writes, hw)
			} else {
				w.bad = append(w.bad, line)
			}
			w.mu.Unlock()
		}
	}()
	var once sync.Once
	var werr error
	w.wait = func() error {
		once.Do(func() {
			_ = stdin.Close()
			<-w.read
			if werr = cmd.Wait(); werr != nil {
				werr = fmt.Errorf("the writer inside %s: %v\n%s", h.name, werr, stderr.String())
			}
		})
		return werr
	}
	t.Cleanup(func() { _ = w.wait() })
	return w
}

func parseFoHostWrite(line string) (foHostWrite, bool) {
	f := strings.Fields(line)
	if len(f) != 5 || (f[0] != "ok" && f[0] != "err") {
		return foHostWrite{}, false
	}
	sent, err1 := strconv.ParseFloat(f[2], 64)
	at, err2 := strconv.ParseFloat(f[3], 64)
	if err1 != nil || err2 != nil {
		return foHostWrite{}, false
	}
	w := foHostWrite{key: f[1], ok: f[0] == "ok", sent: foUnix(sent), at: foUnix(at), waited: -1}
	if w.ok {
		n, err := strconv.Atoi(f[4])
		if err != nil {
			return foHostWrite{}, false
		}
		w.waited = n
	} else {
		w.kind = f[4]
	}
	return w, true
}

func foUnix(sec float64) time.Time {
	return time.Unix(0, int64(sec*1e9))
}

// oks counts the writes acknowledged so far.
func (w *foHostWriter) oks() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, x := range w.writes {
		if x.ok {
			n++
		}
	}
	return n
}

// finish stops the script and returns every line it printed.
func (w *foHostWriter) finish() ([]foHostWrite, error) {
	err := w.wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && len(w.bad) > 0 {
		err = fmt.Errorf("the writer inside the host printed lines it should not have: %q", w.bad[:min(len(w.bad), 5)])
	}
	return append([]foHostWrite(nil), w.writes...), err
}

// foAcks turns the script's acknowledged writes into foAcks (a write whose
// WAIT answered 0 is a plain one).
func foAcks(writes []foHostWrite) []foAck {
	var out []foAck
	for _, w := range writes {
		if w.ok {
			out = append(out, foAck{key: w.key, sent: w.sent, at: w.at, waited: w.waited >= 1})
		}
	}
	return out
}

// foAcceptance is a write one instance acknowledged: sent and answered
// then. The instance took writes at some moment in between.
type foAcceptance struct {
	id       string
	sent, at time.Time
}

// foTarget is an instance the probe asks.
type foTarget struct{ id, addr string }

// foProbe sends, every interval, a SET straight to every target (no
// discovery), and records which took it. Each target has its own loop, so
// one that does not answer (a host that is down or cut off: a 300 ms
// time-out) does not slow the others down. Replies that are not OK
// (READONLY from a replica, NOREPLICAS from a fenced primary, time-outs)
// are tallied by target and kind.
type foProbe struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	accepted []foAcceptance
	refused  map[string]map[string]int
	rounds   int
}

func startFoProbe(ctx context.Context, targets []foTarget, password, key string, every, maxRun time.Duration) *foProbe {
	p := &foProbe{stop: make(chan struct{}), done: make(chan struct{}), refused: map[string]map[string]int{}}
	for _, tg := range targets {
		p.refused[tg.id] = map[string]int{}
	}
	var wg sync.WaitGroup
	for _, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{
				Addr: tg.addr, Password: password,
				DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
				PoolSize: 1, MaxRetries: -1, Protocol: 2, DisableIdentity: true,
			})
			defer c.Close()
			paced(ctx, p.stop, every, math.MaxInt, maxRun, func(n int) {
				pctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
				sent := time.Now()
				err := c.Set(pctx, key+":"+tg.id, strconv.Itoa(n), 0).Err()
				at := time.Now()
				cancel()
				p.mu.Lock()
				p.rounds++
				if err == nil {
					p.accepted = append(p.accepted, foAcceptance{id: tg.id, sent: sent, at: at})
				} else {
					p.refused[tg.id][foErrKind(err)]++
				}
				p.mu.Unlock()
			})
		}()
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return p
}

// finish stops the probe (once) and returns the acceptances, the refusals
// by instance and kind, and the number of SETs sent.
func (p *foProbe) finish() ([]foAcceptance, map[string]map[string]int, int) {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]foAcceptance(nil), p.accepted...), p.refused, p.rounds
}

// lastAcceptance is the latest write id took, if any, after t.
func lastAcceptance(acc []foAcceptance, id string, after time.Time) (foAcceptance, bool) {
	var last foAcceptance
	found := false
	for _, a := range acc {
		if a.id == id && a.at.After(after) && (!found || a.at.After(last.at)) {
			last, found = a, true
		}
	}
	return last, found
}

// firstAcceptanceNot is the earliest write an instance other than id took
// after t (any instance's, when id is "").
func firstAcceptanceNot(acc []foAcceptance, id string, after time.Time) (foAcceptance, bool) {
	var first foAcceptance
	found := false
	for _, a := range acc {
		if a.id != id && a.at.After(after) && (!found || a.at.Before(first.at)) {
			first, found = a, true
		}
	}
	return first, found
}

// foTwoWriters looks, in what the instances acknowledged, for moments when
// two of them took writes, counting only conflicts whose earlier writes
// were taken from from on (origin is what times are shown relative to):
//
//   - two instances took writes whose requests were in flight at the
//     same time (one was sent before the other's reply came): both took
//     writes within the same ~100 ms;
//   - an instance took writes again, less than reappear after it last
//     did, when another instance had taken writes in between: a primary
//     that went on accepting while another one did. (A legitimate return
//     of the primary takes a second failover, at least a cooldown later.)
func foTwoWriters(acc []foAcceptance, from, origin time.Time, reappear time.Duration) []string {
	acc = append([]foAcceptance(nil), acc...)
	sort.SliceStable(acc, func(i, j int) bool { return acc[i].at.Before(acc[j].at) })
	type run struct {
		id          string
		first, last foAcceptance
	}
	var runs []run
	for _, a := range acc {
		if n := len(runs); n > 0 && runs[n-1].id == a.id {
			runs[n-1].last = a
			continue
		}
		runs = append(runs, run{a.id, a, a})
	}
	rel := func(t time.Time) string { return fmt.Sprintf("%+.3fs", t.Sub(origin).Seconds()) }
	var out []string
	lastRun := map[string]int{}
	for i, r := range runs {
		// A conflict is seen when run i starts; it counts if the other
		// instance's writes just before it were taken from from on.
		if i == 0 || runs[i-1].last.at.Before(from) {
			lastRun[r.id] = i
			continue
		}
		prev := runs[i-1]
		if r.first.sent.Before(prev.last.at) {
			out = append(out, fmt.Sprintf("%s and %s both took writes at %s: %s took one sent at %s, before %s had answered one at %s",
				prev.id, r.id, rel(r.first.at), r.id, rel(r.first.sent), prev.id, rel(prev.last.at)))
		}
		if j, ok := lastRun[r.id]; ok && j < i-1 && r.first.at.Sub(runs[j].last.at) < reappear {
			out = append(out, fmt.Sprintf("%s took writes again at %s (last before at %s) after %s had taken writes from %s",
				r.id, rel(r.first.at), rel(runs[j].last.at), runs[j+1].id, rel(runs[j+1].first.at)))
		}
		lastRun[r.id] = i
	}
	return out
}

// foEvent is one row of `events -o json`.
type foEvent struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Database string    `json:"database"`
	Node     string    `json:"node"`
	Message  string    `json:"message"`
}

// foEvents is `events -o json` on h.
func foEvents(ctx context.Context, h clusterHost) ([]foEvent, error) {
	out, stderr, err := h.cli(ctx, "events", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("events on %s: %v %s", h.name, err, stderr)
	}
	var evs []foEvent
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		return nil, fmt.Errorf("events -o json on %s: %v\n%s", h.name, err, out)
	}
	return evs, nil
}

// foCount counts the map's values.
func foCount(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// foKinds prints a tally sorted by kind.
func foKinds(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
