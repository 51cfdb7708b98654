package redisconf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FileMode is the mode of a written redis.conf: it holds the database's
// password, so only its owner (the instance's user) may read it.
const FileMode os.FileMode = 0o600

// WriteFile puts data at path atomically: it writes a temporary file in the
// same directory, syncs it, and renames it over path, then syncs the
// directory, so a crash leaves either the old file or the new one, never a
// torn one that redis-server would refuse at the next start. The file gets
// mode 0600 and, when uid and gid are >= 0, that owner (-1 keeps the
// writer's).
//
// changed is false when path already held exactly data: the reconciler
// restarts an instance only for a changed file. Mode and owner are still
// corrected in that case, since they do not need a restart.
func WriteFile(path string, data []byte, uid, gid int) (changed bool, err error) {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return false, fixMeta(path, uid, gid)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("write %s: read current file: %w", path, err)
	}

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("write %s: create temporary file: %w; does %s exist and is it writable?", path, err, dir)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	// Set mode and owner before any secret is written, so the file is never
	// readable by anyone else, even for a moment.
	if err := tmp.Chmod(FileMode); err != nil {
		return false, fmt.Errorf("write %s: chmod temporary file: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return false, fmt.Errorf("write %s: chown temporary file to %d:%d: %w; the agent must run as root to write for another user", path, uid, gid, err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return false, fmt.Errorf("write %s: rename into place: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	if err := syncDir(dir); err != nil {
		return true, fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return true, nil
}

// fixMeta sets mode and owner of an existing file whose content is right.
func fixMeta(path string, uid, gid int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if fi.Mode().Perm() != FileMode {
		if err := os.Chmod(path, FileMode); err != nil {
			return fmt.Errorf("write %s: chmod %o: %w", path, FileMode, err)
		}
	}
	if uid >= 0 || gid >= 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || (uid >= 0 && int(st.Uid) != uid) || (gid >= 0 && int(st.Gid) != gid) {
			if err := os.Chown(path, uid, gid); err != nil {
				return fmt.Errorf("write %s: chown to %d:%d: %w; the agent must run as root to write for another user", path, uid, gid, err)
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
