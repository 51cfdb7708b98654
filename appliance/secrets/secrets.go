// Package secrets seals passwords with the cluster key so that only sealed
// bytes ever reach the Raft log, snapshots or API responses that do not ask
// for the secret. The key lives in a 0600 file on each node.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"
)

// keySize is an AES-256 key.
const keySize = 32

// Keyring seals secrets with the cluster key and opens them with it or
// with a key it replaced: `cluster rotate-key` changes the key of a
// running agent (Use), and a secret sealed with the old key a moment
// before still opens until it is re-sealed.
type Keyring struct {
	mu      sync.RWMutex
	current key
	// older are the keys Use replaced, newest first (at most maxOlder).
	older []key
}

type key struct {
	raw  []byte
	aead cipher.AEAD
}

// maxOlder bounds the replaced keys a keyring keeps.
const maxOlder = 4

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
func New(raw []byte) (*Keyring, error) {
	k, err := newKey(raw)
	if err != nil {
		return nil, err
	}
	return &Keyring{current: k}, nil
}

func newKey(raw []byte) (key, error) {
	if len(raw) != keySize {
		return key{}, fmt.Errorf("cluster key is %d bytes, want %d: the key file is damaged", len(raw), keySize)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{raw: append([]byte(nil), raw...), aead: aead}, nil
}

// NewKey returns a new random cluster key.
func NewKey() ([]byte, error) {
	raw := make([]byte, keySize)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate cluster key: %w", err)
	}
	return raw, nil
}

// KeyID names a key without revealing it: the first 16 hex digits of a
// SHA-256 of it under a label of its own.
func KeyID(raw []byte) string {
	sum := sha256.Sum256(append([]byte("redis-appliance cluster key id\x00"), raw...))
	return hex.EncodeToString(sum[:8])
}

// ID is KeyID of the current key.
func (k *Keyring) ID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return KeyID(k.current.raw)
}

// Key returns the current key, to hand to a joining node over TLS.
func (k *Keyring) Key() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]byte(nil), k.current.raw...)
}

// Use makes raw the key Seal uses; the key it replaces still opens.
func (k *Keyring) Use(raw []byte) error {
	nk, err := newKey(raw)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if KeyID(k.current.raw) == KeyID(raw) {
		return nil
	}
	k.older = append([]key{k.current}, k.older...)
	if len(k.older) > maxOlder {
		k.older = k.older[:maxOlder]
	}
	k.current = nk
	return nil
}

// Seal encrypts plaintext with the current key; the result is nonce ||
// ciphertext.
func (k *Keyring) Seal(plaintext []byte) ([]byte, error) {
	k.mu.RLock()
	aead := k.current.aead
	k.mu.RUnlock()
	return seal(aead, plaintext)
}

// SealWith encrypts plaintext with raw, a key that is not (yet) the
// keyring's: rotate-key seals the new key and every secret with it before
// the cluster switches.
func SealWith(raw, plaintext []byte) ([]byte, error) {
	nk, err := newKey(raw)
	if err != nil {
		return nil, err
	}
	return seal(nk.aead, plaintext)
}

func seal(aead cipher.AEAD, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, nil), nil
}

// Open decrypts what Seal produced, with the current key or one it
// replaced.
func (k *Keyring) Open(sealed []byte) ([]byte, error) {
	k.mu.RLock()
	keys := append([]key{k.current}, k.older...)
	k.mu.RUnlock()
	for _, kk := range keys {
		if pt, err := open(kk.aead, sealed); err == nil {
			return pt, nil
		}
	}
	return nil, errors.New("cannot open sealed secret: this node's cluster key does not match the one that sealed it")
}

// OpenCurrent is Open with the current key only: rotate-key asks it which
// secrets are still sealed with an older key.
func (k *Keyring) OpenCurrent(sealed []byte) ([]byte, error) {
	k.mu.RLock()
	aead := k.current.aead
	k.mu.RUnlock()
	return open(aead, sealed)
}

func open(aead cipher.AEAD, sealed []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret is too short")
	}
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], nil)
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
