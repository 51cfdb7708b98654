package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-appliance/redis-appliance/appliance/failover"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad_FileOverridesDefaults(t *testing.T) {
	c, err := Load(write(t, "node_name: n7\nport_range: 7000-7010\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "n7" || c.PortMin != 7000 || c.PortMax != 7010 || c.Bootstrap != "auto" || c.RaftAddr != "127.0.0.1:7481" {
		t.Fatalf("loaded %+v", c)
	}
}

func TestLoad_EmptyFileMeansDefaults(t *testing.T) {
	c, err := Load(write(t, ""))
	if err != nil || c.PortMin != 6400 || c.PortMax != 6999 {
		t.Fatalf("%+v %v", c, err)
	}
	if f := c.Failover; f.Settings != failover.Defaults {
		t.Fatalf("failover defaults: %+v, want %+v (the embedded file and failover.Defaults must agree)", f.Settings, failover.Defaults)
	}
}

func TestLoad_RefusesBadConfig(t *testing.T) {
	cases := map[string]string{
		"node_nmae: x\n":                 "node_nmae",
		"port_range: 7000\n":             "port_range",
		"port_range: 9000-8000\n":        "port_range",
		"sentinel_port: 70000\n":         "sentinel_port",
		"failover:\n  lease: 800ms\n":    "must be at least 300ms shorter",
		"failover:\n  detection: soon\n": "failover.detection",
		"failover:\n  max_lag: lots\n":   "failover.max_lag",
		"bootstrap: sometimes\n":         "bootstrap",
		"supervisor: runit\n":            "supervisor",
		"bind: \"\"\n":                   "bind",
		// Point 9 of issue 15: values that overflowed or were silently
		// taken before, each refused with its key and the allowed range.
		"failover:\n  max_lag: 9999999999gb\n":                               "failover.max_lag \"9999999999gb\": want a size from 0 to 1tb",
		"failover:\n  max_lag: 2tb\n":                                        "failover.max_lag is 2199023255552 bytes: want a size from 0 to 1tb",
		"failover:\n  switchover_max_lag: " + strings.Repeat("9", 40) + "\n": "failover.switchover_max_lag",
		"failover:\n  detection: 0s\n":                                       "failover.detection \"0s\": want a positive duration",
		"failover:\n  detection: -1s\n":                                      "failover.detection \"-1s\": want a positive duration",
		"failover:\n  lease: 0ms\n":                                          "failover.lease",
		"failover:\n  cooldown: -30s\n":                                      "failover.cooldown",
		"failover:\n  lease: 100ms\n":                                        "failover.lease is 100ms: want a duration from 660ms",
		"failover:\n  detection: 10m\n":                                      "failover.detection is 10m0s: want a duration from 960ms to 5m0s",
	}
	for body, says := range cases {
		_, err := Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: err = %v, want one naming %s", body, err, says)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("an explicit missing config file was accepted")
	}
}

func TestDefaultYAML_DocumentsEveryOption(t *testing.T) {
	for _, key := range []string{"node_name", "data_dir", "socket", "socket_group", "raft_addr", "bootstrap", "bind", "port_range", "sentinel_port", "instance_user", "unit_dir", "supervisor", "redis_paths", "log_level"} {
		if !strings.Contains(string(DefaultYAML()), "\n"+key+":") {
			t.Errorf("default.yaml does not document %s", key)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{"Web-01.example.com": "web-01", "1host": "node-1host", "": "node-"} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}
