package e2e

import (
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These benchmarks print figures; they assert no time limit. Each measures
// once, however large b.N: run them with
//
//	go test ./e2e/ -run '^$' -bench . -benchtime 1x
//
// Targets (issue 2): create→PONG median ≤ 1 s; appliance/bare throughput
// ratio ≥ 0.98 (the appliance is not in the data path).

// createToPongScript creates database $1, reads its URL and polls PING until
// PONG, inside the host, and prints the microseconds from just before
// `db create` to the first PONG. The password goes to redis-cli through
// REDISCLI_AUTH. The PING loop is bounded.
const createToPongScript = `set -eu
t0=$(date +%s%N)
redis-appliance db create "$1" --memory 64mb --flavor aof >/dev/null
url=$(redis-appliance db url "$1")
ui=${url#redis://}; ui=${ui%@*}; pw=${ui#*:}
hp=${url#*@}; hp=${hp%%/*}
export REDISCLI_AUTH="$pw"
i=0
until [ "$(redis-cli -h "${hp%:*}" -p "${hp##*:}" ping 2>/dev/null)" = PONG ]; do
	i=$((i+1)); [ $i -lt 5000 ] || { echo "no PONG from $hp" >&2; exit 1; }
done
t1=$(date +%s%N)
echo $(( (t1 - t0) / 1000 ))
`

// BenchmarkSystemd_CreateToFirstPong measures, 20 times, the time from
// `db create` to the first PONG of the new database under systemd, then
// deletes it, and reports the median and the maximum.
func BenchmarkSystemd_CreateToFirstPong(b *testing.B) {
	n := bootNode(b, false)
	ctx := timeout(b, 10*time.Minute)
	const rounds = 20
	var ms []float64
	b.ResetTimer()
	for i := 1; i <= rounds; i++ {
		name := fmt.Sprintf("bench%02d", i)
		out, _, err := n.Exec(ctx, "sh", "-c", createToPongScript, "sh", name)
		if err != nil {
			b.Fatalf("round %d: %v", i, err)
		}
		us, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil {
			b.Fatalf("round %d: %q: %v", i, out, err)
		}
		ms = append(ms, us/1000)
		b.StopTimer()
		n.mustCLI(ctx, "db", "delete", name)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(ms)
	median := (ms[rounds/2-1] + ms[rounds/2]) / 2
	b.ReportMetric(median, "ms-median")
	b.ReportMetric(ms[rounds-1], "ms-max")
	b.ReportMetric(ms[0], "ms-min")
	b.Logf("db create → first PONG under systemd, %d rounds (aof, 64mb): median %.0f ms, min %.0f ms, max %.0f ms (target: median ≤ 1000 ms)",
		rounds, median, ms[0], ms[rounds-1])
	b.Logf("all rounds (ms, sorted): %.0f", ms)
}

// bareDir holds the hand-started redis-server's config and data; bareConfPort
// is its port, outside the appliance's range (6400-6999).
const (
	bareDir  = "/var/tmp/bare-redis"
	barePort = 6390
)

// BenchmarkSystemd_ThroughputApplianceVsBare runs redis-benchmark SET and
// GET at -P 1 and -P 16 against an appliance-managed instance and against
// a bare redis-server started by hand in the same host from a copy of the
// same rendered redis.conf (own port and directory, daemonized, no
// systemd), alternating the two over several rounds, and reports the
// median throughput of each and their ratio appliance/bare.
func BenchmarkSystemd_ThroughputApplianceVsBare(b *testing.B) {
	n := bootNode(b, false)
	ctx := timeout(b, 10*time.Minute)
	n.createDB(ctx, "bench", "aof", "256mb")
	app := n.url(ctx, "bench")

	conf := n.MustExec(ctx, "cat", instanceDir("bench")+"/redis.conf")
	n.MustExec(ctx, "install", "-d", "-o", "redis", "-g", "redis", "-m", "0700", bareDir)
	write := n.Command(ctx, "install", "-o", "redis", "-g", "redis", "-m", "0600", "/dev/stdin", bareDir+"/redis.conf")
	write.Stdin = strings.NewReader(bareConfig(conf))
	if out, err := write.CombinedOutput(); err != nil {
		b.Fatalf("writing the bare redis.conf: %v %s", err, out)
	}
	n.MustExec(ctx, "runuser", "-u", "redis", "--", "redis-server", bareDir+"/redis.conf")
	bare := endpoint{Host: "127.0.0.1", Port: barePort, Password: app.Password}
	n.waitPong(ctx, bare)
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// SHUTDOWN is not the default user's (docs/security.md): the
		// PID this benchmark started is signalled instead.
		_, _, _ = n.Exec(cctx, "sh", "-c", "kill $(cat "+bareDir+"/redis.pid)")
	})

	// On a machine with two CPUs or more, both servers share CPU 0 and
	// redis-benchmark runs on CPU 1, so the scheduler's placement does not
	// decide the comparison. Pinning an existing process changes nothing
	// the appliance configured.
	benchCPU := ""
	if nproc := strings.TrimSpace(n.MustExec(ctx, "nproc")); nproc != "1" {
		benchCPU = "1"
		barePID := strings.TrimSpace(n.MustExec(ctx, "cat", bareDir+"/redis.pid"))
		for _, pid := range []string{strconv.Itoa(n.mainPID(ctx, unitName("bench"))), barePID} {
			n.MustExec(ctx, "taskset", "-a", "-p", "-c", "0", pid)
		}
	}

	type key struct {
		target string
		p      int
		test   string
	}
	rps := map[key][]float64{}
	ratios := map[key][]float64{} // per round: appliance/bare of two adjacent runs
	const rounds = 10
	b.ResetTimer()
	for round := 0; round < rounds; round++ {
		for _, p := range []int{1, 16} {
			// Alternate who goes first, so a drift in the machine's load
			// does not favour one side.
			targets := []string{"appliance", "bare"}
			if round%2 == 1 {
				slices.Reverse(targets)
			}
			got := map[string]map[string]float64{}
			for _, target := range targets {
				e := app
				if target == "bare" {
					e = bare
				}
				got[target] = n.redisBenchmark(b, ctx, e, p, benchCPU)
				for test, v := range got[target] {
					rps[key{target, p, test}] = append(rps[key{target, p, test}], v)
				}
			}
			for test := range got["appliance"] {
				ratios[key{"", p, test}] = append(ratios[key{"", p, test}], got["appliance"][test]/got["bare"][test])
			}
		}
	}
	b.StopTimer()

	var table strings.Builder
	fmt.Fprintf(&table, "redis-benchmark -c 50, %d rounds, same redis.conf (aof); requests/s are medians, ratio is the median of per-round appliance/bare (min-max):\n", rounds)
	fmt.Fprintf(&table, "%-4s %-3s %12s %12s %7s  %s\n", "test", "-P", "appliance", "bare", "ratio", "range")
	for _, p := range []int{1, 16} {
		for _, test := range []string{"SET", "GET"} {
			a, m := median(rps[key{"appliance", p, test}]), median(rps[key{"bare", p, test}])
			r := ratios[key{"", p, test}]
			ratio := median(r)
			fmt.Fprintf(&table, "%-4s %-3d %12.0f %12.0f %7.3f  %.3f-%.3f\n", test, p, a, m, ratio, slices.Min(r), slices.Max(r))
			b.ReportMetric(a, fmt.Sprintf("%s-P%d-appliance-rps", test, p))
			b.ReportMetric(m, fmt.Sprintf("%s-P%d-bare-rps", test, p))
			b.ReportMetric(ratio, fmt.Sprintf("%s-P%d-ratio", test, p))
		}
	}
	b.Log(table.String())
}

// redisBenchmark runs redis-benchmark SET and GET against e inside the host
// and returns requests per second by test. redis-benchmark has no way to
// read the password from the environment or a file, so it is given with -a
// here, against a throw-away lab instance inside a container that is
// destroyed after the run; never do that with a real database.
// With cpu set, redis-benchmark is pinned to that CPU.
func (n *node) redisBenchmark(b *testing.B, ctx context.Context, e endpoint, pipeline int, cpu string) map[string]float64 {
	b.Helper()
	// Enough requests for each run to last ~1 s on 2 cores: shorter runs
	// are dominated by noise.
	requests := 150000
	if pipeline > 1 {
		requests = 1000000
	}
	argv := []string{"redis-benchmark", "-h", e.Host, "-p", strconv.Itoa(e.Port), "-a", e.Password,
		"-t", "set,get", "-n", strconv.Itoa(requests), "-c", "50", "-P", strconv.Itoa(pipeline), "--csv"}
	if cpu != "" {
		argv = append([]string{"taskset", "-c", cpu}, argv...)
	}
	out, stderr, err := n.Exec(ctx, argv...)
	if err != nil {
		b.Fatalf("redis-benchmark: %v %s", err, stderr)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		b.Fatalf("redis-benchmark --csv: %v\n%s", err, out)
	}
	res := map[string]float64{}
	for _, r := range records {
		if len(r) < 2 || r[0] == "test" {
			continue
		}
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			b.Fatalf("redis-benchmark rps %q: %v", r[1], err)
		}
		res[r[0]] = v
	}
	if len(res) != 2 {
		b.Fatalf("redis-benchmark gave %v, want SET and GET\n%s", res, out)
	}
	return res
}

// bareConfig turns the appliance's rendered redis.conf into one for a
// redis-server started by hand: the same settings except where it listens,
// where it keeps its files and how it runs (daemonized, not supervised).
func bareConfig(conf string) string {
	override := map[string]string{
		"port":            strconv.Itoa(barePort),
		"dir":             bareDir,
		"daemonize":       "yes",
		"supervised":      "no",
		"pidfile":         bareDir + "/redis.pid",
		"logfile":         bareDir + "/redis.log",
		"unixsocket":      "",
		"unixsocketperm":  "",
		"syslog-enabled":  "",
		"syslog-ident":    "",
		"syslog-facility": "",
	}
	var out strings.Builder
	for _, line := range strings.Split(conf, "\n") {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			if _, ok := override[strings.ToLower(fields[0])]; ok {
				continue
			}
		}
		out.WriteString(line + "\n")
	}
	out.WriteString("# bare-redis overrides\n")
	for _, k := range []string{"port", "dir", "daemonize", "supervised", "pidfile", "logfile"} {
		fmt.Fprintf(&out, "%s %s\n", k, override[k])
	}
	return out.String()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
