package systemd

import (
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

func testSpec() UnitSpec {
	return UnitSpec{
		Name:        UnitPrefix + "cache-0.service",
		Description: "cache primary",
		ExecStart:   []string{"/usr/bin/redis-server", "/var/lib/redis-appliance/db/cache-0/redis.conf"},
		User:        "redis",
		Group:       "redis",
		Dir:         "/var/lib/redis-appliance/db/cache-0",
	}
}

// unitOptions parses a rendered unit with go-systemd's parser, which follows
// systemd's syntax (sections, continuation lines, comments).
func unitOptions(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	opts, err := unit.DeserializeOptions(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("rendered unit does not parse: %v\n%s", err, data)
	}
	m := map[string][]string{}
	for _, o := range opts {
		k := o.Section + "." + o.Name
		m[k] = append(m[k], o.Value)
	}
	return m
}

// TestRenderUnit proves the unit asks systemd for readiness, restarts and at
// least Debian's hardening, with the instance directory as the only
// writable path.
func TestRenderUnit(t *testing.T) {
	spec := testSpec()
	got := unitOptions(t, RenderUnit(spec))
	// Each of these must appear exactly once with this value.
	want := map[string]string{
		"Unit.Description":                "cache primary",
		"Unit.After":                      "network-online.target",
		"Unit.StartLimitBurst":            "5",
		"Service.Type":                    "notify",
		"Service.ExecStart":               "/usr/bin/redis-server /var/lib/redis-appliance/db/cache-0/redis.conf",
		"Service.Restart":                 "always",
		"Service.RestartSec":              "2s",
		"Service.TimeoutStartSec":         "15min",
		"Service.TimeoutStopSec":          "5min",
		"Service.KillMode":                "mixed",
		"Service.User":                    "redis",
		"Service.Group":                   "redis",
		"Service.WorkingDirectory":        spec.Dir,
		"Service.UMask":                   "0077",
		"Service.LimitNOFILE":             "65535",
		"Service.NoNewPrivileges":         "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ReadWritePaths":          spec.Dir,
		"Service.TemporaryFileSystem":     "/var/lib/redis-appliance/db:ro",
		"Service.BindPaths":               spec.Dir,
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		"Service.PrivateIPC":              "yes",
		"Service.PrivateUsers":            "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.AmbientCapabilities":     "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.MemoryDenyWriteExecute":  "yes",
		"Service.ProtectKernelModules":    "yes",
		"Service.ProtectKernelTunables":   "yes",
		"Service.ProtectKernelLogs":       "yes",
		"Service.ProtectControlGroups":    "yes",
		"Service.ProtectClock":            "yes",
		"Service.ProtectHostname":         "yes",
		"Service.ProtectProc":             "invisible",
		"Service.ProcSubset":              "pid",
		"Service.RestrictRealtime":        "yes",
		"Service.RestrictNamespaces":      "yes",
		"Service.RestrictSUIDSGID":        "yes",
		"Service.LockPersonality":         "yes",
		"Service.RemoveIPC":               "yes",
		"Service.KeyringMode":             "private",
		"Service.SystemCallArchitectures": "native",
		"Service.SystemCallErrorNumber":   "EPERM",
		"Service.NoExecPaths":             "/",
		"Service.ExecPaths":               "/usr/bin/redis-server /usr/lib /lib",
		"Install.WantedBy":                "multi-user.target",
	}
	for k, v := range want {
		vals := got[k]
		if len(vals) != 1 || vals[0] != v {
			t.Errorf("%s = %q, want exactly [%q]", k, vals, v)
		}
	}
	// The filter is an allow list followed by a deny list; order matters.
	if f := got["Service.SystemCallFilter"]; !slices.Equal(f, []string{"@system-service", "~@privileged @resources"}) {
		t.Errorf("SystemCallFilter = %q", f)
	}
	// The old name of ReadWritePaths= would add a writable path too.
	if v, ok := got["Service.ReadWriteDirectories"]; ok {
		t.Errorf("ReadWriteDirectories=%q: only the instance directory may be writable", v)
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestRenderUnitWithoutUser proves User=/Group= are left out, not empty,
// when the spec has none (systemd rejects "User=").
func TestRenderUnitWithoutUser(t *testing.T) {
	spec := testSpec()
	spec.User, spec.Group = "", ""
	got := unitOptions(t, RenderUnit(spec))
	for _, k := range []string{"Service.User", "Service.Group"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s present without a user in the spec", k)
		}
	}
}

// TestRenderUnitQuotesArgs proves arguments survive systemd's command-line
// parsing: spaces, quotes, backslashes, "$" (environment expansion), "%"
// (specifiers) and a lone ";" (command separator). The same rendering was
// checked against systemd 252 in the lab: printf saw exactly these
// arguments.
func TestRenderUnitQuotesArgs(t *testing.T) {
	spec := testSpec()
	spec.ExecStart = []string{"/usr/bin/redis-server", "/etc/redis appliance/redis.conf", `say "hi" \ $HOME 100%`, ";", "", "plain"}
	spec.Description = "50% of\nthe cache"
	got := unitOptions(t, RenderUnit(spec))
	wantExec := `/usr/bin/redis-server "/etc/redis appliance/redis.conf" "say \"hi\" \\ $$HOME 100%%" ";" "" plain`
	if e := first(got["Service.ExecStart"]); e != wantExec {
		t.Errorf("ExecStart=%s\nwant      %s", e, wantExec)
	}
	if d := first(got["Unit.Description"]); d != "50%% of the cache" {
		t.Errorf("Description=%q, want the %% doubled and the newline gone", d)
	}
}

func TestQuoteWord(t *testing.T) {
	for in, want := range map[string]string{
		"simple":     "simple",
		"/a/b-c_d.e": "/a/b-c_d.e",
		"a b":        `"a b"`,
		"tab\there":  `"tab\there"`,
		"nl\n":       `"nl\n"`,
		"bell\a":     `"bell\x07"`,
		"it's":       `"it's"`,
		";":          `";"`,
		"":           `""`,
		"%i":         "%%i",
	} {
		if got := quoteWord(in); got != want {
			t.Errorf("quoteWord(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestValidate proves specs that systemd would misread are refused with a
// message naming the field.
func TestValidate(t *testing.T) {
	if err := testSpec().Validate(); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	bad := map[string]func(*UnitSpec){
		"must start with": func(s *UnitSpec) { s.Name = "other.service" },
		".service":        func(s *UnitSpec) { s.Name = UnitPrefix + "x.socket" },
		"ExecStart":       func(s *UnitSpec) { s.ExecStart = nil },
		"absolute path":   func(s *UnitSpec) { s.ExecStart = []string{"redis-server"} },
		"directory":       func(s *UnitSpec) { s.Dir = "/var/lib/with space" },
		"clean absolute":  func(s *UnitSpec) { s.Dir = "/var/lib/../etc" },
		// Its parent would be hidden: all of / here.
		"two levels below": func(s *UnitSpec) { s.Dir = "/srv" },
		"colons":           func(s *UnitSpec) { s.Dir = "/var/lib/a:b" },
		"user":             func(s *UnitSpec) { s.User = "Root;rm" },
		"group":            func(s *UnitSpec) { s.Group = "a b" },
		"one line":         func(s *UnitSpec) { s.Description = "a\nb" },
	}
	for want, mutate := range bad {
		s := testSpec()
		mutate(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate after breaking %q: got %v", want, err)
		}
	}
}
