package dynamostore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/adcount"
)

var _ adcount.Settler = (*Store)(nil)

// shardActive is how recently a shard's checkpoint must have moved for its
// watermark to hold back AsOf. A shard that has moved no further for
// longer has been closed by resharding, or is idle; a shard whose
// aggregator is failing shows in the aggregator's iterator age and
// failure metrics (docs/dynamodb.md, "Alarms").
const shardActive = 2 * time.Minute

// watermark reads the aggregator's watermark: a time before which every
// acknowledged impression is in the counts, or zero if no aggregator has
// applied anything yet.
//
// While a Streams reader (the local server's aggregator) is live, it is the
// newest watermark of any reader: a reader advances it only after reading
// every shard to its end, so it is exact.
//
// Without one, only the Lambda aggregator runs, which sees one shard at a
// time and cannot know the shards it has not been given. The watermark is
// then the oldest of the shards' watermarks, among the shards whose
// checkpoints moved in the last shardActive on the wall clock: each is the
// creation time of the last record applied, and a shard is applied in
// order. If no shard is active, every shard's records up to its newest were
// applied, and the newest of them is the bound. A shard none of whose
// records has ever been applied leaves no checkpoint, so this bound is
// only as good as the aggregator is prompt; docs/dynamodb.md says which
// alarm watches that.
func (s *Store) watermark(ctx context.Context) (time.Time, error) {
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": PartitionKey},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(streamPK)},
		ConsistentRead:            aws.Bool(true),
	})
	now := s.wall()
	var readers, activeMin, newest int64
	active := false // activeMin holds a shard's watermark, which may be 0
	nowSec := now.Unix()
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
			switch {
			case strings.HasPrefix(sk, readerPrefix):
				// A reader's item outlives it until TTL deletes it, which
				// may take days: past its expiry it is not live.
				if exp, err := counter(item, TTLAttribute); err == nil && exp > nowSec {
					readers = max(readers, wm)
				}
			case strings.HasPrefix(sk, shardPrefix):
				newest = max(newest, wm)
				at, err := counter(item, attrAppliedAt)
				if err != nil {
					return time.Time{}, fmt.Errorf("item %s: %w", sk, err)
				}
				if now.Sub(time.UnixMilli(at)) <= shardActive && (!active || wm < activeMin) {
					activeMin, active = wm, true
				}
			}
		}
	}
	wm := readers
	switch {
	case wm != 0:
	case active:
		if activeMin == 0 {
			// An active shard's last record had no creation time:
			// nothing is known, and the epoch says so.
			return time.UnixMilli(0).UTC(), nil
		}
		wm = activeMin
	default:
		wm = newest
	}
	if wm == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(wm).UTC(), nil
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
