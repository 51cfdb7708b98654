package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWrite_ReplacesWithExactModeAndLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("requirepass secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "requirepass secret\n" {
		t.Fatalf("content %q, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWrite_FailureLeavesTheOldFileAndNoTemporary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub")
	// A directory in the way: the rename fails after the write.
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("data"), 0o600); err == nil {
		t.Fatal("writing over a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "sub" {
		t.Errorf("left %v behind", entries)
	}
}

func TestWriteOwned_RefusesAnOwnerItCannotSet(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root can give a file to anyone: check the owner is applied.
		path := filepath.Join(t.TempDir(), "f")
		if err := WriteOwned(path, []byte("x"), 0o600, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if uid, gid := owner(fi); uid != 65534 || gid != 65534 {
			t.Errorf("owner %d:%d, want 65534:65534", uid, gid)
		}
		return
	}
	if err := WriteOwned(filepath.Join(t.TempDir(), "f"), []byte("x"), 0o600, 0, 0); err == nil {
		t.Fatal("a non-root writer gave a file to root")
	}
}

func owner(fi os.FileInfo) (int, int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}
