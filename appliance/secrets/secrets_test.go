package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyring_SealOpenAndKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	k, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	sealed, err := k.Seal([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed bytes contain the plaintext")
	}
	// The same file opened again gives the same key.
	k2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k2.Open(sealed)
	if err != nil || string(pt) != "s3cret" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	// Another key cannot open it.
	other, _ := LoadOrCreate(filepath.Join(t.TempDir(), "other.key"))
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("a different key opened the secret")
	}
	// A world-readable key is refused.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(path); err == nil {
		t.Fatal("a 0644 key file was accepted")
	}
}

func TestNewPassword_LongAndURLSafe(t *testing.T) {
	a, _ := NewPassword()
	b, _ := NewPassword()
	if len(a) < 43 || a == b {
		t.Fatalf("passwords %q %q: want 43+ chars, distinct", a, b)
	}
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			t.Fatalf("password has %q, not URL-safe", c)
		}
	}
}
