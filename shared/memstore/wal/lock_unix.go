//go:build unix

package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DirLock is an exclusive lock on a data directory.
type DirLock struct{ f *os.File }

// Close releases the lock. It unlocks explicitly rather than rely on
// closing the file, because a child forked meanwhile may hold a copy of the
// descriptor until it execs.
func (l *DirLock) Close() error {
	return errors.Join(syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN), l.f.Close())
}

// LockDir takes an exclusive lock on dir, creating dir if needed, so that
// two processes never write the same files. Close releases it; so does the
// process ending, however it ends.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("wal: %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", path, err)
	}
	return &DirLock{f: f}, nil
}
