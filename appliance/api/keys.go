package api

import (
	"context"
	"net/http"
)

// RotateKeyResult is the answer to `cluster rotate-key`.
type RotateKeyResult struct {
	// KeyID names the new cluster key (the first 16 hex digits of a hash
	// of it; never the key).
	KeyID string `json:"key_id"`
	// Resealed is how many secrets were sealed again with it.
	Resealed int `json:"resealed"`
}

// RotateClusterKey re-seals every secret of the cluster with a new key.
func (c *Client) RotateClusterKey(ctx context.Context) (RotateKeyResult, error) {
	var r RotateKeyResult
	return r, c.do(ctx, http.MethodPost, "/v1/cluster/rotate-key", nil, &r)
}
