package control

import (
	"context"

	"github.com/redis-appliance/redis-appliance/appliance/api"
)

// RotateClusterKey re-seals every secret with a new cluster key (on the
// leader); see appliance/cluster/keys.go.
func (c *Controller) RotateClusterKey(ctx context.Context) (api.RotateKeyResult, error) {
	return c.cl.RotateKey(ctx)
}
