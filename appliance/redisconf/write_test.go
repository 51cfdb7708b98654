package redisconf

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func statFile(t *testing.T, path string) (os.FileMode, int, int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode().Perm(), int(st.Uid), int(st.Gid)
}

// TestWriteFile proves the sequence a reconciler goes through: a new file
// is written 0600 and reported changed, the same content again is
// unchanged (no restart), new content is changed, and a file whose mode or
// owner drifted is repaired without being reported as changed.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.conf")
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = 65534, 65534 // nobody:nogroup, as the agent does for redis
	}

	steps := []struct {
		name        string
		before      func()
		data        string
		wantChanged bool
	}{
		{name: "new file", data: "port 1\n", wantChanged: true},
		{name: "same content", data: "port 1\n", wantChanged: false},
		{name: "new content", data: "port 2\n", wantChanged: true},
		{name: "mode drifted, same content", data: "port 2\n", wantChanged: false,
			before: func() { os.Chmod(path, 0o644) }},
		{name: "owner drifted, same content", data: "port 2\n", wantChanged: false,
			before: func() { os.Chown(path, os.Geteuid(), os.Getegid()) }},
		{name: "emptied", data: "", wantChanged: true},
		{name: "prefix of old content is a change", data: "port", wantChanged: true},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		changed, err := WriteFile(path, []byte(s.data), uid, gid)
		if err != nil {
			t.Fatalf("%s: WriteFile: %v", s.name, err)
		}
		if changed != s.wantChanged {
			t.Errorf("%s: changed = %v, want %v", s.name, changed, s.wantChanged)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != s.data {
			t.Errorf("%s: content %q, %v; want %q", s.name, got, err, s.data)
		}
		mode, fuid, fgid := statFile(t, path)
		if mode != 0o600 {
			t.Errorf("%s: mode %o, want 600", s.name, mode)
		}
		if uid >= 0 && (fuid != uid || fgid != gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d", s.name, fuid, fgid, uid, gid)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only redis.conf (no temporary files left)", names)
	}
}

// TestWriteFile_KeepsOwnerWhenNegative proves uid/gid -1 leave the owner as
// the writer, so tests and non-root tools can use WriteFile.
func TestWriteFile_KeepsOwnerWhenNegative(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redis.conf")
	if _, err := WriteFile(path, []byte("x"), -1, -1); err != nil {
		t.Fatal(err)
	}
	mode, uid, gid := statFile(t, path)
	if mode != 0o600 || uid != os.Geteuid() || gid != os.Getegid() {
		t.Errorf("mode %o owner %d:%d, want 600 %d:%d", mode, uid, gid, os.Geteuid(), os.Getegid())
	}
}

// TestWriteFile_Errors proves failures name the file and leave nothing
// behind.
func TestWriteFile_Errors(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing directory", filepath.Join(tmp, "nope", "redis.conf"), "does " + filepath.Join(tmp, "nope") + " exist"},
		{"path is a directory", tmp, "read current file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, err := WriteFile(tt.path, []byte("x"), -1, -1)
			if err == nil || changed {
				t.Fatalf("WriteFile = %v, %v; want an error", changed, err)
			}
			if !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to name %s and contain %q", err, tt.path, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}

// TestWriteFile_ReplacesAtomically proves the file is replaced by rename (a
// new inode), not rewritten in place, so a reader never sees half a file.
func TestWriteFile_ReplacesAtomically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redis.conf")
	if _, err := WriteFile(path, []byte("old"), -1, -1); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	held, err := os.Open(path) // a reader that opened the old file
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := WriteFile(path, []byte("new"), -1, -1); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Error("file rewritten in place; want a rename of a new file")
	}
	buf := make([]byte, 10)
	n, _ := held.Read(buf)
	if string(buf[:n]) != "old" {
		t.Errorf("reader of the old file sees %q, want old", buf[:n])
	}
}
