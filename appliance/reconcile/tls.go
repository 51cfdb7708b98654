package reconcile

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"
	"github.com/redis-appliance/redis-appliance/appliance/pki"
	"github.com/redis-appliance/redis-appliance/appliance/redisconf"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// TLSCertTTL is the lifetime of an instance's certificate; it is renewed
// once two thirds of it have passed.
const TLSCertTTL = 90 * 24 * time.Hour

// tlsFiles are the names of an instance's TLS files in its directory.
const (
	tlsCertName = "tls.crt"
	tlsKeyName  = "tls.key"
	tlsCAName   = "ca.crt"
)

// tlsOf returns the TLS settings of an instance whose database has TLS,
// issuing its certificate from the database CA when it has none, when the
// one it has does not cover this node's addresses, is signed by another
// CA or is two thirds through its life; nil for a database without TLS.
func (r *Reconciler) tlsOf(st *raftstate.State, db *raftstate.Database, in raftstate.Instance, dir string) (*redisconf.TLS, error) {
	if db.TLS == raftstate.TLSOff || in.TLSPort == 0 {
		return nil, nil
	}
	ca := st.DatabaseCA
	if ca == nil {
		return nil, fmt.Errorf("database %s has TLS but the cluster has no database CA", db.Name)
	}
	t := &redisconf.TLS{
		Port: in.TLSPort, Only: db.TLS == raftstate.TLSOnly,
		CertFile: filepath.Join(dir, tlsCertName), KeyFile: filepath.Join(dir, tlsKeyName), CAFile: filepath.Join(dir, tlsCAName),
	}
	hosts := r.cfg.TLSHosts
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	now := r.cfg.Now()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	certPEM, _ := os.ReadFile(t.CertFile)
	keyPEM, _ := os.ReadFile(t.KeyFile)
	caPEM, _ := os.ReadFile(t.CAFile)
	if leaf, err := pki.CheckServerCert(certPEM, keyPEM, hosts, roots, now); err == nil && bytes.Equal(caPEM, ca.CertPEM) &&
		now.Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore)*2/3)) {
		return t, nil
	}
	keyDB, err := r.keys.Open(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("open the database CA's key: %w", err)
	}
	signer, err := pki.LoadCA(ca.CertPEM, keyDB)
	if err != nil {
		return nil, fmt.Errorf("database CA: %w", err)
	}
	certPEM, keyPEM, err = signer.IssueServer(hosts, TLSCertTTL, now)
	if err != nil {
		return nil, fmt.Errorf("issue the certificate of %s: %w", in.ID, err)
	}
	// The key first: a certificate is never on disk without its key.
	for _, f := range []struct {
		path string
		data []byte
	}{{t.KeyFile, keyPEM}, {t.CertFile, certPEM}, {t.CAFile, ca.CertPEM}} {
		if err := atomicfile.WriteOwned(f.path, f.data, 0o600, r.cfg.UID, r.cfg.GID); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	r.log.Info("instance TLS certificate issued", "instance", in.ID, "hosts", hosts, "valid_for", TLSCertTTL)
	return t, nil
}
