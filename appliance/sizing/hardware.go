// Package sizing reads a node's hardware and decides whether a database
// fits on it. It reads memory and CPUs through prometheus/procfs and disk
// through statfs(2); the fit check itself is pure arithmetic so that the
// leader can run it for any node from the facts that node reported.
package sizing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// DefaultProcRoot is where the kernel's proc filesystem is mounted.
const DefaultProcRoot = "/proc"

// Hardware is what a node has, in bytes. The agent reads it at start and
// from time to time, reports it to the leader, and the leader sizes
// placements against it.
type Hardware struct {
	// MemTotal is the physical memory the kernel manages.
	MemTotal int64 `json:"mem_total"`
	// MemAvailable is the kernel's estimate of memory a new workload can
	// use right now without swapping (free plus reclaimable page cache).
	MemAvailable int64 `json:"mem_available"`
	// SwapTotal and SwapFree are reported for display only: swap is never
	// counted as room for a database, because a Redis that swaps answers
	// in milliseconds instead of microseconds.
	SwapTotal int64 `json:"swap_total"`
	SwapFree  int64 `json:"swap_free"`
	// CPUs is the number of online CPUs the kernel lists in /proc/stat.
	CPUs int `json:"cpus"`
	// DiskPath is the directory whose file system was measured: the data
	// directory, or its nearest existing parent before it is created.
	DiskPath string `json:"disk_path"`
	// DiskTotal is the size of that file system.
	DiskTotal int64 `json:"disk_total"`
	// DiskFree is the space unprivileged users may still write there
	// (f_bavail): redis-server does not run as root, so the blocks the
	// file system keeps for root are not room for a database.
	DiskFree int64 `json:"disk_free"`
}

// Read measures this machine. procRoot is the proc file system to read
// ("" means /proc; tests pass a fixture tree), dataDir the directory where
// database files live. dataDir need not exist yet: the file system of its
// nearest existing parent is measured, since that is where it will be made.
func Read(procRoot, dataDir string) (Hardware, error) {
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return Hardware{}, fmt.Errorf("read hardware: open proc file system %s: %w; is /proc mounted?", procRoot, err)
	}

	var hw Hardware
	if err := readMemory(fs, procRoot, &hw); err != nil {
		return Hardware{}, err
	}

	stat, err := fs.Stat()
	if err != nil {
		return Hardware{}, fmt.Errorf("read hardware: count CPUs from %s: %w", filepath.Join(procRoot, "stat"), err)
	}
	// /proc/stat has one cpuN line per online CPU; the aggregate "cpu" line
	// is kept apart by procfs, so the map's size is the CPU count.
	hw.CPUs = len(stat.CPU)
	if hw.CPUs == 0 {
		return Hardware{}, fmt.Errorf("read hardware: %s lists no cpuN lines; is it a proc file system?", filepath.Join(procRoot, "stat"))
	}

	if err := readDisk(dataDir, &hw); err != nil {
		return Hardware{}, err
	}
	return hw, nil
}

func readMemory(fs procfs.FS, procRoot string, hw *Hardware) error {
	path := filepath.Join(procRoot, "meminfo")
	mi, err := fs.Meminfo()
	if err != nil {
		return fmt.Errorf("read hardware: parse %s: %w", path, err)
	}
	if mi.MemTotalBytes == nil || *mi.MemTotalBytes == 0 {
		return fmt.Errorf("read hardware: %s has no MemTotal line; is it a proc file system?", path)
	}
	hw.MemTotal = clampInt64(*mi.MemTotalBytes)
	switch {
	case mi.MemAvailableBytes != nil:
		hw.MemAvailable = clampInt64(*mi.MemAvailableBytes)
	default:
		// Kernels before 3.14 do not report MemAvailable. Free memory plus
		// the page cache is the estimate the kernel itself used to advise
		// before it grew the field; it errs high, so the allocation budget
		// (which does not depend on it) remains the real guard.
		var sum uint64
		for _, v := range []*uint64{mi.MemFreeBytes, mi.BuffersBytes, mi.CachedBytes} {
			if v != nil {
				sum += *v
			}
		}
		hw.MemAvailable = clampInt64(sum)
	}
	if mi.SwapTotalBytes != nil {
		hw.SwapTotal = clampInt64(*mi.SwapTotalBytes)
	}
	if mi.SwapFreeBytes != nil {
		hw.SwapFree = clampInt64(*mi.SwapFreeBytes)
	}
	return nil
}

func readDisk(dataDir string, hw *Hardware) error {
	if dataDir == "" {
		return errors.New("read hardware: no data directory given; set the data directory in the agent's config")
	}
	dir, err := nearestExisting(dataDir)
	if err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("read hardware: statfs %s: %w", dir, err)
	}
	// Blocks are counted in fragment-size units; Frsize is 0 on old
	// kernels, where the block size is the unit.
	unit := int64(st.Frsize)
	if unit <= 0 {
		unit = int64(st.Bsize)
	}
	hw.DiskPath = dir
	hw.DiskTotal = mulClamp(clampInt64(uint64(st.Blocks)), unit)
	hw.DiskFree = mulClamp(clampInt64(uint64(st.Bavail)), unit)
	return nil
}

// nearestExisting returns dir, or its closest ancestor that exists, so that
// a node can be sized before its data directory is created.
func nearestExisting(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("read hardware: data directory %q: %w", dir, err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return p, nil
		case err == nil:
			return "", fmt.Errorf("read hardware: data directory %s: %s is a file, not a directory; choose another data directory", abs, p)
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTDIR):
			// ENOTDIR means an ancestor is a file; walking up reports it.
			return "", fmt.Errorf("read hardware: data directory %s: %w", abs, err)
		}
		if parent := filepath.Dir(p); parent == p {
			return "", fmt.Errorf("read hardware: data directory %s: no part of the path exists", abs)
		}
	}
}

// clampInt64 converts a kernel counter to int64; no real machine comes near
// 8 EiB, but a corrupt fixture must not turn into a negative size.
func clampInt64(v uint64) int64 {
	if v > uint64(maxInt64) {
		return maxInt64
	}
	return int64(v)
}
