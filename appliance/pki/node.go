package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// nodeYears is a node certificate's validity: short enough that a leaked
// key of a long-gone host stops working, long enough not to need automatic
// renewal in the first release.
const nodeYears = 2

// nodeURIScheme and nodeURIPrefix form the URI SAN that names a node:
// redis-appliance:node:NAME. A URI SAN (rather than the CommonName, which
// verifiers ignore, or a DNS SAN, which means "an address") says exactly
// "this certificate belongs to node NAME".
const (
	nodeURIScheme = "redis-appliance"
	nodeURIPrefix = "node:"
)

// nodeNameRE is the rule for node names. It is the same rule as
// raftstate.NameRE (a test checks they agree); pki cannot import raftstate
// because raftstate's tests build certificates with this package.
var nodeNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// IssueNode issues a certificate and a new ECDSA P-256 key for node, valid
// for 2 years (never beyond the CA). It serves both as a TLS server
// certificate (for the addresses in ips and dnsNames, which must be the ones
// peers dial) and as a TLS client certificate, because every node is both.
// The node name is the CommonName and a URI SAN; read it back with NodeName.
// keyPEM is secret: write it with mode 0600 and never log it.
func (ca *CA) IssueNode(node string, ips []net.IP, dnsNames []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if !nodeNameRE.MatchString(node) {
		return nil, nil, fmt.Errorf("node name %q is invalid: use 1 to 40 lowercase letters, digits or '-', starting with a letter", node)
	}
	if len(ips) == 0 && len(dnsNames) == 0 {
		return nil, nil, fmt.Errorf("node certificate for %s needs at least one IP address or DNS name that peers dial", node)
	}
	for _, ip := range ips {
		if ip == nil || ip.IsUnspecified() {
			return nil, nil, fmt.Errorf("node certificate for %s: %v is not an address peers can dial; give the node's advertised address, not the wildcard it listens on", node, ip)
		}
	}
	for _, d := range dnsNames {
		if d == "" {
			return nil, nil, fmt.Errorf("node certificate for %s: empty DNS name", node)
		}
	}
	return ca.issueLeaf(node, now, now.AddDate(nodeYears, 0, 0), func(c *x509.Certificate) {
		c.IPAddresses, c.DNSNames, c.URIs = ips, dnsNames, []*url.URL{nodeURI(node)}
	})
}

// NodeName returns the node name a certificate was issued for, from its
// redis-appliance:node:NAME URI SAN. Call it only on a certificate that has
// been verified against the cluster CA (for example the first of
// tls.ConnectionState.PeerCertificates after a mutual-TLS handshake);
// otherwise the name proves nothing.
func NodeName(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no certificate: the peer did not present one")
	}
	name := ""
	for _, u := range cert.URIs {
		n, ok := strings.CutPrefix(u.Opaque, nodeURIPrefix)
		if u.Scheme != nodeURIScheme || !ok || n == "" {
			continue
		}
		if name != "" && n != name {
			return "", fmt.Errorf("certificate %q names two nodes (%s and %s); it was not issued by redis-appliance", cert.Subject, name, n)
		}
		name = n
	}
	if name == "" {
		return "", fmt.Errorf("certificate %q has no redis-appliance node name; it is not a node certificate of this cluster", cert.Subject)
	}
	if !nodeNameRE.MatchString(name) {
		return "", fmt.Errorf("certificate %q has an invalid node name %q", cert.Subject, name)
	}
	return name, nil
}

func nodeURI(node string) *url.URL {
	return &url.URL{Scheme: nodeURIScheme, Opaque: nodeURIPrefix + node}
}
