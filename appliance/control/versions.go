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
	nodes := map[string][]string{}
	if st := c.store(); st != nil {
		for name, n := range st.View().Nodes {
			if name == c.cfg.NodeName {
				continue
			}
			for _, v := range n.Versions {
				nodes[v] = append(nodes[v], name)
			}
		}
	}
	for _, in := range local {
		nodes[in.Version] = append(nodes[in.Version], c.cfg.NodeName)
	}
	for _, ns := range nodes {
		slices.Sort(ns)
	}
	return versions.List(local, nodes, c.Now()), nil
}
