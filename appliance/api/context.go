package api

import (
	"context"
	"crypto/x509"
)

type ctxKey int

const (
	forwardedKey ctxKey = iota
	peerKey
)

// IsForwarded reports whether the request was forwarded by another agent.
func IsForwarded(ctx context.Context) bool {
	v, _ := ctx.Value(forwardedKey).(bool)
	return v
}

// PeerNode returns the node name of the member that called over mutual
// TLS, or "" for the local socket and for joining hosts.
func PeerNode(ctx context.Context) string {
	v, _ := ctx.Value(peerKey).(string)
	return v
}

// WithPeerNode records the verified caller (tests and the server use it).
func WithPeerNode(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, peerKey, node)
}

// NodeNameFunc reads the node name from a verified client certificate.
type NodeNameFunc func(*x509.Certificate) (string, error)
