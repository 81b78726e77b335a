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
// every impression, and in an index in creation order for the list. Each
// campaign has its own lock for its counters and its ads' counters, and
// the dedup set is split over independently locked shards. Creates and
// updates, which are rare, take one lock.
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
	createMu     sync.Mutex // serialises creates and updates; see cutLog
	index        campaignIndex

	persist persistOptions
	journal *journal // nil unless made by Open
}

var (
	_ adcount.Store  = (*Store)(nil)
	_ adcount.Pinger = (*Store)(nil)
)

// campaignState is one campaign and its counters.
//
// The campaign itself changes only by UpdateCampaign, rarely, and is read
// by every impression: it is an atomic pointer to a value never changed
// once published, so the record path reads it without a lock. Its ID and
// creation time never change, and are kept beside it for the lock order
// and the list's index.
type campaignState struct {
	id       string
	created  time.Time
	campaign atomic.Pointer[adcount.Campaign]

	mu       sync.Mutex
	total    int64
	filtered int64
	series   *campaignSeries // nil until the first counted impression
	reach    *campaignReach  // likewise; and nil after a restore of the former formats
	days     dayCounts
	// ads are the campaign's ads in the order of their first impression,
	// and byAd finds them. Impressions from before ads were kept (a data
	// directory of the former formats) count in the campaign's counters
	// and in no ad's.
	ads  []*adState
	byAd map[string]*adState
	lsn  uint64 // the last log record counted here; 0 without a log
}

func newCampaignState(c adcount.Campaign) *campaignState {
	cs := &campaignState{id: c.ID, created: c.CreatedAt}
	cs.campaign.Store(&c)
	return cs
}

// get returns the campaign as it stands.
func (cs *campaignState) get() adcount.Campaign { return *cs.campaign.Load() }

// add applies counted impressions and filtered ones, all at w, logged in
// record lsn (0 without a journal), to the campaign's own
// counters; adState.add applies them to one ad's. The caller holds cs.mu,
// and adds the counted impressions' users with addUser.
func (cs *campaignState) add(w when, counted, filtered int64, lsn uint64) {
	if counted > 0 {
		if cs.series == nil {
			cs.series = new(campaignSeries)
		}
		if cs.reach == nil {
			cs.reach = new(campaignReach)
		}
		cs.total += counted
		cs.series.minutes.add(w.minute, counted)
		cs.series.hours.add(w.hour, counted)
		cs.days.add(dayNumber(w.day), counted)
	}
	cs.filtered += filtered
	cs.lsn = lsn
}

// addUser adds user h (reach.Hash) of an impression counted at w to the
// campaign's reach. The caller holds cs.mu and has counted the impression
// with add.
func (cs *campaignState) addUser(w when, h uint64) {
	cs.reach.add(w, h)
}

// ad returns the state of the ad with the given ID, adding it if it has
// none yet. The caller holds cs.mu.
func (cs *campaignState) ad(id string) *adState {
	if a, ok := cs.byAd[id]; ok {
		return a
	}
	if cs.byAd == nil {
		cs.byAd = make(map[string]*adState)
	}
	// A clone, so that an ID cut from a request's body does not keep the
	// whole body alive.
	a := &adState{id: strings.Clone(id)}
	cs.byAd[a.id] = a
	cs.ads = append(cs.ads, a)
	return a
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store reads for dedup expiry, start times and
// windows. Tests pass a clock they move by hand. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// DefaultMaxCampaigns is how many campaigns a store holds unless
// WithMaxCampaigns says otherwise. A campaign that has counted nothing
// takes about 400 bytes, so the default bounds what a flood of creates
// can claim near 40 MB; enough for any one deployment's campaigns. Its
// first impression adds its minute and hour rings, about 29 KiB, and its
// reach, 2 KiB; traffic about 1.7 KiB an ad and 12 bytes a day, and the
// reach's sets up to 236 KiB more at worst (docs/performance.md, "Memory
// budgets" and "Unique reach in the memory store").
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
//
// Its times are kept in UTC, as a restart would give them back.
func (s *Store) CreateCampaign(ctx context.Context, c adcount.Campaign) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: create campaign %s: %w", c.ID, err)
	}
	c.StartTime, c.EndTime, c.CreatedAt = c.StartTime.UTC(), c.EndTime.UTC(), c.CreatedAt.UTC()
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if _, ok := s.campaigns.Load(c.ID); ok {
		return fmt.Errorf("memstore: create campaign %s: %w", c.ID, adcount.ErrConflict)
	}
	if s.nCampaign.Load() >= int64(s.maxCampaigns) {
		return fmt.Errorf("memstore: create campaign %s: the store holds %d: %w", c.ID, s.maxCampaigns, adcount.ErrLimit)
	}
	if err := s.journal.campaign(recCampaignV2, c); err != nil {
		return fmt.Errorf("memstore: create campaign %s: %w: %w", c.ID, adcount.ErrUnavailable, err)
	}
	cs := newCampaignState(c)
	s.publish(cs)
	s.index.insert(cs)
	return nil
}

// publish makes cs visible and counts it, unless its ID is taken. The
// caller holds createMu, or is restoring a store nobody else uses yet.
func (s *Store) publish(cs *campaignState) bool {
	if _, loaded := s.campaigns.LoadOrStore(cs.id, cs); loaded {
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
	return cs.get(), nil
}

// UpdateCampaign applies p to the campaign with the given ID, as
// adcount.Campaign.Apply does, and returns the campaign as changed. It
// returns ErrNotFound for an unknown campaign, Apply's ErrInvalid for a bad
// patch, which changes nothing, and for a store made by Open,
// ErrUnavailable if the change could not be made durable, which then
// changes nothing in memory either.
//
// Updates are serialised with creates, which are as rare, so that two
// patches of one campaign never lose one another's fields, and so that a
// snapshot's cut orders every update (see cutLog). The change takes effect
// for impressions at once: the record path reads the campaign afresh on
// every call, and an impression it has already let through is one that
// came before the change.
func (s *Store) UpdateCampaign(ctx context.Context, id string, p adcount.CampaignPatch) (adcount.Campaign, error) {
	cs, err := s.load(ctx, "update campaign", id)
	if err != nil {
		return adcount.Campaign{}, err
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	c, err := cs.get().Apply(p)
	if err != nil {
		return adcount.Campaign{}, fmt.Errorf("memstore: update campaign %s: %w", id, err)
	}
	if err := s.journal.campaign(recCampaignUpdate, c); err != nil {
		return adcount.Campaign{}, fmt.Errorf("memstore: update campaign %s: %w: %w", id, adcount.ErrUnavailable, err)
	}
	cs.campaign.Store(&c)
	return c, nil
}

// Stats returns the campaign's counts and unique users as of the store's
// clock, or ErrNotFound. Unique users merge the reach buckets of each
// window (see adcount.Reach): under the campaign's lock, the union of a
// window's past buckets, kept from the last read, with its current one;
// the estimates, which cost far more, after it (BenchmarkStatsReach). A
// read finds the users of the read before it if no impression has counted
// since and the windows' buckets are the same.
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
	hour, day := adcount.LastHour(now), adcount.LastDay(now)
	cs.mu.Lock()
	st := adcount.Stats{
		CampaignID: campaignID,
		LastHour:   cs.series.minuteSum(hour.First, hour.Last),
		LastDay:    cs.series.minuteSum(day.First, day.Last),
		Total:      cs.total,
		Filtered:   cs.filtered,
		AsOf:       now, // counted synchronously: exact as of the read
	}
	users, kept := cs.reach.lastUsers(cs.total, now)
	var pending [3]pendingCount
	if !kept {
		pending = cs.reach.users(now)
	}
	lsn := cs.lsn
	cs.mu.Unlock()
	if !kept {
		users = adcount.UniqueUsers{LastHour: pending[0].count(), LastDay: pending[1].count(), Total: pending[2].count()}
		cs.mu.Lock()
		if cs.total == st.Total { // no user since: the next read may reuse them
			cs.reach.keepUsers(st.Total, now, users)
		}
		cs.mu.Unlock()
	}
	st.UniqueUsers = users.Bound(st)
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
