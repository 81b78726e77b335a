// Package streampoll reads a DynamoDB table's stream through the DynamoDB
// Streams API and folds it into the counts with the same aggregation code
// the Lambda aggregator runs (dynamostore.Aggregator). The local server
// runs it with STORE=dynamodb; any number of pollers, in any number of
// processes, may read one table at once and the counts stay exact, since
// the aggregator applies each record once whoever delivers it.
package streampoll

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/adcount/impression-counter/shared/dynamostore"
)

// Client is the part of the DynamoDB Streams API that a Poller calls; each
// method is one IAM action it needs on the stream. *dynamodbstreams.Client
// implements it.
type Client interface {
	ListStreams(context.Context, *dynamodbstreams.ListStreamsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.ListStreamsOutput, error)
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

var _ Client = (*dynamodbstreams.Client)(nil)

// Aggregator is what a Poller needs of the aggregation:
// *dynamostore.Aggregator implements it.
type Aggregator interface {
	Apply(ctx context.Context, shardID string, recs []dynamostore.StreamRecord) (dynamostore.Applied, error)
	Checkpoint(ctx context.Context, shardID string) (string, error)
	Advance(ctx context.Context, reader string, wm time.Time) error
}

var _ Aggregator = (*dynamostore.Aggregator)(nil)

// Stage names the step of a round that failed, for Observer.Failed.
type Stage string

// The stages of a round.
const (
	StageDiscover Stage = "discover" // ListStreams, DescribeStream
	StageRead     Stage = "read"     // Checkpoint, GetShardIterator, GetRecords
	StageApply    Stage = "apply"    // Aggregator.Apply
	StageAdvance  Stage = "advance"  // Aggregator.Advance
)

// Observer receives what a Poller does, for metrics; the local server maps
// it to Prometheus. Its methods are called from the goroutine that runs
// the Poller, one at a time, and must not block.
type Observer interface {
	// Applied reports one page of records of a shard that Apply took:
	// a.Records records, of which a.Skipped were redeliveries. lag is the
	// iterator age: how long before now the newest record of the page was
	// written.
	Applied(shardID string, a dynamostore.Applied, lag time.Duration)
	// Failed reports a failure; the poller retries on its next round,
	// from the shard's checkpoint if it was reading or applying.
	Failed(stage Stage, err error)
	// CaughtUp reports a round that read every shard to its end and
	// applied all it found: the iterator age is then nothing.
	CaughtUp()
}

// Defaults of the options.
const (
	DefaultInterval = 250 * time.Millisecond
	DefaultRefresh  = 5 * time.Second
	DefaultPageSize = 1000
	DefaultTimeout  = 10 * time.Second
	// DefaultPropagation is how long after DynamoDB acknowledges a write
	// its record may take to show in the stream, unless WithPropagation
	// says otherwise. AWS documents no bound, only "near-real time"; a
	// second covers what is observed, and a watermark held back by it still
	// meets the 2 s freshness target with the default interval.
	DefaultPropagation = time.Second
	// DefaultIdleAdvance bounds how often a poller that applies nothing
	// records its watermark, unless WithIdleAdvance says otherwise: a
	// write a second keeps as_of fresh on an idle table for 1 WRU.
	DefaultIdleAdvance = time.Second
	// retryDiscovery is how long a poller waits to list the shards again
	// after listing them failed.
	retryDiscovery = time.Second
	// logRepeats is how often the same failure is logged again.
	logRepeats = time.Minute
	// maxPages bounds the pages of one shard that one round reads.
	maxPages = 32
)

// Poller reads one table's stream. Use it from one goroutine: Run, or Poll
// round by round.
type Poller struct {
	streams  Client
	agg      Aggregator
	table    string
	reader   string
	interval time.Duration
	refresh  time.Duration
	pageSize int32
	timeout  time.Duration
	// propagation is held back from each watermark; see WithPropagation.
	propagation time.Duration
	idleAdvance time.Duration
	now         func() time.Time
	logger      *slog.Logger
	obs         Observer
	keep        func(dynamostore.StreamRecord) bool

	arn         string
	shards      []*shardState // in the order DescribeStream lists them: parents first
	byID        map[string]*shardState
	discovered  time.Time // when the shards were last listed; zero: list them now
	retryAt     time.Time // after a failure to list them, not before then
	lastAdvance time.Time
	logged      map[Stage]logged
}

// shardState is what a Poller knows of one shard.
type shardState struct {
	id, parent string
	closed     bool   // DescribeStream gave it an ending sequence number
	done       bool   // read to the end of the closed shard, and applied
	iter       string // the next iterator; "" to seek from the checkpoint
}

// Option configures a Poller.
type Option func(*Poller)

// WithInterval sets the pause between rounds; DefaultInterval if not set.
func WithInterval(d time.Duration) Option { return func(p *Poller) { p.interval = d } }

// WithIdleAdvance sets how often a poller that applies nothing records its
// watermark: at most once per d; DefaultIdleAdvance if not set, zero for
// every round. A Settle that follows no new impression waits for it, so
// tests that read again and again without traffic set it to zero.
func WithIdleAdvance(d time.Duration) Option { return func(p *Poller) { p.idleAdvance = d } }

// WithRefresh sets how often the poller lists the stream's shards even if
// no shard it reads has closed; DefaultRefresh if not set.
func WithRefresh(d time.Duration) Option { return func(p *Poller) { p.refresh = d } }

// WithPageSize sets the most records one GetRecords call returns, 1 to
// 1000; DefaultPageSize if not set. Each page is one Apply call.
func WithPageSize(n int) Option { return func(p *Poller) { p.pageSize = int32(n) } }

// WithTimeout bounds each call to the Streams API, the SDK's retries
// included; DefaultTimeout if not set.
func WithTimeout(d time.Duration) Option { return func(p *Poller) { p.timeout = d } }

// WithClock sets the wall clock of the rounds' watermarks and of the lag;
// time.Now if not set.
func WithClock(now func() time.Time) Option { return func(p *Poller) { p.now = now } }

// WithPropagation sets how long a write's record may take to show in the
// stream after DynamoDB acknowledged it; DefaultPropagation if not set.
// The watermark a round records is its start less this, for a round that
// reads every shard to its end has not seen a record still on its way.
// Zero suits a server that shows every record before it acknowledges the
// write, as shared/dynamotest does.
func WithPropagation(d time.Duration) Option { return func(p *Poller) { p.propagation = d } }

// WithLogger sets where the poller logs failures and shard changes;
// nothing is logged if not set.
func WithLogger(l *slog.Logger) Option { return func(p *Poller) { p.logger = l } }

// WithObserver sets what receives the poller's metrics.
func WithObserver(o Observer) Option { return func(p *Poller) { p.obs = o } }

// WithFilter passes Apply only the records keep accepts, as a Lambda
// event source mapping's filter criteria do: the others count as read.
// A page that keeps none is not applied at all. The default keeps every
// record.
func WithFilter(keep func(dynamostore.StreamRecord) bool) Option {
	return func(p *Poller) { p.keep = keep }
}

// WithReaderID sets the name the poller records its watermark under;
// random if not set, so that each poller has its own.
func WithReaderID(id string) Option { return func(p *Poller) { p.reader = id } }

// New returns a poller of the stream of the named table. It makes no call.
func New(streams Client, agg Aggregator, table string, opts ...Option) (*Poller, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	p := &Poller{
		streams:     streams,
		agg:         agg,
		table:       table,
		reader:      "poller-" + hex.EncodeToString(id[:]),
		interval:    DefaultInterval,
		refresh:     DefaultRefresh,
		pageSize:    DefaultPageSize,
		timeout:     DefaultTimeout,
		propagation: DefaultPropagation,
		idleAdvance: DefaultIdleAdvance,
		now:         time.Now,
		logger:      slog.New(slog.DiscardHandler),
		obs:         nopObserver{},
		byID:        map[string]*shardState{},
		logged:      map[Stage]logged{},
	}
	for _, opt := range opts {
		opt(p)
	}
	switch {
	case streams == nil:
		return nil, errors.New("streampoll: a DynamoDB Streams client is required")
	case agg == nil:
		return nil, errors.New("streampoll: an aggregator is required")
	case table == "":
		return nil, errors.New("streampoll: a table name is required")
	case p.interval <= 0 || p.refresh <= 0 || p.timeout <= 0:
		return nil, errors.New("streampoll: interval, refresh and timeout must be positive")
	case p.propagation < 0:
		return nil, errors.New("streampoll: the propagation allowance must not be negative")
	case p.idleAdvance < 0:
		return nil, errors.New("streampoll: the idle advance must not be negative")
	case p.pageSize < 1 || p.pageSize > 1000:
		return nil, fmt.Errorf("streampoll: page size must be from 1 to 1000, got %d", p.pageSize)
	case p.reader == "":
		return nil, errors.New("streampoll: the reader id must not be empty")
	}
	return p, nil
}

// Reader returns the name the poller records its watermark under.
func (p *Poller) Reader() string { return p.reader }

// Run polls round after round until ctx ends, then returns nil. A failed
// round is logged, reported to the Observer and tried again on the next.
// When ctx ends it finishes the call in flight rather than cut it, so that
// stopping is no failure.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.logger.Warn("stream poll round failed", "table", p.table, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll runs one round: it lists the shards if they are due to be listed,
// reads each shard it may read (a child only once its parent is finished)
// to its current end, applying each page, and if it read every shard to
// its end, records the round's start as its watermark (Aggregator.Advance:
// on every such round that applied something, else at most once a
// second). It reports whether it read every shard to its end, and the
// first failure, after going on with the other shards. It stops at the
// next page when ctx ends.
func (p *Poller) Poll(ctx context.Context) (caughtUp bool, err error) {
	start := p.now()
	calls := context.WithoutCancel(ctx)
	var errs []error
	caughtUp, applied := true, false
	if p.discovered.IsZero() || start.Sub(p.discovered) >= p.refresh {
		// Without the shards' list, read the shards already known, but
		// claim no watermark: a new shard may hold older records.
		caughtUp = false
		switch {
		case start.Before(p.retryAt):
		default:
			if err := p.discover(calls); err != nil {
				p.fail(StageDiscover, err)
				p.retryAt = start.Add(retryDiscovery)
				errs = append(errs, err)
				break
			}
			p.discovered, caughtUp = start, true
		}
		if p.arn == "" {
			return false, errors.Join(errs...)
		}
	}
	for _, sh := range p.shards {
		if ctx.Err() != nil {
			return false, errors.Join(append(errs, ctx.Err())...)
		}
		if sh.done {
			continue
		}
		if parent := p.byID[sh.parent]; parent != nil && !parent.done {
			caughtUp = false
			continue
		}
		atEnd, n, err := p.readShard(ctx, calls, sh)
		applied = applied || n > 0
		if err != nil {
			errs = append(errs, err)
		}
		if !atEnd {
			caughtUp = false
		}
		if sh.done {
			// Its children are to be listed before any watermark.
			p.discovered = time.Time{}
			caughtUp = false
			p.logger.Info("stream shard finished", "table", p.table, "shard", sh.id)
		}
	}
	if !caughtUp {
		return false, errors.Join(errs...)
	}
	p.obs.CaughtUp()
	if applied || start.Sub(p.lastAdvance) >= p.idleAdvance {
		if err := p.agg.Advance(calls, p.reader, start.Add(-p.propagation)); err != nil {
			p.fail(StageAdvance, err)
			return true, err
		}
		p.lastAdvance = start
	}
	return true, nil
}

// fail reports a failure to the observer, and logs it unless it repeats
// the last failure of its stage logged less than logRepeats ago: a table
// without a stream would otherwise log four lines a second.
func (p *Poller) fail(stage Stage, err error) {
	p.obs.Failed(stage, err)
	now := p.now()
	last := p.logged[stage]
	if last.msg == err.Error() && now.Sub(last.at) < logRepeats {
		return
	}
	p.logged[stage] = logged{err.Error(), now}
	p.logger.Warn("stream poll failed", "table", p.table, "stage", string(stage), "error", err)
}

type logged struct {
	msg string
	at  time.Time
}

func (p *Poller) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.timeout)
}

// discover finds the table's latest stream and lists its shards, keeping
// what it knows of shards it already has.
func (p *Poller) discover(ctx context.Context) error {
	arn, err := p.latestStream(ctx)
	if err != nil {
		return err
	}
	if arn != p.arn {
		if p.arn != "" {
			p.logger.Warn("the table has a new stream", "table", p.table, "stream", arn, "previous", p.arn)
		}
		p.arn, p.shards, p.byID = arn, nil, map[string]*shardState{}
	}
	var shards []*shardState
	var start *string
	for {
		c, cancel := p.call(ctx)
		out, err := p.streams.DescribeStream(c, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn), ExclusiveStartShardId: start})
		cancel()
		if err != nil {
			return fmt.Errorf("streampoll: describe stream %s: %w", arn, err)
		}
		for _, d := range out.StreamDescription.Shards {
			id := aws.ToString(d.ShardId)
			sh := p.byID[id]
			if sh == nil {
				sh = &shardState{id: id, parent: aws.ToString(d.ParentShardId)}
				p.logger.Debug("stream shard found", "table", p.table, "shard", id, "parent", sh.parent)
			}
			sh.closed = d.SequenceNumberRange != nil && d.SequenceNumberRange.EndingSequenceNumber != nil
			shards = append(shards, sh)
		}
		if start = out.StreamDescription.LastEvaluatedShardId; start == nil {
			break
		}
	}
	// Parents before children, whatever order the pages came in, so that
	// one round can finish a parent and go on to its children.
	byID := make(map[string]*shardState, len(shards))
	for _, sh := range shards {
		byID[sh.id] = sh
	}
	depth := func(sh *shardState) int {
		d := 0
		for s := byID[sh.parent]; s != nil && d < len(shards); s = byID[s.parent] {
			d++
		}
		return d
	}
	slices.SortStableFunc(shards, func(a, b *shardState) int { return depth(a) - depth(b) })
	p.shards, p.byID = shards, byID
	return nil
}

// latestStream returns the ARN of the table's newest stream: labels are
// creation times, which sort as strings.
func (p *Poller) latestStream(ctx context.Context) (string, error) {
	var latest stypes.Stream
	var start *string
	for {
		c, cancel := p.call(ctx)
		out, err := p.streams.ListStreams(c, &dynamodbstreams.ListStreamsInput{TableName: aws.String(p.table), ExclusiveStartStreamArn: start})
		cancel()
		if err != nil {
			return "", fmt.Errorf("streampoll: list streams of %s: %w", p.table, err)
		}
		for _, s := range out.Streams {
			if aws.ToString(s.StreamLabel) >= aws.ToString(latest.StreamLabel) {
				latest = s
			}
		}
		if start = out.LastEvaluatedStreamArn; start == nil {
			break
		}
	}
	if latest.StreamArn == nil {
		return "", fmt.Errorf("streampoll: table %s has no stream", p.table)
	}
	return aws.ToString(latest.StreamArn), nil
}

// readShard reads the shard to its current end, applying each page. It
// reports whether it got to the end, and how many records it applied.
// After a failure the shard is read again from its checkpoint.
func (p *Poller) readShard(ctx, calls context.Context, sh *shardState) (atEnd bool, applied int, err error) {
	reseeks := 0
	for pages := 0; ; pages++ {
		if pages == maxPages {
			// A shard written faster than it is read would hold the
			// round here for ever: let the other shards have their turn.
			return false, applied, nil
		}
		if ctx.Err() != nil {
			return false, applied, nil
		}
		if sh.iter == "" {
			if sh.iter, err = p.seek(calls, sh); err != nil {
				p.fail(StageRead, err)
				return false, applied, err
			}
		}
		c, cancel := p.call(calls)
		out, err := p.streams.GetRecords(c, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String(sh.iter), Limit: aws.Int32(p.pageSize)})
		cancel()
		var expired *stypes.ExpiredIteratorException
		if errors.As(err, &expired) && reseeks == 0 {
			// Not a failure: an idle poller's iterator ages out. Once a
			// round, lest a fresh iterator that expires at once spin.
			sh.iter, reseeks = "", 1
			continue
		}
		if err != nil {
			sh.iter = ""
			err = fmt.Errorf("streampoll: read shard %s: %w", sh.id, err)
			p.fail(StageRead, err)
			var gone *stypes.ResourceNotFoundException
			if errors.As(err, &gone) {
				p.discovered = time.Time{}
			}
			return false, applied, err
		}
		recs, err := p.convert(out.Records)
		if err != nil {
			sh.iter = ""
			err = fmt.Errorf("streampoll: shard %s: %w", sh.id, err)
			p.fail(StageApply, err)
			return false, applied, err
		}
		if len(recs) > 0 {
			a, err := p.agg.Apply(calls, sh.id, recs)
			if err != nil {
				sh.iter = ""
				err = fmt.Errorf("streampoll: apply shard %s: %w", sh.id, err)
				p.fail(StageApply, err)
				return false, applied, err
			}
			applied += len(recs)
			p.obs.Applied(sh.id, a, p.now().Sub(recs[len(recs)-1].Created))
		}
		if out.NextShardIterator == nil {
			sh.done, sh.iter = true, ""
			return true, applied, nil
		}
		sh.iter = aws.ToString(out.NextShardIterator)
		if len(out.Records) == 0 {
			// An empty page: the shard holds nothing more for now.
			return true, applied, nil
		}
	}
}

// seek returns an iterator at the first record after the shard's
// checkpoint, or at its oldest record if it has none.
func (p *Poller) seek(ctx context.Context, sh *shardState) (string, error) {
	seq, err := p.agg.Checkpoint(ctx, sh.id)
	if err != nil {
		return "", fmt.Errorf("streampoll: checkpoint of shard %s: %w", sh.id, err)
	}
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(p.arn), ShardId: aws.String(sh.id), ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon}
	if seq != "" {
		in.ShardIteratorType, in.SequenceNumber = stypes.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
	}
	c, cancel := p.call(ctx)
	defer cancel()
	out, err := p.streams.GetShardIterator(c, in)
	var trimmed *stypes.TrimmedDataAccessException
	if errors.As(err, &trimmed) {
		// The stream no longer holds the records after the checkpoint:
		// they are lost to the counts. Go on from the oldest there is.
		p.logger.Error("stream records lost: the checkpoint is older than the stream keeps", "table", p.table, "shard", sh.id, "checkpoint", seq)
		in.ShardIteratorType, in.SequenceNumber = stypes.ShardIteratorTypeTrimHorizon, nil
		out, err = p.streams.GetShardIterator(c, in)
	}
	if err != nil {
		return "", fmt.Errorf("streampoll: iterator of shard %s: %w", sh.id, err)
	}
	return aws.ToString(out.ShardIterator), nil
}

// convert turns the Streams API's records into the aggregator's, keeping
// those the filter accepts.
func (p *Poller) convert(recs []stypes.Record) ([]dynamostore.StreamRecord, error) {
	out, err := convert(recs)
	if err != nil || p.keep == nil {
		return out, err
	}
	return slices.DeleteFunc(out, func(r dynamostore.StreamRecord) bool { return !p.keep(r) }), nil
}

// convert turns the Streams API's records into the aggregator's.
func convert(recs []stypes.Record) ([]dynamostore.StreamRecord, error) {
	out := make([]dynamostore.StreamRecord, len(recs))
	for i, r := range recs {
		if r.Dynamodb == nil {
			return nil, fmt.Errorf("record %s has no change", aws.ToString(r.EventID))
		}
		d := r.Dynamodb
		sr := dynamostore.StreamRecord{
			EventName: string(r.EventName),
			Seq:       aws.ToString(d.SequenceNumber),
			Created:   aws.ToTime(d.ApproximateCreationDateTime),
		}
		var err error
		if d.OldImage != nil {
			if sr.Old, err = attributevalue.FromDynamoDBStreamsMap(d.OldImage); err != nil {
				return nil, fmt.Errorf("record %s: old image: %w", sr.Seq, err)
			}
		}
		if d.NewImage != nil {
			if sr.New, err = attributevalue.FromDynamoDBStreamsMap(d.NewImage); err != nil {
				return nil, fmt.Errorf("record %s: new image: %w", sr.Seq, err)
			}
		}
		out[i] = sr
	}
	return out, nil
}

type nopObserver struct{}

func (nopObserver) Applied(string, dynamostore.Applied, time.Duration) {}
func (nopObserver) Failed(Stage, error)                                {}
func (nopObserver) CaughtUp()                                          {}

var _ Observer = nopObserver{}
