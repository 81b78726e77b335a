package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/singleflight"

	"github.com/adcount/impression-counter/shared/adcount"
)

// CampaignRefresh is how long the hot path trusts a campaign it has read
// before it reads it again, unless WithCampaignRefresh says otherwise. A
// pause, a resume or a new end time therefore takes effect on every
// process, every Lambda instance included, at most this long after the
// change commits; the store that made the change sees it at once. An end
// time itself is exact: the cached campaign carries it. The price is one
// strongly consistent read (1 RRU) per campaign that a process is
// counting, every CampaignRefresh; docs/dynamodb.md has the arithmetic.
const CampaignRefresh = 2 * time.Second

// WithCampaignRefresh sets how long the hot path trusts a campaign it has
// read, measured on the store's clock (WithClock); CampaignRefresh if not
// set, zero to read the campaign for every impression. Tests with a clock
// they move pass the bound they check.
func WithCampaignRefresh(d time.Duration) Option { return func(s *Store) { s.refresh = d } }

// campaignCacheSize bounds the campaigns one Store remembers. A campaign is
// a few hundred bytes, so the cache stays within a few tens of MB.
const campaignCacheSize = 50_000

// Tries of a campaign transaction that DynamoDB cancelled without applying
// it: for a conflict with a concurrent one, throttling, or (for updates) a
// change made since the campaign was read.
const (
	createAttempts = 5
	updateAttempts = 10
)

// CreateCampaign stores c, with its entry in the campaign list, in one
// transaction. It returns ErrConflict if the ID is taken, and
// ErrUnavailable if DynamoDB throttled, failed or did not answer in time.
//
// If the SDK retries a write whose answer was lost, DynamoDB answers the
// retry from the first commit (the transaction's ClientRequestToken); a
// server that keeps no tokens fails the retry's condition instead, and the
// store then recognises its own write by a token it stored with the
// campaign and reports success, not a conflict.
func (s *Store) CreateCampaign(ctx context.Context, c adcount.Campaign) error {
	const op = "create campaign"
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	creator := newToken()
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:                aws.String(s.table),
			Item:                     campaignItem(c, creator, 1),
			ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames: map[string]string{"#pk": PartitionKey},
		}},
		{Put: &types.Put{TableName: aws.String(s.table), Item: listEntry(c)}},
	}}
	for attempt := 1; ; attempt++ {
		in.ClientRequestToken = aws.String(newToken())
		_, err := s.db.TransactWriteItems(ctx, in)
		if err == nil {
			return nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return s.wrap(op, c.ID, err)
		}
		if reasonCode(tce.CancellationReasons, 0) == "ConditionalCheckFailed" {
			break
		}
		if err := s.retryCancelled(ctx, tce, attempt, createAttempts); err != nil {
			return s.wrap(op, c.ID, err)
		}
	}
	existing, err := s.getCampaignItem(ctx, c.ID)
	switch {
	case errors.Is(err, adcount.ErrNotFound):
		// The ID was taken when the put ran and is free again now, which
		// only someone deleting items by hand can cause. Either way the
		// campaign that was there was not this call's.
	case err != nil:
		return s.wrap(op, c.ID, err)
	default:
		if got, _ := getString(existing, attrCreator); got == creator {
			return nil
		}
	}
	return fmt.Errorf("dynamostore: %s %s: %w", op, c.ID, adcount.ErrConflict)
}

// retryCancelled waits before the next try of a cancelled campaign
// transaction, or returns why there is none: an error matching
// ErrUnavailable once attempts are spent or for a cancellation that no
// retry can fix.
func (s *Store) retryCancelled(ctx context.Context, tce *types.TransactionCanceledException, attempt, attempts int) error {
	if !retryableCancellation(tce.CancellationReasons) {
		return fmt.Errorf("transaction cancelled: %s: %w", reasonCodes(tce.CancellationReasons), tce)
	}
	if attempt >= attempts {
		return fmt.Errorf("%w: %w", adcount.ErrUnavailable, tce)
	}
	// At most 40 ms (and as much jitter) between tries: these are admin
	// writes racing each other, not a store under load.
	return backoff(ctx, min(attempt, 3))
}

func reasonCode(reasons []types.CancellationReason, i int) string {
	if i >= len(reasons) {
		return ""
	}
	return aws.ToString(reasons[i].Code)
}

// Campaign returns the campaign with the given ID, or ErrNotFound. It reads
// strongly consistently, so a campaign is visible as soon as CreateCampaign
// or UpdateCampaign has returned.
func (s *Store) Campaign(ctx context.Context, id string) (adcount.Campaign, error) {
	const op = "get campaign"
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	item, err := s.getCampaignItem(ctx, id)
	if err != nil {
		return adcount.Campaign{}, s.wrap(op, id, err)
	}
	c, err := campaignFromItem(id, item)
	if err != nil {
		return adcount.Campaign{}, fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
	}
	return c, nil
}

// UpdateCampaign applies p to the campaign, as adcount.Campaign.Apply
// does, and returns the campaign as changed. It returns ErrNotFound for an
// unknown campaign, Apply's ErrInvalid for a bad patch (nothing is
// written), and ErrUnavailable if DynamoDB throttled, failed or did not
// answer in time, or the campaign kept changing under it.
//
// It reads the campaign, applies p and writes the campaign and its list
// entry in one transaction on the condition that the campaign's version is
// still the one read: optimistic concurrency, so that two patches of
// different fields racing each other both apply, neither lost to the
// other's read. A patch that loses the race is applied again to the
// campaign as the winner left it, up to 10 times. A patch sets fields, so
// applying it again changes nothing: an SDK retry of a commit whose answer
// was lost finds the campaign already as patched and succeeds.
//
// The store's own campaign cache takes the new campaign at once; other
// processes see it within their CampaignRefresh.
func (s *Store) UpdateCampaign(ctx context.Context, id string, p adcount.CampaignPatch) (adcount.Campaign, error) {
	const op = "update campaign"
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		readAt := s.now()
		item, err := s.getCampaignItem(ctx, id)
		if err != nil {
			return adcount.Campaign{}, s.wrap(op, id, err)
		}
		c, err := campaignFromItem(id, item)
		if err != nil {
			return adcount.Campaign{}, fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
		}
		next, err := c.Apply(p)
		if err != nil {
			return adcount.Campaign{}, fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
		}
		version, err := versionOf(item)
		if err != nil {
			return adcount.Campaign{}, fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
		}
		if sameCampaign(c, next) {
			s.campaigns.put(id, next, version, readAt)
			return next, nil
		}
		creator, _ := getString(item, attrCreator)
		put := &types.Put{
			TableName:                aws.String(s.table),
			Item:                     campaignItem(next, creator, version+1),
			ConditionExpression:      aws.String("#v = :v"),
			ExpressionAttributeNames: map[string]string{"#v": attrVersion},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":v": num(version),
			},
		}
		if version == 0 {
			// A campaign from before versions: it must still exist and
			// still have none.
			put.ConditionExpression = aws.String("attribute_exists(#pk) AND attribute_not_exists(#v)")
			put.ExpressionAttributeNames["#pk"] = PartitionKey
			put.ExpressionAttributeValues = nil
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems: []types.TransactWriteItem{
				{Put: put},
				{Put: &types.Put{TableName: aws.String(s.table), Item: listEntry(next)}},
			},
			ClientRequestToken: aws.String(newToken()),
		})
		if err == nil {
			s.campaigns.put(id, next, version+1, readAt)
			return next, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return adcount.Campaign{}, s.wrap(op, id, err)
		}
		if reasonCode(tce.CancellationReasons, 0) == "ConditionalCheckFailed" {
			// Changed since it was read: read it again and apply p to
			// what is there now.
			if attempt >= updateAttempts {
				return adcount.Campaign{}, fmt.Errorf("dynamostore: %s %s: %w: the campaign kept changing under %d tries", op, id, adcount.ErrUnavailable, attempt)
			}
			if err := backoff(ctx, min(attempt, 3)); err != nil {
				return adcount.Campaign{}, s.wrap(op, id, err)
			}
			continue
		}
		if err := s.retryCancelled(ctx, tce, attempt, updateAttempts); err != nil {
			return adcount.Campaign{}, s.wrap(op, id, err)
		}
	}
}

// sameCampaign reports whether b has the fields a patch can change as a
// has them.
func sameCampaign(a, b adcount.Campaign) bool {
	return a.Name == b.Name && a.EndTime.Equal(b.EndTime) && a.Paused == b.Paused
}

// maxListScan bounds the list entries one ListCampaigns call reads, so
// that a status filter or a name search that few campaigns pass cannot
// turn one request into a read of the whole list: about 5,000 × 200
// bytes, some 250 RRU.
const maxListScan = 5000

// ListCampaigns returns one page of the campaigns, newest first: one
// strongly consistent Query of the list partition, read backwards from
// the cursor, and more only while a filter (a status, a name search, or
// both) leaves the page short. It returns ErrInvalid for a query that
// adcount.CampaignQuery.Check refuses, and ErrUnavailable if DynamoDB
// throttled, failed or did not answer in time.
//
// q.Keeps judges each entry, a copy of its campaign that CreateCampaign
// and UpdateCampaign write with it, with its status computed at q.Now.
// With a filter the call reads at most maxListScan entries; if it has not
// filled the page by then, it returns what it found, possibly nothing,
// with Next at the last entry it read, so that the caller goes on from
// there instead of the call reading without bound. DynamoDB cannot match
// case-insensitive substrings in a query, so the name is matched here,
// not in a filter expression, which would cost the same reads anyway.
func (s *Store) ListCampaigns(ctx context.Context, q adcount.CampaignQuery) (adcount.CampaignPage, error) {
	const op = "list campaigns"
	if err := q.Check(); err != nil {
		return adcount.CampaignPage{}, fmt.Errorf("dynamostore: %s: %w", op, err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	// One more than the page, to know whether another follows; with a
	// filter, more, since some will not pass.
	pageSize := q.Limit + 1
	if q.Filtered() {
		pageSize = min(max(pageSize, 100), 1000)
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": PartitionKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(listPK)},
		ScanIndexForward:          aws.Bool(false),
		ConsistentRead:            aws.Bool(true),
	}
	if q.After != nil {
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk < :after")
		in.ExpressionAttributeNames["#sk"] = SortKey
		in.ExpressionAttributeValues[":after"] = str(listSK(q.After.CreatedAt, q.After.ID))
	}
	var (
		page     adcount.CampaignPage
		last     adcount.Campaign
		examined int
	)
	for {
		n := pageSize
		if q.Filtered() {
			n = min(n, s.listScan-examined) // never past the bound
		}
		in.Limit = aws.Int32(int32(n))
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return adcount.CampaignPage{}, s.wrap(op, "", err)
		}
		for _, item := range out.Items {
			examined++
			sk, _ := getString(item, SortKey)
			id, ok := idFromListSK(sk)
			if !ok {
				return adcount.CampaignPage{}, fmt.Errorf("dynamostore: %s: list entry %q: %w: the sort key names no campaign", op, sk, ErrMalformedItem)
			}
			c, err := campaignFromItem(id, item)
			if err != nil {
				return adcount.CampaignPage{}, fmt.Errorf("dynamostore: %s: list entry %q: %w", op, sk, err)
			}
			last = c
			if !q.Keeps(c) {
				continue
			}
			if len(page.Campaigns) == q.Limit {
				// A campaign beyond the page: there is a next one.
				next := adcount.CursorAfter(page.Campaigns[q.Limit-1])
				page.Next = &next
				return page, nil
			}
			page.Campaigns = append(page.Campaigns, c)
		}
		if out.LastEvaluatedKey == nil {
			return page, nil
		}
		if q.Filtered() && examined >= s.listScan {
			next := adcount.CursorAfter(last)
			page.Next = &next
			return page, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// campaignItem is the campaign's item: every field, the creator token
// and the version.
func campaignItem(c adcount.Campaign, creator string, version int64) map[string]types.AttributeValue {
	item := key(campaignPK(c.ID), metaSK)
	putCampaignFields(item, c)
	item[attrCreator] = str(creator)
	item[attrVersion] = num(version)
	return item
}

// listEntry is the campaign's entry in the list: a copy of every field a
// list page shows and filters by.
func listEntry(c adcount.Campaign) map[string]types.AttributeValue {
	item := key(listPK, listSK(c.CreatedAt, c.ID))
	putCampaignFields(item, c)
	return item
}

func putCampaignFields(item map[string]types.AttributeValue, c adcount.Campaign) {
	start := c.StartTime.UTC()
	item[attrName] = str(c.Name)
	item[attrStart] = str(start.Format(time.RFC3339Nano))
	item[attrStartMs] = num(start.UnixMilli())
	item[attrStartNs] = num(int64(start.Nanosecond() % int(time.Millisecond)))
	if !c.EndTime.IsZero() {
		item[attrEnd] = str(c.EndTime.UTC().Format(time.RFC3339Nano))
	}
	if c.Paused {
		item[attrPaused] = &types.AttributeValueMemberBOOL{Value: true}
	}
	if !c.CreatedAt.IsZero() {
		item[attrCreated] = str(c.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
}

// getCampaignItem reads the campaign's item strongly consistently. It
// returns adcount.ErrNotFound if there is no such campaign, for the caller
// to wrap with its operation and the ID as it wraps DynamoDB's errors.
func (s *Store) getCampaignItem(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            key(campaignPK(id), metaSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	if len(out.Item) == 0 {
		return nil, adcount.ErrNotFound
	}
	return out.Item, nil
}

// campaignFromItem reads a campaign item or a list entry. Campaigns from
// before ends, pauses and creation times have none of those attributes:
// no end, not paused, created at the zero time.
func campaignFromItem(id string, item map[string]types.AttributeValue) (adcount.Campaign, error) {
	name, okName := getString(item, attrName)
	start, okStart := timeAttr(item, attrStart)
	if !okName || !okStart || start.IsZero() {
		return adcount.Campaign{}, fmt.Errorf("%w: campaign %s: no name or start", ErrMalformedItem, id)
	}
	c := adcount.Campaign{ID: id, Name: name, StartTime: start}
	var ok bool
	if c.EndTime, ok = timeAttr(item, attrEnd); !ok {
		return adcount.Campaign{}, fmt.Errorf("%w: campaign %s: attribute %s is not an RFC 3339 time", ErrMalformedItem, id, attrEnd)
	}
	if c.CreatedAt, ok = timeAttr(item, attrCreated); !ok {
		return adcount.Campaign{}, fmt.Errorf("%w: campaign %s: attribute %s is not an RFC 3339 time", ErrMalformedItem, id, attrCreated)
	}
	switch v := item[attrPaused].(type) {
	case nil:
	case *types.AttributeValueMemberBOOL:
		c.Paused = v.Value
	default:
		return adcount.Campaign{}, fmt.Errorf("%w: campaign %s: attribute %s is %s, not a boolean", ErrMalformedItem, id, attrPaused, attrType(v))
	}
	return c, nil
}

// timeAttr reads an optional time attribute: the zero time and true if it
// is absent, false if it is there but not an RFC 3339 string.
func timeAttr(item map[string]types.AttributeValue, name string) (time.Time, bool) {
	if _, ok := item[name]; !ok {
		return time.Time{}, true
	}
	text, ok := getString(item, name)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// versionOf reads a campaign item's version: 0 for one from before
// versions.
func versionOf(item map[string]types.AttributeValue) (int64, error) {
	if _, ok := item[attrVersion]; !ok {
		return 0, nil
	}
	return counter(item, attrVersion)
}

// checkLive returns nil if the campaign exists and counts impressions at
// now, and otherwise ErrNotFound, or what adcount.Campaign.Live answers
// (ErrEnded, ErrPaused or ErrNotStarted), each wrapped with the operation
// and ID.
//
// The hot path writes only the marker, so the campaign is read, not
// checked inside a transaction: from the cache while the copy there is
// younger than the store's refresh bound (CampaignRefresh), else with one
// strongly consistent read that concurrent callers share. An unknown ID is
// never cached: a campaign created a moment later must count at once.
func (s *Store) checkLive(ctx context.Context, id string, now time.Time) error {
	c, ok := s.campaigns.get(id, now, s.refresh)
	if !ok {
		var err error
		if c, err = s.readCampaign(ctx, id); err != nil {
			return err
		}
	}
	if err := c.Live(now); err != nil {
		return fmt.Errorf("dynamostore: record impression %s: %w", id, err)
	}
	return nil
}

// readCampaign reads the campaign for the hot path and caches it. Callers
// that need the same campaign at once share one read, so a busy process
// reads each campaign at most once per refresh bound however many
// impressions are in flight. The shared read is bounded by the store's
// timeout, not by the first caller's context, so that one caller giving up
// cannot fail the others; each caller still stops waiting when its own
// context ends.
func (s *Store) readCampaign(ctx context.Context, id string) (adcount.Campaign, error) {
	const op = "record impression"
	ch := s.campaigns.reads.DoChan(id, func() (any, error) {
		rctx, cancel := s.withTimeout(context.WithoutCancel(ctx))
		defer cancel()
		readAt := s.now()
		item, err := s.getCampaignItem(rctx, id)
		if err != nil {
			return nil, s.wrap(op, id, err)
		}
		c, err := campaignFromItem(id, item)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
		}
		version, err := versionOf(item)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: %s %s: %w", op, id, err)
		}
		s.campaigns.put(id, c, version, readAt)
		return c, nil
	})
	select {
	case <-ctx.Done():
		return adcount.Campaign{}, s.wrap(op, id, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return adcount.Campaign{}, r.Err
		}
		return r.Val.(adcount.Campaign), nil
	}
}

// campaignCache remembers the campaigns the hot path has read, each with
// the moment its read began. It is safe for concurrent use. When full it
// forgets everything and starts again, which costs one read per campaign
// and keeps the bound simple.
type campaignCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]cachedCampaign
	reads   singleflight.Group
}

type cachedCampaign struct {
	c       adcount.Campaign
	version int64
	readAt  time.Time
}

func newCampaignCache(max int) *campaignCache {
	return &campaignCache{max: max, entries: make(map[string]cachedCampaign)}
}

// get returns the campaign if the cache holds a copy read less than
// refresh before now. A copy read after now, which only a clock moved
// back shows, is read again too.
func (c *campaignCache) get(id string, now time.Time, refresh time.Duration) (adcount.Campaign, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[id]
	if !ok {
		return adcount.Campaign{}, false
	}
	if age := now.Sub(e.readAt); age < 0 || age >= refresh {
		return adcount.Campaign{}, false
	}
	return e.c, true
}

// put keeps camp, at its item's version, as read at readAt, unless the
// cache holds a later version, or the same one read later. Versions, not
// read times, decide: a read that began before this store's update
// committed, and ended after it, returns the older version, and must not
// undo the update in the cache, or a pause would wait out a whole refresh
// in the very process that made it.
func (c *campaignCache) put(id string, camp adcount.Campaign, version int64, readAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok && (e.version > version || e.version == version && e.readAt.After(readAt)) {
		return
	}
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[id] = cachedCampaign{c: camp, version: version, readAt: readAt}
}
