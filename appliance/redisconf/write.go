package redisconf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/redis-appliance/redis-appliance/appliance/atomicfile"
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

	if err := atomicfile.WriteOwned(path, data, FileMode, uid, gid); err != nil {
		return false, err
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
