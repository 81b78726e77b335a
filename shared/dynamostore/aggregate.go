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
	db      AggregatorClient
	table   string
	now     func() time.Time
	timeout time.Duration
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
// caller's context.
func WithAggregatorTimeout(d time.Duration) AggregatorOption {
	return func(a *Aggregator) { a.timeout = d }
}

// NewAggregator returns an aggregator over the named table. It makes no
// call to DynamoDB.
func NewAggregator(db AggregatorClient, table string, opts ...AggregatorOption) (*Aggregator, error) {
	a := &Aggregator{db: db, table: table, now: time.Now, timeout: DefaultTimeout}
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
// again and goes on after it. A batch that touches more counter items than
// one transaction holds is applied in several, each a prefix of the rest
// with its own checkpoint.
//
// Records that are not counted markers (a duplicate's marker never changes,
// so it has none; TTL deletions; other items, such as the aggregator's own
// writes) count nothing, and a run of them writes nothing.
// Markers written by the store's earlier, transactional write path carry
// no campaign and were counted when they were written, so they are
// skipped too.
//
// A marker of the store's format that lacks its campaign, minute or owner
// is passed over and listed in Applied.Malformed.
//
// It returns ErrUnavailable if DynamoDB throttled, failed or did not answer
// in time, and ErrMalformedItem for a sequence number that is not decimal
// digits, which no stream sends. Applied then says through which record
// the shard is applied, and every record after it must be delivered again:
// never skip them, for the checkpoint cannot go back to fill a gap.
func (a *Aggregator) Apply(ctx context.Context, shardID string, recs []StreamRecord) (Applied, error) {
	const op = "apply"
	res := Applied{Records: len(recs)}
	if shardID == "" {
		return res, fmt.Errorf("dynamostore: %s: %w: no shard ID", op, ErrMalformedItem)
	}
	ctx, cancel := withTimeout(ctx, a.timeout)
	defer cancel()
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
	for i := 0; i < len(seqs); {
		if cp != "" && seqs[i] <= cp {
			res.Skipped++
			i++
			continue
		}
		g := newFold()
		j := i
		for ; j < len(seqs); j++ {
			if j > i && !g.fits(counts[j]) {
				break
			}
			g.add(counts[j])
		}
		moved, err := a.commit(ctx, shardID, g, cp, seqs[j-1], recs[j-1].Created)
		if err != nil {
			res.Through = through(cp)
			return res, fmt.Errorf("dynamostore: %s shard %s through %s: %w", op, shardID, recs[j-1].Seq, err)
		}
		if !moved {
			// Another aggregator moved the checkpoint first: what it
			// applied is skipped, the rest is folded again.
			// On failure, what this call committed before is still
			// applied: Through keeps it.
			next, err := a.checkpoint(ctx, shardID)
			if err != nil {
				res.Through = through(cp)
				return res, fmt.Errorf("dynamostore: %s shard %s: %w", op, shardID, err)
			}
			cp = next
			continue
		}
		if len(g.items) > 0 {
			res.Transactions++
		}
		res.Counted += g.counted
		res.Filtered += g.filtered
		cp, i = seqs[j-1], j
	}
	res.Through = through(cp)
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
// one impression of a campaign's ad in a minute, or one filtered one.
type markerCount struct {
	counted  bool
	campaign string
	bucket   int64
	filtered bool
}

// countOf reads what r adds to the counts. It counts a marker that the
// record shows newly written: inserted, or rewritten with a new owner,
// which the store does only when the key's window had ended. A marker
// without a campaign is the earlier write path's, counted when written;
// so is one whose epoch (the owner that wrote its campaign, ad and minute)
// is not its owner, which the earlier path leaves when it rewrites a
// marker of this one during a rolling deployment. Markers written before
// the epoch existed have none and count by their owner alone.
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
	bucket, err := signedNumber(r.New, attrBucket)
	if !okOwner || err != nil || campaign == "" {
		return markerCount{}, fmt.Errorf("%w: marker %s lacks its owner, campaign or minute", ErrMalformedItem, pk)
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
	return markerCount{counted: true, campaign: campaign, bucket: bucket, filtered: filtered}, nil
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

// fold is what a run of records adds to each counter item: the additions
// to each attribute, and the expiry to set.
type fold struct {
	items             map[[2]string]*itemAdds // by partition and sort key
	counted, filtered int64
}

type itemAdds struct {
	adds map[string]int64
	ttl  int64 // 0: the item never expires
}

func newFold() *fold { return &fold{items: make(map[[2]string]*itemAdds)} }

// targets lists the items that c adds to, with the attribute and expiry.
func targets(c markerCount) []struct {
	key  [2]string
	attr string
	ttl  int64
} {
	type target = struct {
		key  [2]string
		attr string
		ttl  int64
	}
	if !c.counted {
		return nil
	}
	pk := campaignPK(c.campaign)
	if c.filtered {
		return []target{{[2]string{pk, totalSK}, attrFiltered, 0}}
	}
	hour, minute := hourOf(c.bucket)
	day, hourOfDay := dayOf(hour)
	return []target{
		{[2]string{pk, totalSK}, attrCount, 0},
		{[2]string{pk, hourSK(hour)}, minuteAttr(minute), hourItemTTL(hour)},
		{[2]string{pk, daySK(day)}, hourAttr(hourOfDay), dayItemTTL(day)},
	}
}

// fits reports whether c's items and the checkpoint still fit one
// transaction with what the fold holds.
func (g *fold) fits(c markerCount) bool {
	n := len(g.items)
	for _, t := range targets(c) {
		if _, ok := g.items[t.key]; !ok {
			n++
		}
	}
	return n+1 <= maxTransactItems
}

func (g *fold) add(c markerCount) {
	for _, t := range targets(c) {
		it, ok := g.items[t.key]
		if !ok {
			it = &itemAdds{adds: make(map[string]int64), ttl: t.ttl}
			g.items[t.key] = it
		}
		it.adds[t.attr]++
	}
	switch {
	case c.counted && c.filtered:
		g.filtered++
	case c.counted:
		g.counted++
	}
}

// commit writes g's additions and moves the shard's checkpoint from prev
// to last in one transaction, on the condition that the checkpoint is
// still prev. It reports false, having changed nothing, if another
// aggregator moved it first.
//
// A fold with no additions writes nothing and reports true: its records
// count nothing however often they are applied, so the checkpoint need
// not move past them. Writing it would make a stream record of its own,
// which the aggregator would apply by writing the checkpoint again, for
// ever.
func (a *Aggregator) commit(ctx context.Context, shardID string, g *fold, prev, last string, created time.Time) (bool, error) {
	if len(g.items) == 0 {
		return true, nil
	}
	cp := a.checkpointUpdate(shardID, prev, last, created)
	items := make([]types.TransactWriteItem, 0, len(g.items)+1)
	keys := slices.SortedFunc(maps.Keys(g.items), func(x, y [2]string) int { return strings.Compare(x[0]+"\x00"+x[1], y[0]+"\x00"+y[1]) })
	for _, k := range keys {
		items = append(items, types.TransactWriteItem{Update: a.counterUpdate(k, g.items[k])})
	}
	items = append(items, types.TransactWriteItem{Update: cp})
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	for attempt := 1; ; attempt++ {
		// A new token per attempt, as in the store: the SDK's own
		// retries of one attempt reuse it, so a commit whose answer was
		// lost is answered from that commit, never applied twice.
		in.ClientRequestToken = aws.String(newToken())
		_, err := a.db.TransactWriteItems(ctx, in)
		if err == nil {
			return true, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return false, wrapUnavailable(err)
		}
		reasons := tce.CancellationReasons
		if len(reasons) == len(items) && aws.ToString(reasons[len(items)-1].Code) == "ConditionalCheckFailed" {
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

func (a *Aggregator) counterUpdate(k [2]string, it *itemAdds) *types.Update {
	names := make(map[string]string)
	values := make(map[string]types.AttributeValue)
	var adds []string
	for i, attr := range slices.Sorted(maps.Keys(it.adds)) {
		n, v := "#a"+strconv.Itoa(i), ":a"+strconv.Itoa(i)
		names[n], values[v] = attr, num(it.adds[attr])
		adds = append(adds, n+" "+v)
	}
	expr := "ADD " + strings.Join(adds, ", ")
	if it.ttl != 0 {
		names["#ttl"], values[":ttl"] = TTLAttribute, num(it.ttl)
		expr += " SET #ttl = :ttl"
	}
	return &types.Update{
		TableName:                 aws.String(a.table),
		Key:                       key(k[0], k[1]),
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
}

// checkpointTTL is how long a shard's checkpoint outlives its last move: a
// stream keeps records for 24 hours, so after 48 no record the checkpoint
// guards can be delivered again.
const checkpointTTL = 48 * time.Hour

func (a *Aggregator) checkpointUpdate(shardID, prev, last string, created time.Time) *types.Update {
	now := a.now()
	cond := "attribute_not_exists(#seq)"
	// A record without a creation time (the zero time) claims nothing:
	// the epoch, never a negative number, which Stats would refuse.
	values := map[string]types.AttributeValue{
		":seq": str(last), ":wm": num(max(created.UnixMilli(), 0)), ":at": num(now.UnixMilli()),
		":ttl": num(now.Add(checkpointTTL).Unix()),
	}
	if prev != "" {
		cond = "#seq = :prev"
		values[":prev"] = str(prev)
	}
	return &types.Update{
		TableName:                 aws.String(a.table),
		Key:                       key(streamPK, shardPrefix+shardID),
		UpdateExpression:          aws.String("SET #seq = :seq, #wm = :wm, #at = :at, #ttl = :ttl"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#seq": attrSeq, "#wm": attrWatermark, "#at": attrAppliedAt, "#ttl": TTLAttribute},
		ExpressionAttributeValues: values,
	}
}

// checkpoint reads the shard's checkpoint, padded, strongly consistently.
func (a *Aggregator) checkpoint(ctx context.Context, shardID string) (string, error) {
	out, err := a.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            key(streamPK, shardPrefix+shardID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return "", wrapUnavailable(err)
	}
	if len(out.Item) == 0 {
		return "", nil
	}
	seq, ok := getString(out.Item, attrSeq)
	if !ok {
		return "", fmt.Errorf("%w: checkpoint of shard %s has no sequence number", ErrMalformedItem, shardID)
	}
	return seq, nil
}

// Checkpoint returns the sequence number through which the shard is
// applied, or "" if no record of it is, for a reader of the Streams API to
// start after. It reads strongly consistently.
func (a *Aggregator) Checkpoint(ctx context.Context, shardID string) (string, error) {
	ctx, cancel := withTimeout(ctx, a.timeout)
	defer cancel()
	seq, err := a.checkpoint(ctx, shardID)
	if err != nil {
		return "", fmt.Errorf("dynamostore: checkpoint of shard %s: %w", shardID, err)
	}
	return strings.TrimLeft(seq, "0"), nil
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
