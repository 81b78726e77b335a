package wal

import (
	"io"
	"os"
)

// FS is the file system the log and snapshots write through. The operating
// system's is the default; tests pass one that fails an open, a write or an
// fsync on demand, to show what the log does when a disk fails, which a
// real disk cannot be made to do on cue. Reading at start-up always uses
// the operating system.
type FS interface {
	// OpenFile opens a file as os.OpenFile does.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
}

// File is the part of *os.File that the log and snapshots use.
type File interface {
	io.Writer
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
	Name() string
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func orOS(fs FS) FS {
	if fs == nil {
		return OS
	}
	return fs
}
