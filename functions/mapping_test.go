//go:build linux

package functions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
)

// startStreamMapping does for the aggregate function f what the template's
// event source mapping does on AWS, against the table's stream on the
// in-process server at endpoint, until the test ends: it reads every shard
// from TRIM_HORIZON, in order, one batch of a shard at a time, keeps the
// records of dedup markers as the mapping's filter does, invokes f with
// each batch as a tumbling-window event that names the shard, and on a
// partial batch response reads the shard again from the failed record.
// It does not bisect, count retries or wait for a batching window; the
// aggregate function's own tests cover the answers those depend on.
//
// The mapping it returns is an adcount.Settler: it knows, as only the
// reader of the stream can, when every record written before a moment has
// been applied.
func startStreamMapping(t *testing.T, endpoint, table string, f *function) *streamMapping {
	t.Helper()
	client := dynamotest.StreamsClient(t, endpoint, nil)
	ctx, cancel := context.WithCancel(context.Background())
	m := &streamMapping{client: client, table: table, f: f, iterators: map[string]*string{}, done: map[string]bool{}, caughtUp: make(chan struct{})}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- err
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		select {
		case err := <-errs:
			t.Errorf("the stream mapping stopped: %v", err)
		default:
		}
	})
	return m
}

type streamMapping struct {
	client    *dynamodbstreams.Client
	table     string
	f         *function
	arn       string
	iterators map[string]*string // shard -> next iterator
	done      map[string]bool    // shards read to their end

	mu sync.Mutex
	// upTo is the start of the last round that found every shard at its
	// end: every record written before it is applied. caughtUp is closed
	// and replaced whenever upTo moves.
	upTo     time.Time
	caughtUp chan struct{}
}

var _ adcount.Settler = (*streamMapping)(nil)

// Settle returns once every record written before the call is applied:
// once a round that started after the call has found every shard at its
// end.
func (m *streamMapping) Settle(ctx context.Context) error {
	since := time.Now()
	for {
		m.mu.Lock()
		upTo, moved := m.upTo, m.caughtUp
		m.mu.Unlock()
		if upTo.After(since) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream mapping: not caught up past %v: %w", since, ctx.Err())
		case <-moved:
		}
	}
}

func (m *streamMapping) run(ctx context.Context) error {
	for {
		start := time.Now()
		read, err := m.round(ctx)
		if err != nil {
			return err
		}
		if read == 0 {
			m.mu.Lock()
			m.upTo = start
			close(m.caughtUp)
			m.caughtUp = make(chan struct{})
			m.mu.Unlock()
			// Lambda polls each shard a few times a second; a test need
			// not wait as long.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// round reads one batch from every open shard and hands each to the
// function, returning how many records it delivered.
func (m *streamMapping) round(ctx context.Context) (int, error) {
	if m.arn == "" {
		out, err := m.client.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String(m.table)})
		if err != nil {
			return 0, fmt.Errorf("list streams: %w", err)
		}
		if len(out.Streams) == 0 {
			return 0, fmt.Errorf("table %s has no stream", m.table)
		}
		m.arn = aws.ToString(out.Streams[0].StreamArn)
	}
	desc, err := m.client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(m.arn)})
	if err != nil {
		return 0, fmt.Errorf("describe stream: %w", err)
	}
	read := 0
	for _, sh := range desc.StreamDescription.Shards {
		id := aws.ToString(sh.ShardId)
		// A child shard is read once its parent is read to its end, as
		// Lambda does, so that each key's records stay in order.
		if m.done[id] || (sh.ParentShardId != nil && !m.done[aws.ToString(sh.ParentShardId)] && m.known(desc, aws.ToString(sh.ParentShardId))) {
			continue
		}
		if m.iterators[id] == nil {
			it, err := m.client.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
				StreamArn: aws.String(m.arn), ShardId: sh.ShardId, ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				return 0, fmt.Errorf("shard iterator %s: %w", id, err)
			}
			m.iterators[id] = it.ShardIterator
		}
		out, err := m.client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: m.iterators[id], Limit: aws.Int32(1000)})
		if err != nil {
			return 0, fmt.Errorf("get records %s: %w", id, err)
		}
		m.iterators[id] = out.NextShardIterator
		if out.NextShardIterator == nil {
			m.done[id] = true
		}
		if len(out.Records) == 0 {
			continue
		}
		read += len(out.Records)
		ev := streamEvent(id)
		ev.EventSourceARN = m.arn
		for _, r := range out.Records {
			// The mapping's filter: only dedup markers' records invoke
			// the function (template.yaml, FilterCriteria).
			if pk, ok := r.Dynamodb.Keys[dynamostore.PartitionKey].(*streamtypes.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, dynamostore.MarkerKeyPrefix) {
				ev.Records = append(ev.Records, lambdaRecord(r, m.arn))
			}
		}
		if len(ev.Records) == 0 {
			continue
		}
		failed, err := m.invoke(ev)
		if err != nil {
			return 0, err
		}
		if failed != "" {
			// Lambda reads the shard again from the failed record.
			it, err := m.client.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
				StreamArn: aws.String(m.arn), ShardId: sh.ShardId,
				ShardIteratorType: streamtypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(failed)})
			if err != nil {
				return 0, fmt.Errorf("shard iterator %s at %s: %w", id, failed, err)
			}
			m.iterators[id], m.done[id] = it.ShardIterator, false
		}
	}
	return read, nil
}

func (m *streamMapping) known(desc *dynamodbstreams.DescribeStreamOutput, id string) bool {
	for _, sh := range desc.StreamDescription.Shards {
		if aws.ToString(sh.ShardId) == id {
			return true
		}
	}
	return false
}

// invoke sends one batch and returns the record the function asks to be
// delivered again from, if any.
func (m *streamMapping) invoke(ev events.DynamoDBTimeWindowEvent) (string, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	code, body, err := m.f.post(payload)
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("the aggregate function failed: %d %s", code, body)
	}
	var resp events.DynamoDBTimeWindowEventResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return "", fmt.Errorf("decode %s: %w", body, err)
	}
	if resp.State == nil {
		return "", fmt.Errorf("no state in %s", body)
	}
	if len(resp.BatchItemFailures) == 0 {
		return "", nil
	}
	return resp.BatchItemFailures[0].ItemIdentifier, nil
}

// lambdaRecord is a record of the Streams API as Lambda hands it to a
// function.
func lambdaRecord(r streamtypes.Record, arn string) events.DynamoDBEventRecord {
	c := r.Dynamodb
	return events.DynamoDBEventRecord{
		AWSRegion: aws.ToString(r.AwsRegion), EventID: aws.ToString(r.EventID), EventName: string(r.EventName),
		EventSource: aws.ToString(r.EventSource), EventVersion: aws.ToString(r.EventVersion), EventSourceArn: arn,
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: aws.ToTime(c.ApproximateCreationDateTime)},
			Keys:                        lambdaImage(c.Keys), OldImage: lambdaImage(c.OldImage), NewImage: lambdaImage(c.NewImage),
			SequenceNumber: aws.ToString(c.SequenceNumber), SizeBytes: aws.ToInt64(c.SizeBytes), StreamViewType: string(c.StreamViewType),
		},
	}
}

func lambdaImage(img map[string]streamtypes.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if img == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(img))
	for k, v := range img {
		out[k] = lambdaAttribute(v)
	}
	return out
}

func lambdaAttribute(v streamtypes.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *streamtypes.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *streamtypes.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *streamtypes.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *streamtypes.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *streamtypes.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberL:
		list := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			list[i] = lambdaAttribute(e)
		}
		return events.NewListAttribute(list)
	case *streamtypes.AttributeValueMemberM:
		return events.NewMapAttribute(lambdaImage(v.Value))
	}
	return events.NewNullAttribute()
}
