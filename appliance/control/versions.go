package control

import (
	"context"
	"slices"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
)

// Versions lists the catalogue against what is installed: this node's
// binaries (discovered again, so a newly installed one shows without a
// restart), and which nodes reported each version.
func (c *Controller) Versions(ctx context.Context) ([]api.Version, error) {
	local := c.local.Refresh(ctx)
	byVersion := map[string][]string{}
	if st := c.store(); st != nil {
		for name, n := range st.View().Nodes {
			if name == c.cfg.NodeName {
				continue
			}
			for _, v := range n.Versions {
				byVersion[v] = append(byVersion[v], name)
			}
		}
	}
	for _, in := range local {
		byVersion[in.Version] = append(byVersion[in.Version], c.cfg.NodeName)
	}
	var out []api.Version
	for _, r := range versions.List(local, c.Now()) {
		nodes := byVersion[r.Version]
		slices.Sort(nodes)
		out = append(out, api.Version{
			Version: r.Version, Status: string(r.Status), Released: r.Released, Deprecated: r.Deprecated, EndOfLife: r.EndOfLife,
			Installed: r.Installed, Full: r.Full, Path: r.Path, Nodes: nodes, Default: r.Default,
		})
	}
	return out, nil
}
