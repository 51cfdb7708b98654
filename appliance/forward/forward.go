// Package forward runs API operations on the Raft leader. Every operation
// that reads the leader's fresh view or writes to Raft goes through it: on
// the leader it runs locally; on a follower the request, as it arrived, is
// sent on to the leader's cluster API over mutual TLS and the leader's
// answer is handed back. It is the one place that knows how (rqlite keeps
// the same idea in its proxy package), so no handler repeats it.
//
// What always holds:
//   - A request is forwarded at most once. A node that receives a
//     forwarded request and does not lead answers ErrLeaderMoved (503): the
//     caller retries, and a request never loops between nodes.
//   - A forwarded request is cut short the moment this node sees the
//     leader change, with ErrLeaderMoved, rather than waiting on a
//     connection to a leader that may be gone.
//   - Only an attempt that wrote nothing is sent on: a local attempt that
//     fails with raftstate.ErrNotLeader (this node was not leader when it
//     appended) is forwarded, unless an earlier write of the same attempt
//     went in (raftstate.TrackWrites); raftstate.ErrLeadershipLost (the
//     entry may still commit) never is.
//   - The one exception to "at most once": a handler that hands
//     leadership over on purpose (the leader removing itself) returns
//     ErrHandedOver, and the request goes on to the new leader even if it
//     was forwarded to this node.
package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis-appliance/redis-appliance/raftstate"
)

// Header marks a request one agent forwards to another. Its value says
// where the request came from: "node:NAME" for a member calling over
// mutual TLS, "local" for the local API socket. Agents before feature
// level 2 sent "1" (origin unknown).
const Header = "X-Redis-Appliance-Forwarded"

// Errors Do and Forward return; the API answers both with 503.
var (
	// ErrLeaderMoved means leadership moved while the request was on its
	// way, or a forwarded request reached a node that no longer leads.
	ErrLeaderMoved = errors.New("leadership moved while the request was on its way; retry")
	// ErrNoLeader means the cluster has no leader that this node knows of
	// (an election, or quorum lost).
	ErrNoLeader = errors.New("the cluster has no leader right now (an election, or quorum lost?); see redis-appliance cluster status and retry")
	// ErrPartlyDone means leadership moved in the middle of a request that
	// had already written part of what it does: it is not sent again.
	ErrPartlyDone = errors.New("leadership moved while the request was being carried out, after part of it was done; look at the result (db show, node list, cluster status) before you retry")
	// ErrNotMember means the leader refused this node's certificate: the
	// node was removed, or holds a certificate the cluster did not pin
	// for it. Retrying cannot help; the API answers 403.
	ErrNotMember = errors.New("this node is not a member of the cluster any more (removed with node remove), or its certificate is not the one the cluster recorded for it: run the command on a member; to bring this host back, clear its data directory and join it again with a new token (docs/cluster.md)")
)

// ErrHandedOver is what a handler returns after handing leadership over
// on purpose, for the request to go on to the new leader (it wraps
// raftstate.ErrNotLeader).
var ErrHandedOver = fmt.Errorf("this node handed leadership over: %w", raftstate.ErrNotLeader)

// Membership is what the forwarder needs to know of the cluster.
type Membership interface {
	// Leader says who leads as this node knows it: self on the leader,
	// otherwise the leader's node name and cluster API address (name ""
	// when no leader is known). The error is for a node with no cluster.
	Leader() (self bool, name, addr string, err error)
	// LeaderChanged returns a channel closed at the next change of
	// leader; take it before calling Leader so no change is missed. nil
	// (never closed) while this node has no cluster.
	LeaderChanged() <-chan struct{}
	// Transport carries requests to other members (mutual TLS).
	Transport() (http.RoundTripper, error)
}

// Forwarder runs requests on the leader.
type Forwarder struct {
	m Membership
	// LeaderWait bounds how long a request waits for a leader to become
	// known (an election takes about a second).
	LeaderWait time.Duration
}

// New returns a forwarder over m.
func New(m Membership) *Forwarder {
	return &Forwarder{m: m, LeaderWait: 5 * time.Second}
}

// Request is an API request as it arrived, kept so that it can be sent
// again: the body has been read already.
type Request struct {
	Method string
	// URI is the path and query.
	URI    string
	Body   []byte
	Header http.Header
	// Origin is where the request came from, for Header ("local" or
	// "node:NAME").
	Origin string
	// Forwarded says the request was itself forwarded to this node.
	Forwarded bool
}

// Response is the leader's answer to a forwarded request.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Leading reports whether this node is the leader.
func (f *Forwarder) Leading() bool {
	self, _, _, err := f.m.Leader()
	return err == nil && self
}

// Do runs local when this node leads and returns (nil, its error): the
// caller answers it. Otherwise, and when local fails with
// raftstate.ErrNotLeader having written nothing, it forwards req and
// returns the leader's response.
func (f *Forwarder) Do(ctx context.Context, req *Request, local func(context.Context) error) (*Response, error) {
	if f.Leading() {
		tctx, wrote := raftstate.TrackWrites(ctx)
		err := local(tctx)
		switch {
		case errors.Is(err, ErrHandedOver):
			again := *req
			again.Forwarded = false
			return f.Forward(ctx, &again)
		case !errors.Is(err, raftstate.ErrNotLeader):
			return nil, err
		case wrote():
			return nil, ErrPartlyDone
		}
	}
	return f.Forward(ctx, req)
}

// maxResponse bounds a leader's answer held in memory.
const maxResponse = 64 << 20

// forwardTimeout bounds one forwarded request, as the CLI's own client
// does: a create waits for its instances to run.
const forwardTimeout = 2 * time.Minute

// addressPoll is how often a request waiting for the leader's API address
// looks again (it arrives with a state change, not a leader change).
const addressPoll = 100 * time.Millisecond

// Forward sends req to the leader and returns its answer.
func (f *Forwarder) Forward(ctx context.Context, req *Request) (*Response, error) {
	if req.Forwarded {
		// Forwarded here because this node led; it no longer does.
		return nil, ErrLeaderMoved
	}
	changed, name, addr, err := f.leader(ctx)
	if err != nil {
		return nil, err
	}
	tr, err := f.m.Transport()
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	go func() {
		// Cut short only when the leader really changed: the channel may
		// close for a change this node had already seen when it read the
		// leader.
		for {
			select {
			case <-changed:
				changed = f.m.LeaderChanged()
				if _, now, _, err := f.m.Leader(); err == nil && now == name {
					continue
				}
				cancel()
				return
			case <-fctx.Done():
				return
			}
		}
	}()
	out, err := http.NewRequestWithContext(fctx, req.Method, "https://"+addr+req.URI, bytes.NewReader(req.Body))
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"Content-Type", "Accept"} {
		if v := req.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	out.Header.Set(Header, req.Origin)
	resp, err := (&http.Client{Transport: tr}).Do(out)
	if err != nil {
		return nil, f.explain(ctx, fctx, name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, f.explain(ctx, fctx, name, err)
	}
	h := http.Header{}
	for _, k := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return &Response{Status: resp.StatusCode, Header: h, Body: body}, nil
}

// explain names a failed forward: a leader change (retry), the caller
// giving up, or the leader not answering.
func (f *Forwarder) explain(parent, fctx context.Context, leader string, err error) error {
	switch {
	case parent.Err() != nil:
		return parent.Err()
	case fctx.Err() != nil:
		return ErrLeaderMoved
	}
	// crypto/tls reports an alert from the peer as a net.OpError "remote
	// error": the leader's TLS stack refused this node at the handshake.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return fmt.Errorf("the leader %s refused this node's certificate (%v): %w", leader, err, ErrNotMember)
	}
	return fmt.Errorf("the leader %s did not answer (%v); retry, or see redis-appliance cluster status: %w", leader, err, ErrNoLeader)
}

// leader returns the leader to forward to, waiting up to LeaderWait for
// one to become known, with the channel that tells when it changes.
func (f *Forwarder) leader(ctx context.Context) (<-chan struct{}, string, string, error) {
	var t *time.Timer
	for {
		changed := f.m.LeaderChanged()
		self, name, addr, err := f.m.Leader()
		switch {
		case err != nil:
			return nil, "", "", err
		case self:
			// Leadership came here while we waited: the caller's local
			// attempt said not-leader, so it is a move either way.
			return nil, "", "", ErrLeaderMoved
		case name != "" && addr != "":
			return changed, name, addr, nil
		}
		if t == nil {
			t = time.NewTimer(f.LeaderWait)
			defer t.Stop()
		}
		select {
		case <-ctx.Done():
			return nil, "", "", ctx.Err()
		case <-t.C:
			if name != "" {
				return nil, "", "", fmt.Errorf("leader %s has not registered its API address yet; retry: %w", name, ErrNoLeader)
			}
			return nil, "", "", ErrNoLeader
		case <-changed:
		case <-time.After(addressPoll):
		}
	}
}

// Origin is the Header value for a request from a member (node) or from
// the local socket (node "").
func Origin(node string) string {
	if node == "" {
		return "local"
	}
	return "node:" + node
}

// ParseOrigin reads a Header value: the member a forwarded request came
// from ("" for the local socket), and whether the value said (agents
// before feature level 2 sent "1": unknown).
func ParseOrigin(v string) (node string, known bool) {
	switch {
	case v == "local":
		return "", true
	case strings.HasPrefix(v, "node:"):
		return strings.TrimPrefix(v, "node:"), true
	}
	return "", false
}
