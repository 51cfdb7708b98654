// Package secrets seals passwords with the cluster key so that only sealed
// bytes ever reach the Raft log, snapshots or API responses that do not ask
// for the secret. The key lives in a 0600 file on each node.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"
)

// keySize is an AES-256 key.
const keySize = 32

// Keyring seals and opens secrets with one cluster key.
type Keyring struct {
	aead cipher.AEAD
}

// LoadOrCreate reads the key at path, creating a new random one (0600) if the
// file does not exist. A key file readable by others is refused.
func LoadOrCreate(path string) (*Keyring, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate cluster key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create key directory: %w", err)
		}
		if err := atomicfile.Write(path, key, 0o600); err != nil {
			return nil, fmt.Errorf("write cluster key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read cluster key %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat cluster key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster key %s has mode %o; run: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return New(key)
}

// ReadKey returns the raw cluster key, to hand to a joining node over TLS.
func ReadKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cluster key: %w", err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("cluster key %s is %d bytes, want %d", path, len(key), keySize)
	}
	return key, nil
}

// WriteKey replaces the key at path (0600) with one received from the
// cluster, so this node opens the secrets the others sealed.
func WriteKey(path string, key []byte) error {
	if _, err := New(key); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, key, 0o600)
}

// New returns a keyring over a 32-byte key.
func New(key []byte) (*Keyring, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("cluster key is %d bytes, want %d: the key file is damaged", len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{aead: aead}, nil
}

// Seal encrypts plaintext; the result is nonce || ciphertext.
func (k *Keyring) Seal(plaintext []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plaintext, nil), nil
}

// Open decrypts what Seal produced.
func (k *Keyring) Open(sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret is too short")
	}
	pt, err := k.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, errors.New("cannot open sealed secret: this node's cluster key does not match the one that sealed it")
	}
	return pt, nil
}

// NewPassword returns a password made of 32 random bytes, URL-safe so that
// it can stand in a redis:// URL without escaping.
func NewPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
