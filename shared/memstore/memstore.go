// Package memstore is the in-memory adcount.Store: exact within one process,
// bounded in memory, and built so that concurrent impressions for different
// keys and campaigns do not wait on one lock.
//
// It counts per process. Separate processes, such as separate Lambda
// instances, each have their own counts; deployments that scale out need a
// shared store.
//
// A store made by New lives and dies with the process. One made by Open
// keeps a write-ahead log and snapshots in a directory and comes back from
// them, acknowledged impressions included, after a restart or a crash; see
// Open.
package memstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Store is the in-memory adcount.Store. It is safe for concurrent use.
//
// Campaigns live in a sync.Map, which suits keys written once and read on
// every impression. Each campaign has its own lock for its counters, and
// the dedup set is split over independently locked shards.
type Store struct {
	now       func() time.Time
	ttl       time.Duration
	campaigns sync.Map // campaign ID -> *campaignState
	nCampaign atomic.Int64
	dedup     [dedupShards]dedupShard

	persist  persistOptions
	disk     *disk      // nil unless made by Open
	createMu sync.Mutex // serialises campaign creation, with a disk only
}

var _ adcount.Store = (*Store)(nil)

type campaignState struct {
	campaign adcount.Campaign

	mu    sync.Mutex
	total int64
	ring  ring
	lsn   uint64 // the last log record counted here; 0 without a log
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store reads for dedup expiry, start times and
// windows. Tests pass a clock they move by hand. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithDedupTTL sets how long a repeat of the same (campaign, user, ad) is
// ignored. The default is adcount.DefaultDedupTTL.
func WithDedupTTL(ttl time.Duration) Option {
	return func(s *Store) { s.ttl = ttl }
}

// New returns an empty store that keeps nothing on disk. It fails for a TTL
// that adcount.CheckDedupTTL refuses.
func New(opts ...Option) (*Store, error) {
	s := &Store{now: time.Now, ttl: adcount.DefaultDedupTTL}
	for _, opt := range opts {
		opt(s)
	}
	if err := adcount.CheckDedupTTL(s.ttl); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	return s, nil
}

// CreateCampaign stores c. It returns ErrConflict if the ID is taken.
func (s *Store) CreateCampaign(ctx context.Context, c adcount.Campaign) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: create campaign %s: %w", c.ID, err)
	}
	if s.disk != nil {
		return s.createDurably(c)
	}
	if _, loaded := s.campaigns.LoadOrStore(c.ID, &campaignState{campaign: c}); loaded {
		return fmt.Errorf("memstore: create campaign %s: %w", c.ID, adcount.ErrConflict)
	}
	s.nCampaign.Add(1)
	return nil
}

// CampaignCount returns how many campaigns the store holds.
func (s *Store) CampaignCount() int {
	return int(s.nCampaign.Load())
}

// Campaign returns the campaign with the given ID, or ErrNotFound.
func (s *Store) Campaign(ctx context.Context, id string) (adcount.Campaign, error) {
	cs, err := s.load(ctx, "get campaign", id)
	if err != nil {
		return adcount.Campaign{}, err
	}
	return cs.campaign, nil
}

// RecordImpression counts imp unless it repeats a key counted within the
// dedup TTL. See adcount.Store for the errors.
func (s *Store) RecordImpression(ctx context.Context, imp adcount.Impression) (bool, error) {
	if err := imp.Validate(); err != nil {
		return false, fmt.Errorf("memstore: record impression: %w", err)
	}
	cs, err := s.load(ctx, "record impression", imp.CampaignID)
	if err != nil {
		return false, err
	}
	now := s.now()
	if !cs.campaign.Started(now) {
		return false, fmt.Errorf("memstore: record impression for %s: %w", imp.CampaignID, adcount.ErrNotStarted)
	}
	key := imp.Key()
	if s.disk != nil {
		return s.recordDurably(cs, imp.CampaignID, key, now)
	}
	if !s.dedup[key[0]%dedupShards].admit(key, now.UnixMilli(), s.ttl.Milliseconds()) {
		return false, nil
	}
	cs.mu.Lock()
	cs.total++
	cs.ring.add(adcount.Bucket(now), 1)
	cs.mu.Unlock()
	return true, nil
}

// Stats returns the campaign's counts as of the store's clock, or
// ErrNotFound.
func (s *Store) Stats(ctx context.Context, campaignID string) (adcount.Stats, error) {
	cs, err := s.load(ctx, "stats", campaignID)
	if err != nil {
		return adcount.Stats{}, err
	}
	now := s.now()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return adcount.Stats{
		CampaignID: campaignID,
		LastHour:   cs.ring.sum(adcount.LastHour(now)),
		LastDay:    cs.ring.sum(adcount.LastDay(now)),
		Total:      cs.total,
	}, nil
}

// DedupEntries returns how many dedup keys the store holds in memory: the
// live ones, and expired ones that a shard has not yet dropped.
func (s *Store) DedupEntries() int {
	n := 0
	for i := range s.dedup {
		n += s.dedup[i].entries()
	}
	return n
}

func (s *Store) load(ctx context.Context, op, id string) (*campaignState, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: %s %s: %w", op, id, err)
	}
	v, ok := s.campaigns.Load(id)
	if !ok {
		return nil, fmt.Errorf("memstore: %s %s: %w", op, id, adcount.ErrNotFound)
	}
	return v.(*campaignState), nil
}
