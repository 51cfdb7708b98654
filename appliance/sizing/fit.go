package sizing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// MinPlan is the smallest memory plan a database may have. Below it an
// empty redis-server (which itself takes a few MiB) has almost no room for
// data, and a typo such as "--memory 1m" for "1g" is more likely than intent.
const MinPlan = 16 * MiB

// InstanceOverhead is the memory one redis-server uses beyond its data:
// the binary, allocator arenas, client and replication buffers at rest.
// maxmemory does not count it, so each instance adds it on top of the plan.
const InstanceOverhead = 16 * MiB

// ErrBelowMinimum is wrapped by Check's error for a plan under
// Policy.MinMemory; it is a bad request, not a lack of room.
var ErrBelowMinimum = errors.New("memory plan below the minimum")

// Policy holds how much of a node the appliance keeps for itself and the
// smallest plan it accepts.
type Policy struct {
	// MinMemory is the smallest memory plan accepted.
	MinMemory int64 `json:"min_memory"`
	// ReserveMemory is kept for the OS, the page cache the OS needs to
	// stay responsive, the agent and sshd: databases never get it.
	ReserveMemory int64 `json:"reserve_memory"`
	// ReserveDisk is kept free on the data file system for logs, the
	// Raft store and packages, so a full disk never stops the agent that
	// would have to repair it.
	ReserveDisk int64 `json:"reserve_disk"`
}

// DefaultPolicy returns the policy for a node: a 16 MiB minimum plan, a
// memory reserve of 512 MiB or 10% of the memory, whichever is more, and a
// disk reserve of 1 GiB or 5% of the file system, whichever is more. The
// fixed floors protect small machines, the percentages large ones, where
// the kernel's own tables and the page cache grow with the machine.
func DefaultPolicy(hw Hardware) Policy {
	return Policy{
		MinMemory:     MinPlan,
		ReserveMemory: max(512*MiB, hw.MemTotal/10),
		ReserveDisk:   max(1*GiB, hw.DiskTotal/20),
	}
}

// Need returns the memory and disk one instance of a database with the given
// flavor and maxmemory takes on its node.
//
// Memory is InstanceOverhead + maxmemory, and for aof and rdb another half
// of maxmemory: BGSAVE and AOF rewrites fork, and while the child writes,
// every page the parent modifies is copied. Half the dataset is a
// conservative bound for a write-heavy database during a save; nordb never
// forks for persistence, so it needs no headroom.
//
// Disk, in multiples of maxmemory (an RDB file is at most about the size of
// the dataset in memory):
//   - rdb: 2x, the dump.rdb plus the temp-*.rdb BGSAVE writes before it
//     renames it over the old one;
//   - aof: 3x, the AOF base file (an RDB preamble of the whole dataset),
//     the incremental file that grows until the next rewrite, and the new
//     base a rewrite writes while the old one still exists;
//   - nordb: nothing.
//
// An unknown flavor is sized like aof, the most demanding, so that a
// mistake can only ever refuse a database, never overcommit a node.
func Need(flavor raftstate.Flavor, maxmemory int64) (mem, disk int64) {
	if maxmemory < 0 {
		maxmemory = 0
	}
	mem = addClamp(InstanceOverhead, maxmemory)
	switch flavor {
	case raftstate.FlavorNoRDB:
		return mem, 0
	case raftstate.FlavorRDB:
		return addClamp(mem, forkHeadroom(maxmemory)), mulClamp(maxmemory, 2)
	default:
		return addClamp(mem, forkHeadroom(maxmemory)), mulClamp(maxmemory, 3)
	}
}

func forkHeadroom(maxmemory int64) int64 { return maxmemory / 2 }

// Allocation is what the instances already placed on a node are owed, as
// computed by Need: the fit check subtracts it from the node's capacity.
type Allocation struct {
	Memory int64 `json:"memory"`
	Disk   int64 `json:"disk"`
}

// Add returns a plus one instance of the given flavor and maxmemory.
func (a Allocation) Add(flavor raftstate.Flavor, maxmemory int64) Allocation {
	mem, disk := Need(flavor, maxmemory)
	return Allocation{Memory: addClamp(a.Memory, mem), Disk: addClamp(a.Disk, disk)}
}

// Allocated sums Need over the instances placed on node in s. except names a
// database to leave out: pass the database being resized, so its current
// plan is not counted next to its new one ("" leaves nothing out).
func Allocated(s *raftstate.State, node, except string) Allocation {
	var a Allocation
	for _, p := range s.InstancesOn(node) {
		if p.Database.Name == except {
			continue
		}
		a = a.Add(p.Database.Flavor, p.Database.MemoryBytes)
	}
	return a
}

// Resource names what a database did not fit in.
type Resource string

// The resources Check measures.
const (
	// ResourceMemory is the node's memory budget: MemTotal less the
	// reserve and the other instances' allocations.
	ResourceMemory Resource = "memory"
	// ResourceAvailableMemory is the memory free right now
	// (MemAvailable less the reserve): it catches memory held by programs
	// outside the appliance, which the budget cannot see.
	ResourceAvailableMemory Resource = "available_memory"
	// ResourceDisk is the data file system's free space less the reserve
	// and the other instances' allocations.
	ResourceDisk Resource = "disk"
)

// FitError says that a database does not fit on a node, with the figures
// and what the user can do. Error() is written for the person who asked.
type FitError struct {
	// Node is the node that was checked.
	Node string `json:"node"`
	// Resource is what ran short.
	Resource Resource `json:"resource"`
	// Need is what the database needs of Resource, Free what the node has.
	Need int64 `json:"need"`
	Free int64 `json:"free"`
	// MaxPlan is the largest memory plan of the requested flavor that would
	// fit on this node, or 0 if none of at least the minimum does.
	MaxPlan int64 `json:"max_plan"`
	msg     string
}

func (e *FitError) Error() string { return e.msg }

// wrapped is an error with its own message that still matches a sentinel
// with errors.Is, so messages need not start with the sentinel's text.
type wrapped struct {
	sentinel error
	msg      string
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.sentinel }

// room is what a node has left, per resource, for the database being checked.
type room struct {
	memory, available, disk int64
}

// short returns the first resource a plan does not fit in, with its need
// and free figures, or "" if it fits.
func (r room) short(flavor raftstate.Flavor, plan int64) (Resource, int64, int64) {
	mem, disk := Need(flavor, plan)
	switch {
	case mem > r.memory:
		return ResourceMemory, mem, r.memory
	case nowNeed(plan) > r.available:
		return ResourceAvailableMemory, nowNeed(plan), r.available
	case disk > r.disk:
		return ResourceDisk, disk, r.disk
	}
	return "", 0, 0
}

// nowNeed is the memory a database takes once full. The available-memory
// check compares this, not Need's memory: the fork headroom is transient and
// already held back in the budget, and MemAvailable - reserve already counts
// the OS twice (its memory is in use and also reserved), so asking for the
// headroom too would refuse databases that fit.
func nowNeed(plan int64) int64 { return addClamp(InstanceOverhead, plan) }

// Check decides whether a database instance of the given flavor and memory
// plan (maxmemory, in bytes) fits on node, whose hardware is hw, under
// policy p, next to the instances already allocated there (see Allocated).
//
// Memory must fit the budget MemTotal - ReserveMemory - alloc.Memory, and
// the plan must also fit in MemAvailable - ReserveMemory right now. Disk
// must fit in DiskFree - ReserveDisk - alloc.Disk; this counts the files
// existing databases have already written twice (they are in DiskFree and
// in their allocation), which errs towards refusing rather than filling the
// disk in the middle of an AOF rewrite, and the disk is shared with
// whatever else the machine stores.
//
// It returns nil, an error wrapping ErrBelowMinimum, an error for an unknown
// flavor, or a *FitError.
func Check(hw Hardware, p Policy, alloc Allocation, flavor raftstate.Flavor, maxmemory int64, node string) error {
	if err := flavor.Check(); err != nil {
		return err
	}
	minimum := max(p.MinMemory, 1)
	if maxmemory < minimum {
		mf, _ := flagSize(max(minimum, MiB))
		if minimum%MiB != 0 {
			mf = fmt.Sprintf("%d", minimum)
		}
		planS, minS := formatPair(maxmemory, minimum)
		return &wrapped{ErrBelowMinimum, fmt.Sprintf("memory %s is below the minimum plan of %s; use --memory %s or more",
			planS, minS, mf)}
	}

	r := room{
		memory:    subClamp(subClamp(hw.MemTotal, p.ReserveMemory), alloc.Memory),
		available: subClamp(hw.MemAvailable, p.ReserveMemory),
		disk:      subClamp(subClamp(hw.DiskFree, p.ReserveDisk), alloc.Disk),
	}
	res, need, free := r.short(flavor, maxmemory)
	if res == "" {
		return nil
	}

	e := &FitError{Node: node, Resource: res, Need: need, Free: free}
	e.MaxPlan = largestPlan(r, flavor, minimum, maxmemory)

	var b strings.Builder
	needS, freeS := formatPair(need, free)
	switch res {
	case ResourceMemory:
		fmt.Fprintf(&b, "database needs %s of memory (%s) but node %s has %s (%s total - %s reserved - %s allocated)",
			needS, memoryParts(flavor, maxmemory), node, freeFigure(freeS, free),
			FormatSize(hw.MemTotal), FormatSize(p.ReserveMemory), FormatSize(alloc.Memory))
	case ResourceAvailableMemory:
		avail := "none available"
		if free > 0 {
			avail = freeS + " available"
		}
		fmt.Fprintf(&b, "database needs %s of memory now (%s plan + %s per-instance overhead) but node %s has %s right now (%s available - %s reserved)",
			needS, FormatSize(maxmemory), FormatSize(InstanceOverhead), node, avail,
			FormatSize(hw.MemAvailable), FormatSize(p.ReserveMemory))
	case ResourceDisk:
		fmt.Fprintf(&b, "database needs %s of disk (%s) but node %s has %s in %s (%s free - %s reserved - %s allocated)",
			needS, diskParts(flavor, maxmemory), node, freeFigure(freeS, free), hw.DiskPath,
			FormatSize(hw.DiskFree), FormatSize(p.ReserveDisk), FormatSize(alloc.Disk))
	}

	var tries []string
	if e.MaxPlan > 0 {
		s, _ := flagSize(e.MaxPlan)
		tries = append(tries, "--memory "+s)
	}
	for _, f := range raftstate.Flavors {
		if f != flavor {
			if res, _, _ := r.short(f, maxmemory); res == "" {
				tries = append(tries, "--flavor "+string(f))
			}
		}
	}
	switch {
	case res == ResourceAvailableMemory && len(tries) > 0:
		fmt.Fprintf(&b, "; free memory on node %s, try %s, or add a node", node, strings.Join(tries, " or "))
	case res == ResourceAvailableMemory:
		fmt.Fprintf(&b, "; free memory on node %s or add a node", node)
	case len(tries) > 0:
		fmt.Fprintf(&b, "; try %s, or add a node", strings.Join(tries, " or "))
	default:
		fmt.Fprintf(&b, "; add a node, or shrink or delete databases on node %s", node)
	}
	e.msg = b.String()
	return e
}

// largestPlan returns the largest plan below want, rounded down to a
// figure that reads well on the command line, that fits r; 0 if none of at
// least minimum does. Fit is monotonic in the plan, so a binary search finds
// the exact boundary.
func largestPlan(r room, flavor raftstate.Flavor, minimum, want int64) int64 {
	lo, hi := int64(0), want // lo fits (or is 0), hi does not
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if res, _, _ := r.short(flavor, mid); res == "" {
			lo = mid
		} else {
			hi = mid
		}
	}
	_, v := flagSize(lo)
	if v < minimum {
		return 0
	}
	return v
}

func memoryParts(flavor raftstate.Flavor, maxmemory int64) string {
	s := FormatSize(maxmemory) + " plan"
	if flavor != raftstate.FlavorNoRDB {
		s += fmt.Sprintf(" + %s fork headroom for %s", FormatSize(forkHeadroom(maxmemory)), flavor)
	}
	return s + fmt.Sprintf(" + %s per-instance overhead", FormatSize(InstanceOverhead))
}

func diskParts(flavor raftstate.Flavor, maxmemory int64) string {
	plan := FormatSize(maxmemory)
	if flavor == raftstate.FlavorRDB {
		return fmt.Sprintf("2 x %s plan for rdb: the dump and the temporary file BGSAVE writes", plan)
	}
	return fmt.Sprintf("3 x %s plan for aof: the base file, the increments and the new base a rewrite writes", plan)
}

// freeFigure says "none free" rather than a negative size when a node is
// already over its budget (after its reserve policy grew, say).
func freeFigure(formatted string, free int64) string {
	if free <= 0 {
		return "none free"
	}
	return formatted + " free"
}
