package versions

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// today is the day this catalogue was written against.
var today = time.Date(2026, time.November, 21, 12, 0, 0, 0, time.UTC)

var (
	debian = Installed{Version: "7.0", Full: "7.0.15", Path: "/usr/bin/redis-server"}
	old62  = Installed{Version: "6.2", Full: "6.2.14", Path: "/opt/redis-6.2/bin/redis-server"}
	v72    = Installed{Version: "7.2", Full: "7.2.4", Path: "/opt/redis-7.2/bin/redis-server"}
	v74    = Installed{Version: "7.4", Full: "7.4.1", Path: "/opt/redis-7.4/bin/redis-server"}
	v82    = Installed{Version: "8.2", Full: "8.2.1", Path: "/opt/redis-8.2/bin/redis-server"}
)

// TestCatalogue proves the catalogue offers exactly the versions the
// product sells, with the policy dates, and that callers cannot change it.
func TestCatalogue(t *testing.T) {
	c := Catalogue()
	var got []string
	for _, r := range c {
		got = append(got, r.Version+" "+r.Deprecated.Format(dateLayout)+" "+r.EOL.Format(dateLayout))
	}
	want := []string{
		"6.2 2025-02-28 2025-08-31",
		"7.0 2027-06-30 2027-12-31",
		"7.2 2028-06-30 2028-12-31",
		"8.0 2029-06-30 2029-12-31",
		"8.2 2030-06-30 2030-12-31",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("catalogue = %q, want %q", got, want)
	}
	c[0].Version = "x"
	if r, ok := Lookup("6.2"); !ok || r.Version != "6.2" {
		t.Error("changing Catalogue()'s result changed the catalogue")
	}
	if _, ok := Lookup("6.0"); ok {
		t.Error("Lookup(6.0) found a version that is not offered")
	}
}

// TestStatus proves the dates are inclusive last days in UTC: a version is
// creatable through the whole of its deprecation date, wherever the node is.
func TestStatus(t *testing.T) {
	r62, _ := Lookup("6.2")
	r70, _ := Lookup("7.0")
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name string
		r    Release
		now  time.Time
		want Status
	}{
		{"7.0 today", r70, today, StatusSupported},
		{"6.2 today", r62, today, StatusEOL},
		{"6.2 long before", r62, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), StatusSupported},
		{"6.2 last minute of deprecation day", r62, time.Date(2025, 2, 28, 23, 59, 59, 0, time.UTC), StatusSupported},
		{"6.2 first second after", r62, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), StatusDeprecated},
		{"6.2 evening of the 28th in EST is March in UTC", r62, time.Date(2025, 2, 28, 20, 0, 0, 0, est), StatusDeprecated},
		{"6.2 last day of life", r62, time.Date(2025, 8, 31, 12, 0, 0, 0, time.UTC), StatusDeprecated},
		{"6.2 after end of life", r62, time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC), StatusEOL},
		{"7.0 stays creatable to mid 2027", r70, time.Date(2027, 6, 30, 23, 0, 0, 0, time.UTC), StatusSupported},
		{"7.0 end of life", r70, time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC), StatusEOL},
	}
	for _, tt := range tests {
		if got := tt.r.Status(tt.now); got != tt.want {
			t.Errorf("%s: Status = %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestResolve proves which binary a new database gets for each way of
// asking, and that every refusal says why and what to ask for instead.
func TestResolve(t *testing.T) {
	rich := []Installed{old62, debian, v72, v74, v82}
	tests := []struct {
		name      string
		requested string
		installed []Installed
		now       time.Time
		want      Installed
		wantErr   string
		sentinel  error
	}{
		{name: "default on Debian 12 is 7.0", installed: []Installed{debian}, want: debian},
		{name: "default is the newest supported", installed: rich, want: v82},
		{name: "default skips an end-of-life version", installed: []Installed{old62, debian}, want: debian},
		{name: "major picks newest installed minor", requested: "7", installed: rich, want: v72},
		{name: "major on Debian", requested: "7", installed: []Installed{debian}, want: debian},
		{name: "major.minor", requested: "7.0", installed: rich, want: debian},
		{name: "spaces are trimmed", requested: " 7.0 ", installed: rich, want: debian},
		{name: "exact patch", requested: "7.0.15", installed: []Installed{debian}, want: debian},
		{name: "deprecated version resolves before its date", requested: "6.2", installed: []Installed{old62, debian},
			now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), want: old62},

		{name: "unknown", requested: "9.9", installed: rich, sentinel: ErrUnknownVersion,
			wantErr: `unknown version "9.9"; known: 6.2, 7.0, 7.2, 8.0, 8.2 (see redis-appliance versions)`},
		{name: "unknown major", requested: "5", installed: rich, sentinel: ErrUnknownVersion,
			wantErr: `unknown version "5"; known: 6.2, 7.0, 7.2, 8.0, 8.2 (see redis-appliance versions)`},
		{name: "installed but not in the catalogue", requested: "7.4", installed: rich, sentinel: ErrUnknownVersion,
			wantErr: `unknown version "7.4"; known: 6.2, 7.0, 7.2, 8.0, 8.2 (see redis-appliance versions)`},
		{name: "garbage", requested: "latest", installed: rich, sentinel: ErrUnknownVersion,
			wantErr: `unknown version "latest"; known: 6.2, 7.0, 7.2, 8.0, 8.2 (see redis-appliance versions)`},
		{name: "v prefix", requested: "v7.0", installed: rich, sentinel: ErrUnknownVersion,
			wantErr: `unknown version "v7.0"; known: 6.2, 7.0, 7.2, 8.0, 8.2 (see redis-appliance versions)`},
		{name: "four parts", requested: "7.0.15.1", installed: rich, sentinel: ErrUnknownVersion,
			wantErr: `unknown version "7.0.15.1"; known: 6.2, 7.0, 7.2, 8.0, 8.2 (see redis-appliance versions)`},

		{name: "not installed", requested: "7.2", installed: []Installed{debian}, sentinel: ErrNotInstalled,
			wantErr: "version 7.2 is not installed (installed: 7.0.15 at /usr/bin/redis-server); " +
				"install it (on Debian: apt-get install redis-server) or add the binary's path to redis_paths in the config"},
		{name: "major not installed", requested: "8", installed: []Installed{old62, debian}, sentinel: ErrNotInstalled,
			wantErr: "no supported version 8.x is installed (supported: 8.0, 8.2; installed: 7.0.15 at /usr/bin/redis-server, 6.2.14 at /opt/redis-6.2/bin/redis-server (eol)); " +
				"install it (on Debian: apt-get install redis-server) or add the binary's path to redis_paths in the config"},
		{name: "other patch installed", requested: "7.0.11", installed: []Installed{debian}, sentinel: ErrNotInstalled,
			wantErr: "version 7.0.11 is not installed: 7.0 is installed as 7.0.15 at /usr/bin/redis-server; ask for 7.0 to use it"},
		{name: "nothing installed", installed: nil, sentinel: ErrNotInstalled,
			wantErr: "no supported version is installed (installed: none); install a supported version (see redis-appliance versions): " +
				"on Debian apt-get install redis-server, or add the binary's path to redis_paths in the config"},
		{name: "only an end-of-life version installed", installed: []Installed{old62}, sentinel: ErrNotInstalled,
			wantErr: "no supported version is installed (installed: 6.2.14 at /opt/redis-6.2/bin/redis-server (eol)); install a supported version (see redis-appliance versions): " +
				"on Debian apt-get install redis-server, or add the binary's path to redis_paths in the config"},

		{name: "end of life although installed", requested: "6.2", installed: []Installed{old62, debian}, sentinel: ErrEndOfLife,
			wantErr: "version 6.2 reached its end of life on 2025-08-31: no new databases; use 7.0, the newest supported version installed"},
		{name: "end of life by major", requested: "6", installed: []Installed{old62, debian}, sentinel: ErrEndOfLife,
			wantErr: "version 6.2 reached its end of life on 2025-08-31: no new databases; use 7.0, the newest supported version installed"},
		{name: "end of life with patch", requested: "6.2.14", installed: []Installed{old62, debian}, sentinel: ErrEndOfLife,
			wantErr: "version 6.2 reached its end of life on 2025-08-31: no new databases; use 7.0, the newest supported version installed"},
		{name: "deprecated", requested: "6.2", installed: []Installed{old62, debian}, sentinel: ErrDeprecated,
			now:     time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
			wantErr: "version 6.2 is deprecated: no new databases after 2025-02-28 (existing ones run until its end of life on 2025-08-31); use 7.0, the newest supported version installed"},
		{name: "deprecated and nothing newer installed", requested: "7.0", installed: []Installed{debian}, sentinel: ErrDeprecated,
			now:     time.Date(2027, 9, 1, 0, 0, 0, 0, time.UTC),
			wantErr: "version 7.0 is deprecated: no new databases after 2027-06-30 (existing ones run until its end of life on 2027-12-31); no supported version is installed: install one (see redis-appliance versions)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = today
			}
			got, err := Resolve(tt.requested, tt.installed, now)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("Resolve(%q) = %+v, %v; want %+v", tt.requested, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve(%q) = %+v, want an error", tt.requested, got)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Resolve(%q) error\n got %s\nwant %s", tt.requested, err, tt.wantErr)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error does not wrap %v", tt.sentinel)
			}
		})
	}
}

// TestResolve_DiscoveredFakeDeprecated proves end to end that a version
// installed on the node but past its dates is refused: a FAKE 6.2
// redis-server is discovered next to the real 7.0 and asking for 6.2 fails,
// while the default and "7.0" get the real binary.
func TestResolve_DiscoveredFakeDeprecated(t *testing.T) {
	needRealRedis(t)
	tmp := t.TempDir()
	writeFakeRedis(t, filepath.Join(tmp, "redis-6.2", "bin"), fake62)
	installed, err := discover(context.Background(), "/usr/bin",
		[]string{filepath.Join(tmp, "redis-*", "bin", "redis-server")}, 2*time.Second)
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	if len(installed) != 2 || installed[0].Full != "6.2.14" || installed[1].Full != "7.0.15" {
		t.Fatalf("discover = %+v, want the fake 6.2.14 and the real 7.0.15", installed)
	}
	if _, err := Resolve("6.2", installed, today); !errors.Is(err, ErrEndOfLife) {
		t.Errorf("Resolve(6.2) = %v, want ErrEndOfLife", err)
	}
	deprecatedDay := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	if _, err := Resolve("6.2", installed, deprecatedDay); !errors.Is(err, ErrDeprecated) {
		t.Errorf("Resolve(6.2) on %s = %v, want ErrDeprecated", deprecatedDay.Format(dateLayout), err)
	}
	for _, req := range []string{"", "7", "7.0", "7.0.15"} {
		got, err := Resolve(req, installed, today)
		if err != nil || got.Path != realRedis {
			t.Errorf("Resolve(%q) = %+v, %v; want %s", req, got, err, realRedis)
		}
	}
}

// TestList proves the versions table: every catalogue version with its
// status and dates, what is installed where, the default marked once, and
// installed versions the catalogue does not know listed as unknown.
func TestList(t *testing.T) {
	got := List([]Installed{old62, debian, v74}, map[string][]string{"7.0": {"n1", "n2"}}, today)
	want := []api.Version{
		{Version: "6.2", Status: "eol", Released: "2021-02-22", Deprecated: "2025-02-28", EndOfLife: "2025-08-31",
			Installed: true, Full: "6.2.14", Path: old62.Path},
		{Version: "7.0", Status: "supported", Released: "2022-04-27", Deprecated: "2027-06-30", EndOfLife: "2027-12-31",
			Installed: true, Full: "7.0.15", Path: debian.Path, Nodes: []string{"n1", "n2"}, Default: true},
		{Version: "7.2", Status: "supported", Released: "2023-08-15", Deprecated: "2028-06-30", EndOfLife: "2028-12-31"},
		{Version: "8.0", Status: "supported", Released: "2025-05-02", Deprecated: "2029-06-30", EndOfLife: "2029-12-31"},
		{Version: "8.2", Status: "supported", Released: "2025-08-04", Deprecated: "2030-06-30", EndOfLife: "2030-12-31"},
		{Version: "7.4", Status: "unknown", Installed: true, Full: "7.4.1", Path: v74.Path},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List =\n%+v\nwant\n%+v", got, want)
	}

	// With nothing supported installed there is no default.
	for _, r := range List([]Installed{old62}, nil, today) {
		if r.Default {
			t.Errorf("List marks %s as default with only an end-of-life version installed", r.Version)
		}
	}
}
