package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/adcount"
)

// StreamRecord is one change of the table as its stream delivers it, in the
// SDK's DynamoDB attribute types whatever the transport: the Lambda event
// and the Streams API each have their own, and their callers convert.
type StreamRecord struct {
	// EventName is INSERT, MODIFY or REMOVE.
	EventName string
	// Seq is the record's SequenceNumber: decimal digits, increasing
	// within a shard.
	Seq string
	// Created is the record's ApproximateCreationDateTime.
	Created time.Time
	// Old and New are the item before and after the change (the stream
	// view NEW_AND_OLD_IMAGES); either is nil where there is none.
	Old, New map[string]types.AttributeValue
}

// AggregatorClient is the part of the DynamoDB API that the aggregator
// calls; each method is one IAM action it needs on the table.
// *dynamodb.Client implements it.
type AggregatorClient interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Applied reports what one Apply call did.
type Applied struct {
	// Records is how many records the call was given.
	Records int
	// Skipped is how many of them an earlier delivery, to this aggregator
	// or another, had already applied: redeliveries.
	Skipped int
	// Counted and Filtered are the impressions folded into the counts.
	Counted, Filtered int64
	// Transactions is how many writes it committed.
	Transactions int
	// Sketches is how many reach items it wrote, and SketchConflicts how
	// many of those writes found the item changed by another aggregator
	// since it was read, and were merged and written again.
	Sketches, SketchConflicts int
	// Through is the sequence number of the last record that is applied,
	// by this call or before it; empty if none of the records is. After an
	// error, every record after it must be delivered again.
	Through string
	// Malformed lists the records that were dedup markers of the store's
	// format but lacked what a count needs. They are passed over, and the
	// checkpoint moves past them, so that one cannot wedge its shard; the
	// caller must log and count them, since only a hand edit of the table
	// or a bug makes one.
	Malformed []Malformed
}

// Malformed is a stream record that Apply passed over, and why.
type Malformed struct {
	Seq string
	Err error
}

// Aggregator folds the counted dedup markers that the table's stream
// reports into the campaigns' counter items, exactly once per marker: see
// Apply. It holds no state of its own, so any number of aggregators, in
// any number of processes, may work on one table and even on one shard at
// once. It is safe for concurrent use.
type Aggregator struct {
	db         AggregatorClient
	table      string
	now        func() time.Time
	timeout    time.Duration
	stageItems int // the most counter items one stage holds
}

// AggregatorOption configures an Aggregator.
type AggregatorOption func(*Aggregator)

// WithAggregatorClock sets the wall clock the aggregator stamps its
// checkpoints and watermarks with, and computes their expiry from; the
// default is time.Now. The counts' minutes never come from it: each marker
// carries the minute it counted in.
func WithAggregatorClock(now func() time.Time) AggregatorOption {
	return func(a *Aggregator) { a.now = now }
}

// WithAggregatorTimeout bounds each DynamoDB call, the SDK's retries
// included; DefaultTimeout if not set, zero for no bound beyond the
// caller's context. It bounds each call, not an Apply, which makes one
// transaction per part of a staged batch: the caller's context bounds the
// whole.
func WithAggregatorTimeout(d time.Duration) AggregatorOption {
	return func(a *Aggregator) { a.timeout = d }
}

// NewAggregator returns an aggregator over the named table. It makes no
// call to DynamoDB.
func NewAggregator(db AggregatorClient, table string, opts ...AggregatorOption) (*Aggregator, error) {
	a := &Aggregator{db: db, table: table, now: time.Now, timeout: DefaultTimeout, stageItems: maxStageItems}
	for _, opt := range opts {
		opt(a)
	}
	switch {
	case db == nil:
		return nil, errors.New("dynamostore: a DynamoDB client is required")
	case table == "":
		return nil, errors.New("dynamostore: a table name is required")
	case a.timeout < 0:
		return nil, errors.New("dynamostore: timeout must not be negative")
	case a.stageItems < maxTransactItems-1 || a.stageItems > maxStageItems:
		return nil, fmt.Errorf("dynamostore: a stage holds from %d to %d counter items, got %d", maxTransactItems-1, maxStageItems, a.stageItems)
	}
	return a, nil
}

// Apply folds recs, consecutive records of the stream shard shardID in
// stream order, into the counts, exactly once however often they are
// delivered and by however many aggregators at once. The records must
// start at or before the first record after the shard's checkpoint, as
// every reader of a stream delivers them: Lambda resumes a shard where
// its own checkpoint, never ahead of ours, says, and a Streams reader
// starts after Checkpoint.
//
// Each transaction that adds to the counter items also moves the shard's
// checkpoint, the sequence number through which the shard is applied, on
// the condition that it is where this call read it. So a record at or
// before the checkpoint is skipped; a transaction that loses the race to
// another aggregator applies nothing, and the call reads the checkpoint
// again and goes on after it.
//
// A batch whose counter items do not fit one transaction (99 of them and
// the checkpoint) is staged (see stage.go): one transaction moves the
// checkpoint past the whole batch, marks it staged in n parts, applies the
// first part and stores the others in the table; then each further part is
// one transaction that applies it and counts it done on the checkpoint, on
// the condition that it is the next part. Any aggregator that finds a
// stage unfinished finishes it before anything else, from the stored
// parts, so a crash between parts loses and repeats nothing. Batches too
// big for one stage (thousands of counter items) are applied as several,
// each a prefix of the rest.
//
// Records that are not counted markers (a duplicate's marker never changes,
// so it has none; TTL deletions; other items, such as the aggregator's own
// writes) count nothing, and a run of them writes nothing.
// Markers written by the store's earlier, transactional write path carry
// no campaign and were counted when they were written, so they are
// skipped too.
//
// A marker of the store's format that lacks its campaign, ad, minute or
// owner, or whose user fingerprint is not one, is passed over and listed
// in Applied.Malformed.
//
// Before each transaction, the fingerprints of the impressions it counts
// are merged into the campaign's reach items (see reach.go): a merge is
// idempotent, so a batch delivered again, or a transaction that loses the
// race for the checkpoint, merges again and changes nothing, while the
// counts keep the checkpoint's exactly-once. Reach may therefore run a
// little ahead of the counts, never behind them; Stats bounds it by them.
//
// It returns ErrUnavailable if DynamoDB throttled, failed or did not answer
// in time, and ErrMalformedItem for a sequence number that is not decimal
// digits, which no stream sends, or a staged part that is missing or
// unreadable. Applied then says through which record the shard is
// applied, and every record after it must be delivered again: never skip
// them, for the checkpoint cannot go back to fill a gap. While a stage is
// unfinished, Through stops before its records: delivering them again is
// what gets the stage finished.
func (a *Aggregator) Apply(ctx context.Context, shardID string, recs []StreamRecord) (Applied, error) {
	const op = "apply"
	res := Applied{Records: len(recs)}
	if shardID == "" {
		return res, fmt.Errorf("dynamostore: %s: %w: no shard ID", op, ErrMalformedItem)
	}
	// Read every record first. A bad one ends the batch there: the
	// records before it are applied, and the caller reports it failed.
	seqs := make([]string, 0, len(recs))
	counts := make([]markerCount, 0, len(recs))
	var bad error
	for _, r := range recs {
		seq, err := padSeq(r.Seq)
		if err != nil {
			bad = fmt.Errorf("dynamostore: %s shard %s record %s: %w", op, shardID, r.Seq, err)
			break
		}
		c, err := countOf(r)
		if err != nil {
			res.Malformed = append(res.Malformed, Malformed{Seq: r.Seq, Err: err})
		}
		seqs = append(seqs, seq)
		counts = append(counts, c)
	}
	through := func(cp string) string {
		last := ""
		for i, seq := range seqs {
			if cp != "" && seq <= cp {
				last = recs[i].Seq
			}
		}
		return last
	}
	cp, err := a.checkpoint(ctx, shardID)
	if err != nil {
		return res, fmt.Errorf("dynamostore: %s shard %s: %w", op, shardID, err)
	}
	for i := 0; ; {
		if cp.pending() {
			// An unfinished stage, this call's or another's: finish it
			// before anything else.
			if cp, err = a.drain(ctx, shardID, cp, nil, &res); err != nil {
				res.Through = through(cp.applied())
				return res, fmt.Errorf("dynamostore: %s shard %s: staged batch %s: %w", op, shardID, cp.stage, err)
			}
		}
		for i < len(seqs) && cp.seq != "" && seqs[i] <= cp.seq {
			res.Skipped++
			i++
		}
		if i == len(seqs) {
			break
		}
		g := a.newFold()
		j := i
		for ; j < len(seqs); j++ {
			if j > i && !g.fits(counts[j]) {
				break
			}
			g.add(counts[j])
		}
		if len(g.items) == 0 {
			// Nothing to count: no write, and the checkpoint need not
			// move past these records (see commit).
			cp.seq, i = seqs[j-1], j
			continue
		}
		if err := a.mergeReach(ctx, g.reach, &res); err != nil {
			res.Through = through(cp.applied())
			return res, fmt.Errorf("dynamostore: %s shard %s through %s: %w", op, shardID, recs[j-1].Seq, err)
		}
		next, moved, err := a.commit(ctx, shardID, g, cp, seqs[j-1], recs[j-1].Created, &res)
		if err != nil {
			res.Through = through(next.applied())
			return res, fmt.Errorf("dynamostore: %s shard %s through %s: %w", op, shardID, recs[j-1].Seq, err)
		}
		if !moved {
			// Another aggregator moved the checkpoint first: what it
			// applied is skipped, the rest is folded again.
			// On failure, what this call committed before is still
			// applied: Through keeps it.
			if next, err = a.checkpoint(ctx, shardID); err != nil {
				res.Through = through(cp.applied())
				return res, fmt.Errorf("dynamostore: %s shard %s: %w", op, shardID, err)
			}
		} else {
			i = j
		}
		cp = next
	}
	res.Through = through(cp.applied())
	return res, bad
}

// IsMarkerRecord reports whether r is a change of a dedup marker, the only
// records that can count. Apply counts nothing for any other record, and
// writes nothing for a batch that counts nothing, so the aggregator's own
// writes, which come back through the stream, end there; filtering them
// out first saves the reading.
func IsMarkerRecord(r StreamRecord) bool {
	img := r.New
	if img == nil {
		img = r.Old
	}
	pk, _ := getString(img, PartitionKey)
	return strings.HasPrefix(pk, markerPrefix)
}

// maxTransactItems is how many actions one TransactWriteItems may hold.
const maxTransactItems = 100

// markerCount is what one stream record adds to the counts: nothing, or
// one impression of a campaign's ad in a minute, or one filtered one; and
// to the campaign's reach, the user's fingerprint if the marker has one.
type markerCount struct {
	counted  bool
	campaign string
	ad       string
	bucket   int64
	filtered bool
	user     uint64
	hasUser  bool
}

// countOf reads what r adds to the counts. It counts a marker that the
// record shows newly written: inserted, or rewritten with a new owner,
// which the store does only when the key's window had ended. A marker
// without a campaign is the earlier write path's, counted when written;
// so is one whose epoch (the owner that wrote its campaign, ad and minute)
// is not its owner, which the earlier path leaves when it rewrites a
// marker of this one during a rolling deployment. Markers written before
// the epoch existed have none and count by their owner alone; markers
// written before reach have no user fingerprint, and count but add no
// reach.
func countOf(r StreamRecord) (markerCount, error) {
	pk, _ := getString(r.New, PartitionKey)
	if r.New == nil || !strings.HasPrefix(pk, markerPrefix) {
		return markerCount{}, nil
	}
	campaign, ok := getString(r.New, attrCampaign)
	if !ok {
		return markerCount{}, nil
	}
	owner, okOwner := getString(r.New, attrOwner)
	ad, okAd := getString(r.New, attrAd)
	bucket, err := signedNumber(r.New, attrBucket)
	if !okOwner || !okAd || err != nil || campaign == "" || ad == "" {
		return markerCount{}, fmt.Errorf("%w: marker %s lacks its owner, campaign, ad or minute", ErrMalformedItem, pk)
	}
	if epoch, ok := getString(r.New, attrEpoch); ok && epoch != owner {
		// The earlier write path rewrote this marker: it sets only expMs,
		// ttl and owner, so c, a and b are the last count's, and it
		// counted the impression in its own transaction.
		return markerCount{}, nil
	}
	if r.Old != nil {
		if old, _ := getString(r.Old, attrOwner); old == owner {
			return markerCount{}, nil
		}
	}
	_, filtered := r.New[attrFiltered]
	c := markerCount{counted: true, campaign: campaign, ad: ad, bucket: bucket, filtered: filtered}
	if v, ok := r.New[attrUser]; ok {
		if c.user, err = parseUserAttr(v); err != nil {
			return markerCount{}, fmt.Errorf("%w: marker %s: %w", ErrMalformedItem, pk, err)
		}
		c.hasUser = true
	}
	return c, nil
}

// fpShift is how far a fingerprint's bits lie above the number a marker
// stores: reach.Hash keeps 48 bits and zeroes the low 16.
const fpShift = 16

// userAttr is the marker attribute that stores the fingerprint fp: its 48
// bits as a number of at most 15 digits, about 9 bytes, so the marker
// stays one write unit. A number under 2^53 also survives every reader
// that holds numbers as float64, as some tools (and minidyn) do; the
// whole 64-bit value would not.
func userAttr(fp uint64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatUint(fp>>fpShift, 10)}
}

// parseUserAttr reads what userAttr wrote.
func parseUserAttr(v types.AttributeValue) (uint64, error) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("user fingerprint %s is %s, not a number", attrUser, attrType(v))
	}
	u, err := strconv.ParseUint(n.Value, 10, 64)
	if err != nil || u >= 1<<(64-fpShift) {
		return 0, fmt.Errorf("user fingerprint %s is %q, not a 48-bit number", attrUser, n.Value)
	}
	return u << fpShift, nil
}

// signedNumber reads a number attribute that may be negative, such as a
// minute before 1970.
func signedNumber(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("%w: %s is %s, not a number", ErrMalformedItem, name, attrType(item[name]))
	}
	return strconv.ParseInt(v.Value, 10, 64)
}

// itemKey is a counter item's partition and sort key.
type itemKey struct{ pk, sk string }

func compareKeys(x, y itemKey) int {
	if c := strings.Compare(x.pk, y.pk); c != 0 {
		return c
	}
	return strings.Compare(x.sk, y.sk)
}

// fold is what a run of records adds to each counter item: the additions
// to each attribute, and what becomes of the item's expiry.
type fold struct {
	items             map[itemKey]*itemAdds
	reach             reachAdds
	size              int // the staged form's size, estimated (stagedSize)
	maxItems, maxSize int // the most one stage holds
	counted, filtered int64
}

type itemAdds struct {
	adds map[string]int64
	ttl  int64 // > 0: the item expires then (epoch seconds)
	keep bool  // the item never expires: remove any TTL it has
}

func (a *Aggregator) newFold() *fold {
	return &fold{items: make(map[itemKey]*itemAdds), reach: make(reachAdds), maxItems: a.stageItems, maxSize: maxStageSize}
}

// target is one counter that a marker adds one to.
type target struct {
	key  itemKey
	attr string
	ttl  int64
	keep bool
}

// targets lists the counters that c adds to: the campaign's total, minute
// and hour, and the ad's total, minute and hour; a filtered impression
// adds only to the two totals' filtered counts. The campaign's day items
// are kept for good, so their expiry is removed (items written before
// they were kept had one).
func targets(c markerCount) []target {
	if !c.counted {
		return nil
	}
	pk, apk := campaignPK(c.campaign), adPK(c.campaign, c.ad)
	adTotal := itemKey{pk, adTotalSK(c.ad)}
	if c.filtered {
		return []target{
			{key: itemKey{pk, totalSK}, attr: attrFiltered},
			{key: adTotal, attr: attrFiltered},
		}
	}
	hour, minute := hourOf(c.bucket)
	day, hourOfDay := dayOf(hour)
	return []target{
		{key: itemKey{pk, totalSK}, attr: attrCount},
		{key: itemKey{pk, hourSK(hour)}, attr: minuteAttr(minute), ttl: hourItemTTL(hour)},
		{key: itemKey{pk, daySK(day)}, attr: hourAttr(hourOfDay), keep: true},
		{key: adTotal, attr: attrCount},
		{key: itemKey{apk, hourSK(hour)}, attr: minuteAttr(minute), ttl: adHourItemTTL(hour)},
		{key: itemKey{apk, daySK(day)}, attr: hourAttr(hourOfDay), ttl: adDayItemTTL(day)},
	}
}

// fits reports whether c's counters still fit one stage with what the fold
// holds.
func (g *fold) fits(c markerCount) bool {
	n, size := len(g.items), g.size
	for _, t := range targets(c) {
		it, ok := g.items[t.key]
		if !ok {
			n++
			size += stagedSize(t.key) + stagedAttrSize(t.attr)
		} else if _, ok := it.adds[t.attr]; !ok {
			size += stagedAttrSize(t.attr)
		}
	}
	return n <= g.maxItems && size <= g.maxSize
}

func (g *fold) add(c markerCount) {
	for _, t := range targets(c) {
		it, ok := g.items[t.key]
		if !ok {
			it = &itemAdds{adds: make(map[string]int64), ttl: t.ttl, keep: t.keep}
			g.items[t.key] = it
			g.size += stagedSize(t.key)
		}
		if _, ok := it.adds[t.attr]; !ok {
			g.size += stagedAttrSize(t.attr)
		}
		it.adds[t.attr]++
	}
	g.reach.add(c)
	switch {
	case c.counted && c.filtered:
		g.filtered++
	case c.counted:
		g.counted++
	}
}

// sorted returns the fold's additions item by item, in key order.
func (g *fold) sorted() []stagedItem {
	keys := slices.SortedFunc(maps.Keys(g.items), compareKeys)
	out := make([]stagedItem, len(keys))
	for i, k := range keys {
		it := g.items[k]
		out[i] = stagedItem{PK: k.pk, SK: k.sk, Adds: it.adds, TTL: it.ttl, Keep: it.keep}
	}
	return out
}

// commit applies g, the additions of the records after the checkpoint cp
// through last, and moves the checkpoint to last: in one transaction on
// the condition that the checkpoint is still cp's if they fit one, else
// as a stage. It returns the checkpoint as it left it, and reports false,
// having changed nothing, if another aggregator moved it first. After an
// error the checkpoint it returns says what is applied (see
// checkpointState.applied).
//
// A fold with no additions writes nothing and reports true: its records
// count nothing however often they are applied, so the checkpoint need
// not move past them. Writing it would make a stream record of its own,
// which the aggregator would apply by writing the checkpoint again, for
// ever.
func (a *Aggregator) commit(ctx context.Context, shardID string, g *fold, cp checkpointState, last string, created time.Time, res *Applied) (checkpointState, bool, error) {
	items := g.sorted()
	if len(items) == 0 {
		return checkpointState{seq: last}, true, nil
	}
	if len(items)+1 <= maxTransactItems {
		actions := make([]types.TransactWriteItem, 0, len(items)+1)
		for _, it := range items {
			actions = append(actions, types.TransactWriteItem{Update: a.counterUpdate(it)})
		}
		actions = append(actions, types.TransactWriteItem{Update: a.checkpointUpdate(shardID, cp.seq, last, created, nil)})
		moved, err := a.transact(ctx, actions)
		if err != nil || !moved {
			return cp, false, err
		}
		res.Transactions++
		res.Counted += g.counted
		res.Filtered += g.filtered
		return checkpointState{seq: last}, true, nil
	}
	return a.stage(ctx, shardID, g, items, cp, last, created, res)
}

// transact writes actions, whose last is the checkpoint's conditional
// update, as one transaction. It reports false, having applied nothing, if
// the checkpoint's condition failed: another aggregator moved it first.
func (a *Aggregator) transact(ctx context.Context, actions []types.TransactWriteItem) (bool, error) {
	in := &dynamodb.TransactWriteItemsInput{TransactItems: actions}
	for attempt := 1; ; attempt++ {
		// A new token per attempt, as in the store: the SDK's own
		// retries of one attempt reuse it, so a commit whose answer was
		// lost is answered from that commit, never applied twice.
		in.ClientRequestToken = aws.String(newToken())
		callCtx, cancel := withTimeout(ctx, a.timeout)
		_, err := a.db.TransactWriteItems(callCtx, in)
		cancel()
		if err == nil {
			return true, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return false, wrapUnavailable(err)
		}
		reasons := tce.CancellationReasons
		if len(reasons) == len(actions) && aws.ToString(reasons[len(actions)-1].Code) == "ConditionalCheckFailed" {
			return false, nil
		}
		if !retryableCancellation(reasons) {
			return false, fmt.Errorf("transaction cancelled: %s", reasonCodes(reasons))
		}
		if attempt == aggregateAttempts {
			return false, fmt.Errorf("%w: %w", adcount.ErrUnavailable, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, wrapUnavailable(err)
		}
	}
}

// aggregateAttempts bounds how often commit resubmits a transaction that
// DynamoDB cancelled without applying, for a conflict with a concurrent
// transaction on the same counter item (aggregators of other shards adding
// to the same campaign) or throttling.
const aggregateAttempts = 5

func retryableCancellation(reasons []types.CancellationReason) bool {
	for _, r := range reasons {
		switch aws.ToString(r.Code) {
		case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
			return true
		}
	}
	return false
}

// counterUpdate adds to one counter item and sets, or removes, its expiry.
func (a *Aggregator) counterUpdate(it stagedItem) *types.Update {
	names := make(map[string]string)
	values := make(map[string]types.AttributeValue)
	var adds []string
	for i, attr := range slices.Sorted(maps.Keys(it.Adds)) {
		n, v := "#a"+strconv.Itoa(i), ":a"+strconv.Itoa(i)
		names[n], values[v] = attr, num(it.Adds[attr])
		adds = append(adds, n+" "+v)
	}
	expr := "ADD " + strings.Join(adds, ", ")
	switch {
	case it.TTL > 0:
		names["#ttl"], values[":ttl"] = TTLAttribute, num(it.TTL)
		expr += " SET #ttl = :ttl"
	case it.Keep:
		names["#ttl"] = TTLAttribute
		expr += " REMOVE #ttl"
	}
	return &types.Update{
		TableName:                 aws.String(a.table),
		Key:                       key(it.PK, it.SK),
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
}

// checkpointTTL is how long a shard's checkpoint outlives its last move: a
// stream keeps records for 24 hours, so after 48 no record the checkpoint
// guards can be delivered again.
const checkpointTTL = 48 * time.Hour

// checkpointUpdate moves the shard's checkpoint from prev to last, on the
// condition that it is still at prev, and with st, marks the records up to
// last a stage of which the first part is applied.
func (a *Aggregator) checkpointUpdate(shardID, prev, last string, created time.Time, st *checkpointState) *types.Update {
	now := a.now()
	cond := "attribute_not_exists(#seq)"
	// A record without a creation time (the zero time) claims nothing:
	// the epoch, never a negative number, which Stats would refuse.
	values := map[string]types.AttributeValue{
		":seq": str(last), ":wm": num(max(created.UnixMilli(), 0)), ":at": num(now.UnixMilli()),
		":ttl": num(now.Add(checkpointTTL).Unix()),
	}
	names := map[string]string{"#seq": attrSeq, "#wm": attrWatermark, "#at": attrAppliedAt, "#ttl": TTLAttribute}
	if prev != "" {
		cond = "#seq = :prev"
		values[":prev"] = str(prev)
	}
	set := "SET #seq = :seq, #wm = :wm, #at = :at, #ttl = :ttl"
	if st != nil {
		set += ", #stg = :stg, #parts = :parts, #done = :done"
		names["#stg"], names["#parts"], names["#done"] = attrStage, attrParts, attrDone
		values[":stg"], values[":parts"], values[":done"] = str(st.stage), num(st.parts), num(st.done)
		if prev != "" {
			set += ", #from = :prev"
			names["#from"] = attrFrom
		}
	}
	return &types.Update{
		TableName:                 aws.String(a.table),
		Key:                       key(streamPK, shardPrefix+shardID),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
}

// checkpointState is a shard's checkpoint as read: the sequence number
// (padded) through which its records are taken, and the stage that the
// last of them may still be in.
type checkpointState struct {
	seq string
	// stage is the token of the last staged batch, "" if none; parts
	// and done say how far it is applied, and from is the checkpoint
	// before it.
	stage       string
	parts, done int64
	from        string
}

// pending reports whether a staged batch is not yet fully applied.
func (c checkpointState) pending() bool { return c.stage != "" && c.done < c.parts }

// applied returns the sequence number through which every record's counts
// are in the counter items: the checkpoint, or while a stage is pending,
// the checkpoint before it.
func (c checkpointState) applied() string {
	if c.pending() {
		return c.from
	}
	return c.seq
}

// checkpoint reads the shard's checkpoint strongly consistently.
func (a *Aggregator) checkpoint(ctx context.Context, shardID string) (checkpointState, error) {
	ctx, cancel := withTimeout(ctx, a.timeout)
	defer cancel()
	out, err := a.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            key(streamPK, shardPrefix+shardID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return checkpointState{}, wrapUnavailable(err)
	}
	if len(out.Item) == 0 {
		return checkpointState{}, nil
	}
	var cp checkpointState
	var ok bool
	if cp.seq, ok = getString(out.Item, attrSeq); !ok {
		return checkpointState{}, fmt.Errorf("%w: checkpoint of shard %s has no sequence number", ErrMalformedItem, shardID)
	}
	if cp.stage, ok = getString(out.Item, attrStage); !ok {
		return cp, nil
	}
	cp.from, _ = getString(out.Item, attrFrom)
	if cp.parts, err = counter(out.Item, attrParts); err == nil {
		cp.done, err = counter(out.Item, attrDone)
	}
	if err != nil {
		return checkpointState{}, fmt.Errorf("checkpoint of shard %s: %w", shardID, err)
	}
	return cp, nil
}

// Checkpoint returns the sequence number through which the shard is
// applied, or "" if no record of it is, for a reader of the Streams API to
// start after. While a staged batch is unfinished it is the position before
// that batch, so that the reader delivers it again and Apply finishes it.
// It reads strongly consistently.
func (a *Aggregator) Checkpoint(ctx context.Context, shardID string) (string, error) {
	cp, err := a.checkpoint(ctx, shardID)
	if err != nil {
		return "", fmt.Errorf("dynamostore: checkpoint of shard %s: %w", shardID, err)
	}
	return strings.TrimLeft(cp.applied(), "0"), nil
}

// readerTTL is how long a reader's watermark outlives its last advance.
const readerTTL = time.Hour

// Advance records reader's watermark: every record that every shard of the
// stream held before wm has been applied. A reader of the Streams API calls
// it after a round that read every shard to its end; Stats report the
// newest watermark of any reader as AsOf, and Store.Settle waits for it. A
// watermark older than the one recorded is ignored. Readers' watermarks
// expire an hour after they were last advanced.
func (a *Aggregator) Advance(ctx context.Context, reader string, wm time.Time) error {
	ctx, cancel := withTimeout(ctx, a.timeout)
	defer cancel()
	_, err := a.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(a.table),
		Key:                       key(streamPK, readerPrefix+reader),
		UpdateExpression:          aws.String("SET #wm = :wm, #ttl = :ttl"),
		ConditionExpression:       aws.String("attribute_not_exists(#wm) OR #wm < :wm"),
		ExpressionAttributeNames:  map[string]string{"#wm": attrWatermark, "#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{":wm": num(wm.UnixMilli()), ":ttl": num(a.now().Add(readerTTL).Unix())},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dynamostore: advance reader %s: %w", reader, wrapUnavailable(err))
	}
	return nil
}

// padSeq checks that seq is a sequence number, decimal digits, and pads it
// to 40 digits so that sequence numbers compare as strings, in DynamoDB
// conditions too, as they do as numbers.
func padSeq(seq string) (string, error) {
	if seq == "" || len(seq) > 40 || strings.Trim(seq, "0123456789") != "" {
		return "", fmt.Errorf("%w: sequence number %q is not up to 40 decimal digits", ErrMalformedItem, seq)
	}
	return strings.Repeat("0", 40-len(seq)) + seq, nil
}

// wrapUnavailable marks a DynamoDB error ErrUnavailable when it is
// transient or the table is missing, as Store.wrap does.
func wrapUnavailable(err error) error {
	if err != nil && (transient(err) || missingTable(err)) {
		return fmt.Errorf("%w: %w", adcount.ErrUnavailable, err)
	}
	return err
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d == 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
