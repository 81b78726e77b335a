package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
)

// streamSampleCampaign is the campaign of the stream samples' markers, the
// one the HTTP samples name.
const streamSampleCampaign = "3f1c2a7e-9b1d-4c55-8e2a-6d0f4b7c9a10"

// isStreamSample reports whether an events/ file is a stream event, named
// <function>-stream-<what>.json after a stream function, so that
// `sam local invoke AggregateFunction -e events/aggregate-stream-…` reads
// right.
func isStreamSample(file string) bool {
	for _, fn := range serve.StreamFunctions() {
		if strings.HasPrefix(filepath.Base(file), string(fn)+"-stream-") {
			return true
		}
	}
	return false
}

// streamSamples decodes every stream sample under events/, refusing a
// member that the event type does not have, such as a misspelt field.
func streamSamples(t *testing.T) map[string]events.DynamoDBTimeWindowEvent {
	t.Helper()
	files, err := filepath.Glob("../events/*.json")
	require.NoError(t, err)
	samples := map[string]events.DynamoDBTimeWindowEvent{}
	for _, file := range files {
		if !isStreamSample(file) {
			continue
		}
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var ev events.DynamoDBTimeWindowEvent
		require.NoError(t, dec.Decode(&ev), file)
		samples[filepath.Base(file)] = ev
	}
	require.NotEmpty(t, samples, "no stream samples in events/")
	return samples
}

// TestStreamSampleEvents checks the stream samples for what Lambda
// delivers with this template's mapping: the tumbling window's members
// with a shard, DynamoDB records of the table's stream with both images,
// increasing sequence numbers, keys that match the images, images as the
// event names them, and every record convertible; and that the handler
// takes each sample whole.
func TestStreamSampleEvents(t *testing.T) {
	t.Parallel()
	for file, ev := range streamSamples(t) {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			assert.NotEmpty(t, ev.ShardID, "the mapping's tumbling window puts the shard in every event")
			assert.Contains(t, ev.EventSourceARN, ":table/", "the stream of a table")
			assert.True(t, ev.Window.End.After(ev.Window.Start.Time), "a window")
			assert.NotNil(t, ev.State, "the window's state, empty")
			prev := ""
			for i, r := range ev.Records {
				c := r.Change
				assert.Equal(t, "aws:dynamodb", r.EventSource, "record %d", i)
				assert.Equal(t, ev.EventSourceARN, r.EventSourceArn, "record %d: one stream", i)
				assert.Equal(t, "NEW_AND_OLD_IMAGES", c.StreamViewType, "record %d: the table's stream view", i)
				assert.False(t, c.ApproximateCreationDateTime.IsZero(), "record %d", i)
				if prev != "" {
					assert.True(t, len(prev) < len(c.SequenceNumber) || len(prev) == len(c.SequenceNumber) && prev < c.SequenceNumber,
						"record %d: sequence numbers increase", i)
				}
				prev = c.SequenceNumber
				switch r.EventName {
				case "INSERT":
					assert.Empty(t, c.OldImage, "record %d: an INSERT has no old image", i)
					assert.NotEmpty(t, c.NewImage, "record %d", i)
				case "MODIFY":
					assert.NotEmpty(t, c.OldImage, "record %d: a MODIFY has both images", i)
					assert.NotEmpty(t, c.NewImage, "record %d", i)
				case "REMOVE":
					assert.NotEmpty(t, c.OldImage, "record %d", i)
					assert.Empty(t, c.NewImage, "record %d: a REMOVE has no new image", i)
				default:
					t.Errorf("record %d: event name %q", i, r.EventName)
				}
				img := c.NewImage
				if img == nil {
					img = c.OldImage
				}
				for _, k := range []string{dynamostore.PartitionKey, dynamostore.SortKey} {
					assert.Equal(t, img[k], c.Keys[k], "record %d: Keys.%s is the item's", i, k)
				}
				assert.Len(t, c.Keys, 2, "record %d: the table's two keys", i)
				// The mapping's filter lets only dedup markers' records
				// through (TestTemplateStreamAggregation).
				assert.True(t, strings.HasPrefix(c.Keys[dynamostore.PartitionKey].String(), dynamostore.MarkerKeyPrefix),
					"record %d: only markers' records pass the mapping's filter", i)
				_, err := aggregate.Record(r)
				assert.NoError(t, err, "record %d converts", i)
			}
			applier := &recordingApplier{}
			h, err := aggregate.NewHandler(applier)
			require.NoError(t, err)
			resp, err := h.Handle(context.Background(), ev)
			require.NoError(t, err)
			assert.Empty(t, resp.BatchItemFailures)
			assert.Equal(t, len(ev.Records), applier.records, "every record reaches the aggregator")
		})
	}
}

// recordingApplier applies everything and counts the records.
type recordingApplier struct{ records int }

func (a *recordingApplier) Apply(_ context.Context, _ string, recs []dynamostore.StreamRecord) (dynamostore.Applied, error) {
	a.records += len(recs)
	return dynamostore.Applied{Records: len(recs), Through: recs[len(recs)-1].Seq}, nil
}

// markers generates stream records of a shard: counted dedup markers of a
// campaign, as the store writes them, written now. Each carries its user's
// fingerprint: a browser's markers cycle through users users (each its
// own user when users is 0), and a filtered marker's user is one no
// browser's marker has.
type markers struct {
	campaign string
	now      time.Time
	seq      int64
	users    int64
}

// next returns the record of one more marker; filtered marks a filtered
// impression's.
func (m *markers) next(filtered bool) events.DynamoDBEventRecord {
	m.seq++
	key := fmt.Sprintf("%032x", m.seq)
	exp := m.now.Add(time.Hour).UnixMilli()
	img := map[string]events.DynamoDBAttributeValue{
		dynamostore.PartitionKey: events.NewStringAttribute("DEDUP#" + key),
		dynamostore.SortKey:      events.NewStringAttribute("MARKER"),
		"expMs":                  events.NewNumberAttribute(fmt.Sprint(exp)),
		dynamostore.TTLAttribute: events.NewNumberAttribute(fmt.Sprint((exp + 999) / 1000)),
		"owner":                  events.NewStringAttribute(fmt.Sprintf("%032x", m.seq*7919)),
		"c":                      events.NewStringAttribute(m.campaign),
		"a":                      events.NewStringAttribute("ad-1"),
		"b":                      events.NewNumberAttribute(fmt.Sprint(adcount.Bucket(m.now))),
	}
	// The fingerprint is stored as a number below 2^48.
	user := m.seq
	if m.users > 0 {
		user = m.seq % m.users
	}
	if filtered {
		img["f"] = events.NewNumberAttribute("1")
		user = 1<<40 + m.seq
	}
	img["u"] = events.NewNumberAttribute(fmt.Sprint(user))
	return streamRecord("INSERT", m.seq, m.now, nil, img)
}

// streamRecord is a record of the table's stream as Lambda delivers it.
func streamRecord(name string, seq int64, created time.Time, old, img map[string]events.DynamoDBAttributeValue) events.DynamoDBEventRecord {
	keys := img
	if keys == nil {
		keys = old
	}
	return events.DynamoDBEventRecord{
		EventID: fmt.Sprintf("%032x", seq), EventName: name, EventVersion: "1.1", EventSource: "aws:dynamodb", AWSRegion: "us-east-1",
		EventSourceArn: "arn:aws:dynamodb:us-east-1:123456789012:table/impressions/stream/2026-01-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: created},
			Keys: map[string]events.DynamoDBAttributeValue{
				dynamostore.PartitionKey: keys[dynamostore.PartitionKey], dynamostore.SortKey: keys[dynamostore.SortKey]},
			OldImage: old, NewImage: img,
			// Realistic: 21 or more digits.
			SequenceNumber: fmt.Sprintf("%021d", 4421584500000000000+seq*100),
			SizeBytes:      200, StreamViewType: "NEW_AND_OLD_IMAGES",
		},
	}
}

// streamEvent is an invocation of the aggregate function for records of
// one shard, as a mapping with a tumbling window sends it.
func streamEvent(shard string, recs ...events.DynamoDBEventRecord) events.DynamoDBTimeWindowEvent {
	var ev events.DynamoDBTimeWindowEvent
	ev.Records = recs
	ev.ShardID = shard
	ev.EventSourceARN = "arn:aws:dynamodb:us-east-1:123456789012:table/impressions/stream/2026-01-01T00:00:00.000"
	start := time.Now().Truncate(15 * time.Minute)
	ev.Window = events.Window{Start: events.RFC3339EpochTime{Time: start}, End: events.RFC3339EpochTime{Time: start.Add(15 * time.Minute)}}
	ev.State = map[string]string{}
	return ev
}
