package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// NewDatabaseCA creates the cluster's database CA: the one that issues the
// certificates redis-server instances present to clients on their TLS
// ports. It is not the cluster CA, so an application that trusts it (it
// is handed out with db ca) trusts no member of the cluster.
func NewDatabaseCA(clusterID string, now time.Time) (*CA, error) {
	return newSelfSignedCA(clusterID, "redis-appliance database CA", now)
}

// IssueServer issues a TLS server certificate and a new ECDSA P-256 key for
// hosts (IP addresses and DNS names clients may dial: every one becomes a
// SAN), valid for ttl from now and never beyond the CA. It also serves as
// a client certificate, which a replica presents to its primary when
// replication runs over TLS. keyPEM is secret.
func (ca *CA) IssueServer(hosts []string, ttl time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("a server certificate needs at least one address or host name clients dial")
	}
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("a server certificate's lifetime must be positive, not %s", ttl)
	}
	var ips []net.IP
	var names []string
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				return nil, nil, fmt.Errorf("%s is not an address clients can dial; give the node's advertised address", h)
			}
			ips = append(ips, ip)
			continue
		}
		if h == "" || strings.ContainsAny(h, " /\\\t\n") {
			return nil, nil, fmt.Errorf("%q is neither an IP address nor a host name", h)
		}
		names = append(names, h)
	}
	return ca.issueLeaf(hosts[0], now, now.Add(ttl), func(c *x509.Certificate) {
		c.IPAddresses, c.DNSNames = ips, names
	})
}

// issueLeaf issues a certificate named commonName and a new ECDSA P-256 key
// from ca, valid from now (backdated) to notAfter, never beyond the CA:
// for signing handshakes as a server and as a client. fill adds what the
// kind of certificate needs (its SANs). keyPEM is secret.
func (ca *CA) issueLeaf(commonName string, now, notAfter time.Time, fill func(*x509.Certificate)) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	// A certificate outliving its CA would fail verification anyway; capping
	// it makes the real expiry visible in the certificate itself.
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         commonName,
			Organization:       []string{organization},
			OrganizationalUnit: ca.cert.Subject.OrganizationalUnit,
		},
		NotBefore: now.Add(-backdate),
		NotAfter:  notAfter,
		// ECDSA keys sign handshakes; they never encipher keys.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	fill(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", commonName, err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// CheckServerCert checks a server certificate and key before the agent
// uses them (an operator's, from their own PKI, or one it issued): the PEM
// parses, the key is the certificate's, it is valid now, every host clients
// dial is among its SANs, and, if roots is not nil, it chains to one of
// them. It returns the leaf. Each error says what is wrong and what to do.
func CheckServerCert(certPEM, keyPEM []byte, hosts []string, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the certificate and key are not a usable pair (%v): give a PEM certificate and the PEM private key it was issued for", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse the certificate: %w", err)
	}
	switch {
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("the certificate is not valid before %s: check this host's clock or the certificate", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("the certificate expired at %s: issue a new one", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	var missing []string
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the certificate does not cover %s, which clients dial (its names: %s): issue it with those as subject alternative names",
			strings.Join(missing, ", "), strings.Join(sans(leaf), ", "))
	}
	if roots != nil {
		inter := x509.NewCertPool()
		for _, der := range pair.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				inter.AddCert(c)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, fmt.Errorf("the certificate does not chain to the CA given for it (%v): include the intermediates in the certificate file", err)
		}
	}
	return leaf, nil
}

// sans lists a certificate's names for an error message.
func sans(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.DNSNames...)
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// ReadPrivateKeyFile reads a private key file, refusing one readable by
// anyone but its owner.
func ReadPrivateKeyFile(path string) ([]byte, error) { return readKeyFile(path) }
