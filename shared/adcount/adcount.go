// Package adcount is the domain of the ad impression counter: campaigns,
// impressions, the stats reported per campaign, the Store contract every
// storage backend implements, and the errors callers branch on.
//
// It imports only the standard library, so that every backend and every
// entry point can depend on it without depending on each other.
package adcount

import (
	"context"
	"strconv"
	"time"
)

// Dedup windows. Every store and every setting accepts exactly the windows
// from MinDedupTTL to MaxDedupTTL, so that a deployment behaves the same
// whichever store it uses.
const (
	// DefaultDedupTTL is how long a repeat of the same (campaign, user, ad)
	// is ignored when no other window is configured.
	DefaultDedupTTL = time.Hour
	// MinDedupTTL is the shortest window: dedup is exact to the millisecond.
	MinDedupTTL = time.Millisecond
	// MaxDedupTTL is the longest window. A week covers every frequency cap
	// in practice and bounds the dedup state a store must keep.
	MaxDedupTTL = 7 * 24 * time.Hour
)

// CheckDedupTTL returns a *FieldError, matching ErrInvalid, unless ttl lies
// from MinDedupTTL to MaxDedupTTL. Stores and settings call it so that the
// rule lives in one place.
func CheckDedupTTL(ttl time.Duration) error {
	if ttl < MinDedupTTL || ttl > MaxDedupTTL {
		return fieldError("dedup_ttl", "must be from %v to %v, got %v", MinDedupTTL, MaxDedupTTL, ttl)
	}
	return nil
}

// Campaign is an advertising campaign. Impressions count only from its
// StartTime on.
type Campaign struct {
	ID        string
	Name      string
	StartTime time.Time
	// EndTime is when the campaign stops counting; zero means never.
	EndTime time.Time
	// Paused stops counting until the campaign is resumed.
	Paused bool
	// CreatedAt orders the campaign list, newest first. The caller that
	// creates a campaign sets it; campaigns created before it existed
	// have the zero time and list last.
	CreatedAt time.Time
}

// Started reports whether the campaign's start time has come at now. Live
// says whether it accepts impressions.
func (c Campaign) Started(now time.Time) bool {
	return !now.Before(c.StartTime)
}

// Impression is one view of one ad by one user within one campaign. The three
// IDs, with Filtered, are its dedup key.
type Impression struct {
	CampaignID string
	UserID     string
	AdID       string
	// Filtered marks invalid traffic, such as a known crawler, as judged
	// by the caller before the store sees it. A store never counts a
	// filtered impression as an impression: it adds it to Stats.Filtered,
	// once per dedup window like any other, so that an advertiser can
	// audit what was left out and a retried request cannot inflate it.
	Filtered bool
}

// MaxBatch is the most impressions one RecordImpressions call takes. It
// bounds the memory and the time one request can claim.
const MaxBatch = 1000

// CheckBatchSize returns a *FieldError, matching ErrInvalid, for a batch of
// more than MaxBatch impressions. Every store and the API call it, so that
// the limit lives in one place.
func CheckBatchSize(n int) error {
	if n > MaxBatch {
		return fieldError("impressions", "must hold at most %d impressions, got %d", MaxBatch, n)
	}
	return nil
}

// Outcome is what a store did with an impression it accepted.
type Outcome uint8

// The outcomes of an accepted impression. The zero Outcome is none of them.
const (
	// Counted means the impression now counts in the campaign's stats.
	Counted Outcome = iota + 1
	// Duplicate means the same (campaign, user, ad) was counted within the
	// dedup window, so nothing changed.
	Duplicate
	// Filtered means the impression was marked as invalid traffic: it
	// counts in Stats.Filtered, at most once per dedup window, and never
	// in the impression counts.
	Filtered
)

// String returns the outcome's name as the API spells it: "counted",
// "duplicate" or "filtered".
func (o Outcome) String() string {
	switch o {
	case Counted:
		return "counted"
	case Duplicate:
		return "duplicate"
	case Filtered:
		return "filtered"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Result is what became of one impression of a batch: an Outcome, or the
// error that refused it (ErrInvalid, ErrNotFound, ErrNotStarted, ErrPaused or
// ErrEnded), exactly
// as RecordImpression would have answered for that impression alone.
type Result struct {
	Outcome Outcome
	Err     error
}

// Stats are the counted impressions of one campaign in the sliding windows
// that end at the moment they were read, and in total, and the impressions
// filtered as invalid traffic in total.
//
// AsOf says how fresh the counts are: every impression acknowledged before
// AsOf is in them. A store that counts synchronously sets it to the moment
// it read them; one that aggregates behind its writes, such as the
// DynamoDB store, sets it to its aggregator's watermark, which trails the
// clock by a bounded delay. It is zero if the store cannot tell.
type Stats struct {
	CampaignID string
	LastHour   int64
	LastDay    int64
	Total      int64
	Filtered   int64
	// UniqueUsers are the distinct users behind the counted impressions
	// of each window; see Reach. Stores answer them within UniqueUsers.Bound.
	UniqueUsers UniqueUsers
	AsOf        time.Time
}

// Store keeps campaigns and counts their impressions. Every implementation
// must pass the storetest conformance suite and be safe for concurrent use.
//
// Every method honours ctx. Called with a ctx that is already done, a
// method changes nothing and returns an error matching ctx.Err() or
// ErrUnavailable; a ctx that ends during a call leaves a write's outcome
// unknown, as ErrUnavailable does.
type Store interface {
	// CreateCampaign stores c, whose ID the caller has chosen. It returns
	// ErrConflict if the ID is taken.
	CreateCampaign(ctx context.Context, c Campaign) error

	// Campaign returns the campaign with the given ID, or ErrNotFound.
	Campaign(ctx context.Context, id string) (Campaign, error)

	// RecordImpression counts imp unless the same (campaign, user, ad) was
	// counted within the dedup window, and returns the outcome: Counted,
	// Duplicate, or Filtered for an impression marked Filtered. It returns
	// ErrInvalid for an invalid impression, ErrNotFound for an unknown
	// campaign, and what Campaign.Live answers for a campaign that is not
	// live (ErrNotStarted, ErrPaused or ErrEnded); none changes any count.
	// A store that caches campaigns sees a pause or an end within its
	// stated bound. A nil error means the outcome is durable in this
	// store.
	RecordImpression(ctx context.Context, imp Impression) (Outcome, error)

	// RecordImpressions records a batch of at most MaxBatch impressions and
	// returns one Result per impression, in order: exactly what
	// RecordImpression would have answered for each, called one by one in
	// that order. So a repeat inside the batch is a Duplicate, and a bad
	// impression fails only its own Result.
	//
	// A non-nil error means the store failed (ErrUnavailable, or ctx's
	// error) or the batch is too large (ErrInvalid); the results are then
	// nil and the outcome of each impression unknown. Retrying the whole
	// batch is safe: an impression that did count answers Duplicate. A nil
	// error means every outcome is durable in this store. Stores implement
	// it natively, not as a loop over RecordImpression, so that a batch
	// costs far less than its impressions one by one.
	RecordImpressions(ctx context.Context, imps []Impression) ([]Result, error)

	// Stats returns the campaign's counts as of now, or ErrNotFound. A
	// user counts in UniqueUsers once one of their impressions is
	// Counted; the figures are exact up to ExactReach users and within
	// UniqueUsers.Bound.
	Stats(ctx context.Context, campaignID string) (Stats, error)

	// ListCampaigns returns one page of the campaigns, newest first (see
	// CampaignCursor). It returns ErrInvalid for a limit CheckPageLimit
	// refuses. With a status filter, a store may bound what one call
	// reads: the page then holds fewer than Limit campaigns, possibly
	// none, and Next is where the reading stopped, at or past the page's
	// last campaign. Callers follow Next until it is nil.
	ListCampaigns(ctx context.Context, q CampaignQuery) (CampaignPage, error)

	// UpdateCampaign applies p to the campaign with the given ID, as
	// Campaign.Apply does, and returns the campaign as changed. It returns
	// ErrNotFound for an unknown campaign and Apply's ErrInvalid for a bad
	// patch, which changes nothing.
	UpdateCampaign(ctx context.Context, id string, p CampaignPatch) (Campaign, error)

	// Series returns the campaign's counted impressions per interval, or
	// ErrNotFound. The caller has checked q with SeriesQuery.Check. The
	// sum of the minute points of the buckets of LastHour equals
	// Stats.LastHour, and likewise for LastDay, and the day points of
	// every day since the start sum to Stats.Total, all read at the same
	// moment. Without q.AdID, the hour and day points that ReachKept
	// carry their unique users (Series.SetUniqueUsers); the point holding
	// now equals what Stats would merge for it.
	Series(ctx context.Context, campaignID string, q SeriesQuery) (Series, error)

	// AdStats returns one page of the campaign's per-ad breakdown, in
	// MoreFirst order, or ErrNotFound. Its time and memory are bounded by
	// q.Limit, not by the campaign's number of ads, apart from one pass
	// over the ads' totals.
	AdStats(ctx context.Context, campaignID string, q AdQuery) (AdPage, error)
}

// Settler is implemented by stores whose Stats include an acknowledged
// impression only after a bounded delay. Settle returns once Stats include
// every impression acknowledged before the call, or with ctx's error. It
// waits for the store's watermark, not for a fixed time, so tests and load
// checks that call it before reading counts never flake on a slow machine.
type Settler interface {
	Settle(ctx context.Context) error
}

// Pinger is implemented by stores that depend on a service that can become
// unreachable. Ping checks, within ctx's deadline, that the store can serve
// requests; readiness checks call it.
type Pinger interface {
	Ping(ctx context.Context) error
}
