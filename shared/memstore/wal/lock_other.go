//go:build !unix

package wal

import (
	"fmt"
	"os"
)

// LockDir creates dir if needed. Where the platform has no flock, it cannot
// stop a second process from using the same directory: run one only.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	return &DirLock{}, nil
}

// DirLock stands for the lock this platform cannot take.
type DirLock struct{}

// Close does nothing.
func (*DirLock) Close() error { return nil }
