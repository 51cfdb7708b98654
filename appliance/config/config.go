// Package config loads the agent's configuration: the embedded defaults,
// then the file an operator edits, strictly parsed.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redis-appliance/redis-appliance/appliance/failover"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the documented default configuration file.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// SystemPath is where packages install the configuration file.
const SystemPath = "/etc/redis-appliance/config.yaml"

// Config is the agent's configuration.
type Config struct {
	NodeName      string   `yaml:"node_name"`
	DataDir       string   `yaml:"data_dir"`
	Socket        string   `yaml:"socket"`
	SocketGroup   string   `yaml:"socket_group"`
	AdvertiseAddr string   `yaml:"advertise_addr"`
	RaftAddr      string   `yaml:"raft_addr"`
	ClusterAddr   string   `yaml:"cluster_addr"`
	Bootstrap     string   `yaml:"bootstrap"`
	Bind          string   `yaml:"bind"`
	PortRange     string   `yaml:"port_range"`
	SentinelPort  int      `yaml:"sentinel_port"`
	Failover      Failover `yaml:"failover"`
	InstanceUser  string   `yaml:"instance_user"`
	UnitDir       string   `yaml:"unit_dir"`
	Supervisor    string   `yaml:"supervisor"`
	RedisPaths    []string `yaml:"redis_paths"`
	LogLevel      string   `yaml:"log_level"`

	// AgentVersion is this agent's release, set by the binary (not read
	// from the file): reported to the cluster, shown by cluster status.
	AgentVersion string `yaml:"-"`

	// PortMin and PortMax are parsed from PortRange.
	PortMin int `yaml:"-"`
	PortMax int `yaml:"-"`
}

// Failover holds the automatic-failover settings (docs/failover.md). The
// strings are what the operator writes; the parsed values, checked by
// failover.Settings.Validate, sit beside them.
type Failover struct {
	DetectionText        string `yaml:"detection"`
	LeaseText            string `yaml:"lease"`
	MaxLagText           string `yaml:"max_lag"`
	SwitchoverMaxLagText string `yaml:"switchover_max_lag"`
	CooldownText         string `yaml:"cooldown"`

	failover.Settings `yaml:"-"`
}

func (f *Failover) finish() error {
	for _, d := range []struct {
		key  string
		text string
		out  *time.Duration
	}{{"detection", f.DetectionText, &f.Detection}, {"lease", f.LeaseText, &f.Lease}, {"cooldown", f.CooldownText, &f.Cooldown}} {
		v, err := time.ParseDuration(strings.TrimSpace(d.text))
		if err != nil || v <= 0 {
			return fmt.Errorf("failover.%s %q: want a positive duration such as 1500ms or 30s", d.key, d.text)
		}
		*d.out = v
	}
	for _, b := range []struct {
		key  string
		text string
		out  *int64
	}{{"max_lag", f.MaxLagText, &f.MaxLag}, {"switchover_max_lag", f.SwitchoverMaxLagText, &f.SwitchoverMaxLag}} {
		if strings.TrimSpace(b.text) == "0" {
			*b.out = 0
			continue
		}
		v, err := sizing.ParseSize(b.text)
		if err != nil {
			return fmt.Errorf("failover.%s %q: want a size from 0 to 1tb, such as 1mb", b.key, b.text)
		}
		*b.out = v
	}
	return f.Settings.Validate()
}

// Load returns the defaults overlaid with the file at path. An empty path
// means SystemPath if it exists, else the defaults alone.
func Load(path string) (*Config, error) {
	c, err := parse(defaultYAML)
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	applyUserDefaults(c)
	explicit := path != ""
	if !explicit {
		path = SystemPath
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	default:
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := c.finish(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func parse(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, err
	}
	return c, nil
}

// applyUserDefaults moves state and socket somewhere writable when the agent
// does not run as root (development, `make run` as a user).
func applyUserDefaults(c *Config) {
	if os.Geteuid() == 0 {
		return
	}
	home, _ := os.UserHomeDir()
	c.DataDir = filepath.Join(home, ".local", "state", "redis-appliance")
	c.Socket = DefaultSocket()
	c.InstanceUser = ""
	c.Supervisor = "process"
}

// DefaultSocket is the API socket the CLI uses when none is given.
func DefaultSocket() string {
	if s := os.Getenv("REDIS_APPLIANCE_SOCKET"); s != "" {
		return s
	}
	const system = "/run/redis-appliance/api.sock"
	if os.Geteuid() == 0 {
		return system
	}
	// A member of socket_group talks to the system agent when there is one.
	if _, err := os.Stat(system); err == nil {
		return system
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "redis-appliance", "api.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("redis-appliance-%d", os.Geteuid()), "api.sock")
}

func (c *Config) finish() error {
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node_name is empty and the host name is unknown: %w", err)
		}
		c.NodeName = sanitizeName(h)
	}
	lo, hi, ok := strings.Cut(c.PortRange, "-")
	var err1, err2 error
	c.PortMin, err1 = strconv.Atoi(strings.TrimSpace(lo))
	c.PortMax, err2 = strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax {
		return fmt.Errorf("port_range %q: want two ports like 6400-6999", c.PortRange)
	}
	if err := c.Failover.finish(); err != nil {
		return err
	}
	if c.SentinelPort < 0 || c.SentinelPort > 65535 {
		return fmt.Errorf("sentinel_port %d: want a port, or 0 to turn discovery off", c.SentinelPort)
	}
	switch c.Bootstrap {
	case "auto", "manual":
	default:
		return fmt.Errorf("bootstrap %q: want auto or manual", c.Bootstrap)
	}
	switch c.Supervisor {
	case "auto", "systemd", "process":
	default:
		return fmt.Errorf("supervisor %q: want auto, systemd or process", c.Supervisor)
	}
	if c.DataDir == "" || c.Socket == "" || c.RaftAddr == "" || c.ClusterAddr == "" || c.Bind == "" || c.AdvertiseAddr == "" {
		return errors.New("data_dir, socket, advertise_addr, raft_addr, cluster_addr and bind must not be empty")
	}
	for key, addr := range map[string]string{"raft_addr": c.RaftAddr, "cluster_addr": c.ClusterAddr} {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return fmt.Errorf("%s %q: want host:port, e.g. 10.0.0.1:7481", key, addr)
		}
	}
	return nil
}

// advertise joins advertise_addr with the port of a listen address.
func (c *Config) advertise(listen string) string {
	_, port, _ := net.SplitHostPort(listen)
	return net.JoinHostPort(c.AdvertiseAddr, port)
}

// RaftAdvertise is the Raft address peers dial.
func (c *Config) RaftAdvertise() string { return c.advertise(c.RaftAddr) }

// ClusterAdvertise is the cluster API address peers dial.
func (c *Config) ClusterAdvertise() string { return c.advertise(c.ClusterAddr) }

// BindAddrs are the addresses instances listen on.
func (c *Config) BindAddrs() []string { return strings.Fields(c.Bind) }

// PKIDir holds the cluster CA and this node's certificate.
func (c *Config) PKIDir() string { return filepath.Join(c.DataDir, "pki") }

// sanitizeName turns a host name into a valid node name.
func sanitizeName(h string) string {
	h = strings.ToLower(strings.SplitN(h, ".", 2)[0])
	var b strings.Builder
	for _, r := range h {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "node-" + s
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// RaftDir is where the Raft log and snapshots live.
func (c *Config) RaftDir() string { return filepath.Join(c.DataDir, "raft") }

// KeyPath is the cluster key that seals secrets.
func (c *Config) KeyPath() string { return filepath.Join(c.DataDir, "cluster.key") }

// InstancesDir holds one directory per instance.
func (c *Config) InstancesDir() string { return filepath.Join(c.DataDir, "instances") }

// SupervisorDir is the process supervisor's own state.
func (c *Config) SupervisorDir() string { return filepath.Join(c.DataDir, "supervisor") }
