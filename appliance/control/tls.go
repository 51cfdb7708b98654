package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/instance"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// tlsLevel is the feature level at which databases have TLS.
const tlsLevel = 4

// tlsReady says whether every voter applies the TLS commands.
func (c *Controller) tlsReady() bool {
	level, _, err := c.store().ClusterLevel()
	return err == nil && level >= tlsLevel
}

// databaseCAName names the database CA in its certificate.
const databaseCAName = "redis-appliance databases"

// ensureDatabaseCA makes the cluster's database CA if it has none and
// every voter is at level 4; a second leader racing this one is refused
// by the FSM and uses the first's.
func (c *Controller) ensureDatabaseCA(ctx context.Context) error {
	if !c.tlsReady() || c.store().View().DatabaseCA != nil {
		return nil
	}
	ca, err := pki.NewDatabaseCA(databaseCAName, c.Now())
	if err != nil {
		return err
	}
	sealed, err := c.keys().Seal(ca.KeyPEM())
	if err != nil {
		return err
	}
	err = c.store().Apply(ctx, raftstate.CmdSetDatabaseCA, raftstate.SetDatabaseCA{CA: raftstate.DatabaseCA{CertPEM: ca.CertPEM(), Key: sealed}})
	if errors.Is(err, raftstate.ErrExists) {
		return nil
	}
	if err == nil {
		c.log.Info("database CA created")
	}
	return err
}

// DatabaseCA returns the certificate applications verify instances with.
func (c *Controller) DatabaseCA(ctx context.Context) (api.CA, error) {
	if err := c.ensureDatabaseCA(ctx); err != nil {
		return api.CA{}, err
	}
	ca := c.store().View().DatabaseCA
	if ca == nil {
		_, behind, _ := c.store().ClusterLevel()
		return api.CA{}, conflict("the cluster has no database CA yet: every node must run a release with TLS (behind: %v)", behind)
	}
	return api.CA{CertPEM: string(ca.CertPEM)}, nil
}

// parseTLSMode reads db tls's word for a mode.
func parseTLSMode(s string) (raftstate.TLSMode, error) {
	switch s {
	case "enable", "enabled":
		return raftstate.TLSEnabled, nil
	case "only":
		// The agent's own connections, the probes and discovery do not
		// speak TLS yet: with the plaintext port closed they could not
		// manage, fence or fail over the database.
		return "", conflict("db tls DB only is not available yet in this release: the agent still manages instances over their plaintext port; use enable")
	case "off", "disable":
		return raftstate.TLSOff, nil
	}
	return "", badRequest("TLS mode %q: use enable (a TLS port beside plaintext), only (TLS alone) or off", s)
}

// SetDatabaseTLS changes a database's TLS mode, giving each instance a TLS
// port on its node the first time, and waits for the instances to run
// again.
func (c *Controller) SetDatabaseTLS(ctx context.Context, name string, req api.TLSRequest) (api.Database, error) {
	mode, err := parseTLSMode(req.Mode)
	if err != nil {
		return api.Database{}, err
	}
	if err := c.ensureDatabaseCA(ctx); err != nil {
		return api.Database{}, err
	}
	c.placeMu.Lock()
	st := c.store().View()
	db, ok := st.Databases[name]
	if !ok {
		c.placeMu.Unlock()
		return api.Database{}, notFound(name)
	}
	if mode != raftstate.TLSOff && st.DatabaseCA == nil {
		c.placeMu.Unlock()
		_, behind, _ := c.store().ClusterLevel()
		return api.Database{}, conflict("TLS needs every node on a release with TLS: upgrade the agent on %v first", behind)
	}
	ports := map[string]int{}
	if mode != raftstate.TLSOff {
		for _, in := range db.Instances {
			if in.TLSPort != 0 {
				continue
			}
			f, err := c.facts(in.Node)
			if err != nil {
				c.placeMu.Unlock()
				return api.Database{}, err
			}
			p, err := c.freePort(st, in.Node, f)
			if err != nil {
				c.placeMu.Unlock()
				return api.Database{}, err
			}
			ports[in.ID] = p
		}
	}
	err = c.store().Apply(ctx, raftstate.CmdSetDatabaseTLS, raftstate.SetDatabaseTLS{Name: name, Mode: mode, Ports: ports})
	c.placeMu.Unlock()
	if err != nil {
		return api.Database{}, err
	}
	c.log.Info("database TLS mode set", "database", name, "mode", mode)
	// Done when every instance runs and its TLS port answers a verified
	// handshake (or, off, no longer answers): the nodes apply the mode at
	// their next pass.
	roots := x509.NewCertPool()
	if ca := c.store().View().DatabaseCA; ca != nil {
		roots.AppendCertsFromPEM(ca.CertPEM)
	}
	return c.waitFor(ctx, name, func(v api.Database) bool {
		for _, in := range v.Instances {
			if in.State != api.StateRunning || in.TLSPort == 0 {
				return in.State == api.StateRunning && mode == raftstate.TLSOff
			}
			if tlsAnswers(net.JoinHostPort(in.Host, strconv.Itoa(in.TLSPort)), in.Host, roots) != (mode != raftstate.TLSOff) {
				return false
			}
		}
		return true
	})
}

// tlsAnswers says whether addr completes a TLS handshake whose certificate
// is valid for host under roots.
func tlsAnswers(addr, host string, roots *x509.CertPool) bool {
	d := &net.Dialer{Timeout: time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// DatabaseTLSURL returns rediss://default:PASSWORD@HOST:TLSPORT/0 of the
// primary, for clients that verify it against db ca.
func (c *Controller) DatabaseTLSURL(ctx context.Context, name string) (api.URL, error) {
	st := c.store().View()
	db, ok := st.Databases[name]
	if !ok {
		return api.URL{}, notFound(name)
	}
	if db.TLS == raftstate.TLSOff {
		return api.URL{}, conflict("database %s has no TLS port; turn it on with redis-appliance db tls %s enable", name, name)
	}
	p, ok := db.Primary()
	if !ok {
		return api.URL{}, conflict("database %q has no primary right now", name)
	}
	pw, err := c.keys().Open(db.Password)
	if err != nil {
		return api.URL{}, err
	}
	host := instance.Host(st, p.Node, c.cfg.AdvertiseAddr)
	u := url.URL{Scheme: "rediss", User: url.UserPassword("default", string(pw)), Host: net.JoinHostPort(host, strconv.Itoa(p.TLSPort)), Path: "/0"}
	return api.URL{URL: u.String()}, nil
}
