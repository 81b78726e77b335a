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
	"strings"
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
//
// There is one code path for both kinds of store. Every change goes
// through the journal first, which is nil for a store made by New: the
// counters, the campaign count and each campaign's log position are
// updated in one place, whether or not a log records them.
type Store struct {
	now       func() time.Time
	ttl       time.Duration
	campaigns sync.Map // campaign ID -> *campaignState
	nCampaign atomic.Int64
	// maxCampaigns bounds nCampaign for creates; a restore may exceed it.
	maxCampaigns int
	dedup        [dedupShards]dedupShard
	createMu     sync.Mutex // serialises campaign creation; see cutLog

	persist persistOptions
	journal *journal // nil unless made by Open
}

var (
	_ adcount.Store  = (*Store)(nil)
	_ adcount.Pinger = (*Store)(nil)
)

type campaignState struct {
	campaign adcount.Campaign

	mu       sync.Mutex
	total    int64
	filtered int64
	ring     ring
	lsn      uint64 // the last log record counted here; 0 without a log
}

// add applies counted impressions and filtered ones, all in window bucket
// b, logged in record lsn (0 without a journal). The caller holds cs.mu.
func (cs *campaignState) add(b, counted, filtered int64, lsn uint64) {
	if counted > 0 {
		cs.total += counted
		cs.ring.add(b, counted)
	}
	cs.filtered += filtered
	cs.lsn = lsn
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store reads for dedup expiry, start times and
// windows. Tests pass a clock they move by hand. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// DefaultMaxCampaigns is how many campaigns a store holds unless
// WithMaxCampaigns says otherwise. A campaign's counters take about 12 KiB,
// so the default caps them near 1.2 GB: enough for any one deployment's
// live campaigns, and a bound on what a flood of creates can claim.
const DefaultMaxCampaigns = 100_000

// WithMaxCampaigns sets how many campaigns the store holds; a create
// beyond that returns adcount.ErrLimit. It must be at least 1. Campaigns
// restored from disk always come back, even above the limit.
func WithMaxCampaigns(n int) Option {
	return func(s *Store) { s.maxCampaigns = n }
}

// WithDedupTTL sets how long a repeat of the same (campaign, user, ad) is
// ignored. The default is adcount.DefaultDedupTTL.
func WithDedupTTL(ttl time.Duration) Option {
	return func(s *Store) { s.ttl = ttl }
}

// New returns an empty store that keeps nothing on disk. It fails for a TTL
// that adcount.CheckDedupTTL refuses, and for an option that only Open uses
// (WithFsyncInterval and the like): a setting that would be silently
// ignored is a mistake in the caller.
func New(opts ...Option) (*Store, error) {
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	if len(s.persist.given) > 0 {
		return nil, fmt.Errorf("memstore: %s applies only to a store made by Open, which keeps a data directory", strings.Join(s.persist.given, ", "))
	}
	return s, nil
}

func newStore(opts []Option) (*Store, error) {
	s := &Store{now: time.Now, ttl: adcount.DefaultDedupTTL, maxCampaigns: DefaultMaxCampaigns}
	for _, opt := range opts {
		opt(s)
	}
	if err := adcount.CheckDedupTTL(s.ttl); err != nil {
		return nil, fmt.Errorf("memstore: %w", err)
	}
	if s.maxCampaigns < 1 {
		return nil, fmt.Errorf("memstore: the campaign limit must be at least 1, got %d", s.maxCampaigns)
	}
	return s, nil
}

// CreateCampaign stores c. It returns ErrConflict if the ID is taken,
// ErrLimit if the store holds WithMaxCampaigns campaigns already, and
// for a store made by Open, ErrUnavailable if its record could not be made
// durable. A campaign is published only once its record is durable, so no
// impression can be logged for a campaign that a crash could lose.
// Creating campaigns is rare, so one lock serialises it.
func (s *Store) CreateCampaign(ctx context.Context, c adcount.Campaign) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: create campaign %s: %w", c.ID, err)
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if _, ok := s.campaigns.Load(c.ID); ok {
		return fmt.Errorf("memstore: create campaign %s: %w", c.ID, adcount.ErrConflict)
	}
	if s.nCampaign.Load() >= int64(s.maxCampaigns) {
		return fmt.Errorf("memstore: create campaign %s: the store holds %d: %w", c.ID, s.maxCampaigns, adcount.ErrLimit)
	}
	if err := s.journal.campaign(c); err != nil {
		return fmt.Errorf("memstore: create campaign %s: %w: %w", c.ID, adcount.ErrUnavailable, err)
	}
	s.publish(&campaignState{campaign: c})
	return nil
}

// publish makes cs visible and counts it, unless its ID is taken. The
// caller holds createMu, or is restoring a store nobody else uses yet.
func (s *Store) publish(cs *campaignState) bool {
	if _, loaded := s.campaigns.LoadOrStore(cs.campaign.ID, cs); loaded {
		return false
	}
	s.nCampaign.Add(1)
	return true
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

// Stats returns the campaign's counts as of the store's clock, or
// ErrNotFound.
//
// A store made by Open counts an impression in memory when its record is
// appended, before the record is durable. Stats answer only once every
// impression they include is durable, and with ErrUnavailable if the log
// failed before that: so a count is never shown that a failed fsync could
// take back, and totals never fall across a restart.
func (s *Store) Stats(ctx context.Context, campaignID string) (adcount.Stats, error) {
	cs, err := s.load(ctx, "stats", campaignID)
	if err != nil {
		return adcount.Stats{}, err
	}
	now := s.now()
	cs.mu.Lock()
	st := adcount.Stats{
		CampaignID: campaignID,
		LastHour:   cs.ring.sum(adcount.LastHour(now)),
		LastDay:    cs.ring.sum(adcount.LastDay(now)),
		Total:      cs.total,
		Filtered:   cs.filtered,
		AsOf:       now, // counted synchronously: exact as of the read
	}
	lsn := cs.lsn
	cs.mu.Unlock()
	if err := s.journal.durableThrough(ctx, lsn); err != nil {
		return adcount.Stats{}, fmt.Errorf("memstore: stats %s: %w: %w", campaignID, adcount.ErrUnavailable, err)
	}
	return st, nil
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
