// Package versions knows which Redis versions the appliance offers, when
// each stops being offered, which redis-server binaries a node has, and
// which one a database asking for a version gets.
package versions

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Status is where a version is in its life.
type Status string

// The statuses of a version.
const (
	// StatusSupported versions can be chosen for new databases.
	StatusSupported Status = "supported"
	// StatusDeprecated versions keep running existing databases, but no
	// new database may be created with them.
	StatusDeprecated Status = "deprecated"
	// StatusEOL versions are past their end of life: nothing new, and
	// existing databases should be upgraded.
	StatusEOL Status = "eol"
	// StatusUnknown is for an installed redis-server whose version is not
	// in the catalogue: it is listed so users see it, but never used.
	StatusUnknown Status = "unknown"
)

// Release is one version in the catalogue.
type Release struct {
	// Version is major.minor, the name databases use ("7.0").
	Version string
	// Released is when upstream published the first x.y.0.
	Released time.Time
	// Deprecated is the last day on which new databases may be created.
	Deprecated time.Time
	// EOL is the last day the version is supported at all.
	EOL time.Time
}

// Status returns where r is in its life at now. The dates are whole days
// in UTC and inclusive: a version deprecated on 2025-02-28 still accepts new
// databases on that day, so every node agrees regardless of its time zone.
func (r Release) Status(now time.Time) Status {
	switch today := now.UTC(); {
	case !today.Before(dayAfter(r.EOL)):
		return StatusEOL
	case !today.Before(dayAfter(r.Deprecated)):
		return StatusDeprecated
	default:
		return StatusSupported
	}
}

func dayAfter(d time.Time) time.Time { return d.AddDate(0, 0, 1) }

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// dateLayout is how dates are shown and serialised.
const dateLayout = "2006-01-02"

// catalogue is every version the appliance offers, oldest first.
//
// The deprecation and end-of-life dates are the appliance's own support
// policy, not upstream's: they say how long this product creates and
// supports databases of each version, and are reviewed and updated with
// each release of redis-appliance. 7.0 is the only version Debian 12
// packages, so it must stay creatable until Debian 12 installs can get a
// newer one.
var catalogue = []Release{
	{Version: "6.2", Released: date(2021, time.February, 22), Deprecated: date(2025, time.February, 28), EOL: date(2025, time.August, 31)},
	{Version: "7.0", Released: date(2022, time.April, 27), Deprecated: date(2027, time.June, 30), EOL: date(2027, time.December, 31)},
	{Version: "7.2", Released: date(2023, time.August, 15), Deprecated: date(2028, time.June, 30), EOL: date(2028, time.December, 31)},
	{Version: "8.0", Released: date(2025, time.May, 2), Deprecated: date(2029, time.June, 30), EOL: date(2029, time.December, 31)},
	{Version: "8.2", Released: date(2025, time.August, 4), Deprecated: date(2030, time.June, 30), EOL: date(2030, time.December, 31)},
}

// Catalogue returns every version the appliance offers, oldest first. The
// slice is a copy.
func Catalogue() []Release {
	return append([]Release(nil), catalogue...)
}

// Lookup returns the catalogue entry for a major.minor version.
func Lookup(version string) (Release, bool) {
	for _, r := range catalogue {
		if r.Version == version {
			return r, true
		}
	}
	return Release{}, false
}

// knownList is "6.2, 7.0, 7.2, 8.0, 8.2" for messages.
func knownList() string {
	names := make([]string, len(catalogue))
	for i, r := range catalogue {
		names[i] = r.Version
	}
	return strings.Join(names, ", ")
}

// versionNumbers splits "7.0" or "7.0.15" into numbers for ordering; ok is
// false if any part is not a number.
func versionNumbers(v string) ([]int, bool) {
	parts := strings.Split(v, ".")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || (len(p) > 1 && p[0] == '0') || p[0] == '+' {
			return nil, false
		}
		nums[i] = n
	}
	return nums, true
}

// less orders versions numerically, so "7.10" sorts after "7.2".
func less(a, b string) bool {
	na, _ := versionNumbers(a)
	nb, _ := versionNumbers(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	return len(na) < len(nb)
}

func init() {
	// The catalogue is hand-edited each release: catch a mistake in it at
	// start rather than as a wrong answer to a user.
	for i, r := range catalogue {
		if _, ok := versionNumbers(r.Version); !ok || strings.Count(r.Version, ".") != 1 {
			panic(fmt.Sprintf("versions: catalogue entry %q is not major.minor", r.Version))
		}
		if !r.Released.Before(r.Deprecated) || r.EOL.Before(r.Deprecated) {
			panic(fmt.Sprintf("versions: catalogue entry %s: dates out of order", r.Version))
		}
		if i > 0 && !less(catalogue[i-1].Version, r.Version) {
			panic(fmt.Sprintf("versions: catalogue entry %s is not after %s", r.Version, catalogue[i-1].Version))
		}
	}
}
