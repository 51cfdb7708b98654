// Package atomicfile replaces files durably: a crash, a power loss or a
// full disk leaves either the old file or the new one, never a torn one.
// Every file the agent writes and reads back (redis.conf, unit files, keys,
// certificates, the cluster key, restart generations) goes through it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write puts data at path with mode, owned by the writer.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteOwned(path, data, mode, -1, -1)
}

// WriteOwned puts data at path with mode and, when uid or gid is >= 0,
// that owner (-1 keeps the writer's). It writes a temporary file in the
// same directory (a leading dot and a suffix keep systemd and redis-server
// from reading it), sets its mode and owner before any byte is written so
// that a secret is never readable by anyone else even for a moment, syncs
// it, renames it over path, and syncs the directory: the rename is durable
// only once the directory entry is on disk.
func WriteOwned(path string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: create temporary file: %w; does %s exist and is it writable?", path, err, dir)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// Chmod is not subject to the umask, so the mode is exact.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: chmod temporary file: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: chown temporary file to %d:%d: %w; the agent must run as root to write for another user", path, uid, gid, err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: rename into place: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir makes a rename, a creation or a removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
