package api

import (
	"context"
	"crypto/x509"

	"github.com/redis-appliance/redis-appliance/appliance/forward"
)

type ctxKey int

const (
	forwardedKey ctxKey = iota
	peerKey
)

// forwarded is where a forwarded request came from (forward.Header).
type forwarded struct {
	origin string
	known  bool
}

// withForwarded records a forwarded request's origin. An origin that is
// not said (agents before feature level 2 send "1") is taken as unknown
// only while legacy allows it (some voter still runs such an agent);
// otherwise the request counts as the forwarding member's own, so that no
// member can skip the caller checks by leaving the origin out.
func withForwarded(ctx context.Context, header, peer string, legacy bool) context.Context {
	origin, known := forward.ParseOrigin(header)
	if !known && !legacy {
		origin, known = peer, true
	}
	return context.WithValue(ctx, forwardedKey, forwarded{origin, known})
}

// IsForwarded reports whether the request was forwarded by another agent.
func IsForwarded(ctx context.Context) bool {
	_, ok := ctx.Value(forwardedKey).(forwarded)
	return ok
}

// PeerNode returns the node name of the member that called over mutual
// TLS, or "" for the local socket and for joining hosts.
func PeerNode(ctx context.Context) string {
	v, _ := ctx.Value(peerKey).(string)
	return v
}

// Caller is who the request is on behalf of: the member that called over
// mutual TLS, or, for a forwarded request, the member it came from ("" for
// a request that came in on a local socket). known is false for a request
// forwarded by an agent too old to say (before feature level 2).
func Caller(ctx context.Context) (node string, known bool) {
	if f, ok := ctx.Value(forwardedKey).(forwarded); ok {
		return f.origin, f.known
	}
	return PeerNode(ctx), true
}

// WithPeerNode records the verified caller (tests and the server use it).
func WithPeerNode(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, peerKey, node)
}

// NodeNameFunc reads the node name from a verified client certificate.
type NodeNameFunc func(*x509.Certificate) (string, error)
