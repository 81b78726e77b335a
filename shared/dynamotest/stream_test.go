package dynamotest_test

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamotest"
)

const tableName = "t"

// fixture is a server with one table whose stream shows both images.
type fixture struct {
	srv *dynamotest.Server
	db  *dynamodb.Client
	sc  *dynamodbstreams.Client
	arn string
}

func newFixture(t *testing.T, opts ...dynamotest.Option) fixture {
	t.Helper()
	srv := dynamotest.StartServer(t, opts...)
	f := fixture{srv: srv, db: dynamotest.Client(t, srv.URL, nil), sc: dynamotest.StreamsClient(t, srv.URL, nil)}
	out, err := f.db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String(tableName),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		BillingMode: types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{
			StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
	})
	require.NoError(t, err)
	f.arn = aws.ToString(out.TableDescription.LatestStreamArn)
	require.NotEmpty(t, f.arn)
	return f
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk), "sk": s("S")}
}

func (f fixture) put(t *testing.T, pk string, attrs map[string]types.AttributeValue) {
	t.Helper()
	it := key(pk)
	for k, v := range attrs {
		it[k] = v
	}
	_, err := f.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: it})
	require.NoError(t, err)
}

// shards returns every shard of the stream, through DescribeStream's pages
// of limit shards.
func (f fixture) shards(t *testing.T, limit int32) []stypes.Shard {
	t.Helper()
	var all []stypes.Shard
	var start *string
	for {
		out, err := f.sc.DescribeStream(context.Background(), &dynamodbstreams.DescribeStreamInput{
			StreamArn: aws.String(f.arn), Limit: aws.Int32(limit), ExclusiveStartShardId: start,
		})
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.StreamDescription.Shards), int(limit))
		all = append(all, out.StreamDescription.Shards...)
		start = out.StreamDescription.LastEvaluatedShardId
		if start == nil {
			return all
		}
	}
}

// readShard reads a shard from TRIM_HORIZON, in pages of limit records,
// to its current end; it reports whether the shard ended (no next
// iterator).
func (f fixture) readShard(t *testing.T, shardID string, limit int32) ([]stypes.Record, bool) {
	t.Helper()
	ctx := context.Background()
	it, err := f.sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(f.arn), ShardId: aws.String(shardID), ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	iter := it.ShardIterator
	var recs []stypes.Record
	for {
		out, err := f.sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(limit)})
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.Records), int(limit))
		recs = append(recs, out.Records...)
		if out.NextShardIterator == nil {
			return recs, true
		}
		if len(out.Records) == 0 {
			return recs, false
		}
		iter = out.NextShardIterator
	}
}

// records returns every record of the stream, shard by shard.
func (f fixture) records(t *testing.T) []stypes.Record {
	t.Helper()
	var all []stypes.Record
	for _, sh := range f.shards(t, 100) {
		recs, _ := f.readShard(t, aws.ToString(sh.ShardId), 1000)
		all = append(all, recs...)
	}
	return all
}

// event is what a test checks of a record.
type event struct {
	name     string
	pk       string
	old, new string // the item's "v", "" if absent or no image
}

func eventOf(r stypes.Record) event {
	v := func(img map[string]stypes.AttributeValue) string {
		if x, ok := img["v"].(*stypes.AttributeValueMemberS); ok {
			return x.Value
		}
		return ""
	}
	return event{
		name: string(r.EventName),
		pk:   r.Dynamodb.Keys["pk"].(*stypes.AttributeValueMemberS).Value,
		old:  v(r.Dynamodb.OldImage), new: v(r.Dynamodb.NewImage),
	}
}

// byItem groups events by partition key, in stream order.
func byItem(recs []stypes.Record) map[string][]event {
	m := map[string][]event{}
	for _, r := range recs {
		e := eventOf(r)
		m[e.pk] = append(m[e.pk], e)
	}
	return m
}

// TestRecordsEachChange writes items every way the API allows and checks
// the records against what each write changed: one record per change,
// none for a write that changed nothing.
func TestRecordsEachChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tbl := aws.String(tableName)
	cond := func(err error) {
		var ccf *types.ConditionalCheckFailedException
		require.ErrorAs(t, err, &ccf)
	}
	cases := []struct {
		name  string
		write func(t *testing.T, f fixture)
		want  map[string][]event
	}{
		{
			// Why: the basic life of an item is INSERT, MODIFY, REMOVE.
			name: "InsertModifyRemove",
			write: func(t *testing.T, f fixture) {
				f.put(t, "a", map[string]types.AttributeValue{"v": s("1")})
				_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: key("a"),
					UpdateExpression: aws.String("SET v = :v"), ExpressionAttributeValues: map[string]types.AttributeValue{":v": s("2")}})
				require.NoError(t, err)
				_, err = f.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: key("a")})
				require.NoError(t, err)
			},
			want: map[string][]event{"a": {{"INSERT", "a", "", "1"}, {"MODIFY", "a", "1", "2"}, {"REMOVE", "a", "2", ""}}},
		},
		{
			// Why: a duplicate's marker write fails its condition, and
			// DynamoDB writes no record for it.
			name: "FailedConditionMakesNoRecord",
			write: func(t *testing.T, f fixture) {
				f.put(t, "a", map[string]types.AttributeValue{"v": s("1")})
				_, err := f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl,
					Item:                map[string]types.AttributeValue{"pk": s("a"), "sk": s("S"), "v": s("9")},
					ConditionExpression: aws.String("attribute_not_exists(pk)")})
				cond(err)
				_, err = f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: key("a"),
					UpdateExpression: aws.String("SET v = :v"), ConditionExpression: aws.String("v = :x"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":v": s("9"), ":x": s("nope")}})
				cond(err)
				_, err = f.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: key("a"),
					ConditionExpression: aws.String("attribute_not_exists(pk)")})
				cond(err)
			},
			want: map[string][]event{"a": {{"INSERT", "a", "", "1"}}},
		},
		{
			// Why: a write of the values an item already holds changes
			// nothing, and DynamoDB writes no record for it; nor for
			// deleting an item that is not there.
			name: "NoChangeMakesNoRecord",
			write: func(t *testing.T, f fixture) {
				f.put(t, "a", map[string]types.AttributeValue{"v": s("1"), "n": n("10")})
				f.put(t, "a", map[string]types.AttributeValue{"v": s("1"), "n": n("10")})
				_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: key("a"),
					UpdateExpression: aws.String("SET v = :v"), ExpressionAttributeValues: map[string]types.AttributeValue{":v": s("1")}})
				require.NoError(t, err)
				_, err = f.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: tbl, Key: key("gone")})
				require.NoError(t, err)
			},
			want: map[string][]event{"a": {{"INSERT", "a", "", "1"}}},
		},
		{
			// Why: each action of a transaction that changes an item makes
			// its own record; a ConditionCheck changes nothing.
			name: "Transaction",
			write: func(t *testing.T, f fixture) {
				f.put(t, "b", map[string]types.AttributeValue{"v": s("1")})
				f.put(t, "c", map[string]types.AttributeValue{"v": s("1")})
				_, err := f.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
					{Put: &types.Put{TableName: tbl, Item: map[string]types.AttributeValue{"pk": s("a"), "sk": s("S"), "v": s("1")}}},
					{Update: &types.Update{TableName: tbl, Key: key("b"), UpdateExpression: aws.String("SET v = :v"),
						ExpressionAttributeValues: map[string]types.AttributeValue{":v": s("2")}}},
					{ConditionCheck: &types.ConditionCheck{TableName: tbl, Key: key("c"), ConditionExpression: aws.String("attribute_exists(pk)")}},
				}})
				require.NoError(t, err)
			},
			want: map[string][]event{
				"a": {{"INSERT", "a", "", "1"}},
				"b": {{"INSERT", "b", "", "1"}, {"MODIFY", "b", "1", "2"}},
				"c": {{"INSERT", "c", "", "1"}},
			},
		},
		{
			// Why: a cancelled transaction applies nothing, so records
			// nothing.
			name: "CancelledTransaction",
			write: func(t *testing.T, f fixture) {
				_, err := f.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
					{Put: &types.Put{TableName: tbl, Item: map[string]types.AttributeValue{"pk": s("a"), "sk": s("S"), "v": s("1")}}},
					{ConditionCheck: &types.ConditionCheck{TableName: tbl, Key: key("c"), ConditionExpression: aws.String("attribute_exists(pk)")}},
				}})
				var tce *types.TransactionCanceledException
				require.ErrorAs(t, err, &tce)
			},
			want: map[string][]event{},
		},
		{
			// Why: every request of a batch is a change of its own.
			name: "BatchWrite",
			write: func(t *testing.T, f fixture) {
				f.put(t, "b", map[string]types.AttributeValue{"v": s("1")})
				_, err := f.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{
					tableName: {
						{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{"pk": s("a"), "sk": s("S"), "v": s("1")}}},
						{DeleteRequest: &types.DeleteRequest{Key: key("b")}},
					},
				}})
				require.NoError(t, err)
			},
			want: map[string][]event{"a": {{"INSERT", "a", "", "1"}}, "b": {{"INSERT", "b", "", "1"}, {"REMOVE", "b", "1", ""}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.write(t, f)
			assert.Equal(t, tc.want, byItem(f.records(t)))
		})
	}
}

// TestRecordFields checks the fields of a record that a reader relies on,
// against a clock the test sets.
func TestRecordFields(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 999_000_000, time.UTC)
	f := newFixture(t, dynamotest.WithClock(func() time.Time { return at }))
	f.put(t, "a", map[string]types.AttributeValue{"v": s("1")})
	recs := f.records(t)
	require.Len(t, recs, 1)
	r := recs[0]
	assert.Equal(t, stypes.OperationTypeInsert, r.EventName)
	assert.Equal(t, "aws:dynamodb", aws.ToString(r.EventSource))
	assert.Equal(t, dynamotest.Region, aws.ToString(r.AwsRegion))
	assert.NotEmpty(t, aws.ToString(r.EventID))
	d := r.Dynamodb
	// Rounded down to the second, as DynamoDB does.
	assert.Equal(t, at.Truncate(time.Second), d.ApproximateCreationDateTime.UTC())
	assert.Equal(t, stypes.StreamViewTypeNewAndOldImages, d.StreamViewType)
	assert.Equal(t, map[string]stypes.AttributeValue{"pk": &stypes.AttributeValueMemberS{Value: "a"}, "sk": &stypes.AttributeValueMemberS{Value: "S"}}, d.Keys)
	assert.Len(t, d.NewImage, 3)
	assert.Nil(t, d.OldImage)
	// Keys (pk a, sk S: 6 bytes) and the new image (the same and v 1: 8).
	assert.Equal(t, int64(14), aws.ToInt64(d.SizeBytes))
	assert.Regexp(t, `^[1-9][0-9]{20,}$`, aws.ToString(d.SequenceNumber))
}

// TestDescribeTableReportsTheStream checks that DescribeTable reports the
// stream CreateTable asked for, and one that UpdateTable enables later.
func TestDescribeTableReportsTheStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	out, err := f.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
	require.NoError(t, err)
	assert.Equal(t, f.arn, aws.ToString(out.Table.LatestStreamArn))
	assert.NotEmpty(t, aws.ToString(out.Table.LatestStreamLabel))
	assert.Equal(t, types.StreamViewTypeNewAndOldImages, out.Table.StreamSpecification.StreamViewType)
	assert.True(t, aws.ToBool(out.Table.StreamSpecification.StreamEnabled))

	// A table without a stream gets one from UpdateTable.
	_, err = f.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("plain"),
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	require.NoError(t, err)
	out, err = f.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("plain")})
	require.NoError(t, err)
	assert.Nil(t, out.Table.LatestStreamArn)
	_, err = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("plain"), Item: map[string]types.AttributeValue{"pk": s("before")}})
	require.NoError(t, err)

	up, err := f.db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String("plain"),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeKeysOnly}})
	require.NoError(t, err)
	plainARN := aws.ToString(up.TableDescription.LatestStreamArn)
	require.NotEmpty(t, plainARN)
	_, err = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("plain"), Item: map[string]types.AttributeValue{"pk": s("after"), "v": s("x")}})
	require.NoError(t, err)

	// A second enable is refused, as DynamoDB refuses it.
	_, err = f.db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String("plain"),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeKeysOnly}})
	require.Error(t, err)

	list, err := f.sc.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String("plain")})
	require.NoError(t, err)
	require.Len(t, list.Streams, 1)
	assert.Equal(t, plainARN, aws.ToString(list.Streams[0].StreamArn))

	// Only the write after the stream was enabled is in it, keys only.
	pf := fixture{db: f.db, sc: f.sc, arn: plainARN}
	recs := pf.records(t)
	require.Len(t, recs, 1)
	assert.Equal(t, map[string]stypes.AttributeValue{"pk": &stypes.AttributeValueMemberS{Value: "after"}}, recs[0].Dynamodb.Keys)
	assert.Nil(t, recs[0].Dynamodb.NewImage)
	assert.Equal(t, stypes.StreamViewTypeKeysOnly, recs[0].Dynamodb.StreamViewType)

	// Disabling it closes its shards and stops its records.
	_, err = f.db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String("plain"),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(false)}})
	require.NoError(t, err)
	_, err = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("plain"), Item: map[string]types.AttributeValue{"pk": s("later")}})
	require.NoError(t, err)
	desc, err := f.sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(plainARN)})
	require.NoError(t, err)
	assert.Equal(t, stypes.StreamStatusDisabled, desc.StreamDescription.StreamStatus)
	for _, sh := range desc.StreamDescription.Shards {
		assert.NotNil(t, sh.SequenceNumberRange.EndingSequenceNumber)
	}
	assert.Len(t, pf.records(t), 1)
}

func seqNum(t *testing.T, r stypes.Record) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(aws.ToString(r.Dynamodb.SequenceNumber), 10)
	require.True(t, ok)
	return v
}

// TestSequenceNumbers writes many items, concurrently, and checks that
// each item's records are in one shard in write order, and that sequence
// numbers increase within each shard and never repeat.
func TestSequenceNumbers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dynamotest.WithShards(4))
	const items, writes = 20, 5
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() {
			for w := range writes {
				f.put(t, fmt.Sprintf("item%d", i), map[string]types.AttributeValue{"v": s(fmt.Sprint(w))})
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	shardOf := map[string]string{}
	used := 0
	for _, sh := range f.shards(t, 100) {
		recs, ended := f.readShard(t, aws.ToString(sh.ShardId), 7)
		assert.False(t, ended, "an open shard has a next iterator")
		if len(recs) > 0 {
			used++
		}
		for i, r := range recs {
			seq := aws.ToString(r.Dynamodb.SequenceNumber)
			assert.False(t, seen[seq], "sequence number %s repeats", seq)
			seen[seq] = true
			if i > 0 {
				assert.Equal(t, 1, seqNum(t, r).Cmp(seqNum(t, recs[i-1])), "sequence numbers increase within a shard")
			}
			start, ok := new(big.Int).SetString(aws.ToString(sh.SequenceNumberRange.StartingSequenceNumber), 10)
			require.True(t, ok)
			assert.Equal(t, 1, seqNum(t, r).Cmp(start), "after the shard's start")
			e := eventOf(r)
			if prev, ok := shardOf[e.pk]; ok {
				assert.Equal(t, prev, aws.ToString(sh.ShardId), "one item's records go to one shard")
			}
			shardOf[e.pk] = aws.ToString(sh.ShardId)
		}
		for _, evs := range byItem(recs) {
			for w, e := range evs {
				assert.Equal(t, fmt.Sprint(w), e.new, "an item's records are in write order")
			}
		}
	}
	assert.Len(t, seen, items*writes)
	assert.Greater(t, used, 1, "keys spread over the shards")
}

// TestShardIterators checks each iterator type against a shard of three
// records, and the errors for unknown streams and shards.
func TestShardIterators(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, dynamotest.WithShards(1))
	for i := range 3 {
		f.put(t, "a", map[string]types.AttributeValue{"v": s(fmt.Sprint(i))})
	}
	shards := f.shards(t, 100)
	require.Len(t, shards, 1)
	shardID := shards[0].ShardId
	all, _ := f.readShard(t, aws.ToString(shardID), 1000)
	require.Len(t, all, 3)
	second := all[1].Dynamodb.SequenceNumber

	cases := []struct {
		name string
		typ  stypes.ShardIteratorType
		seq  *string
		want []string // the "v" of the records read
	}{
		// Why: TRIM_HORIZON is where a reader without a checkpoint starts.
		{"TrimHorizon", stypes.ShardIteratorTypeTrimHorizon, nil, []string{"0", "1", "2"}},
		// Why: LATEST skips what is there.
		{"Latest", stypes.ShardIteratorTypeLatest, nil, nil},
		// Why: AT_SEQUENCE_NUMBER includes the record.
		{"AtSequenceNumber", stypes.ShardIteratorTypeAtSequenceNumber, second, []string{"1", "2"}},
		// Why: AFTER_SEQUENCE_NUMBER is how a reader resumes after its
		// checkpoint.
		{"AfterSequenceNumber", stypes.ShardIteratorTypeAfterSequenceNumber, second, []string{"2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			it, err := f.sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
				StreamArn: aws.String(f.arn), ShardId: shardID, ShardIteratorType: tc.typ, SequenceNumber: tc.seq,
			})
			require.NoError(t, err)
			out, err := f.sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
			require.NoError(t, err)
			var got []string
			for _, r := range out.Records {
				got = append(got, eventOf(r).new)
			}
			assert.Equal(t, tc.want, got)
			assert.NotNil(t, out.NextShardIterator, "an open shard goes on")
		})
	}

	t.Run("LatestSeesLaterRecords", func(t *testing.T) {
		g := newFixture(t, dynamotest.WithShards(1))
		g.put(t, "a", map[string]types.AttributeValue{"v": s("old")})
		sh := g.shards(t, 100)[0].ShardId
		it, err := g.sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: aws.String(g.arn), ShardId: sh, ShardIteratorType: stypes.ShardIteratorTypeLatest})
		require.NoError(t, err)
		g.put(t, "a", map[string]types.AttributeValue{"v": s("new")})
		out, err := g.sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		require.Len(t, out.Records, 1)
		assert.Equal(t, "new", eventOf(out.Records[0]).new)
	})

	t.Run("UnknownStreamOrShard", func(t *testing.T) {
		t.Parallel()
		for _, in := range []*dynamodbstreams.GetShardIteratorInput{
			{StreamArn: aws.String(f.arn + "x"), ShardId: shardID, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon},
			{StreamArn: aws.String(f.arn), ShardId: aws.String("shardId-nope"), ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon},
		} {
			_, err := f.sc.GetShardIterator(ctx, in)
			var rnf *stypes.ResourceNotFoundException
			assert.ErrorAs(t, err, &rnf)
		}
		_, err := f.sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(f.arn + "x")})
		var rnf *stypes.ResourceNotFoundException
		assert.ErrorAs(t, err, &rnf)
	})
}

// TestIteratorsExpire moves the server's clock past an iterator's 15
// minutes.
func TestIteratorsExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFixture(t, dynamotest.WithShards(1), dynamotest.WithClock(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}))
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	it, err := f.sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(f.arn), ShardId: f.shards(t, 100)[0].ShardId, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	advance(dynamotest.IteratorLifetime)
	out, err := f.sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err, "an iterator is good for its whole lifetime")
	advance(dynamotest.IteratorLifetime + time.Second)
	_, err = f.sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: out.NextShardIterator})
	var expired *stypes.ExpiredIteratorException
	assert.ErrorAs(t, err, &expired)
}

// TestPaging reads records, shards and streams in pages smaller than
// what there is.
func TestPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, dynamotest.WithShards(5))
	for i := range 10 {
		f.put(t, fmt.Sprintf("i%d", i), nil)
	}
	shards := f.shards(t, 2)
	assert.Len(t, shards, 5)
	ids := map[string]bool{}
	for _, sh := range shards {
		ids[aws.ToString(sh.ShardId)] = true
	}
	assert.Len(t, ids, 5, "pages neither repeat nor skip")
	total := 0
	for _, sh := range shards {
		recs, _ := f.readShard(t, aws.ToString(sh.ShardId), 1)
		total += len(recs)
	}
	assert.Equal(t, 10, total)

	_, err := f.sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: aws.String("x"), Limit: aws.Int32(1001)})
	require.Error(t, err, "at most 1000 records a call")

	for i := range 3 {
		_, err := f.db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(fmt.Sprintf("more%d", i)),
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
			BillingMode:          types.BillingModePayPerRequest,
			StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
		})
		require.NoError(t, err)
	}
	var arns []string
	var start *string
	for {
		out, err := f.sc.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{Limit: aws.Int32(3), ExclusiveStartStreamArn: start})
		require.NoError(t, err)
		for _, st := range out.Streams {
			arns = append(arns, aws.ToString(st.StreamArn))
		}
		if start = out.LastEvaluatedStreamArn; start == nil {
			break
		}
	}
	assert.Len(t, arns, 4)
	assert.Equal(t, f.arn, arns[0])
}

// TestReshard splits the shards mid-stream: parents close with an ending
// sequence number and, read to their end, give no next iterator; children
// name their parents, and an item's later records go to a child of the
// shard that held its earlier ones.
func TestReshard(t *testing.T) {
	t.Parallel()
	f := newFixture(t, dynamotest.WithShards(2))
	const items = 16
	for i := range items {
		f.put(t, fmt.Sprintf("i%d", i), map[string]types.AttributeValue{"v": s("before")})
	}
	require.NoError(t, f.srv.Reshard(tableName))
	for i := range items {
		f.put(t, fmt.Sprintf("i%d", i), map[string]types.AttributeValue{"v": s("after")})
	}
	require.Error(t, f.srv.Reshard("nope"))

	shards := f.shards(t, 100)
	require.Len(t, shards, 6)
	parentOf := map[string]string{}
	holder := map[string]map[string]string{} // pk -> v -> shard
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		parentOf[id] = aws.ToString(sh.ParentShardId)
		recs, ended := f.readShard(t, id, 5)
		closed := sh.SequenceNumberRange.EndingSequenceNumber != nil
		assert.Equal(t, closed, ended, "only a closed shard ends")
		if closed && len(recs) > 0 {
			assert.Equal(t, aws.ToString(sh.SequenceNumberRange.EndingSequenceNumber), aws.ToString(recs[len(recs)-1].Dynamodb.SequenceNumber))
		}
		for _, r := range recs {
			e := eventOf(r)
			if holder[e.pk] == nil {
				holder[e.pk] = map[string]string{}
			}
			holder[e.pk][e.new] = id
		}
	}
	roots := 0
	for _, sh := range shards {
		if sh.ParentShardId == nil {
			roots++
			assert.NotNil(t, sh.SequenceNumberRange.EndingSequenceNumber, "the first shards are closed")
		} else {
			assert.Nil(t, sh.SequenceNumberRange.EndingSequenceNumber, "the children are open")
		}
	}
	assert.Equal(t, 2, roots)
	require.Len(t, holder, items)
	for pk, h := range holder {
		assert.Equal(t, h["before"], parentOf[h["after"]], "%s: its later records are in a child of its earlier shard", pk)
	}

	// Only the children of a shard, as the CHILD_SHARDS filter asks.
	out, err := f.sc.DescribeStream(context.Background(), &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(f.arn),
		ShardFilter: &stypes.ShardFilter{Type: stypes.ShardFilterTypeChildShards, ShardId: shards[0].ShardId}})
	require.NoError(t, err)
	require.Len(t, out.StreamDescription.Shards, 2)
	for _, c := range out.StreamDescription.Shards {
		assert.Equal(t, aws.ToString(shards[0].ShardId), aws.ToString(c.ParentShardId))
	}
}
