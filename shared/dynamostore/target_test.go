package dynamostore_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// targetEnv selects where the tests run. Unset, every test gets a minidyn
// server in this process, which speaks DynamoDB's JSON protocol to the real
// SDK client. Set to "aws", the tests load the SDK's default configuration
// (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, credentials) and so run against
// DynamoDB Local or real DynamoDB, in one table they create for the run and
// delete at the end.
const targetEnv = "DYNAMOSTORE_TEST_TARGET"

// target is a DynamoDB endpoint with the store's table on it.
type target struct {
	table string
	// endpoint is the in-process server's URL; empty for "aws".
	endpoint string
}

var (
	awsOnce   sync.Once
	awsTarget *target
	awsErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if awsTarget != nil {
		if err := deleteTable(awsTarget); err != nil {
			fmt.Fprintln(os.Stderr, "delete test table:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// newTarget returns a table for one test: a new in-process server, or the
// run's shared table on the configured endpoint. Tests that share the
// shared table stay apart because every campaign has a random ID.
func newTarget(t *testing.T) *target {
	t.Helper()
	switch v := os.Getenv(targetEnv); v {
	case "":
	case "aws":
		awsOnce.Do(func() {
			tg := &target{table: "impression-counter-test-" + uuid.NewString()[:8]}
			_, awsErr = dynamostore.CreateTable(context.Background(), tg.client(t, nil), tg.table)
			awsTarget = tg
		})
		require.NoError(t, awsErr, "create the test table")
		// Each test reads the stream too; the aggregator applies each
		// record once whoever delivers it.
		awsTarget.aggregate(t)
		return awsTarget
	default:
		t.Fatalf("%s must be unset or \"aws\", got %q", targetEnv, v)
	}
	tg := &target{table: "impressions", endpoint: dynamotest.Start(t)}
	_, err := dynamostore.CreateTable(context.Background(), tg.client(t, nil), tg.table)
	require.NoError(t, err)
	tg.aggregate(t)
	return tg
}

// newQuietTarget returns a table of its own on a new in-process server,
// with no stream poller: a test that drives the aggregator, or reads the
// watermark, by hand.
func newQuietTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{table: "impressions", endpoint: dynamotest.Start(t)}
	_, err := dynamostore.CreateTable(context.Background(), tg.client(t, nil), tg.table)
	require.NoError(t, err)
	return tg
}

// aggregate runs a stream poller on the table until the test ends, as the
// local server does with STORE=dynamodb, so that the store's Stats catch
// up with its writes and Settle returns.
func (tg *target) aggregate(t *testing.T) {
	t.Helper()
	agg, err := dynamostore.NewAggregator(tg.client(t, nil), tg.table)
	require.NoError(t, err)
	p, err := streampoll.New(tg.streams(t), agg, tg.table, streampoll.WithInterval(50*time.Millisecond), streampoll.WithFilter(dynamostore.IsMarkerRecord),
		// dynamotest shows a record before it acknowledges the write.
		streampoll.WithPropagation(0),
		// Tests that settle before every read, most of them with no new
		// impression: a watermark every round, not every second, so that
		// each waits a round.
		streampoll.WithIdleAdvance(0))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// streams returns a client of the table's stream.
func (tg *target) streams(t testing.TB) *dynamodbstreams.Client {
	t.Helper()
	if tg.endpoint != "" {
		return dynamotest.StreamsClient(t, tg.endpoint, nil)
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	require.NoError(t, err)
	return dynamodbstreams.NewFromConfig(cfg)
}

// client returns a client of its own, with its own connection pool, as a
// separate process would have. wrap, if not nil, wraps its transport, to
// inject faults.
func (tg *target) client(t testing.TB, wrap func(http.RoundTripper) http.RoundTripper) *dynamodb.Client {
	t.Helper()
	if tg.endpoint != "" {
		return dynamotest.Client(t, tg.endpoint, wrap)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	var rt http.RoundTripper = transport
	if wrap != nil {
		rt = wrap(rt)
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithHTTPClient(&http.Client{Transport: rt}))
	require.NoError(t, err)
	return dynamodb.NewFromConfig(cfg)
}

// store returns a store with a client of its own. Its calls may take up to
// a minute, so that a machine busy with parallel tests does not turn into
// spurious ErrUnavailable; tests of timeouts set their own.
func (tg *target) store(t testing.TB, wrap func(http.RoundTripper) http.RoundTripper, opts ...dynamostore.Option) *dynamostore.Store {
	t.Helper()
	opts = append([]dynamostore.Option{dynamostore.WithTimeout(time.Minute)}, opts...)
	s, err := dynamostore.New(tg.client(t, wrap), tg.table, opts...)
	require.NoError(t, err)
	return s
}

// items returns every item of the campaign's partition and the dedup marker
// of each impression given, read straight from the table.
func (tg *target) items(t *testing.T, campaignID string, imps ...adcount.Impression) []map[string]types.AttributeValue {
	t.Helper()
	ctx := context.Background()
	db := tg.client(t, nil)
	out, err := db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(tg.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "CAMPAIGN#" + campaignID}},
		ConsistentRead:            aws.Bool(true),
	})
	require.NoError(t, err)
	items := out.Items
	for _, imp := range imps {
		k := imp.Key()
		got, err := db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      aws.String(tg.table),
			Key:            itemKey(fmt.Sprintf("DEDUP#%x", k[:]), "MARKER"),
			ConsistentRead: aws.Bool(true),
		})
		require.NoError(t, err)
		if len(got.Item) > 0 {
			items = append(items, got.Item)
		}
	}
	return items
}

// adItems returns every item of the partition that holds one ad's time
// series, read straight from the table.
func (tg *target) adItems(t *testing.T, campaignID, ad string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := tg.client(t, nil).Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(tg.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("AD#%d#%s#%s", len(campaignID), campaignID, ad)}},
		ConsistentRead:            aws.Bool(true),
	})
	require.NoError(t, err)
	return out.Items
}

// reachItems returns every item of the campaign's reach partition, read
// straight from the table.
func (tg *target) reachItems(t *testing.T, campaignID string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := tg.client(t, nil).Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(tg.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "REACH#" + campaignID}},
		ConsistentRead:            aws.Bool(true),
	})
	require.NoError(t, err)
	return out.Items
}

// adTotalItems returns every ad's total in the table, by campaign and ad,
// read straight from the table with one Scan.
func (tg *target) adTotalItems(t *testing.T) map[string]map[string]int64 {
	t.Helper()
	out := make(map[string]map[string]int64)
	pages := dynamodb.NewScanPaginator(tg.client(t, nil), &dynamodb.ScanInput{
		TableName:                 aws.String(tg.table),
		FilterExpression:          aws.String("begins_with(sk, :ads)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":ads": &types.AttributeValueMemberS{Value: "ADTOTAL#"}},
		ConsistentRead:            aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		require.NoError(t, err)
		for _, it := range page.Items {
			id := strings.TrimPrefix(it["pk"].(*types.AttributeValueMemberS).Value, "CAMPAIGN#")
			ad := strings.TrimPrefix(it["sk"].(*types.AttributeValueMemberS).Value, "ADTOTAL#")
			if out[id] == nil {
				out[id] = make(map[string]int64)
			}
			var n int64
			if v, ok := it["n"].(*types.AttributeValueMemberN); ok {
				n, err = strconv.ParseInt(v.Value, 10, 64)
				require.NoError(t, err)
			}
			out[id][ad] = n
		}
	}
	return out
}

func itemKey(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

// sortKeys lists the items' sort keys.
func sortKeys(items []map[string]types.AttributeValue) []string {
	var sks []string
	for _, it := range items {
		sks = append(sks, it["sk"].(*types.AttributeValueMemberS).Value)
	}
	return sks
}

func deleteTable(tg *target) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	_, err = dynamodb.NewFromConfig(cfg).DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(tg.table)})
	return err
}
