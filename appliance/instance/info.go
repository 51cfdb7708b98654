package instance

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redis-appliance/redis-appliance/appliance/health"
)

// Info is what the agent reads from INFO. Fields a section did not carry
// are zero.
type Info struct {
	// Role is redis-server's own word: master or slave.
	Role string
	// Version is redis_version.
	Version string
	// UsedMemory is used_memory, in bytes.
	UsedMemory int64
	// Offset is master_repl_offset: how far the instance's replication
	// stream has come.
	Offset int64
	// OpsPerSec and Clients are instantaneous_ops_per_sec and
	// connected_clients.
	OpsPerSec int64
	Clients   int
	// Loading is set while the instance loads its data set.
	Loading bool
	// MasterHost and MasterPort are whom a replica follows; LinkUp,
	// SyncInProgress and LastIOSeconds describe that link
	// (LastIOSeconds is -1 while the link is down).
	MasterHost     string
	MasterPort     int
	LinkUp         bool
	SyncInProgress bool
	LastIOSeconds  int
	// Fields holds every field INFO returned, by name.
	Fields map[string]string
}

// Primary says whether the instance is a primary (role master).
func (i Info) Primary() bool { return i.Role == "master" }

// Replica says whether the instance replicates something (role slave).
func (i Info) Replica() bool { return i.Role == "slave" }

// Follows says whether a replica follows host:port (as strings, the way
// INFO prints them).
func (i Info) Follows(host, port string) bool {
	return i.Replica() && i.MasterHost == host && strconv.Itoa(i.MasterPort) == port
}

// Link is a replica's link as a report carries it; nil for a primary.
func (i Info) Link() *health.Link {
	if !i.Replica() {
		return nil
	}
	return &health.Link{
		MasterHost: i.MasterHost, MasterPort: i.MasterPort, Up: i.LinkUp,
		SyncInProgress: i.SyncInProgress, LastIOSeconds: i.LastIOSeconds,
	}
}

// ParseInfo reads INFO's text ("field:value" lines in "# Section"s).
func ParseInfo(raw string) Info {
	f := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(k, "#") {
			f[k] = v
		}
	}
	i := Info{Role: f["role"], Version: f["redis_version"], MasterHost: f["master_host"], Fields: f, LastIOSeconds: -1}
	i.UsedMemory, _ = strconv.ParseInt(f["used_memory"], 10, 64)
	i.Offset, _ = strconv.ParseInt(f["master_repl_offset"], 10, 64)
	i.OpsPerSec, _ = strconv.ParseInt(f["instantaneous_ops_per_sec"], 10, 64)
	i.Clients, _ = strconv.Atoi(f["connected_clients"])
	i.MasterPort, _ = strconv.Atoi(f["master_port"])
	i.Loading = f["loading"] == "1"
	i.LinkUp = f["master_link_status"] == "up"
	i.SyncInProgress = f["master_sync_in_progress"] == "1"
	if i.LinkUp {
		i.LastIOSeconds, _ = strconv.Atoi(f["master_last_io_seconds_ago"])
	}
	return i
}

// Sections the agent reads to observe an instance.
var observeSections = []string{"server", "clients", "memory", "stats", "replication", "persistence"}

// ReadInfo asks the instance for INFO of the given sections (those an
// observation needs when none are named).
func ReadInfo(ctx context.Context, c *redis.Client, sections ...string) (Info, error) {
	if len(sections) == 0 {
		sections = observeSections
	}
	raw, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return Info{}, err
	}
	return ParseInfo(raw), nil
}
