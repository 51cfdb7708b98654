package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"
)

// File modes of the PKI files: certificates are public, keys are not.
const (
	CertMode os.FileMode = 0o644
	KeyMode  os.FileMode = 0o600
)

// WriteFile puts data at path atomically with the given mode, so a crash
// leaves the old file or the new one, never a torn certificate or key that
// would stop the agent from starting.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

// Dir is the directory holding a node's PKI files:
//
//	ca.crt    0644  the cluster CA certificate
//	ca.key    0600  the cluster CA key (only on nodes that issue certificates)
//	node.crt  0644  this node's certificate
//	node.key  0600  this node's private key
type Dir string

// CACertPath is the path of the cluster CA certificate.
func (d Dir) CACertPath() string { return filepath.Join(string(d), "ca.crt") }

// CAKeyPath is the path of the cluster CA private key.
func (d Dir) CAKeyPath() string { return filepath.Join(string(d), "ca.key") }

// NodeCertPath is the path of this node's certificate.
func (d Dir) NodeCertPath() string { return filepath.Join(string(d), "node.crt") }

// NodeKeyPath is the path of this node's private key.
func (d Dir) NodeKeyPath() string { return filepath.Join(string(d), "node.key") }

// WriteCA writes the CA certificate (0644) and key (0600), creating the
// directory (0700) if needed.
func (d Dir) WriteCA(ca *CA) error {
	if err := d.mkdir(); err != nil {
		return err
	}
	if err := WriteFile(d.CAKeyPath(), ca.keyPEM, KeyMode); err != nil {
		return err
	}
	return WriteFile(d.CACertPath(), ca.certPEM, CertMode)
}

// WriteCACert writes only the CA certificate (0644): what a node that does
// not issue certificates needs to verify its peers.
func (d Dir) WriteCACert(certPEM []byte) error {
	if err := d.mkdir(); err != nil {
		return err
	}
	return WriteFile(d.CACertPath(), certPEM, CertMode)
}

// WriteNode writes this node's certificate (0644) and key (0600), creating
// the directory (0700) if needed.
func (d Dir) WriteNode(certPEM, keyPEM []byte) error {
	if err := d.mkdir(); err != nil {
		return err
	}
	// Key first: a crash in between leaves a key without its certificate,
	// which LoadDir reports, rather than a new certificate with an old key.
	if err := WriteFile(d.NodeKeyPath(), keyPEM, KeyMode); err != nil {
		return err
	}
	return WriteFile(d.NodeCertPath(), certPEM, CertMode)
}

func (d Dir) mkdir() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("create PKI directory %s: %w", string(d), err)
	}
	return nil
}

// Material is what a member node needs for mutual TLS: the cluster CA, its
// own certificate and key, and its node name as the certificate states it.
type Material struct {
	// CACert is the cluster CA certificate; peers are verified against it
	// alone.
	CACert *x509.Certificate
	// Cert is this node's certificate chain (node certificate, then the CA
	// certificate) with its private key. The CA certificate is in the chain
	// so that a joining host, which knows only the CA fingerprint, can
	// verify the server (see PinnedConfig).
	Cert tls.Certificate
	// NodeName is the node name from this node's certificate.
	NodeName string
	// CA is the cluster CA with its key, or nil on a node without ca.key.
	CA *CA
}

// NewMaterial builds Material from PEM data and checks that it is coherent:
// the key matches the certificate, and the certificate is a node certificate
// issued by the CA, valid now, for both server and client use.
func NewMaterial(caCertPEM, nodeCertPEM, nodeKeyPEM []byte) (*Material, error) {
	caCert, err := parseCertPEM(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	if !caCert.IsCA {
		return nil, fmt.Errorf("certificate %q is not a certificate authority; ca.crt must hold the cluster CA", caCert.Subject)
	}
	pair, err := tls.X509KeyPair(nodeCertPEM, nodeKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("read node certificate and key (do they belong together?): %w", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		// Leaf is filled in by X509KeyPair since Go 1.23; parse for safety.
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse node certificate: %w", err)
		}
		pair.Leaf = leaf
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	now := time.Now()
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("node certificate %q does not verify against the cluster CA (CA fingerprint %s); reissue it from this cluster: %w", leaf.Subject, fingerprint(caCert.Raw), err)
		}
	}
	name, err := NodeName(leaf)
	if err != nil {
		return nil, err
	}
	// Present the CA after the node certificate; see Material.Cert.
	pair.Certificate = append(pair.Certificate[:1:1], caCert.Raw)
	return &Material{CACert: caCert, Cert: pair, NodeName: name}, nil
}

// CAFingerprint is the SHA-256 fingerprint of the cluster CA certificate,
// lowercase hex, as carried in join tokens.
func (m *Material) CAFingerprint() string { return fingerprint(m.CACert.Raw) }

// CertPool returns a pool holding only the cluster CA.
func (m *Material) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(m.CACert)
	return p
}

// LoadDir reads a node's PKI files from dir (see Dir) and checks them with
// NewMaterial. ca.key is optional; if present it must match ca.crt. A key
// file that the group or others may access is refused, since a key that has
// been readable may have been read.
func LoadDir(dir string) (*Material, error) {
	d := Dir(dir)
	caPEM, err := os.ReadFile(d.CACertPath())
	if err != nil {
		return nil, fmt.Errorf("read cluster CA certificate: %w; has this node run `redis-appliance cluster init` or joined a cluster?", err)
	}
	certPEM, err := os.ReadFile(d.NodeCertPath())
	if err != nil {
		return nil, fmt.Errorf("read node certificate: %w", err)
	}
	keyPEM, err := readKeyFile(d.NodeKeyPath())
	if err != nil {
		return nil, err
	}
	m, err := NewMaterial(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("PKI files in %s: %w", dir, err)
	}
	caKeyPEM, err := readKeyFile(d.CAKeyPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		return nil, err
	}
	ca, err := LoadCA(caPEM, caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("PKI files in %s: %w", dir, err)
	}
	m.CA = ca
	return m, nil
}

// readKeyFile reads a private key file after checking its mode.
func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("private key %s has mode %04o, readable beyond its owner; run: chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return data, nil
}
