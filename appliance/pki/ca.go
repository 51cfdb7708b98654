package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"
)

const (
	// caYears is the CA's validity. Rotating a cluster CA means reissuing
	// every node certificate, so it lives long; node certificates do not.
	caYears = 10
	// backdate moves NotBefore into the past so that a host whose clock runs
	// a little behind the issuer's still accepts a certificate issued just
	// now, instead of failing a join with "not yet valid".
	backdate = time.Hour
	// maxClusterIDLen is the X.509 upper bound for an organizational unit
	// name, where the cluster ID is recorded.
	maxClusterIDLen = 64
)

// organization is the subject organization of every certificate issued
// here; it makes them recognizable in openssl output and logs.
const organization = "redis-appliance"

// CA is a cluster certificate authority: its certificate and private key.
// Every certificate it issues makes the holder a member of the cluster.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// NewCA creates a self-signed ECDSA P-256 CA for the cluster clusterID,
// valid for 10 years from now. It may sign node certificates only (path
// length 0), so a stolen node key cannot mint more members.
func NewCA(clusterID string, now time.Time) (*CA, error) {
	return newSelfSignedCA(clusterID, "redis-appliance cluster CA", now)
}

// newSelfSignedCA creates a self-signed CA named commonName (see NewCA).
func newSelfSignedCA(clusterID, commonName string, now time.Time) (*CA, error) {
	if err := checkClusterID(clusterID); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         commonName,
			Organization:       []string{organization},
			OrganizationalUnit: []string{clusterID},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, certPEM: encodeCert(der), keyPEM: keyPEM}, nil
}

// LoadCA reads a CA from its PEM certificate and PEM private key (PKCS#8 or
// SEC 1) and checks that they belong together and form a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("certificate %q is not a certificate authority; give the cluster's ca.crt", cert.Subject)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("CA key does not match the CA certificate; ca.key and ca.crt come from different clusters")
	}
	// Re-encode the key so KeyPEM always returns PKCS#8, whatever was read.
	kp, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, certPEM: encodeCert(cert.Raw), keyPEM: kp}, nil
}

// Certificate returns the parsed CA certificate. Callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM form (public: every node and
// every joining host gets it).
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// KeyPEM returns the CA private key in PKCS#8 PEM form. It is secret: write
// it only with mode 0600 and never log it.
func (ca *CA) KeyPEM() []byte { return append([]byte(nil), ca.keyPEM...) }

// Fingerprint returns the SHA-256 of the CA certificate's DER bytes in
// lowercase hex. Join tokens carry it so a joining host can pin the CA.
func (ca *CA) Fingerprint() string { return fingerprint(ca.cert.Raw) }

// ClusterID returns the cluster ID the CA was created for.
func (ca *CA) ClusterID() string {
	if len(ca.cert.Subject.OrganizationalUnit) == 0 {
		return ""
	}
	return ca.cert.Subject.OrganizationalUnit[0]
}

// fingerprint is the SHA-256 of der in lowercase hex.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// normalizeFingerprint accepts the forms people paste (openssl prints
// "AB:CD:..."), and returns lowercase hex without separators, or an error if
// it is not a SHA-256.
func normalizeFingerprint(fp string) (string, error) {
	s := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(fp), ":", ""))
	if len(s) != sha256.Size*2 {
		return "", fmt.Errorf("CA fingerprint %q is not a SHA-256 (want 64 hex digits)", fp)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("CA fingerprint %q is not hexadecimal", fp)
	}
	return s, nil
}

func checkClusterID(id string) error {
	if id == "" {
		return errors.New("cluster ID is empty; pass the ID of the cluster the CA is for")
	}
	if len(id) > maxClusterIDLen {
		return fmt.Errorf("cluster ID %q is %d bytes, at most %d fit in a certificate", id, len(id), maxClusterIDLen)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("cluster ID %q contains a non-printable character", id)
		}
	}
	return nil
}

// newSerial returns a random positive 128-bit serial number: RFC 5280 asks
// for unique serials per CA and random ones cannot collide in practice,
// without the CA having to remember the last one.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// subjectKeyID follows RFC 7093 section 2 method 1: the leftmost 160 bits of
// the SHA-256 of the subject public key. Issued certificates copy it as
// their AuthorityKeyId, which lets tools pick the right CA after a rotation.
func subjectKeyID(pub *ecdsa.PublicKey) ([]byte, error) {
	ek, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("compute subject key ID: %w", err)
	}
	sum := sha256.Sum256(ek.Bytes())
	return sum[:20], nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCertPEM reads the first CERTIFICATE block of data.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM CERTIFICATE block found; is this a certificate file?")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

// parseKeyPEM reads an ECDSA private key in PKCS#8 or SEC 1 PEM form.
func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block found; is this a key file?")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("private key is %T, want ECDSA", k)
			}
			return ek, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse EC private key: %w", err)
			}
			return k, nil
		}
	}
}
