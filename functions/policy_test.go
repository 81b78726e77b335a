package functions_test

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/stores"
	"github.com/adcount/impression-counter/shared/streampoll"
	"github.com/adcount/impression-counter/web"
)

// actionRecorder is a dynamostore.Client and AggregatorClient over a real
// client that notes the IAM action each call needs. IAM has no action for a
// transaction as a whole: it authorises each of its actions as the
// single-item operation it is.
type actionRecorder struct {
	next    *dynamodb.Client
	mu      sync.Mutex
	actions map[string]bool
}

var (
	_ dynamostore.Client           = (*actionRecorder)(nil)
	_ dynamostore.AggregatorClient = (*actionRecorder)(nil)
)

func (r *actionRecorder) note(actions ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range actions {
		r.actions["dynamodb:"+a] = true
	}
}

func (r *actionRecorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.actions))
}

func (r *actionRecorder) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	r.note("DescribeTable")
	return r.next.DescribeTable(ctx, in, opts...)
}

func (r *actionRecorder) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	r.note("GetItem")
	return r.next.GetItem(ctx, in, opts...)
}

func (r *actionRecorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	r.note("UpdateItem")
	return r.next.UpdateItem(ctx, in, opts...)
}

func (r *actionRecorder) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	r.note("PutItem")
	return r.next.PutItem(ctx, in, opts...)
}

func (r *actionRecorder) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	r.note("Query")
	return r.next.Query(ctx, in, opts...)
}

func (r *actionRecorder) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	r.note("BatchGetItem")
	return r.next.BatchGetItem(ctx, in, opts...)
}

func (r *actionRecorder) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	for _, item := range in.TransactItems {
		switch {
		case item.ConditionCheck != nil:
			r.note("ConditionCheckItem")
		case item.Put != nil:
			r.note("PutItem")
		case item.Update != nil:
			r.note("UpdateItem")
		case item.Delete != nil:
			r.note("DeleteItem")
		}
	}
	return r.next.TransactWriteItems(ctx, in, opts...)
}

// streamsRecorder is a streampoll.Client over a real DynamoDB Streams
// client that notes the IAM action of each call: each of its methods is
// one action of the same name.
type streamsRecorder struct {
	next    *dynamodbstreams.Client
	mu      sync.Mutex
	actions map[string]bool
}

var _ streampoll.Client = (*streamsRecorder)(nil)

func (r *streamsRecorder) note(action string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions["dynamodb:"+action] = true
}

func (r *streamsRecorder) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.actions))
}

func (r *streamsRecorder) ListStreams(ctx context.Context, in *dynamodbstreams.ListStreamsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.ListStreamsOutput, error) {
	r.note("ListStreams")
	return r.next.ListStreams(ctx, in, opts...)
}

func (r *streamsRecorder) DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	r.note("DescribeStream")
	return r.next.DescribeStream(ctx, in, opts...)
}

func (r *streamsRecorder) GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	r.note("GetShardIterator")
	return r.next.GetShardIterator(ctx, in, opts...)
}

func (r *streamsRecorder) GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	r.note("GetRecords")
	return r.next.GetRecords(ctx, in, opts...)
}

// routeExercise is one request to a route and the status that shows it
// took the path meant.
type routeExercise struct {
	method, target, body string
	status               int
}

// TestTemplatePoliciesAllowExactlyWhatEachFunctionCalls serves each
// function's routes, as the template routes them, from a DynamoDB store
// whose client notes every IAM action it needs, through every path that
// calls the store differently: success, conflict, not found, duplicate, not
// started, and for the reports each page, filter and interval, over a
// campaign whose counts are aggregated. Each function's policy must allow exactly those actions, on the
// stack's table only, so a change in what the store calls fails here
// before it fails in production with AccessDenied.
// testBot is the one User-Agent the policy test's handler filters.
const testBot = "test-bot/1"

func TestTemplatePoliciesAllowExactlyWhatEachFunctionCalls(t *testing.T) {
	t.Parallel()
	tmpl, raw := openTemplate(t), openRawTemplate(t)
	table := tableName(t, tmpl)
	routes := eventRoutes(t, tmpl)

	ctx := context.Background()
	endpoint := dynamotest.Start(t)
	db := dynamotest.Client(t, endpoint, nil)
	const tableName = "impressions"
	_, err := dynamostore.CreateTable(ctx, db, tableName)
	require.NoError(t, err)
	seed, err := dynamostore.New(db, tableName)
	require.NoError(t, err)
	for id, start := range map[string]time.Time{"live": time.Now().Add(-time.Hour), "future": time.Now().Add(24 * time.Hour),
		"patchable": time.Now().Add(-time.Hour), "paused": time.Now().Add(-time.Hour), "ended": time.Now().Add(-time.Hour)} {
		c, err := adcount.NewCampaign(id, id, start)
		require.NoError(t, err)
		c.CreatedAt = time.Now()
		c.Paused = id == "paused"
		if id == "ended" {
			c.EndTime = time.Now().Add(-time.Minute)
		}
		require.NoError(t, seed.CreateCampaign(ctx, c))
	}
	// Counts of two ads of the live campaign, aggregated, so that the
	// report routes read every kind of counter item there is.
	_, err = seed.RecordImpressions(ctx, []adcount.Impression{
		{CampaignID: "live", UserID: "seed-1", AdID: "ad-1"}, {CampaignID: "live", UserID: "seed-2", AdID: "ad-1"},
		{CampaignID: "live", UserID: "seed-1", AdID: "ad-2"}, {CampaignID: "live", UserID: "seed-3", AdID: "ad-2", Filtered: true},
	})
	require.NoError(t, err)
	seedAgg, err := dynamostore.NewAggregator(db, tableName)
	require.NoError(t, err)
	seedPoller, err := stores.NewPoller(seedAgg, dynamotest.StreamsClient(t, endpoint, nil), tableName)
	require.NoError(t, err)
	caughtUp, err := seedPoller.Poll(ctx)
	require.NoError(t, err)
	require.True(t, caughtUp, "the seed's impressions are aggregated")
	// Cursors as a first page hands them out: the list's after a
	// campaign created now, the breakdown's after an ad with one
	// impression.
	listCursor := url.QueryEscape(adcount.EncodeCursor(adcount.CampaignCursor{CreatedAt: time.Now(), ID: "patchable"}))
	adCursor := url.QueryEscape(adcount.EncodeCursor(adcount.AdCursor{Total: 1, AdID: "ad-1"}))
	series := func(query string) routeExercise {
		return routeExercise{"GET", "/api/v1/campaigns/live/timeseries?" + query, "", http.StatusOK}
	}
	recent := url.QueryEscape(time.Now().Add(-30 * time.Minute).UTC().Format(time.RFC3339))

	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	exercises := map[string][]routeExercise{
		httpapi.RouteCreateCampaign: {
			{"POST", "/api/v1/campaigns", `{"name":"Launch","start_time":"` + past + `"}`, http.StatusCreated},
			// The handler's IDs are fixed here, so this one conflicts,
			// which reads the existing campaign back.
			{"POST", "/api/v1/campaigns", `{"name":"Launch","start_time":"` + past + `"}`, http.StatusConflict},
		},
		httpapi.RouteGetCampaign: {
			{"GET", "/api/v1/campaigns/live", "", http.StatusOK},
			{"GET", "/api/v1/campaigns/missing", "", http.StatusNotFound},
		},
		httpapi.RouteRecordImpression: {
			{"POST", "/api/v1/impressions", `{"campaign_id":"live","user_id":"u","ad_id":"a"}`, http.StatusOK},
			// A duplicate: the transaction is cancelled and its reasons
			// are read from the answer, with no further call.
			{"POST", "/api/v1/impressions", `{"campaign_id":"live","user_id":"u","ad_id":"a"}`, http.StatusOK},
			{"POST", "/api/v1/impressions", `{"campaign_id":"missing","user_id":"u","ad_id":"a"}`, http.StatusNotFound},
			{"POST", "/api/v1/impressions", `{"campaign_id":"future","user_id":"u","ad_id":"a"}`, http.StatusConflict},
			// Paused and ended: refused, like not started.
			{"POST", "/api/v1/impressions", `{"campaign_id":"paused","user_id":"u","ad_id":"a"}`, http.StatusConflict},
			{"POST", "/api/v1/impressions", `{"campaign_id":"ended","user_id":"u","ad_id":"a"}`, http.StatusConflict},
		},
		httpapi.RoutePreflightImpression: {
			{"OPTIONS", "/api/v1/impressions", "", http.StatusNoContent},
		},
		httpapi.RouteRecordBatch: {
			// Counted, a repeat inside the batch, unknown, not started,
			// paused, ended and a bot's impression, filtered: every store
			// call a batch makes.
			{"POST", "/api/v1/impressions/batch", `{"impressions":[` +
				`{"campaign_id":"live","user_id":"b","ad_id":"a"},{"campaign_id":"live","user_id":"b","ad_id":"a"},` +
				`{"campaign_id":"missing","user_id":"u","ad_id":"a"},{"campaign_id":"future","user_id":"u","ad_id":"a"},` +
				`{"campaign_id":"paused","user_id":"u","ad_id":"a"},{"campaign_id":"ended","user_id":"u","ad_id":"a"},` +
				`{"campaign_id":"live","user_id":"b","ad_id":"a","user_agent":"` + testBot + `"}]}`, http.StatusOK},
		},
		httpapi.RoutePreflightBatch: {
			{"OPTIONS", "/api/v1/impressions/batch", "", http.StatusNoContent},
		},
		httpapi.RoutePixel: {
			{"GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", http.StatusOK},
			{"GET", "/api/v1/pixel.gif?campaign_id=missing&user_id=p&ad_id=a", "", http.StatusNotFound},
		},
		httpapi.RouteGetStats: {
			{"GET", "/api/v1/campaigns/live/stats", "", http.StatusOK},
			{"GET", "/api/v1/campaigns/missing/stats", "", http.StatusNotFound},
		},
		httpapi.RouteListCampaigns: {
			// The first page, a later one, and one filtered by status,
			// which may read on past entries the filter leaves out.
			{"GET", "/api/v1/campaigns", "", http.StatusOK},
			{"GET", "/api/v1/campaigns?limit=1&cursor=" + listCursor, "", http.StatusOK},
			{"GET", "/api/v1/campaigns?limit=1&status=scheduled", "", http.StatusOK},
			{"GET", "/api/v1/campaigns?limit=1&name=LAUNCH&status=active", "", http.StatusOK},
		},
		httpapi.RouteUpdateCampaign: {
			// A change, a change that changes nothing, an end removed, a
			// bad patch refused after the read, and an unknown campaign.
			{"PATCH", "/api/v1/campaigns/patchable", `{"name":"Renamed","paused":true}`, http.StatusOK},
			{"PATCH", "/api/v1/campaigns/patchable", `{"paused":true}`, http.StatusOK},
			{"PATCH", "/api/v1/campaigns/patchable", `{"end_time":null,"paused":false}`, http.StatusOK},
			{"PATCH", "/api/v1/campaigns/patchable", `{"end_time":"2001-01-01T00:00:00Z"}`, http.StatusBadRequest},
			{"PATCH", "/api/v1/campaigns/missing", `{"paused":true}`, http.StatusNotFound},
		},
		httpapi.RouteGetSeries: {
			// Each interval reads other items, the campaign's or one ad's.
			series("interval=minute&from=" + recent),
			series("interval=hour"),
			series("interval=day"),
			series("interval=minute&ad_id=ad-1&from=" + recent),
			series("interval=hour&ad_id=ad-1&from=" + recent),
			series("interval=day&ad_id=ad-1"),
			{"GET", "/api/v1/campaigns/missing/timeseries", "", http.StatusNotFound},
		},
		httpapi.RouteGetAdStats: {
			// A first page with more after it, a later page, a campaign
			// with no ads, and an unknown campaign.
			{"GET", "/api/v1/campaigns/live/ads?limit=1", "", http.StatusOK},
			{"GET", "/api/v1/campaigns/live/ads?limit=1&cursor=" + adCursor, "", http.StatusOK},
			{"GET", "/api/v1/campaigns/future/ads", "", http.StatusOK},
			{"GET", "/api/v1/campaigns/missing/ads", "", http.StatusNotFound},
		},
		// The dashboard's files call no store: its page calls the routes
		// above.
		httpapi.RouteDashboard: {
			{"GET", "/dashboard", "", http.StatusOK},
		},
		httpapi.RouteDashboardFile: {
			{"GET", "/dashboard/app.js", "", http.StatusOK},
			{"GET", "/dashboard/vendor/uPlot.esm.js", "", http.StatusOK},
			{"GET", "/dashboard/missing.js", "", http.StatusNotFound},
		},
	}

	for fn, fnRoutes := range routes {
		t.Run(fn, func(t *testing.T) {
			rec := &actionRecorder{next: db, actions: map[string]bool{}}
			store, err := dynamostore.New(rec, tableName)
			require.NoError(t, err)
			h := httpapi.NewHandler(store,
				httpapi.WithLogger(slog.New(slog.DiscardHandler)),
				httpapi.WithBotFilter(func(ua string) bool { return ua == testBot }),
				httpapi.WithIDGenerator(func() string { return "fixed-" + fn }),
				httpapi.WithDashboard(web.Dashboard()))
			for _, route := range fnRoutes {
				require.Contains(t, exercises, route, "no requests exercise %s: add them, so that its store calls are known", route)
				for _, ex := range exercises[route] {
					req := httptest.NewRequest(ex.method, ex.target, strings.NewReader(ex.body))
					if ex.method == http.MethodOptions {
						req.Header.Set("Origin", "https://publisher.example")
						req.Header.Set("Access-Control-Request-Method", "POST")
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					require.Equal(t, ex.status, w.Code, "%s %s: %s", ex.method, ex.target, w.Body)
				}
			}
			assert.Equal(t, map[string][]string{table + ".Arn": rec.recorded()}, policyActions(t, raw, fn),
				"%s's policy must allow exactly the actions its routes call, on the table alone", fn)
		})
	}

	// The aggregate function serves no route: it applies the stream's
	// batches, every way Apply calls the table: new records, a batch
	// delivered again whole and in part, a malformed marker passed over,
	// and a record Apply refuses.
	t.Run(logicalID(serve.Aggregate), func(t *testing.T) {
		rec := &actionRecorder{next: db, actions: map[string]bool{}}
		agg, err := dynamostore.NewAggregator(rec, tableName)
		require.NoError(t, err)
		gen := &markers{campaign: "live", now: time.Now()}
		var batch []dynamostore.StreamRecord
		for i := range 6 {
			r, err := aggregate.Record(gen.next(i == 5))
			require.NoError(t, err)
			batch = append(batch, r)
		}
		for _, recs := range [][]dynamostore.StreamRecord{batch[:4], batch[:4], batch[2:]} {
			_, err := agg.Apply(ctx, "shard-policy", recs)
			require.NoError(t, err)
		}
		malformed, err := aggregate.Record(gen.next(false))
		require.NoError(t, err)
		delete(malformed.New, "b")
		applied, err := agg.Apply(ctx, "shard-policy", []dynamostore.StreamRecord{malformed})
		require.NoError(t, err)
		require.Len(t, applied.Malformed, 1)
		refused, err := aggregate.Record(gen.next(false))
		require.NoError(t, err)
		refused.Seq = "not-a-sequence-number"
		_, err = agg.Apply(ctx, "shard-policy", []dynamostore.StreamRecord{refused})
		require.ErrorIs(t, err, dynamostore.ErrMalformedItem)

		// The scheduled reader reads the stream itself, through the same
		// aggregator, and records its watermark: every call a round makes.
		streams := &streamsRecorder{next: dynamotest.StreamsClient(t, endpoint, nil), actions: map[string]bool{}}
		p, err := stores.NewPoller(agg, streams, tableName, streampoll.WithReaderID(aggregate.ScheduleReader))
		require.NoError(t, err)
		caughtUp, err := p.Poll(ctx)
		require.NoError(t, err)
		require.True(t, caughtUp, "the reader read every shard to its end, and advanced its watermark")
		// What the event source mapping calls, with this role, to read the
		// stream: the actions of AWSLambdaDynamoDBExecutionRole.
		mapping := []string{"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}

		fn := logicalID(serve.Aggregate)
		queue := onFailureQueue(t)
		assert.Equal(t, map[string][]string{
			table + ".Arn": rec.recorded(),
			// The mapping's and the scheduled reader's reads, on this
			// table's stream alone.
			table + ".StreamArn": slices.Compact(slices.Sorted(slices.Values(append(mapping, streams.recorded()...)))),
			// Lambda describes a batch it discards to the queue with the
			// function's role.
			queue + ".Arn": {"sqs:SendMessage"},
		}, policyActions(t, raw, fn), "%s's policy must allow exactly what Apply, the scheduled reader, the mapping and its destination call", fn)
	})
}

// onFailureQueue is the logical ID of the queue that the event source
// mapping's on-failure destination names.
func onFailureQueue(t *testing.T) string {
	t.Helper()
	mappings := openTemplate(t).GetAllLambdaEventSourceMappingResources()
	require.Len(t, mappings, 1)
	for name := range mappings {
		dest, _ := resourceProperties(t, name)["DestinationConfig"].(map[string]any)
		onFailure, _ := dest["OnFailure"].(map[string]any)
		id, _ := getAtt(onFailure["Destination"])
		require.NotEmpty(t, id, "the on-failure destination is a resource of the stack")
		return id
	}
	return ""
}

// policyActions returns the sorted actions that function's policies allow,
// by the resource they allow them on, written Table.Arn or Table.StreamArn,
// and fails unless every policy is an inline statement that allows
// DynamoDB or SQS actions, named one by one, on one resource of the stack:
// no managed policy, no SAM policy template (DynamoDBCrudPolicy allows
// deletes and scans), no wildcard, no Deny or condition to reason about.
func policyActions(t *testing.T, raw *rawTemplate, function string) map[string][]string {
	t.Helper()
	actions := map[string][]string{}
	policies := raw.Resources[function].Properties.Policies
	require.NotEmpty(t, policies, "%s has no policy", function)
	for _, p := range policies {
		doc, ok := p.(map[string]any)
		require.True(t, ok, "%s: %v is not an inline policy", function, p)
		for k := range doc {
			require.Contains(t, []string{"Version", "Statement"}, k, "%s: %v is not an inline policy", function, p)
		}
		statements, ok := doc["Statement"].([]any)
		require.True(t, ok, "%s: Statement is a list", function)
		for _, s := range statements {
			st, ok := s.(map[string]any)
			require.True(t, ok, "%s: %v", function, s)
			for k := range st {
				require.Contains(t, []string{"Sid", "Effect", "Action", "Resource"}, k, "%s: a statement holds only Effect, Action and Resource", function)
			}
			require.Equal(t, "Allow", st["Effect"], function)
			id, attr := getAtt(st["Resource"])
			require.NotEmpty(t, id, "%s: the resource is one of the stack's, by GetAtt, not %v", function, st["Resource"])
			resource := id + "." + attr
			list, ok := st["Action"].([]any)
			if !ok {
				list = []any{st["Action"]}
			}
			for _, a := range list {
				action, ok := a.(string)
				require.True(t, ok, "%s: %v", function, a)
				require.True(t, strings.HasPrefix(action, "dynamodb:") || strings.HasPrefix(action, "sqs:"), "%s: %s", function, action)
				require.NotContains(t, action, "*", "%s: actions are named one by one", function)
				actions[resource] = append(actions[resource], action)
			}
		}
	}
	for _, list := range actions {
		slices.Sort(list)
	}
	return actions
}
