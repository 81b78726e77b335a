package memstore

import (
	"errors"

	"github.com/adcount/impression-counter/shared/memstore/wal"
)

// WithFS makes Open's store write through fs, so that a test can make an
// open, a write or an fsync fail.
func WithFS(fs wal.FS) Option {
	return func(s *Store) { s.persist.fs = fs; s.persist.set("WithFS") }
}

// Crash lets go of the directory as a killed process would, without the
// final snapshot that Close writes. Every acknowledged record is already
// durable, so what a reopen restores is what a crash would have left.
func (s *Store) Crash() error {
	d := s.journal
	close(d.stop)
	<-d.stopped
	return errors.Join(d.log.Close(), d.lock.Close())
}

// DurableRecords returns the number of the last log record known durable,
// so that a test can tell how many records a call appended.
func (s *Store) DurableRecords() uint64 {
	return s.journal.log.Durable()
}

// ReachMoments is reachMoments, for the memory benchmark.
var ReachMoments = reachMoments
