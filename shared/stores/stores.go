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
// store begins empty each time.
func Open(_ context.Context, cfg config.Config) (adcount.Store, error) {
	switch cfg.Store {
	case config.StoreMemory:
		s, err := memstore.New(memstore.WithDedupTTL(cfg.DedupTTL))
		if err != nil {
			return nil, fmt.Errorf("stores: open memory store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("stores: unknown store %q", cfg.Store)
	}
}
