package dynamostore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// campaignCacheSize bounds the campaigns one Store remembers. A campaign's
// start is a few dozen bytes, so the cache stays under a few MB.
const campaignCacheSize = 50_000

// checkStarted returns nil if the campaign exists and has started at now,
// ErrNotStarted before its start and ErrNotFound if there is none, each
// wrapped with the operation and ID.
//
// The hot path writes only the marker, so the campaign is read, not
// checked inside a transaction. A campaign never changes once created,
// so its start is cached after the first strongly consistent read and
// every later impression of it costs no read at all. An unknown ID is
// never cached: a campaign created a moment later must count at once.
func (s *Store) checkStarted(ctx context.Context, id string, now time.Time) error {
	const op = "record impression"
	start, ok := s.campaigns.get(id)
	if !ok {
		item, err := s.getCampaignItem(ctx, id)
		if err != nil {
			return s.wrap(op, id, err)
		}
		c, err := campaignFromItem(id, item)
		if err != nil {
			return fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
		}
		start = c.StartTime
		s.campaigns.put(id, start)
	}
	if now.Before(start) {
		return fmt.Errorf("dynamostore: %s %s: %w", op, id, adcount.ErrNotStarted)
	}
	return nil
}

// campaignCache remembers the start of campaigns it has read. It is safe
// for concurrent use. When full it forgets everything and starts again,
// which costs one read per campaign and keeps the bound simple.
type campaignCache struct {
	mu     sync.RWMutex
	max    int
	starts map[string]time.Time
}

func newCampaignCache(max int) *campaignCache {
	return &campaignCache{max: max, starts: make(map[string]time.Time)}
}

func (c *campaignCache) get(id string) (time.Time, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.starts[id]
	return t, ok
}

func (c *campaignCache) put(id string, start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.starts) >= c.max {
		clear(c.starts)
	}
	c.starts[id] = start
}
