package memstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/reach"
)

// itemState is where one impression of a record call stands.
type itemState uint8

const (
	itemRefused itemState = iota // its Result holds why
	itemNew                      // new within the dedup window: it counts
	itemRepeat                   // a repeat within the window
)

// item is one impression of a record call on its way through the path.
type item struct {
	key      adcount.DedupKey
	user     uint64 // reach.Hash of its user; 0 for a filtered impression, which never adds reach
	campaign uint16 // its campaign's place in batch.campaigns
	ad       uint16 // its ad's place in batch.ads
	next     uint16 // the next new item of its campaign, plus one; 0 ends the list
	shard    uint8
	filtered bool
	state    itemState
}

// tally is what a record call does to one campaign.
type tally struct {
	cs       *campaignState
	counted  int64 // new impressions
	filtered int64 // new filtered impressions
	repeats  bool  // some impression repeats a key within the window
	logIndex uint16
	first    uint16 // the first of its new items, plus one; 0 if none
}

func (c *tally) added() bool { return c.counted+c.filtered > 0 }

// batch is the working memory of one record call: RecordImpression keeps
// one of a single impression on its stack, and RecordImpressions takes one
// from a pool, so that neither allocates once warm. Every slice is made
// with the room it can need and only ever resliced, never appended to: an
// append stored back into the batch would make the compiler move
// RecordImpression's batch to the heap.
type batch struct {
	items     []item   // one per impression
	order     []uint16 // the accepted items' indexes, grouped by shard, in batch order within each
	campaigns []tally  // the distinct campaigns of the accepted items
	locks     []uint16 // campaigns' indexes in lock order, by ID
	ads       []string // the distinct ad IDs of the accepted items
	adLog     []uint16 // each ad's place in the log record's list, plus one
	adStates  []adRef  // each ad's state, in the campaign that last found it
	record    []byte   // room for the log record
	index     map[*campaignState]uint16
	adIndex   map[string]uint16
	last      int // the campaign found last, for runs of one campaign
	lastAd    int // likewise for ads
}

// linearCampaigns is how many campaigns a batch looks through one by one
// before it indexes them in a map.
const linearCampaigns = 8

var batches = sync.Pool{New: func() any {
	return &batch{
		items:     make([]item, 0, adcount.MaxBatch),
		order:     make([]uint16, 0, adcount.MaxBatch),
		campaigns: make([]tally, 0, adcount.MaxBatch),
		locks:     make([]uint16, 0, adcount.MaxBatch),
		ads:       make([]string, 0, adcount.MaxBatch),
		adLog:     make([]uint16, 0, adcount.MaxBatch),
		adStates:  make([]adRef, adcount.MaxBatch),
		record:    make([]byte, 0, maxImpressionsPayload),
	}
}}

func (b *batch) reset(n int) {
	b.items = b.items[:n]
	b.order = b.order[:n]
	clear(b.campaigns)
	b.campaigns = b.campaigns[:0]
	clear(b.index)
	b.last = -1
	b.ads = b.ads[:0]
	clear(b.adIndex)
	b.lastAd = -1
}

// campaignIndex returns cs's place in b.campaigns, adding it if needed.
func (b *batch) campaignIndex(cs *campaignState) uint16 {
	if b.last >= 0 && b.campaigns[b.last].cs == cs {
		return uint16(b.last)
	}
	i, found := -1, false
	if len(b.campaigns) > linearCampaigns {
		var j uint16
		j, found = b.index[cs]
		i = int(j)
	} else {
		for j := range b.campaigns {
			if b.campaigns[j].cs == cs {
				i, found = j, true
				break
			}
		}
	}
	if !found {
		i = len(b.campaigns)
		b.campaigns = b.campaigns[:i+1]
		b.campaigns[i] = tally{cs: cs}
		switch {
		case len(b.campaigns) == linearCampaigns+1:
			if b.index == nil {
				b.index = make(map[*campaignState]uint16)
			}
			for j := range b.campaigns {
				b.index[b.campaigns[j].cs] = uint16(j)
			}
		case len(b.campaigns) > linearCampaigns+1:
			b.index[cs] = uint16(i)
		}
	}
	b.last = i
	return uint16(i)
}

// adIndexOf returns ad's place in b.ads, adding it if needed, as
// campaignIndex does for campaigns.
func (b *batch) adIndexOf(ad string) uint16 {
	if b.lastAd >= 0 && b.ads[b.lastAd] == ad {
		return uint16(b.lastAd)
	}
	i, found := -1, false
	if len(b.ads) > linearCampaigns {
		var j uint16
		j, found = b.adIndex[ad]
		i = int(j)
	} else {
		for j := range b.ads {
			if b.ads[j] == ad {
				i, found = j, true
				break
			}
		}
	}
	if !found {
		i = len(b.ads)
		b.ads = b.ads[:i+1]
		b.ads[i] = ad
		b.adStates[i] = adRef{}
		switch {
		case len(b.ads) == linearCampaigns+1:
			if b.adIndex == nil {
				b.adIndex = make(map[string]uint16)
			}
			for j := range b.ads {
				b.adIndex[b.ads[j]] = uint16(j)
			}
		case len(b.ads) > linearCampaigns+1:
			b.adIndex[ad] = uint16(i)
		}
	}
	b.lastAd = i
	return uint16(i)
}

// apply counts the new impressions of c, all at w, logged in record lsn
// (0 without a journal): in the campaign's counters and reach, and in
// each one's ad's. The caller holds c.cs.mu. Each ad of the batch is looked up in
// the campaign once, and remembered in b.adStates for the campaign.
func (b *batch) apply(c *tally, w when, lsn uint64) {
	c.cs.add(w, c.counted, c.filtered, lsn)
	for i := c.first; i != 0; i = b.items[i-1].next {
		it := &b.items[i-1]
		ref := &b.adStates[it.ad]
		if ref.cs != c.cs {
			*ref = adRef{c.cs, c.cs.ad(b.ads[it.ad])}
		}
		if it.filtered {
			ref.a.add(w, 0, 1, lsn)
		} else {
			ref.a.add(w, 1, 0, lsn)
			c.cs.addUser(w, it.user)
		}
	}
}

// adRef is an ad of a batch as found in one campaign.
type adRef struct {
	cs *campaignState
	a  *adState
}

// RecordImpression counts imp unless it repeats a key counted within the
// dedup TTL, and returns Counted, Duplicate or, for a filtered impression,
// Filtered. See adcount.Store for the errors. It is a batch of one: see
// RecordImpressions for how it orders its work and when it answers.
func (s *Store) RecordImpression(ctx context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	var (
		items [1]item
		order [1]uint16
		camps [1]tally
		ads   [1]string
		adLog [1]uint16
		refs  [1]adRef
		imps  = [1]adcount.Impression{imp}
		res   [1]adcount.Result
	)
	b := batch{items: items[:], order: order[:], campaigns: camps[:0], ads: ads[:0], adLog: adLog[:0], adStates: refs[:],
		last: -1, lastAd: -1}
	if err := s.record(ctx, imps[:], res[:], &b); err != nil {
		return 0, err
	}
	return res[0].Outcome, res[0].Err
}

// RecordImpressions records a batch of at most adcount.MaxBatch
// impressions and returns one Result each, exactly as RecordImpression
// would have answered them one by one in order; see adcount.Store. It
// returns ErrInvalid for a larger batch, ctx's error for a ctx already
// done, and for a store made by Open, ErrUnavailable when the outcomes
// cannot be made durable. None of these changes anything, but the last:
// after it the outcomes are unknown, and a retry of the batch is safe.
//
// The batch reads the clock once, takes each dedup shard's lock once for
// all its impressions of that shard, and each campaign's lock once. A
// store made by Open logs all its new impressions as one record, in one
// append, and so waits for one fsync; it answers only once that record,
// and every record that made one of its impressions a repeat, is durable.
//
// With a journal, the shards' locks are held from the first decision
// until the record is appended and the counters changed, and the
// campaigns' locks from the append until then too, each set taken in one
// order (shards by number, then campaigns by ID) so that batches never
// deadlock. So the log orders each key's records as the dedup decisions
// were made, and each campaign's as its counters changed, which is what
// replay and snapshots rely on; and an impression that finds a key taken
// finds the campaign's log position at or past the record that took it.
// If the append fails, the batch's new keys are forgotten before any lock
// is let go. Without a journal there is no order to keep: each shard's
// lock is let go once its impressions are decided, and each campaign's
// once its counters change. The log's own mutex, held only to copy the
// record into its buffer, is the one lock all batches share: group commit
// needs one order of records.
func (s *Store) RecordImpressions(ctx context.Context, imps []adcount.Impression) ([]adcount.Result, error) {
	if err := adcount.CheckBatchSize(len(imps)); err != nil {
		return nil, fmt.Errorf("memstore: record impressions: %w", err)
	}
	res := make([]adcount.Result, len(imps))
	b := batches.Get().(*batch)
	b.reset(len(imps))
	err := s.record(ctx, imps, res, b)
	// The pool keeps no caller's strings alive: an ad ID may be a slice of
	// a whole request body.
	clear(b.ads)
	batches.Put(b)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// record is the one record path. It fills res, whose entries are zero, and
// returns an error only for the whole call.
func (s *Store) record(ctx context.Context, imps []adcount.Impression, res []adcount.Result, b *batch) error {
	if err := ctx.Err(); err != nil {
		return recordError(imps, err)
	}
	now := s.now()
	t, ttl := now.UnixMilli(), s.ttl.Milliseconds()
	var g groups
	s.accept(imps, res, b, now, &g)
	if len(b.campaigns) == 0 {
		return nil // every impression was refused
	}
	ordered := s.journal != nil
	s.decide(b, &g, t, ttl, ordered)
	if !ordered {
		w := at(now)
		for i := range b.campaigns {
			if c := &b.campaigns[i]; c.added() {
				c.cs.mu.Lock()
				b.apply(c, w, 0)
				c.cs.mu.Unlock()
			}
		}
		outcomes(b, res)
		return nil
	}
	commit, need, err := s.log(b, g.shards, now, t+ttl)
	if err == nil {
		if commit != nil {
			// Records are made durable in order, so this covers every
			// record that made an impression of the batch a repeat.
			err = commit.Wait()
		} else if need > 0 {
			// No impression was new. A repeat is answered only once the
			// record that took its key is durable, as it long has been for
			// most repeats.
			err = s.journal.durableThrough(ctx, need)
		}
	}
	if err != nil {
		return recordError(imps, fmt.Errorf("%w: %w", adcount.ErrUnavailable, err))
	}
	outcomes(b, res)
	return nil
}

// groups says where each shard's items are in batch.order: the groups are
// in the order of their shards, each group ending at end[shard], so that
// a walk of the shards in order finds each group starting where the one
// before ended.
type groups struct {
	shards uint64 // the set of shards with items
	end    [dedupShards]uint16
}

// accept refuses each impression that is invalid, names no campaign, or
// finds its campaign not live (adcount.Campaign.Live: ended, paused or not
// started), in that order of checks, and prepares the others: their keys,
// campaigns, ads and shards, and b.order grouped by shard, as g says. A
// refused impression claims no dedup key and changes no count.
func (s *Store) accept(imps []adcount.Impression, res []adcount.Result, b *batch, now time.Time, g *groups) {
	var (
		lastID   string
		lastCS   *campaignState
		lastLive error
	)
	for i := range imps {
		imp := &imps[i]
		it := &b.items[i]
		*it = item{}
		if err := imp.Validate(); err != nil {
			res[i].Err = fmt.Errorf("memstore: record impression: %w", err)
			continue
		}
		cs := lastCS
		if cs == nil || imp.CampaignID != lastID {
			v, ok := s.campaigns.Load(imp.CampaignID)
			if !ok {
				res[i].Err = fmt.Errorf("memstore: record impression %s: %w", imp.CampaignID, adcount.ErrNotFound)
				continue
			}
			cs, lastID, lastCS = v.(*campaignState), imp.CampaignID, v.(*campaignState)
			lastLive = cs.campaign.Load().Live(now)
		}
		if lastLive != nil {
			res[i].Err = fmt.Errorf("memstore: record impression for %s: %w", imp.CampaignID, lastLive)
			continue
		}
		it.key = imp.Key()
		it.shard = it.key[0] % dedupShards
		it.filtered = imp.Filtered
		if !imp.Filtered {
			// Hashed here, outside every lock, for the reach of an
			// impression that counts: a repeat hashes for nothing, but
			// costs no lock time.
			it.user = reach.Hash(imp.UserID)
		}
		it.campaign = b.campaignIndex(cs)
		it.ad = b.adIndexOf(imp.AdID)
		it.state = itemRepeat // until decided
		g.shards |= 1 << it.shard
		g.end[it.shard]++
	}
	if len(imps) == 1 {
		b.order = b.order[:g.end[b.items[0].shard]] // the one item, if accepted
		b.order[:1][0] = 0
		return
	}
	// A counting sort by shard, stable so that each key's impressions stay
	// in batch order. end holds each group's size, then its start, then,
	// once filled, its end.
	var n uint16
	for rest := g.shards; rest != 0; rest &= rest - 1 {
		sh := bits.TrailingZeros64(rest)
		n, g.end[sh] = n+g.end[sh], n
	}
	b.order = b.order[:n]
	for i := range b.items {
		if it := &b.items[i]; it.state != itemRefused {
			b.order[g.end[it.shard]] = uint16(i)
			g.end[it.shard]++
		}
	}
}

// decide makes the dedup decisions, shard by shard, each shard's lock
// taken once. With hold, the locks are kept for log to let go.
func (s *Store) decide(b *batch, g *groups, t, ttl int64, hold bool) {
	var from uint16
	for rest := g.shards; rest != 0; rest &= rest - 1 {
		sh := bits.TrailingZeros64(rest)
		group := b.order[from:g.end[sh]]
		from = g.end[sh]
		shard := &s.dedup[sh]
		shard.mu.Lock()
		for _, i := range group {
			it := &b.items[i]
			c := &b.campaigns[it.campaign]
			switch {
			case !shard.admitLocked(it.key, t, ttl):
				c.repeats = true
				continue
			case it.filtered:
				c.filtered++
			default:
				c.counted++
			}
			it.state = itemNew
			it.next, c.first = c.first, i+1
		}
		if !hold {
			shard.mu.Unlock()
		}
	}
}

// log appends the batch's record, applies it to the counters and lets go
// of the shards' locks that decide kept. It returns the Commit that makes
// the record durable, nil if nothing was new, and need, the last record of
// a campaign with a repeat. If the append fails, the batch's new keys are
// forgotten and nothing is counted.
func (s *Store) log(b *batch, shards uint64, now time.Time, expiry int64) (*wal.Commit, uint64, error) {
	b.lockCampaigns()
	var (
		commit *wal.Commit
		lsn    uint64
		err    error
		need   uint64
	)
	// A batch of one has no room of its own for its record: it uses
	// this, on the stack.
	var one [maxOneImpressionPayload]byte
	room := b.record[:0]
	if cap(room) == 0 {
		room = one[:0]
	}
	if record := b.encode(room, now.UnixMilli(), expiry); len(record) > 0 {
		lsn, commit, err = s.journal.log.Append(record)
	}
	w := at(now)
	for i := range b.campaigns {
		c := &b.campaigns[i]
		if c.repeats {
			need = max(need, c.cs.lsn)
		}
		if err == nil && c.added() {
			b.apply(c, w, lsn)
		}
	}
	for i := range b.campaigns {
		b.campaigns[i].cs.mu.Unlock()
	}
	for rest := shards; rest != 0; rest &= rest - 1 {
		sh := bits.TrailingZeros64(rest)
		shard := &s.dedup[sh]
		if err != nil {
			for i := range b.items {
				if it := &b.items[i]; it.state == itemNew && int(it.shard) == sh {
					shard.forget(it.key)
				}
			}
		}
		shard.mu.Unlock()
	}
	return commit, need, err
}

// lockCampaigns locks the batch's campaigns, in the order of their IDs.
func (b *batch) lockCampaigns() {
	if len(b.campaigns) == 1 {
		b.campaigns[0].cs.mu.Lock()
		return
	}
	b.locks = b.locks[:len(b.campaigns)]
	for i := range b.locks {
		b.locks[i] = uint16(i)
	}
	slices.SortFunc(b.locks, func(x, y uint16) int {
		return strings.Compare(b.campaigns[x].cs.id, b.campaigns[y].cs.id)
	})
	for _, i := range b.locks {
		b.campaigns[i].cs.mu.Lock()
	}
}

// encode appends the recImpressionsReach record of the batch's new
// impressions to dst, or returns dst unchanged if none is new.
func (b *batch) encode(dst []byte, t, expiry int64) []byte {
	var campaigns, items uint16
	for i := range b.campaigns {
		if c := &b.campaigns[i]; c.added() {
			c.logIndex = campaigns
			campaigns++
			items += uint16(c.counted + c.filtered)
		}
	}
	if items == 0 {
		return dst
	}
	// The ads of new impressions, numbered in the order of b.ads.
	b.adLog = b.adLog[:len(b.ads)]
	clear(b.adLog)
	for i := range b.items {
		if it := &b.items[i]; it.state == itemNew {
			b.adLog[it.ad] = 1
		}
	}
	var ads uint16
	for j := range b.adLog {
		if b.adLog[j] != 0 {
			ads++
			b.adLog[j] = ads
		}
	}
	dst = append(dst, recImpressionsReach)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(expiry))
	dst = binary.LittleEndian.AppendUint16(dst, campaigns)
	for i := range b.campaigns {
		if c := &b.campaigns[i]; c.added() {
			dst = appendStr16(dst, c.cs.id)
		}
	}
	dst = binary.LittleEndian.AppendUint16(dst, ads)
	for j, ad := range b.ads {
		if b.adLog[j] != 0 {
			dst = appendStr16(dst, ad)
		}
	}
	dst = binary.LittleEndian.AppendUint16(dst, items)
	for i := range b.items {
		it := &b.items[i]
		if it.state != itemNew {
			continue
		}
		dst = binary.LittleEndian.AppendUint16(dst, b.campaigns[it.campaign].logIndex)
		dst = binary.LittleEndian.AppendUint16(dst, b.adLog[it.ad]-1)
		var flags byte
		if it.filtered {
			flags |= flagFiltered
		}
		dst = append(dst, flags)
		dst = append(dst, it.key[:]...)
		if !it.filtered {
			dst = appendUser(dst, it.user)
		}
	}
	return dst
}

// outcomes fills in the outcome of each accepted impression.
func outcomes(b *batch, res []adcount.Result) {
	for i := range b.items {
		switch it := &b.items[i]; {
		case it.state == itemRefused:
		case it.filtered:
			res[i].Outcome = adcount.Filtered
		case it.state == itemNew:
			res[i].Outcome = adcount.Counted
		default:
			res[i].Outcome = adcount.Duplicate
		}
	}
}

// recordError wraps an error of a whole record call, naming the campaign
// of a single impression.
func recordError(imps []adcount.Impression, err error) error {
	if len(imps) == 1 {
		return fmt.Errorf("memstore: record impression for %s: %w", imps[0].CampaignID, err)
	}
	return fmt.Errorf("memstore: record %d impressions: %w", len(imps), err)
}
