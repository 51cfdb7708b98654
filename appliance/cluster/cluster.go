// Package cluster owns this node's membership: its key material (cluster CA,
// node certificate, sealed-secrets key), the Raft store's lifecycle (open,
// bootstrap with `cluster init`, join with a token), join tokens, and the
// mutual-TLS clients to other members. A node that is not a member yet has
// no store; everything that needs one waits for Opened.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/config"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/appliance/secrets"
	"github.com/redis-appliance/redis-appliance/appliance/versions"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// ErrNotMember means this node has not initialised or joined a cluster.
var ErrNotMember = errors.New("this node is not a member of a cluster yet: run redis-appliance cluster init, or cluster join")

// DefaultTokenTTL is how long a join token is valid unless asked otherwise.
const DefaultTokenTTL = time.Hour

// Manager owns membership and the store.
type Manager struct {
	cfg *config.Config
	log *slog.Logger
	dir pki.Dir
	// Now is the clock for certificates and tokens; tests set it.
	Now func() time.Time

	mu       sync.Mutex // serialises init, join and open
	material *pki.Material
	store    *raftstate.Store
	keys     *secrets.Keyring
	opened   chan struct{}
	// peers caches one client per member address: heartbeats go out several
	// times a second and must reuse their TLS connections.
	peers map[string]*api.Client
	// transport carries forwarded requests to the leader (Transport).
	transport http.RoundTripper
	// local are this node's redis-server binaries, registered with its
	// addresses.
	local *versions.Local
	// pinMu guards the first-use pins in flight and failed (NotePeer).
	pinMu     sync.Mutex
	pinBusy   map[string]bool
	pinFailed map[string]time.Time
	// keyMu serialises switching to a new cluster key (keys.go); quit
	// stops followKeys.
	keyMu sync.Mutex
	quit  chan struct{}
}

// New loads this node's key material, if it has any. local are the node's
// redis-server binaries.
func New(cfg *config.Config, local *versions.Local, log *slog.Logger) (*Manager, error) {
	m := &Manager{cfg: cfg, log: log, dir: pki.Dir(cfg.PKIDir()), Now: time.Now, opened: make(chan struct{}), peers: map[string]*api.Client{}, local: local,
		pinBusy: map[string]bool{}, pinFailed: map[string]time.Time{}}
	mat, err := pki.LoadDir(cfg.PKIDir())
	switch {
	case err == nil:
		m.material = mat
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	return m, nil
}

// Start opens the store of a member; on a fresh node with bootstrap: auto
// it initialises a one-node cluster. A fresh node with bootstrap: manual
// waits for Init or Join.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	member := m.material != nil
	m.mu.Unlock()
	if member {
		if err := m.open(ctx, false); err != nil {
			return err
		}
		// A join interrupted between receiving key material and becoming a
		// voter: finish it, or this node would wait for a leader forever.
		if has, err := m.Store().HasState(); err == nil && !has {
			if addr, err := os.ReadFile(m.joinFromPath()); err == nil {
				go func() {
					if err := m.completeJoin(ctx, strings.TrimSpace(string(addr))); err != nil {
						m.log.Error("finishing the interrupted join failed", "err", err)
					}
				}()
			}
		}
		return nil
	}
	// A node bootstrapped before it had key material (an older agent):
	// give it its own CA so Raft can run over TLS.
	if hasRaftState(m.cfg.RaftDir()) {
		m.log.Info("raft state without key material: creating a cluster CA for this node")
		if err := m.ensureMaterial(); err != nil {
			return err
		}
		return m.open(ctx, false)
	}
	if m.cfg.Bootstrap == "auto" {
		return m.Init(ctx)
	}
	m.log.Info("no cluster yet: run `redis-appliance cluster init` here, or `cluster join` to join one", "node", m.cfg.NodeName)
	return nil
}

func hasRaftState(dir string) bool {
	_, err := os.Stat(dir + "/raft.db")
	return err == nil
}

// Opened is closed once the store is open.
func (m *Manager) Opened() <-chan struct{} { return m.opened }

// Store returns the store, or nil before Opened.
func (m *Manager) Store() *raftstate.Store {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.store
}

// Keys returns the keyring, or nil before Opened.
func (m *Manager) Keys() *secrets.Keyring {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys
}

// Member reports whether this node has key material.
func (m *Manager) Member() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.material != nil
}

// Init creates a new cluster with this node as its only voter: a cluster CA,
// this node's certificate, the sealed-secrets key, and a bootstrapped store.
func (m *Manager) Init(ctx context.Context) error {
	if m.Store() != nil {
		return raftstate.ErrAlreadyBootstrapped
	}
	if err := m.ensureMaterial(); err != nil {
		return err
	}
	return m.open(ctx, true)
}

// ensureMaterial creates a cluster CA and this node's certificate unless
// the node has them.
func (m *Manager) ensureMaterial() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.material != nil {
		return nil
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	ca, err := pki.NewCA("redis-appliance-"+hex.EncodeToString(id), m.Now())
	if err != nil {
		return err
	}
	if err := m.dir.WriteCA(ca); err != nil {
		return fmt.Errorf("write cluster CA: %w", err)
	}
	if err := m.issueSelf(ca); err != nil {
		return err
	}
	m.log.Info("created cluster CA and node certificate", "ca_fingerprint", ca.Fingerprint())
	return nil
}

// issueSelf issues and loads this node's certificate from ca.
func (m *Manager) issueSelf(ca *pki.CA) error {
	ips, names := certAddresses(m.cfg.AdvertiseAddr)
	certPEM, keyPEM, err := ca.IssueNode(m.cfg.NodeName, ips, names, m.Now())
	if err != nil {
		return fmt.Errorf("issue node certificate: %w", err)
	}
	if err := m.dir.WriteNode(certPEM, keyPEM); err != nil {
		return fmt.Errorf("write node certificate: %w", err)
	}
	mat, err := pki.LoadDir(string(m.dir))
	if err != nil {
		return err
	}
	m.material = mat
	return nil
}

// certAddresses are the SANs of a node certificate: its advertise address
// and loopback, so local tools can reach the cluster API too.
func certAddresses(advertise string) ([]net.IP, []string) {
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	var names []string
	if ip := net.ParseIP(advertise); ip != nil {
		if !ip.IsLoopback() {
			ips = append(ips, ip)
		}
	} else {
		names = append(names, advertise)
	}
	return ips, names
}

// open opens the store over mutual TLS; bootstrap makes it a new cluster.
func (m *Manager) open(ctx context.Context, bootstrap bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.store == nil {
		keys, err := secrets.LoadOrCreate(m.cfg.KeyPath())
		if err != nil {
			return err
		}
		st, err := raftstate.Open(raftstate.Config{
			NodeName: m.cfg.NodeName, Dir: m.cfg.RaftDir(),
			BindAddr: m.cfg.RaftAddr, AdvertiseAddr: m.cfg.RaftAdvertise(),
			Logger:       m.log.With("subsystem", "raft"),
			AgentVersion: m.cfg.AgentVersion,
			ServerTLS:    pki.ServerConfig(m.material), ClientTLS: pki.ClientConfig(m.material, ""), PeerName: pki.NodeName,
		})
		if err != nil {
			return err
		}
		m.store, m.keys = st, keys
		m.quit = make(chan struct{})
		go m.followKeys(st, keys, m.quit)
	}
	if bootstrap {
		has, err := m.store.HasState()
		if err != nil {
			return err
		}
		if has {
			return raftstate.ErrAlreadyBootstrapped
		}
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := m.store.Bootstrap(bctx); err != nil {
			return fmt.Errorf("bootstrap cluster: %w", err)
		}
		m.log.Info("bootstrapped a new cluster", "node", m.cfg.NodeName)
	}
	select {
	case <-m.opened:
	default:
		close(m.opened)
	}
	return nil
}

// Register records (or refreshes) this node's addresses in the state; the
// leader calls it for itself once ready.
func (m *Manager) Register(ctx context.Context) error {
	st := m.Store()
	if st == nil {
		return ErrNotMember
	}
	versions := m.local.Versions()
	if versions == nil {
		versions = []string{} // known: nothing installed
	}
	n, ok := st.Node(m.cfg.NodeName)
	if ok && n.APIAddr == m.cfg.ClusterAdvertise() && n.RaftAddr == m.cfg.RaftAdvertise() && n.Address == m.cfg.AdvertiseAddr && n.SentinelPort == m.cfg.SentinelPort &&
		n.AgentVersion == m.cfg.AgentVersion && n.FeatureLevel == raftstate.FeatureLevel && n.Versions != nil && slices.Equal(n.Versions, versions) {
		return m.pinSelf(ctx, st)
	}
	at := m.Now().UTC()
	if ok && !n.JoinedAt.IsZero() {
		at = n.JoinedAt
	}
	err := st.Apply(ctx, raftstate.CmdRegisterNode, raftstate.RegisterNode{
		Name: m.cfg.NodeName, RaftAddr: m.cfg.RaftAdvertise(), APIAddr: m.cfg.ClusterAdvertise(),
		Address: m.cfg.AdvertiseAddr, SentinelPort: m.cfg.SentinelPort, At: at,
		AgentVersion: m.cfg.AgentVersion, FeatureLevel: raftstate.FeatureLevel, Versions: versions,
	})
	if err != nil {
		return err
	}
	return m.pinSelf(ctx, st)
}

// ServerTLS is the cluster API listener's configuration: members present
// certificates; joining hosts may present none and must carry a token. A
// certificate that is not a current member's pinned one is refused at the
// handshake.
func (m *Manager) ServerTLS() (*tls.Config, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.material == nil {
		return nil, ErrNotMember
	}
	c := pki.JoinServerConfig(m.material)
	c.VerifyConnection = m.verifyMember(true)
	return c, nil
}

// PeerClient returns a mutual-TLS client to another member's cluster API.
// Clients are shared; do not close them.
func (m *Manager) PeerClient(addr string) (*api.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.material == nil {
		return nil, ErrNotMember
	}
	if c, ok := m.peers[addr]; ok {
		return c, nil
	}
	tc := pki.ClientConfig(m.material, "")
	// The member answering must be a current member with its pinned
	// certificate too: a forward or a report never goes to an impostor.
	tc.VerifyConnection = m.verifyMember(false)
	c := api.NewRemoteClient(addr, tc)
	m.peers[addr] = c
	return c, nil
}

// LeaderClient returns a client to the leader's cluster API.
func (m *Manager) LeaderClient() (*api.Client, string, error) {
	st := m.Store()
	if st == nil {
		return nil, "", ErrNotMember
	}
	leader := st.Leader()
	if leader == "" {
		return nil, "", fmt.Errorf("the cluster has no leader right now (quorum lost?); see redis-appliance cluster status: %w", raftstate.ErrNotLeader)
	}
	n, ok := st.Node(leader)
	if !ok || n.APIAddr == "" {
		return nil, leader, fmt.Errorf("leader %s has not registered its API address yet; retry: %w", leader, raftstate.ErrNotLeader)
	}
	c, err := m.PeerClient(n.APIAddr)
	return c, leader, err
}

// NewToken creates a single-use join token. Only the leader can.
func (m *Manager) NewToken(ctx context.Context, ttl time.Duration) (api.TokenResponse, error) {
	st := m.Store()
	if st == nil {
		return api.TokenResponse{}, ErrNotMember
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	m.mu.Lock()
	fp := m.material.CAFingerprint()
	m.mu.Unlock()
	now := m.Now().UTC()
	tok, err := pki.NewToken(m.cfg.ClusterAdvertise(), fp, ttl, now)
	if err != nil {
		return api.TokenResponse{}, err
	}
	err = st.Apply(ctx, raftstate.CmdAddJoinToken, raftstate.AddJoinToken{Token: raftstate.JoinToken{
		ID: tok.ID, Hash: tok.Hash(), Expires: tok.Expires, CreatedAt: now,
	}})
	if err != nil {
		return api.TokenResponse{}, err
	}
	m.log.Info("join token created", "token", tok)
	return api.TokenResponse{Token: tok.String(), Expires: tok.Expires}, nil
}

// Admit is the leader's side of a join: it spends the token, registers the
// node, and returns its key material. The node becomes a voter when it
// calls back with its new certificate (AddVoter).
func (m *Manager) Admit(ctx context.Context, req api.JoinRequest) (api.JoinResponse, error) {
	st := m.Store()
	if st == nil {
		return api.JoinResponse{}, ErrNotMember
	}
	tok, err := pki.ParseToken(req.Token)
	if err != nil {
		return api.JoinResponse{}, fmt.Errorf("%v: %w", err, raftstate.ErrTokenRefused)
	}
	if err := raftstate.CheckName("node", req.Node); err != nil {
		return api.JoinResponse{}, fmt.Errorf("%w (node_name in the joining host's config)", err)
	}
	host, _, err := net.SplitHostPort(req.RaftAddr)
	if err != nil {
		return api.JoinResponse{}, fmt.Errorf("raft address %q: %w", req.RaftAddr, raftstate.ErrInvalid)
	}
	m.mu.Lock()
	mat := m.material
	keys := m.keys
	m.mu.Unlock()
	if mat.CA == nil {
		return api.JoinResponse{}, errors.New("this node cannot issue certificates (no ca.key)")
	}
	// Against this leader's state first: a forged, spent or expired token
	// writes nothing to Raft (the FSM checks again when it applies).
	now := m.Now().UTC()
	if err := checkToken(st.View(), tok, req.Node, now); err != nil {
		m.log.Warn("join refused", "token", tok.ID, "node", req.Node, "err", err)
		return api.JoinResponse{}, err
	}
	ips, names := certAddresses(host)
	certPEM, keyPEM, err := mat.CA.IssueNode(req.Node, ips, names, m.Now())
	if err != nil {
		return api.JoinResponse{}, err
	}
	clusterKey := keys.Key()
	consume := raftstate.ConsumeJoinToken{ID: tok.ID, Hash: tok.Hash(), Node: req.Node, At: now}
	register := raftstate.RegisterNode{
		Name: req.Node, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, Address: req.Address, SentinelPort: req.SentinelPort, At: now,
	}
	if level, _, lerr := st.ClusterLevel(); lerr == nil && level >= 3 {
		// One entry: the node is never a member without its pin.
		pin, err := pki.FingerprintPEM(certPEM)
		if err != nil {
			return api.JoinResponse{}, err
		}
		err = st.Apply(ctx, raftstate.CmdAdmitNode, raftstate.AdmitNode{Token: consume, Node: register, CertSHA256: pin})
		if err != nil {
			return api.JoinResponse{}, err
		}
	} else {
		// A voter from before level 3: the join as it was, unpinned
		// (pinned on first use once every voter is upgraded).
		if err := st.Apply(ctx, raftstate.CmdConsumeJoinToken, consume); err != nil {
			return api.JoinResponse{}, err
		}
		if err := st.Apply(ctx, raftstate.CmdRegisterNode, register); err != nil {
			return api.JoinResponse{}, err
		}
	}
	m.log.Info("node admitted; waiting for it to start raft", "node", req.Node, "raft", req.RaftAddr)
	return api.JoinResponse{
		CACert: mat.CA.CertPEM(), CAKey: mat.CA.KeyPEM(), NodeCert: certPEM, NodeKey: keyPEM,
		ClusterKey: clusterKey, Leader: m.cfg.NodeName,
	}, nil
}

// AddVoter is the leader's side of the join's second step: the node, now
// presenting its certificate, is added to the Raft configuration.
func (m *Manager) AddVoter(ctx context.Context, node string) error {
	st := m.Store()
	if st == nil {
		return ErrNotMember
	}
	n, ok := st.Node(node)
	if !ok {
		return fmt.Errorf("node %s was not admitted (or was removed): %w", node, raftstate.ErrNotFound)
	}
	return st.AddVoter(ctx, node, n.RaftAddr)
}

// Join makes this fresh node a member of the cluster a token was issued
// for: it fetches key material over TLS pinned to the token's CA, opens its
// store, and asks the leader to make it a voter.
func (m *Manager) Join(ctx context.Context, addr, token string) error {
	if m.Member() {
		return raftstate.ErrAlreadyBootstrapped
	}
	tok, err := pki.ParseToken(token)
	if err != nil {
		return fmt.Errorf("%v: %w", err, raftstate.ErrTokenRefused)
	}
	if err := tok.Check(m.Now()); err != nil {
		return fmt.Errorf("%v: %w", err, raftstate.ErrTokenRefused)
	}
	if addr == "" {
		addr = tok.Addr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		_, port, _ := net.SplitHostPort(tok.Addr)
		addr = net.JoinHostPort(addr, port)
	}
	c := api.NewRemoteClient(addr, pki.PinnedConfig(tok.CAFingerprint))
	defer c.Close()
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.Join(jctx, api.JoinRequest{
		Token: token, Node: m.cfg.NodeName, RaftAddr: m.cfg.RaftAdvertise(),
		APIAddr: m.cfg.ClusterAdvertise(), Address: m.cfg.AdvertiseAddr, SentinelPort: m.cfg.SentinelPort,
	})
	if err != nil {
		return explainJoin(addr, err)
	}
	if err := secrets.WriteKey(m.cfg.KeyPath(), resp.ClusterKey); err != nil {
		return err
	}
	ca, err := pki.LoadCA(resp.CACert, resp.CAKey)
	if err != nil {
		return fmt.Errorf("key material from %s: %w", addr, err)
	}
	if ca.Fingerprint() != strings.ToLower(strings.ReplaceAll(tok.CAFingerprint, ":", "")) {
		return fmt.Errorf("the CA sent by %s is not the one the token names; refusing it", addr)
	}
	if err := m.storeMaterial(ca, resp.NodeCert, resp.NodeKey); err != nil {
		return fmt.Errorf("store key material: %w", err)
	}
	if err := pki.WriteFile(m.joinFromPath(), []byte(addr+"\n"), pki.CertMode); err != nil {
		return err
	}
	if err := m.open(ctx, false); err != nil {
		return err
	}
	return m.completeJoin(ctx, addr)
}

// joinFromPath records the member a join went through, to finish it after
// a restart.
func (m *Manager) joinFromPath() string { return string(m.dir) + "/join-from" }

// storeMaterial writes the received CA and node certificate and loads them.
func (m *Manager) storeMaterial(ca *pki.CA, certPEM, keyPEM []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.dir.WriteCA(ca); err != nil {
		return err
	}
	if err := m.dir.WriteNode(certPEM, keyPEM); err != nil {
		return err
	}
	mat, err := pki.LoadDir(string(m.dir))
	if err != nil {
		return err
	}
	m.material = mat
	return nil
}

// completeJoin asks a member (forwarded to the leader) to add this node as
// a voter, retrying while the leader settles, then waits for the log.
func (m *Manager) completeJoin(ctx context.Context, addr string) error {
	c, err := m.PeerClient(addr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = c.JoinComplete(cctx, api.JoinCompleteRequest{Node: m.cfg.NodeName})
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		m.log.Warn("join not completed yet; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("the cluster admitted this node but did not make it a voter: %w; restart the agent to retry", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The leader answered once the configuration change committed; this
	// node has the cluster's log only once that change reached it too.
	// Waiting for it before WaitReady keeps a fresh node from calling itself
	// ready on an empty log.
	if err := m.waitVoter(wctx); err != nil {
		return err
	}
	if err := m.Store().WaitReady(wctx); err != nil {
		return err
	}
	m.log.Info("joined the cluster", "via", addr, "leader", m.Store().Leader())
	return nil
}

// waitVoter waits until this node's own Raft configuration lists it as a
// voter.
func (m *Manager) waitVoter(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if servers, err := m.Store().Servers(); err == nil {
			for _, s := range servers {
				if s.ID == m.cfg.NodeName && s.Voter {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("this node never received the cluster's log after joining: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// explainJoin turns a failed join call into advice.
func explainJoin(addr string, err error) error {
	var e *api.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%s refused the join: %s", addr, e.Message)
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "pinned CA"), strings.Contains(msg, "fingerprint"), strings.Contains(msg, "certificate"):
		return fmt.Errorf("the node at %s is not part of the cluster this token belongs to (its CA does not match the token's fingerprint): %w", addr, raftstate.ErrTokenRefused)
	}
	return fmt.Errorf("cannot reach %s (is the address right, the agent running and port open?): %w", addr, err)
}

// Close shuts the store down.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for addr, c := range m.peers {
		c.Close()
		delete(m.peers, addr)
	}
	if m.quit != nil {
		close(m.quit)
		m.quit = nil
	}
	if m.store == nil {
		return nil
	}
	return m.store.Close()
}
