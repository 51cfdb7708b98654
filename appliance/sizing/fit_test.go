package sizing

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// TestDefaultPolicy proves the reserves use their floors on small machines
// and their percentages on large ones.
func TestDefaultPolicy(t *testing.T) {
	tests := []struct {
		name string
		hw   Hardware
		want Policy
	}{
		{"small machine: floors", Hardware{MemTotal: 2 * GiB, DiskTotal: 10 * GiB},
			Policy{MinMemory: 16 * MiB, ReserveMemory: 512 * MiB, ReserveDisk: GiB}},
		{"exactly at the floors", Hardware{MemTotal: 5 * GiB, DiskTotal: 20 * GiB},
			Policy{MinMemory: 16 * MiB, ReserveMemory: 512 * MiB, ReserveDisk: GiB}},
		{"large machine: percentages", Hardware{MemTotal: 64 * GiB, DiskTotal: 1000 * GiB},
			Policy{MinMemory: 16 * MiB, ReserveMemory: 64 * GiB / 10, ReserveDisk: 50 * GiB}},
		{"nothing known: floors", Hardware{},
			Policy{MinMemory: 16 * MiB, ReserveMemory: 512 * MiB, ReserveDisk: GiB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultPolicy(tt.hw); got != tt.want {
				t.Errorf("DefaultPolicy = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestNeed proves each flavor's memory and disk need as documented on Need.
func TestNeed(t *testing.T) {
	tests := []struct {
		flavor   raftstate.Flavor
		plan     int64
		mem, dsk int64
	}{
		{raftstate.FlavorNoRDB, GiB, GiB + 16*MiB, 0},
		{raftstate.FlavorRDB, GiB, GiB + 512*MiB + 16*MiB, 2 * GiB},
		{raftstate.FlavorAOF, GiB, GiB + 512*MiB + 16*MiB, 3 * GiB},
		{raftstate.FlavorAOF, 0, 16 * MiB, 0},
		{raftstate.FlavorAOF, -5, 16 * MiB, 0},
		{"bogus", GiB, GiB + 512*MiB + 16*MiB, 3 * GiB}, // sized like aof
		// Saturates instead of wrapping to a negative need that would fit.
		{raftstate.FlavorAOF, math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{raftstate.FlavorNoRDB, math.MaxInt64, math.MaxInt64, 0},
	}
	for _, tt := range tests {
		mem, dsk := Need(tt.flavor, tt.plan)
		if mem != tt.mem || dsk != tt.dsk {
			t.Errorf("Need(%s, %d) = %d, %d; want %d, %d", tt.flavor, tt.plan, mem, dsk, tt.mem, tt.dsk)
		}
	}
}

// TestAllocated proves a node's allocation is the sum of Need over the
// instances placed on it, skipping the database being resized.
func TestAllocated(t *testing.T) {
	s := raftstate.NewState()
	s.Databases["cache"] = &raftstate.Database{Name: "cache", Flavor: raftstate.FlavorNoRDB, MemoryBytes: GiB,
		Instances: []raftstate.Instance{{ID: "cache-0", Node: "n1"}, {ID: "cache-1", Node: "n2"}}}
	s.Databases["sessions"] = &raftstate.Database{Name: "sessions", Flavor: raftstate.FlavorAOF, MemoryBytes: 256 * MiB,
		Instances: []raftstate.Instance{{ID: "sessions-0", Node: "n1"}}}

	tests := []struct {
		node, except string
		want         Allocation
	}{
		{"n1", "", Allocation{Memory: GiB + 16*MiB + 256*MiB + 128*MiB + 16*MiB, Disk: 768 * MiB}},
		{"n1", "sessions", Allocation{Memory: GiB + 16*MiB}},
		{"n2", "", Allocation{Memory: GiB + 16*MiB}},
		{"n3", "", Allocation{}},
	}
	for _, tt := range tests {
		if got := Allocated(s, tt.node, tt.except); got != tt.want {
			t.Errorf("Allocated(%s, except %q) = %+v, want %+v", tt.node, tt.except, got, tt.want)
		}
	}
}

// roomy is a node where anything reasonable fits; cases shrink one figure.
var roomy = Hardware{
	MemTotal: 64 * GiB, MemAvailable: 60 * GiB, CPUs: 8,
	DiskPath: "/var/lib/redis-appliance", DiskTotal: 1000 * GiB, DiskFree: 900 * GiB,
}

// TestCheck proves what fits is accepted and what does not is refused with
// the figures and the way out, in the words a user reads.
func TestCheck(t *testing.T) {
	// The node of the message in the design: 15.6 GiB of which 12.9 GiB
	// are allocated and 1.6 GiB reserved.
	n1 := roomy
	n1.MemTotal = 16000 * MiB
	n1.MemAvailable = 10 * GiB
	pol := func(hw Hardware) Policy { return DefaultPolicy(hw) }

	busy := roomy
	busy.MemAvailable = 1 * GiB // something else holds the memory

	smallDisk := roomy
	smallDisk.DiskFree = 3*GiB + 512*MiB // reserve 50 GiB of 1000: none free
	smallDisk.DiskTotal = 20 * GiB       // reserve 1 GiB

	tests := []struct {
		name     string
		hw       Hardware
		alloc    Allocation
		flavor   raftstate.Flavor
		plan     int64
		want     string // "" means it fits
		resource Resource
		maxPlan  string // the suggested --memory; "" for none
	}{
		{name: "fits", hw: roomy, flavor: raftstate.FlavorAOF, plan: 8 * GiB},
		{name: "minimum plan fits", hw: roomy, flavor: raftstate.FlavorNoRDB, plan: 16 * MiB},
		{name: "memory budget, aof, as in the design", hw: n1, alloc: Allocation{Memory: 13200 * MiB},
			flavor: raftstate.FlavorAOF, plan: GiB, resource: ResourceMemory, maxPlan: "789mb",
			want: "database needs 1.5 GiB of memory (1 GiB plan + 512 MiB fork headroom for aof + 16 MiB per-instance overhead) " +
				"but node n1 has 1.2 GiB free (15.6 GiB total - 1.6 GiB reserved - 12.9 GiB allocated); " +
				"try --memory 789mb or --flavor nordb, or add a node"},
		{name: "memory budget, nordb has no headroom to drop", hw: n1, alloc: Allocation{Memory: 14000 * MiB},
			flavor: raftstate.FlavorNoRDB, plan: GiB, resource: ResourceMemory, maxPlan: "384mb",
			want: "database needs 1 GiB of memory (1 GiB plan + 16 MiB per-instance overhead) " +
				"but node n1 has 400 MiB free (15.6 GiB total - 1.6 GiB reserved - 13.7 GiB allocated); " +
				"try --memory 384mb, or add a node"},
		{name: "node over budget: nothing to suggest", hw: n1, alloc: Allocation{Memory: 15 * GiB},
			flavor: raftstate.FlavorRDB, plan: 256 * MiB, resource: ResourceMemory,
			want: "database needs 400 MiB of memory (256 MiB plan + 128 MiB fork headroom for rdb + 16 MiB per-instance overhead) " +
				"but node n1 has none free (15.6 GiB total - 1.6 GiB reserved - 15 GiB allocated); " +
				"add a node, or shrink or delete databases on node n1"},
		{name: "available memory now", hw: busy, flavor: raftstate.FlavorNoRDB, plan: GiB,
			resource: ResourceAvailableMemory,
			want: "database needs 1 GiB of memory now (1 GiB plan + 16 MiB per-instance overhead) " +
				"but node n1 has none available right now (1 GiB available - 6.4 GiB reserved); " +
				"free memory on node n1 or add a node"},
		{name: "available memory now, smaller plan fits", hw: func() Hardware { h := busy; h.MemAvailable = 8 * GiB; return h }(),
			flavor: raftstate.FlavorRDB, plan: 2 * GiB, resource: ResourceAvailableMemory, maxPlan: "1.5gb",
			want: "database needs 2 GiB of memory now (2 GiB plan + 16 MiB per-instance overhead) " +
				"but node n1 has 1.6 GiB available right now (8 GiB available - 6.4 GiB reserved); " +
				"free memory on node n1, try --memory 1.5gb, or add a node"},
		{name: "disk, aof: rdb and nordb fit", hw: smallDisk, flavor: raftstate.FlavorAOF, plan: GiB,
			alloc: Allocation{Disk: 512 * MiB}, resource: ResourceDisk, maxPlan: "682mb",
			want: "database needs 3 GiB of disk (3 x 1 GiB plan for aof: the base file, the increments and the new base a rewrite writes) " +
				"but node n1 has 2 GiB free in /var/lib/redis-appliance (3.5 GiB free - 1 GiB reserved - 512 MiB allocated); " +
				"try --memory 682mb or --flavor rdb or --flavor nordb, or add a node"},
		{name: "disk, rdb", hw: smallDisk, flavor: raftstate.FlavorRDB, plan: 2 * GiB,
			resource: ResourceDisk, maxPlan: "1.2gb",
			want: "database needs 4 GiB of disk (2 x 2 GiB plan for rdb: the dump and the temporary file BGSAVE writes) " +
				"but node n1 has 2.5 GiB free in /var/lib/redis-appliance (3.5 GiB free - 1 GiB reserved - 0 B allocated); " +
				"try --memory 1.2gb or --flavor nordb, or add a node"},
		{name: "figures that round alike print apart", hw: Hardware{MemTotal: 2*GiB + 512*MiB, MemAvailable: 2*GiB + 512*MiB, DiskFree: 100 * GiB, DiskTotal: 100 * GiB, DiskPath: "/"},
			flavor: raftstate.FlavorNoRDB, plan: 2 * GiB, resource: ResourceMemory, maxPlan: "1.9gb",
			alloc: Allocation{Memory: 8 * MiB},
			want: "database needs 2.02 GiB of memory (2 GiB plan + 16 MiB per-instance overhead) " +
				"but node n1 has 1.99 GiB free (2.5 GiB total - 512 MiB reserved - 8 MiB allocated); try --memory 1.9gb, or add a node"},
		{name: "absurd allocation cannot wrap into room", hw: Hardware{MemAvailable: GiB, DiskFree: GiB},
			alloc: Allocation{Memory: math.MaxInt64, Disk: math.MaxInt64}, flavor: raftstate.FlavorNoRDB, plan: 16 * MiB,
			resource: ResourceMemory,
			want: "database needs 32 MiB of memory (16 MiB plan + 16 MiB per-instance overhead) " +
				"but node n1 has none free (0 B total - 512 MiB reserved - 8 EiB allocated); add a node, or shrink or delete databases on node n1"},
		{name: "absurd plan is refused, not wrapped around", hw: roomy, flavor: raftstate.FlavorAOF, plan: math.MaxInt64,
			resource: ResourceMemory, maxPlan: "38.3gb",
			want: "database needs 8 EiB of memory (8 EiB plan + 4 EiB fork headroom for aof + 16 MiB per-instance overhead) " +
				"but node n1 has 57.6 GiB free (64 GiB total - 6.4 GiB reserved - 0 B allocated); try --memory 38.3gb, or add a node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pol(tt.hw)
			err := Check(tt.hw, p, tt.alloc, tt.flavor, tt.plan, "n1")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check: %v, want it to fit", err)
				}
				return
			}
			var fe *FitError
			if !errors.As(err, &fe) {
				t.Fatalf("Check = %v, want a *FitError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("message\n got %s\nwant %s", err, tt.want)
			}
			var wantMax int64
			if tt.maxPlan != "" {
				wantMax = mustParse(t, tt.maxPlan)
			}
			if fe.Resource != tt.resource || fe.Node != "n1" || fe.MaxPlan != wantMax {
				t.Errorf("FitError{Resource %s, Node %s, MaxPlan %d}, want %s, n1, %d (%s)",
					fe.Resource, fe.Node, fe.MaxPlan, tt.resource, wantMax, tt.maxPlan)
			}
			if fe.Need <= fe.Free {
				t.Errorf("Need %d <= Free %d in a refusal", fe.Need, fe.Free)
			}
			// Every way out the message offers must really fit.
			if fe.MaxPlan > 0 {
				if err := Check(tt.hw, p, tt.alloc, tt.flavor, fe.MaxPlan, "n1"); err != nil {
					t.Errorf("suggested plan %d does not fit: %v", fe.MaxPlan, err)
				}
				// Suggestions step by 1 MiB below 1 GiB and 0.1 GiB above.
				step := MiB
				if fe.MaxPlan >= GiB {
					step = GiB/10 + 1
				}
				if err := Check(tt.hw, p, tt.alloc, tt.flavor, fe.MaxPlan+step, "n1"); err == nil {
					t.Errorf("suggested plan %d is not the largest: %d fits too", fe.MaxPlan, fe.MaxPlan+step)
				}
			}
			for _, f := range raftstate.Flavors {
				if strings.Contains(tt.want, "--flavor "+string(f)) {
					if err := Check(tt.hw, p, tt.alloc, f, tt.plan, "n1"); err != nil {
						t.Errorf("suggested --flavor %s does not fit: %v", f, err)
					}
				}
			}
		})
	}
}

// TestCheck_BadRequests proves a plan below the minimum and an unknown
// flavor are refused as bad input, before any room is measured.
func TestCheck_BadRequests(t *testing.T) {
	tests := []struct {
		name    string
		pol     Policy
		flavor  raftstate.Flavor
		plan    int64
		want    string
		minimum bool
	}{
		{"below minimum", DefaultPolicy(roomy), raftstate.FlavorAOF, MiB,
			"memory 1 MiB is below the minimum plan of 16 MiB; use --memory 16mb or more", true},
		{"zero", DefaultPolicy(roomy), raftstate.FlavorAOF, 0,
			"memory 0 B is below the minimum plan of 16 MiB; use --memory 16mb or more", true},
		{"negative", DefaultPolicy(roomy), raftstate.FlavorNoRDB, -GiB,
			"memory -1 GiB is below the minimum plan of 16 MiB; use --memory 16mb or more", true},
		{"zero is refused even with no minimum", Policy{}, raftstate.FlavorNoRDB, 0,
			"memory 0 B is below the minimum plan of 1 B; use --memory 1 or more", true},
		{"just below minimum", DefaultPolicy(roomy), raftstate.FlavorRDB, 16*MiB - 1,
			"memory 16777215 bytes is below the minimum plan of 16777216 bytes; use --memory 16mb or more", true},
		{"unknown flavor", DefaultPolicy(roomy), "fast", GiB,
			`unknown flavor "fast": use aof (AOF+RDB), rdb (RDB only) or nordb (memory only)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(roomy, tt.pol, Allocation{}, tt.flavor, tt.plan, "n1")
			if err == nil {
				t.Fatal("Check accepted it")
			}
			if err.Error() != tt.want {
				t.Errorf("message\n got %s\nwant %s", err, tt.want)
			}
			if errors.Is(err, ErrBelowMinimum) != tt.minimum {
				t.Errorf("errors.Is(ErrBelowMinimum) = %v, want %v", !tt.minimum, tt.minimum)
			}
			var fe *FitError
			if errors.As(err, &fe) {
				t.Errorf("bad input reported as a *FitError")
			}
		})
	}
}

func mustParse(t *testing.T, s string) int64 {
	t.Helper()
	v, err := ParseSize(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
