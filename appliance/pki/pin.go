package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// CertFingerprint is the SHA-256 of a certificate's DER encoding, lowercase
// hex: what the cluster records (pins) for each member's node certificate,
// so that a certificate minted later with the same name, even by the
// cluster CA, is not that member.
func CertFingerprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	return fingerprint(cert.Raw)
}

// FingerprintPEM is CertFingerprint of the first certificate in certPEM.
func FingerprintPEM(certPEM []byte) (string, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", errors.New("no PEM certificate to fingerprint")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse certificate to fingerprint: %w", err)
	}
	return CertFingerprint(c), nil
}

// NodeFingerprint is CertFingerprint of this node's own certificate.
func (m *Material) NodeFingerprint() string {
	if m == nil || len(m.Cert.Certificate) == 0 {
		return ""
	}
	return fingerprint(m.Cert.Certificate[0])
}
