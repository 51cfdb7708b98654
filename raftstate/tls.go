package raftstate

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
)

// TLSMode is whether a database's instances listen with TLS.
type TLSMode string

// The TLS modes of a database.
const (
	// TLSOff: plaintext only (databases from before TLS).
	TLSOff TLSMode = ""
	// TLSEnabled: a TLS port beside the plaintext one.
	TLSEnabled TLSMode = "enabled"
	// TLSOnly: the TLS port alone; replication runs over TLS too.
	TLSOnly TLSMode = "only"
)

// Check is the one check of a mode.
func (m TLSMode) Check() error {
	if m != TLSOff && m != TLSEnabled && m != TLSOnly {
		return invalidf("unknown TLS mode %q: use enable, only or off", string(m))
	}
	return nil
}

// DatabaseCA is the cluster's database CA: it issues the certificates
// instances present on their TLS ports. It is not the cluster CA:
// applications trust it, and that grants nothing inside the cluster. Its
// key is sealed, so that whichever node needs a certificate issues it.
type DatabaseCA struct {
	CertPEM []byte `json:"cert_pem"`
	Key     Sealed `json:"key"`
}

func (c *DatabaseCA) clone() *DatabaseCA {
	if c == nil {
		return nil
	}
	return &DatabaseCA{CertPEM: slices.Clone(c.CertPEM), Key: slices.Clone(c.Key)}
}

func checkDatabaseCA(c *DatabaseCA) error {
	if c == nil {
		return nil
	}
	b, _ := pem.Decode(c.CertPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return invalidf("the database CA is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !cert.IsCA {
		return invalidf("the database CA certificate does not parse as a CA")
	}
	if len(c.Key) == 0 {
		return invalidf("the database CA has no sealed key")
	}
	return nil
}

// SetDatabaseCA is the payload of CmdSetDatabaseCA: the cluster's database
// CA, recorded once (a second is refused, so two leaders cannot both
// make one).
type SetDatabaseCA struct {
	CA DatabaseCA `json:"ca"`
}

// SetDatabaseTLS is the payload of CmdSetDatabaseTLS: a database's TLS
// mode, and the TLS port of each of its instances (by instance ID) when it
// leaves TLSOff; they stay when it goes back to it, for the next time.
type SetDatabaseTLS struct {
	Name  string         `json:"name"`
	Mode  TLSMode        `json:"mode"`
	Ports map[string]int `json:"ports,omitempty"`
}

func (f *FSM) applySetDatabaseCA(p SetDatabaseCA) error {
	if err := checkDatabaseCA(&p.CA); err != nil {
		return err
	}
	if f.state.DatabaseCA != nil {
		return fmt.Errorf("the database CA %w", ErrExists)
	}
	f.state.DatabaseCA = p.CA.clone()
	return nil
}

func (f *FSM) applySetDatabaseTLS(p SetDatabaseTLS) error {
	d, err := f.database(p.Name)
	if err != nil {
		return err
	}
	if err := p.Mode.Check(); err != nil {
		return err
	}
	if p.Mode != TLSOff && f.state.DatabaseCA == nil {
		return fmt.Errorf("the cluster has no database CA yet: %w", ErrConflict)
	}
	next := slices.Clone(d.Instances)
	for i, in := range next {
		if port, ok := p.Ports[in.ID]; ok {
			if err := CheckPort(port); err != nil {
				return fmt.Errorf("instance %s: %w", in.ID, err)
			}
			if owner, taken := f.state.PortsInUse(in.Node)[port]; (taken && owner != in.ID) || port == in.Port {
				return fmt.Errorf("port %d on %s is taken (by %s): %w", port, in.Node, owner, ErrConflict)
			}
			next[i].TLSPort = port
		}
		if p.Mode != TLSOff && next[i].TLSPort == 0 {
			return invalidf("instance %s has no TLS port", in.ID)
		}
	}
	for id := range p.Ports {
		if _, ok := d.Instance(id); !ok {
			return invalidf("database %s has no instance %s", p.Name, cutMessage(id))
		}
	}
	d.Instances, d.TLS = next, p.Mode
	return nil
}
