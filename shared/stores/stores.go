// Package stores opens the adcount.Store that a Config names. It is the one
// place that knows every store implementation, so that the local server and
// each Lambda function choose a store the same way.
package stores

import (
	"context"
	"fmt"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/memstore"
)

// Open returns the store cfg names. Call it once at start-up: the memory
// store begins empty each time unless cfg.DataDir is set, in which case it
// restores its state from there. A store that holds files or connections
// implements io.Closer; close it after the last request.
func Open(_ context.Context, cfg config.Config) (adcount.Store, error) {
	switch cfg.Store {
	case config.StoreMemory:
		var s *memstore.Store
		var err error
		if cfg.DataDir == "" {
			s, err = memstore.New(memstore.WithDedupTTL(cfg.DedupTTL))
		} else {
			s, err = memstore.Open(cfg.DataDir,
				memstore.WithDedupTTL(cfg.DedupTTL),
				memstore.WithFsyncInterval(cfg.FsyncInterval),
				memstore.WithFsyncBatch(cfg.FsyncBatch),
				memstore.WithSnapshotInterval(cfg.SnapshotInterval))
		}
		if err != nil {
			return nil, fmt.Errorf("stores: open memory store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("stores: unknown store %q", cfg.Store)
	}
}
