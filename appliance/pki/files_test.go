package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFile: the file has exactly the requested mode whatever the umask,
// replaces the old content, and leaves no temporary file behind.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.key")
	for _, mode := range []os.FileMode{0o600, 0o644} {
		data := []byte("data " + mode.String())
		if err := WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("content %q, %v", got, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only x.key", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestDirRoundTrip: what cluster init writes, the agent loads; the key files
// are 0600 and the certificates 0644.
func TestDirRoundTrip(t *testing.T) {
	ca := newCA(t, "c")
	d := Dir(filepath.Join(t.TempDir(), "pki"))
	certPEM, keyPEM, err := ca.IssueNode("n1", nil, []string{"localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteNode(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		d.CACertPath(): 0o644, d.CAKeyPath(): 0o600, d.NodeCertPath(): 0o644, d.NodeKeyPath(): 0o600, string(d): 0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	m, err := LoadDir(string(d))
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if m.NodeName != "n1" || m.CA == nil || m.CAFingerprint() != ca.Fingerprint() {
		t.Errorf("material: node %q, CA %v, fingerprint %s", m.NodeName, m.CA != nil, m.CAFingerprint())
	}

	// A member without the CA key (a node that does not issue).
	if err := os.Remove(d.CAKeyPath()); err != nil {
		t.Fatal(err)
	}
	m, err = LoadDir(string(d))
	if err != nil || m.CA != nil {
		t.Fatalf("LoadDir without ca.key: %v, CA %v", err, m)
	}
	if err := d.WriteCACert(ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
}

// TestLoadDirRefusesReadableKeys: a key file with any group or other bit is
// refused with the command that fixes it.
func TestLoadDirRefusesReadableKeys(t *testing.T) {
	ca := newCA(t, "c")
	d := Dir(t.TempDir())
	certPEM, keyPEM, err := ca.IssueNode("n1", nil, []string{"localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteNode(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{d.NodeKeyPath(), d.CAKeyPath()} {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
			if err := os.Chmod(key, mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadDir(string(d))
			if err == nil || !strings.Contains(err.Error(), "chmod 600 "+key) {
				t.Errorf("%s at %v: err = %v, want one saying chmod 600 %s", key, mode, err, key)
			}
		}
		if err := os.Chmod(key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadDir(string(d)); err != nil {
		t.Errorf("after chmod 600: %v", err)
	}
	if _, err := LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "cluster init") {
		t.Errorf("empty directory: %v", err)
	}
}
