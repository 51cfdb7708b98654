package pki

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func newToken(t *testing.T) Token {
	t.Helper()
	tok, err := NewToken("10.0.0.1:7480", newCA(t, "c").Fingerprint(), time.Hour, testNow)
	if err != nil {
		t.Fatalf("NewToken: %v", err)
	}
	return tok
}

// TestTokenRoundTrip: what cluster token prints is what cluster join reads.
func TestTokenRoundTrip(t *testing.T) {
	tok := newToken(t)
	s := tok.String()
	if !strings.HasPrefix(s, "ratok1.") || strings.ContainsAny(s, " \n+/=") {
		t.Fatalf("token %q is not a compact, URL-safe ratok1 string", s)
	}
	got, err := ParseToken("  " + s + "\n")
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if got.ID != tok.ID || !bytes.Equal(got.Secret, tok.Secret) || got.CAFingerprint != tok.CAFingerprint ||
		got.Addr != tok.Addr || !got.Expires.Equal(tok.Expires) {
		t.Errorf("round trip: got %+v, want %+v", got, tok)
	}
	if len(tok.Secret) != 32 || len(tok.ID) != 16 {
		t.Errorf("secret %d bytes, ID %q", len(tok.Secret), tok.ID)
	}
	if got.Hash() != tok.Hash() {
		t.Error("hash changed across the round trip")
	}
	if !tok.Expires.Equal(testNow.Add(time.Hour)) {
		t.Errorf("Expires = %v, want %v", tok.Expires, testNow.Add(time.Hour))
	}
}

// TestParseTokenRefusesBadInput: a token that is cut, changed or of another
// kind is refused with an error that says which.
func TestParseTokenRefusesBadInput(t *testing.T) {
	s := newToken(t).String()
	body := strings.TrimPrefix(s, "ratok1.")
	mid := len(s) / 2
	flipped := s[:mid] + string(rune(s[mid]^1)) + s[mid+1:]
	cases := []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrNotToken},
		{"another prefix", "xyz1." + body, ErrNotToken},
		{"no prefix", body, ErrNotToken},
		{"another version", "ratok2." + body, ErrNotToken},
		{"truncated", s[:len(s)-10], ErrTokenDamaged},
		{"prefix only", "ratok1.", ErrTokenDamaged},
		{"garbled", flipped, ErrTokenDamaged},
		{"not base64", "ratok1.!!!!", ErrTokenDamaged},
		{"json of something else", "ratok1.eyJ4IjoxfQ", ErrTokenDamaged}, // {"x":1}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseToken(%q) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
	if _, err := ParseToken("ratok2." + body); err == nil || !strings.Contains(err.Error(), `version "2"`) {
		t.Errorf("another version: %v, want it to name the version", err)
	}
}

// TestTokenExpiry: a token is good until its expiry and refused from then on.
func TestTokenExpiry(t *testing.T) {
	tok := newToken(t)
	if err := tok.Check(testNow.Add(59 * time.Minute)); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	for _, at := range []time.Time{tok.Expires, tok.Expires.Add(time.Second)} {
		err := tok.Check(at)
		if !errors.Is(err, ErrTokenExpired) || !strings.Contains(err.Error(), "token expired at ") {
			t.Errorf("Check(%v) = %v, want token expired at ...", at, err)
		}
	}
}

// TestTokenHash: the stored hash identifies the secret: a different secret
// (or ID) gives a different hash, and comparison is exact.
func TestTokenHash(t *testing.T) {
	tok := newToken(t)
	h := tok.Hash()
	if len(h) != 64 || strings.Contains(h, string(tok.Secret)) {
		t.Fatalf("hash %q", h)
	}
	other := tok
	other.Secret = append([]byte(nil), tok.Secret...)
	other.Secret[0] ^= 1
	if other.Hash() == h {
		t.Error("a different secret gives the same hash")
	}
	otherID := tok
	otherID.ID = "0000000000000000"
	if otherID.Hash() == h {
		t.Error("a different ID gives the same hash")
	}
	if !HashEqual(h, tok.Hash()) || HashEqual(h, other.Hash()) || HashEqual(h, h[:10]) || HashEqual(h, "") {
		t.Error("HashEqual")
	}
}

// TestNewTokenRefusesBadInput and TestTokenLogValue: tokens carry a usable
// address and CA pin, and slog never prints the secret.
func TestNewTokenRefusesBadInput(t *testing.T) {
	fp := newCA(t, "c").Fingerprint()
	if _, err := NewToken("10.0.0.1", fp, time.Hour, testNow); err == nil {
		t.Error("address without port accepted")
	}
	if _, err := NewToken("10.0.0.1:7480", "abcd", time.Hour, testNow); err == nil {
		t.Error("short fingerprint accepted")
	}
	if _, err := NewToken("10.0.0.1:7480", fp, 0, testNow); err == nil {
		t.Error("zero lifetime accepted")
	}
	tok, err := NewToken("[::1]:7480", strings.ToUpper(fp), time.Minute, testNow)
	if err != nil || tok.CAFingerprint != fp {
		t.Errorf("upper-case fingerprint: %v, %q", err, tok.CAFingerprint)
	}
}

func TestTokenLogValue(t *testing.T) {
	tok := newToken(t)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("created", "token", tok)
	out := buf.String()
	if !strings.Contains(out, tok.ID) || strings.Contains(out, tok.String()[7:20]) {
		t.Errorf("log line %q: want the ID and no token body", out)
	}
}
