package memstore

import "errors"

// Crash lets go of the directory as a killed process would, without the
// final snapshot that Close writes. Every acknowledged record is already
// durable, so what a reopen restores is what a crash would have left.
func (s *Store) Crash() error {
	d := s.journal
	close(d.stop)
	<-d.stopped
	return errors.Join(d.log.Close(), d.lock.Close())
}
