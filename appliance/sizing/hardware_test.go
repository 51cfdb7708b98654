package sizing

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fixtureProc writes a proc tree with the given meminfo and stat contents
// and returns its root; an empty content leaves the file out.
func fixtureProc(t *testing.T, meminfo, stat string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "proc")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"meminfo": meminfo, "stat": stat} {
		if content == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const fixtureMeminfo = `MemTotal:       16384000 kB
MemFree:         2048000 kB
MemAvailable:    8192000 kB
Buffers:          102400 kB
Cached:          4096000 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        1048576 kB
`

const fixtureStat = `cpu  2040 0 1322 33004 1092 0 43 132 0 0
cpu0 749 0 452 17513 45 0 11 54 0 0
cpu1 1290 0 870 15491 1046 0 31 77 0 0
cpu2 1 0 0 0 1 0 0 0 0 0
cpu3 1 0 0 0 1 0 0 0 0 0
intr 1 2 3
ctxt 12345
btime 1700000000
processes 42
procs_running 1
procs_blocked 0
`

// TestRead_FixtureProc proves Read reports exactly the figures the kernel
// files hold, converted from kB to bytes, and measures the file system of
// the nearest existing parent of a data directory that is not created yet.
func TestRead_FixtureProc(t *testing.T) {
	root := fixtureProc(t, fixtureMeminfo, fixtureStat)
	base := t.TempDir()
	hw, err := Read(root, filepath.Join(base, "not", "yet", "made"))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(base, &st); err != nil {
		t.Fatal(err)
	}
	want := Hardware{
		MemTotal:     16384000 * 1024,
		MemAvailable: 8192000 * 1024,
		SwapTotal:    2097148 * 1024,
		SwapFree:     1048576 * 1024,
		CPUs:         4,
		DiskPath:     base,
		DiskTotal:    int64(st.Blocks) * st.Frsize,
	}
	got := hw
	// Free space moves while other tests write; compare it apart.
	got.DiskFree = 0
	if got != want {
		t.Errorf("Read =\n %+v\nwant\n %+v", got, want)
	}
	free := int64(st.Bavail) * st.Frsize
	if d := hw.DiskFree - free; d > 256*MiB || d < -256*MiB {
		t.Errorf("DiskFree = %d, statfs says %d", hw.DiskFree, free)
	}
	if hw.DiskFree <= 0 || hw.DiskFree > hw.DiskTotal {
		t.Errorf("DiskFree = %d, want in (0, %d]", hw.DiskFree, hw.DiskTotal)
	}
}

// TestRead_FixtureErrors proves that malformed or missing kernel files and
// unusable data directories are refused with a message naming the file.
func TestRead_FixtureErrors(t *testing.T) {
	tmp := t.TempDir()
	aFile := filepath.Join(tmp, "file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		meminfo  string
		stat     string
		dataDir  string
		wantText string
	}{
		{"no meminfo", "", fixtureStat, tmp, "meminfo"},
		{"no stat", fixtureMeminfo, "", tmp, "count CPUs"},
		{"meminfo without MemTotal", "MemFree: 1 kB\n", fixtureStat, tmp, "no MemTotal"},
		{"garbage meminfo", "MemTotal: lots kB\n", fixtureStat, tmp, "meminfo"},
		{"stat without cpus", fixtureMeminfo, "intr 1\nctxt 2\n", tmp, "no cpuN lines"},
		{"data dir below a file", fixtureMeminfo, fixtureStat, filepath.Join(aFile, "data"), "is a file"},
		{"no data dir", fixtureMeminfo, fixtureStat, "", "no data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixtureProc(t, tt.meminfo, tt.stat)
			_, err := Read(root, tt.dataDir)
			if err == nil {
				t.Fatalf("Read succeeded, want an error containing %q", tt.wantText)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}
}

// TestRead_NoMemAvailable proves that on kernels without MemAvailable the
// estimate is MemFree + Buffers + Cached rather than zero (which would
// refuse every database) or MemTotal (which would accept too much).
func TestRead_NoMemAvailable(t *testing.T) {
	var lines []string
	for _, l := range strings.Split(fixtureMeminfo, "\n") {
		if !strings.HasPrefix(l, "MemAvailable:") {
			lines = append(lines, l)
		}
	}
	root := fixtureProc(t, strings.Join(lines, "\n"), fixtureStat)
	hw, err := Read(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2048000+102400+4096000) * 1024; hw.MemAvailable != want {
		t.Errorf("MemAvailable = %d, want %d", hw.MemAvailable, want)
	}
}

// TestRead_RealProc proves Read works on this machine's /proc and agrees
// with the kernel's own files read independently.
func TestRead_RealProc(t *testing.T) {
	hw, err := Read("", "/nonexistent-redis-appliance-test/data")
	if err != nil {
		t.Fatalf("Read(/proc): %v", err)
	}
	memTotal := procField(t, "/proc/meminfo", "MemTotal:") * 1024
	if hw.MemTotal != memTotal {
		t.Errorf("MemTotal = %d, /proc/meminfo says %d", hw.MemTotal, memTotal)
	}
	if hw.MemAvailable <= 0 || hw.MemAvailable > hw.MemTotal {
		t.Errorf("MemAvailable = %d, want in (0, %d]", hw.MemAvailable, hw.MemTotal)
	}
	if hw.SwapFree > hw.SwapTotal {
		t.Errorf("SwapFree %d > SwapTotal %d", hw.SwapFree, hw.SwapTotal)
	}
	if want := countCPULines(t); hw.CPUs != want {
		t.Errorf("CPUs = %d, /proc/stat lists %d", hw.CPUs, want)
	}
	if hw.DiskPath != "/" {
		t.Errorf("DiskPath = %q, want / (the nearest existing parent)", hw.DiskPath)
	}
	if hw.DiskTotal <= 0 || hw.DiskFree < 0 || hw.DiskFree > hw.DiskTotal {
		t.Errorf("disk total %d free %d: implausible", hw.DiskTotal, hw.DiskFree)
	}
}

func procField(t *testing.T, path, key string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == key {
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("%s: no %s", path, key)
	return 0
}

func countCPULines(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return n
}
