package dynamostore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/adcount"
)

var _ adcount.Settler = (*Store)(nil)

// watermark reads the aggregator's watermark: a time before which every
// acknowledged impression is in the counts, or zero if it is not known.
//
// It is the newest watermark of any live Streams reader (streampoll: the
// local server's aggregator, and the Lambda aggregate function on its
// schedule). A reader advances its watermark only after a round that read
// every shard of the stream to its end and applied what it found, to the
// round's start less the stream's propagation allowance, so it is exact
// as far as the allowance holds. A reader's item outlives the reader until
// TTL deletes it, which may take days, so one past its expiry is not live.
//
// The shards' checkpoints are not used, though each records the creation
// time of the last record applied: the event source mapping sees one
// shard at a time, and a shard that is idle, closed, or not yet given to
// any aggregator leaves no sign of what it holds. A minimum over the
// checkpoints could claim an impression that is not yet counted.
func (s *Store) watermark(ctx context.Context) (time.Time, error) {
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#pk = :pk AND begins_with(#sk, :readers)"),
		ExpressionAttributeNames: map[string]string{"#pk": PartitionKey, "#sk": SortKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(streamPK), ":readers": str(readerPrefix),
		},
		ConsistentRead: aws.Bool(true),
	})
	nowSec := s.wall().Unix()
	var newest int64
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return time.Time{}, err
		}
		for _, item := range page.Items {
			sk, _ := getString(item, SortKey)
			wm, err := counter(item, attrWatermark)
			if err != nil {
				return time.Time{}, fmt.Errorf("item %s: %w", sk, err)
			}
			if exp, err := counter(item, TTLAttribute); err == nil && exp > nowSec {
				newest = max(newest, wm)
			}
		}
	}
	if newest == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(newest).UTC(), nil
}

// Settle returns once Stats include every impression acknowledged before
// the call: when the aggregator's watermark (see Stats) has passed the
// wall-clock time of the call. It reads the watermark every few
// milliseconds, backing off to 100 ms, until ctx ends; it returns ctx's
// error, wrapped, if the aggregator never catches up, as with none running.
func (s *Store) Settle(ctx context.Context) error {
	since := s.wall()
	wait := 2 * time.Millisecond
	for {
		wm, err := s.watermark(ctx)
		if err != nil {
			return s.wrap("settle", "", err)
		}
		if wm.After(since) {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("dynamostore: settle: the aggregator's watermark is %v, not yet past %v: %w", wm, since, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}
