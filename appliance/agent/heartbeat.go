package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/cluster"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/health"
	"github.com/redis-appliance/redis-appliance/appliance/reconcile"
	"github.com/redis-appliance/redis-appliance/appliance/sizing"
)

// heartbeatInterval is how often an agent reports to the leader: several
// times a second, so the leader's view is never more than a moment old.
const heartbeatInterval = 300 * time.Millisecond

// hardwareInterval is how often the hardware facts are re-read.
const hardwareInterval = 5 * time.Second

// heartbeats reports this node's observations to the leader until ctx ends.
// The leader records its own report directly.
func heartbeats(ctx context.Context, cfg *config.Config, cl *cluster.Manager, rec *reconcile.Reconciler, live *health.View, log *slog.Logger) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	var hw sizing.Hardware
	var hwAt time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := cl.Store()
		if st == nil {
			continue
		}
		if time.Since(hwAt) > hardwareInterval {
			if h, err := sizing.Read("/proc", cfg.DataDir); err == nil {
				hw, hwAt = h, time.Now()
			}
		}
		hb := health.Heartbeat{Node: cfg.NodeName, Hardware: hw, PortMin: cfg.PortMin, PortMax: cfg.PortMax}
		octx, cancel := context.WithTimeout(ctx, heartbeatInterval)
		wanted := map[string]bool{}
		for _, pi := range st.State().InstancesOn(cfg.NodeName) {
			wanted[pi.Instance.ID] = true
			o := rec.Observe(octx, pi.Database, pi.Instance)
			hb.Instances = append(hb.Instances, health.InstanceReport{
				ID: pi.Instance.ID, Installed: true, State: o.State, PID: o.PID, Restarts: o.Restarts,
				MemoryUsed: o.MemoryUsed, ServerVersion: o.ServerVersion, Role: o.Role, Error: o.Error,
				ReplOffset: o.ReplOffset, AppliedGeneration: rec.AppliedGeneration(pi.Instance.ID),
			})
		}
		if present, err := rec.Present(octx); err == nil {
			for _, id := range present {
				if !wanted[id] {
					hb.Instances = append(hb.Instances, health.InstanceReport{ID: id, Installed: true, State: "removing"})
				}
			}
		}
		cancel()
		if st.IsLeader() {
			live.Record(hb)
			continue
		}
		lc, _, err := cl.LeaderClient()
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			err = lc.Heartbeat(sctx, hb)
			cancel()
		}
		if err != nil && !failing {
			log.Warn("cannot reach the leader with heartbeats", "err", err)
		} else if err == nil && failing {
			log.Info("heartbeats reach the leader again")
		}
		failing = err != nil
	}
}
