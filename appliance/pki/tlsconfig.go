package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// ServerConfig is the TLS configuration for a node's listeners between
// members (Raft, node-to-node API): TLS 1.3 only, presenting the node's
// certificate, and requiring a client certificate issued by the cluster CA.
// Read the peer's node name with NodeName(state.PeerCertificates[0]).
func ServerConfig(m *Material) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    m.CertPool(),
	}
}

// JoinServerConfig is ServerConfig for the listener that also serves hosts
// which are joining and have no certificate yet: a client certificate is
// verified against the cluster CA if one is presented, and may be absent.
// Handlers on it must authenticate certificate-less clients otherwise (a
// join token) and must not treat them as members.
func JoinServerConfig(m *Material) *tls.Config {
	c := ServerConfig(m)
	c.ClientAuth = tls.VerifyClientCertIfGiven
	return c
}

// ClientConfig is the TLS configuration for a member dialing another member:
// it presents the node's certificate and verifies the server against the
// cluster CA only, never the system roots, so a server with a certificate
// from any other CA is refused. serverName is the name or IP the server's
// certificate must hold; when empty, crypto/tls's Dial and tls.Dialer take
// it from the dialed address.
func ClientConfig(m *Material, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.Cert},
		RootCAs:      m.CertPool(),
		ServerName:   serverName,
	}
}

// PinnedConfig is the TLS configuration for a host that is joining: it has no
// certificate and no CA yet, only the CA fingerprint from its join token. It
// accepts a server only if the server presents, after its own certificate,
// the CA certificate whose SHA-256 equals caFingerprint (lowercase hex; the
// "AB:CD:..." form that openssl prints is accepted too), and its own
// certificate is a valid server certificate signed by that CA. It presents
// no client certificate.
//
// The server's name is not checked: any certificate from the pinned CA
// belongs to a member of the cluster the token was issued for, which is
// exactly who the joining host wants to reach, whatever address it used.
func PinnedConfig(caFingerprint string) *tls.Config {
	pin, pinErr := normalizeFingerprint(caFingerprint)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// crypto/tls can verify a chain only against a root pool, and the
		// joining host has no pool, only a fingerprint. So the built-in
		// verification is turned off here and VerifyConnection below does
		// the whole job: find the pinned CA, check it is a CA, and verify
		// the server's chain to it. VerifyConnection runs on every
		// handshake, resumed ones included, and a non-nil error aborts the
		// handshake, so no connection proceeds unverified.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if pinErr != nil {
				return pinErr
			}
			return verifyPinned(cs.PeerCertificates, pin)
		},
	}
}

// verifyPinned checks that certs (as the server presented them) hold a CA
// with fingerprint pin that signed certs[0] as a server certificate.
func verifyPinned(certs []*x509.Certificate, pin string) error {
	if len(certs) == 0 {
		return errors.New("server presented no certificate")
	}
	var ca *x509.Certificate
	seen := make([]string, 0, len(certs)-1)
	for _, c := range certs[1:] {
		fp := fingerprint(c.Raw)
		if fp == pin {
			ca = c
			break
		}
		seen = append(seen, fp)
	}
	if ca == nil {
		return fmt.Errorf("server's CA is not the one in the join token (want fingerprint %s, server presented %s): the token belongs to another cluster, or the address is not a member of it",
			pin, orNone(seen))
	}
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("certificate with the pinned fingerprint %s is not a certificate authority", pin)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("server certificate %q does not verify against the pinned cluster CA: %w", certs[0].Subject, err)
	}
	return nil
}

func orNone(fps []string) string {
	if len(fps) == 0 {
		return "no CA certificate"
	}
	return strings.Join(fps, ", ")
}
