package control

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/access"
	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/instance"
)

// saveTimeout bounds each command of a save on the primary.
const saveTimeout = 5 * time.Second

// SaveDatabase snapshots the primary's data to its RDB file now (BGSAVE,
// as the agent's own user: applications may not) and waits until it is
// written, so that an operator knows the files on disk are current and
// that redis-server can still write them.
func (c *Controller) SaveDatabase(ctx context.Context, name string) (api.SaveResult, error) {
	st := c.store().View()
	db, ok := st.Databases[name]
	if !ok {
		return api.SaveResult{}, notFound(name)
	}
	p, ok := db.Primary()
	if !ok {
		return api.SaveResult{}, conflict("database %q has no primary right now", name)
	}
	creds, err := access.AgentCredentials(c.keys(), db)
	if err != nil {
		return api.SaveResult{}, err
	}
	cl, err := instance.Dial(ctx, instance.Addr(st, p, c.cfg.AdvertiseAddr), creds, instance.NameAgent, saveTimeout)
	if err != nil {
		return api.SaveResult{}, err
	}
	defer cl.Close()
	start := time.Now()
	// A save already running (a replica's full sync, a save point) forked
	// before this request: wait for it, then start this one.
	var out api.SaveResult
	// The persistence section of INFO, read the one way the agent reads
	// INFO (instance.ReadInfo).
	persistence := func() (map[string]string, error) {
		info, err := instance.ReadInfo(ctx, cl, "persistence")
		return info.Fields, err
	}
	// rdb_saves counts the snapshots started: LASTSAVE's one-second
	// resolution cannot tell two saves in the same second apart.
	before := ""
	ours := false
	saved := c.converge(ctx, func() bool {
		if !ours {
			var f map[string]string
			if f, err = persistence(); err != nil {
				return true
			}
			before = f["rdb_saves"]
			err = cl.BgSave(ctx).Err()
			switch {
			case err != nil && strings.Contains(err.Error(), "in progress"):
				err = nil
				return false
			case err != nil:
				return true
			}
			ours = true
		}
		var f map[string]string
		if f, err = persistence(); err != nil {
			return true
		}
		if f["rdb_bgsave_in_progress"] != "0" || f["rdb_saves"] == before {
			return false
		}
		last, _ := strconv.ParseInt(f["rdb_last_save_time"], 10, 64)
		out = api.SaveResult{Database: name, Instance: p.ID, Node: p.Node, Status: f["rdb_last_bgsave_status"], SavedAt: time.Unix(last, 0).UTC()}
		return true
	})
	switch {
	case err != nil:
		return api.SaveResult{}, conflict("BGSAVE on the primary %s on %s: %v", p.ID, p.Node, err)
	case !saved:
		return api.SaveResult{}, conflict("the save of %s on %s did not finish within %s; see redis-appliance db show %s", p.ID, p.Node, c.WaitTimeout, name)
	case out.Status != "ok":
		return out, conflict("redis-server could not write the RDB file of %s on %s (rdb_last_bgsave_status:%s): check the disk and the instance's journal", p.ID, p.Node, out.Status)
	}
	out.Seconds = time.Since(start).Seconds()
	c.log.Info("database saved", "database", name, "instance", p.ID, "seconds", fmt.Sprintf("%.2f", out.Seconds))
	return out, nil
}
