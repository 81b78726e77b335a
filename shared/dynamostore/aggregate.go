package dynamostore

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
// delivered and by however many aggregators at once.
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
// so it has none; TTL deletions; other items) only move the checkpoint.
// Markers written by the store's earlier, transactional write path carry
// no campaign and were counted when they were written, so they are
// skipped too.
//
// It returns ErrUnavailable if DynamoDB throttled, failed or did not answer
// in time, and ErrMalformedItem for a sequence number that is not decimal
// digits or a counted marker without its campaign, minute or owner. Applied
// then says through which record the shard is applied.
func (a *Aggregator) Apply(ctx context.Context, shardID string, recs []StreamRecord) (Applied, error) {
	return Applied{Records: len(recs)}, errors.New("dynamostore: Apply: not yet implemented")
}

// Checkpoint returns the sequence number through which the shard is
// applied, or "" if no record of it is, for a reader of the Streams API to
// start after. It reads strongly consistently.
func (a *Aggregator) Checkpoint(ctx context.Context, shardID string) (string, error) {
	return "", errors.New("dynamostore: Checkpoint: not yet implemented")
}

// Advance records reader's watermark: every record that every shard of the
// stream held before wm has been applied. A reader of the Streams API calls
// it after a round that read every shard to its end; Stats report the
// newest watermark of any reader as AsOf, and Store.Settle waits for it. A
// watermark older than the one recorded is ignored. Readers' watermarks
// expire an hour after they were last advanced.
func (a *Aggregator) Advance(ctx context.Context, reader string, wm time.Time) error {
	return errors.New("dynamostore: Advance: not yet implemented")
}
