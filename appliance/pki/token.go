package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// tokenPrefix starts every join token. The version is in the prefix so a
// later format can change everything after the dot and older agents still
// say clearly that they cannot read it.
const (
	tokenPrefix    = "ratok1."
	tokenPrefixAny = "ratok"
	// tokenIDBytes is the size of the random token ID; it is public (it names
	// the token in lists and logs), unlike the secret.
	tokenIDBytes = 8
	// TokenSecretSize is the size of a join token's secret.
	TokenSecretSize = 32
)

// ErrNotToken is returned by ParseToken for a string that is not a join
// token of this format.
var ErrNotToken = errors.New("not a redis-appliance join token")

// ErrTokenDamaged is returned by ParseToken for a token that starts right
// but does not decode: usually one cut short or changed while copying.
var ErrTokenDamaged = errors.New("join token is damaged")

// ErrTokenExpired is returned by Token.Check for a token past its expiry.
var ErrTokenExpired = errors.New("token expired")

// Token is a join token: it lets one host join the cluster before it has a
// certificate. The joining host uses CAFingerprint to pin the cluster CA and
// Addr to find a member, then presents ID and Secret; the cluster stores
// only Hash, so a leaked Raft log or snapshot cannot be used to join.
type Token struct {
	// ID names the token publicly (16 hex digits).
	ID string
	// Secret is 32 random bytes; whoever holds it may join.
	Secret []byte
	// CAFingerprint is the SHA-256 of the cluster CA certificate, lowercase
	// hex (CA.Fingerprint).
	CAFingerprint string
	// Addr is host:port of a member's cluster API.
	Addr string
	// Expires is when the token stops being accepted (whole seconds, UTC).
	Expires time.Time
}

// tokenWire is the JSON inside a token string; short keys keep the token
// short enough to paste.
type tokenWire struct {
	ID      string `json:"i"`
	Secret  []byte `json:"s"`
	CA      string `json:"c"`
	Addr    string `json:"a"`
	Expires int64  `json:"e"`
}

// NewToken creates a join token for the member at addr (host:port of its
// cluster API) in the cluster whose CA has fingerprint caFingerprint, valid
// for ttl from now.
func NewToken(addr, caFingerprint string, ttl time.Duration, now time.Time) (Token, error) {
	if ttl <= 0 {
		return Token{}, fmt.Errorf("join token lifetime %v must be positive", ttl)
	}
	if err := checkTokenAddr(addr); err != nil {
		return Token{}, err
	}
	fp, err := normalizeFingerprint(caFingerprint)
	if err != nil {
		return Token{}, err
	}
	id := make([]byte, tokenIDBytes)
	secret := make([]byte, TokenSecretSize)
	if _, err := rand.Read(id); err != nil {
		return Token{}, fmt.Errorf("generate join token: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, fmt.Errorf("generate join token: %w", err)
	}
	return Token{
		ID:            hex.EncodeToString(id),
		Secret:        secret,
		CAFingerprint: fp,
		Addr:          addr,
		// Whole seconds, so a token and its parsed copy compare equal.
		Expires: time.Unix(now.Add(ttl).Unix(), 0).UTC(),
	}, nil
}

// String returns the token in its copy-pasteable form,
// "ratok1." followed by base64url JSON. It contains the secret: print it for
// the operator, never log it (log the Token itself: see LogValue).
func (t Token) String() string {
	b, err := json.Marshal(tokenWire{ID: t.ID, Secret: t.Secret, CA: t.CAFingerprint, Addr: t.Addr, Expires: t.Expires.Unix()})
	if err != nil {
		// Marshal of strings, bytes and an integer cannot fail.
		panic(fmt.Sprintf("pki: encode join token: %v", err))
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// LogValue makes slog print a token without its secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", t.ID),
		slog.String("addr", t.Addr),
		slog.String("ca_fingerprint", t.CAFingerprint),
		slog.Time("expires", t.Expires),
	)
}

// ParseToken reads a token from its String form. Surrounding white space
// (from copy and paste) is ignored. It does not check expiry: see Check.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	body, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		if rest, ok := strings.CutPrefix(s, tokenPrefixAny); ok && strings.Contains(rest, ".") {
			v, _, _ := strings.Cut(rest, ".")
			return Token{}, fmt.Errorf("%w: it is of version %q, this agent reads version 1 (%q...); upgrade this agent or create the token with the same version", ErrNotToken, v, tokenPrefix)
		}
		return Token{}, fmt.Errorf("%w: it should start with %q; copy the whole line that `redis-appliance cluster token` printed", ErrNotToken, tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Token{}, damaged(err)
	}
	var w tokenWire
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Token{}, damaged(err)
	}
	if dec.More() {
		return Token{}, damaged(errors.New("trailing data"))
	}
	if id, err := hex.DecodeString(w.ID); err != nil || len(id) != tokenIDBytes || w.ID != strings.ToLower(w.ID) {
		return Token{}, damaged(fmt.Errorf("token ID %q is not %d hex digits", w.ID, tokenIDBytes*2))
	}
	if len(w.Secret) != TokenSecretSize {
		return Token{}, damaged(fmt.Errorf("secret is %d bytes, want %d", len(w.Secret), TokenSecretSize))
	}
	fp, err := normalizeFingerprint(w.CA)
	if err != nil || fp != w.CA {
		return Token{}, damaged(fmt.Errorf("CA fingerprint %q is not 64 lowercase hex digits", w.CA))
	}
	if err := checkTokenAddr(w.Addr); err != nil {
		return Token{}, damaged(err)
	}
	if w.Expires <= 0 {
		return Token{}, damaged(errors.New("no expiry"))
	}
	return Token{ID: w.ID, Secret: w.Secret, CAFingerprint: w.CA, Addr: w.Addr, Expires: time.Unix(w.Expires, 0).UTC()}, nil
}

func damaged(err error) error {
	return fmt.Errorf("%w (was it cut or changed while copying?): %v", ErrTokenDamaged, err)
}

// Check returns an error wrapping ErrTokenExpired if the token is no longer
// valid at now. The member that receives a token decides this with its own
// clock; the joining host may check first to fail early.
func (t Token) Check(now time.Time) error {
	if !now.Before(t.Expires) {
		return fmt.Errorf("%w at %s (token %s); create a new one with `redis-appliance cluster token` on a member",
			ErrTokenExpired, t.Expires.UTC().Format(time.RFC3339), t.ID)
	}
	return nil
}

// Hash returns the SHA-256 of the token ID followed by its secret, in
// lowercase hex. The cluster stores this, never the secret; compare with
// HashEqual. The ID has a fixed length, so ID and secret cannot be shifted
// against each other to give the same input.
func (t Token) Hash() string {
	h := sha256.New()
	h.Write([]byte(t.ID))
	h.Write(t.Secret)
	return hex.EncodeToString(h.Sum(nil))
}

// HashEqual compares two token hashes in constant time, so the time a member
// takes to refuse a token reveals nothing about the stored hash.
func HashEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func checkTokenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("member address %q is not host:port", addr)
	}
	return nil
}
