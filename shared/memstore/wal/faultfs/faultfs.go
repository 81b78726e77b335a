// Package faultfs is a wal.FS over the operating system's files that fails
// an open, a write, an fsync or a truncate when a test says so. A real disk
// cannot be made to fail on cue, and the log's answer to such a failure
// (refuse later writes, leave files a restart accepts) is what the tests
// need to see.
package faultfs

import (
	"os"
	"sync"

	"github.com/adcount/impression-counter/shared/memstore/wal"
)

// Hook decides whether an operation on the file at path fails: a non-nil
// error fails it with that error. A Hook may block, to hold an operation
// while the test does something else.
type Hook func(path string) error

// FS is a wal.FS whose operations consult hooks first. Its zero value
// fails nothing. It is safe for concurrent use; hooks may be changed while
// it is in use.
type FS struct {
	mu                            sync.Mutex
	open, write, sync, truncation Hook
}

var _ wal.FS = (*FS)(nil)

// OnOpen sets the hook for OpenFile; nil removes it.
func (fs *FS) OnOpen(h Hook) { fs.set(&fs.open, h) }

// OnWrite sets the hook for Write and WriteAt. A failed write first writes
// the first half of what it was given, with every byte inverted, as a
// device that fails in the middle of a write may leave behind.
func (fs *FS) OnWrite(h Hook) { fs.set(&fs.write, h) }

// OnSync sets the hook for Sync; nil removes it.
func (fs *FS) OnSync(h Hook) { fs.set(&fs.sync, h) }

// OnTruncate sets the hook for Truncate; nil removes it.
func (fs *FS) OnTruncate(h Hook) { fs.set(&fs.truncation, h) }

func (fs *FS) set(dst *Hook, h Hook) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	*dst = h
}

func (fs *FS) check(h *Hook, path string) error {
	fs.mu.Lock()
	hook := *h
	fs.mu.Unlock()
	if hook == nil {
		return nil
	}
	return hook(path)
}

// OpenFile opens a file as os.OpenFile does, unless the open hook fails it.
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (wal.File, error) {
	if err := fs.check(&fs.open, name); err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &file{File: f, fs: fs}, nil
}

type file struct {
	*os.File
	fs *FS
}

func garbage(p []byte) []byte {
	g := make([]byte, len(p)/2)
	for i := range g {
		g[i] = ^p[i]
	}
	return g
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.fs.check(&f.fs.write, f.Name()); err != nil {
		n, _ := f.File.Write(garbage(p))
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.Write(p)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(&f.fs.write, f.Name()); err != nil {
		n, _ := f.File.WriteAt(garbage(p), off)
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: err}
	}
	return f.File.WriteAt(p, off)
}

func (f *file) Sync() error {
	if err := f.fs.check(&f.fs.sync, f.Name()); err != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: err}
	}
	return f.File.Sync()
}

func (f *file) Truncate(size int64) error {
	if err := f.fs.check(&f.fs.truncation, f.Name()); err != nil {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: err}
	}
	return f.File.Truncate(size)
}
