package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// busyBridge and busyPrefix are BenchmarkNoFalseFailoverWithBusyCPUs's
// lab network, unique on the machine.
const (
	busyBridge = "racq0"
	busyPrefix = "10.213.6"
)

// busyMinutes is how long the CPUs are kept busy; BUSY_MINUTES=N changes
// it (for a quick look; issue 5's figure is the 10-minute run).
func busyMinutes(b *testing.B) time.Duration {
	if s := os.Getenv("BUSY_MINUTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("BUSY_MINUTES=%q: want a number of minutes, at least 1", s)
		}
		return time.Duration(n) * time.Minute
	}
	return 10 * time.Minute
}

// busyLoop is one CPU burner: a python3 loop that spins until its own
// deadline, so that it ends by itself even if this process dies first.
const busyLoop = `import sys, time
end = time.monotonic() + float(sys.argv[1])
n = 0
while time.monotonic() < end:
    n += 1
`

// startBusyLoops starts n busy loops on the machine (the lab hosts share
// its CPUs) for d, and returns a stop that ends them by PID.
func startBusyLoops(b *testing.B, n int, d time.Duration) (stop func()) {
	b.Helper()
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command("python3", "-c", busyLoop, strconv.Itoa(int(d.Seconds())))
		if err := c.Start(); err != nil {
			b.Fatalf("start a busy loop (python3): %v", err)
		}
		cmds = append(cmds, c)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	b.Cleanup(stop)
	return stop
}

// cpuTicks reads the machine's busy and total CPU ticks from /proc/stat.
func cpuTicks(b *testing.B) (busy, total int64) {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)[1:]
	for i, f := range fields {
		v, _ := strconv.ParseInt(f, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// BenchmarkNoFalseFailoverWithBusyCPUs runs a three-host lab with the
// default failover settings and three databases with two replicas each
// (one primary per host), with a Sentinel-aware writer on each, while
// busy loops keep both CPUs of the machine saturated for ten minutes. No
// host fails, so every automatic failover would be a false one: it counts
// them (the figure must be zero), and reports the fences, nodes reported
// lost, the writers' longest gaps and how busy the CPUs really were.
func BenchmarkNoFalseFailoverWithBusyCPUs(b *testing.B) {
	minutes := busyMinutes(b)
	l, _ := bootGatewayLab(b, busyBridge, busyPrefix, 3, 0)
	ctx := timeout(b, minutes+15*time.Minute)
	l.form(ctx, 3)
	type busyDB struct {
		name, pw string
		before   replDatabase
		w        *ackWriter
	}
	var dbs []*busyDB
	for i, h := range l.hosts {
		name := fmt.Sprintf("busy%d", i+1)
		creator := others(l.hosts, h)[0]
		creator.mustCLI(ctx, "db", "create", name, "--memory", "32mb", "--flavor", "nordb", "--replicas", "2", "--node", h.name)
		d := creator.waitReplicated(ctx, name, 3)
		pw := creator.url(ctx, name).Password
		waitReplicasLinked(b, ctx, d, pw)
		dbs = append(dbs, &busyDB{name: name, pw: pw, before: d})
	}
	for _, d := range dbs {
		c := failoverClient(b, l.hosts, d.name, d.pw)
		waitFor(b, timeout(b, 30*time.Second), "go-redis's failover client to reach "+d.name, func() (bool, string) {
			err := c.Ping(ctx).Err()
			return err == nil, fmt.Sprint(err)
		})
		d.w = startWriter(ctx, c, d.name+":", 20*time.Millisecond, 1_000_000, minutes+time.Minute)
	}
	evsBefore, err := foEvents(ctx, l.hosts[0])
	if err != nil {
		b.Fatal(err)
	}
	loops := 2 * runtime.NumCPU()

	b.ResetTimer()
	start := time.Now()
	busy0, total0 := cpuTicks(b)
	stop := startBusyLoops(b, loops, minutes)
	for time.Since(start) < minutes {
		time.Sleep(min(10*time.Second, time.Until(start.Add(minutes))))
	}
	busy1, total1 := cpuTicks(b)
	stop()
	b.StopTimer()
	end := time.Now()

	kinds := map[string]int{}
	var failovers []string
	waitFor(b, timeout(b, time.Minute), "the events of the run", func() (bool, string) {
		evs, err := foEvents(ctx, l.hosts[0])
		if err != nil {
			return false, err.Error()
		}
		kinds, failovers = map[string]int{}, nil
		for _, e := range evs[min(len(evsBefore), len(evs)):] {
			kinds[e.Kind]++
			if e.Kind == "detected" || e.Kind == "promoted" {
				failovers = append(failovers, fmt.Sprintf("%s %s %s: %s", e.At.Format(time.TimeOnly), e.Kind, e.Database, e.Message))
			}
		}
		return true, ""
	})
	var rows []string
	for _, d := range dbs {
		acks, fails, werr := d.w.finish()
		after := l.hosts[0].showRepl(ctx, d.name)
		p0, _ := d.before.primary()
		p1, _ := after.primary()
		if after.Epoch != d.before.Epoch || p1.Node != p0.Node {
			b.Errorf("%s: primary %s (epoch %d) before, %s (epoch %d) after: a failover with no fault", d.name, p0.Node, d.before.Epoch, p1.Node, after.Epoch)
		}
		rows = append(rows, fmt.Sprintf("  %s (primary on %s): %d writes acknowledged, %d failed, longest gap %.0f ms%s",
			d.name, p0.Node, len(acks), fails, longestGap(acks, start, end), errNote(werr)))
	}
	if len(failovers) > 0 {
		b.Errorf("%d automatic failovers with no fault (want 0):\n%s", len(failovers), strings.Join(failovers, "\n"))
	}
	cpu := 100 * float64(busy1-busy0) / float64(total1-total0)
	b.ReportMetric(float64(len(failovers)), "false-failovers")
	b.ReportMetric(float64(kinds["fenced"]), "fences")
	b.ReportMetric(cpu, "cpu-busy-%")
	fmt.Printf("busy CPUs for %s (%d python3 busy loops on %d CPUs): the machine's CPUs %.1f%% busy\n", minutes, loops, runtime.NumCPU(), cpu)
	fmt.Printf("automatic failovers: %d (target 0); events in the run: %s\n", len(failovers), foKinds(kinds))
	fmt.Println(strings.Join(rows, "\n"))
}

// errNote is ", last error: ERR" for a writer that saw one.
func errNote(err error) string {
	if err == nil {
		return ""
	}
	return ", last error: " + err.Error()
}
