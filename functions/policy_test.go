package functions_test

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/httpapi"
)

// actionRecorder is a dynamostore.Client over a real one that notes the IAM
// action each call needs. IAM has no action for a transaction as a whole:
// it authorises each of its actions as the single-item operation it is.
type actionRecorder struct {
	next    dynamostore.Client
	mu      sync.Mutex
	actions map[string]bool
}

var _ dynamostore.Client = (*actionRecorder)(nil)

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

func (r *actionRecorder) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	r.note("PutItem")
	return r.next.PutItem(ctx, in, opts...)
}

func (r *actionRecorder) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	r.note("Query")
	return r.next.Query(ctx, in, opts...)
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
// started. Each function's policy must allow exactly those actions, on the
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
	db := dynamotest.Client(t, dynamotest.Start(t), nil)
	const tableName = "impressions"
	_, err := dynamostore.CreateTable(ctx, db, tableName)
	require.NoError(t, err)
	seed, err := dynamostore.New(db, tableName)
	require.NoError(t, err)
	for id, start := range map[string]time.Time{"live": time.Now().Add(-time.Hour), "future": time.Now().Add(24 * time.Hour)} {
		c, err := adcount.NewCampaign(id, id, start)
		require.NoError(t, err)
		require.NoError(t, seed.CreateCampaign(ctx, c))
	}

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
		},
		httpapi.RoutePreflightImpression: {
			{"OPTIONS", "/api/v1/impressions", "", http.StatusNoContent},
		},
		httpapi.RouteRecordBatch: {
			// Counted, a repeat inside the batch, unknown, not started and
			// a bot's impression, filtered: every store call a batch makes.
			{"POST", "/api/v1/impressions/batch", `{"impressions":[` +
				`{"campaign_id":"live","user_id":"b","ad_id":"a"},{"campaign_id":"live","user_id":"b","ad_id":"a"},` +
				`{"campaign_id":"missing","user_id":"u","ad_id":"a"},{"campaign_id":"future","user_id":"u","ad_id":"a"},` +
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
	}

	for fn, fnRoutes := range routes {
		t.Run(fn, func(t *testing.T) {
			rec := &actionRecorder{next: db, actions: map[string]bool{}}
			store, err := dynamostore.New(rec, tableName)
			require.NoError(t, err)
			h := httpapi.NewHandler(store,
				httpapi.WithLogger(slog.New(slog.DiscardHandler)),
				httpapi.WithBotFilter(func(ua string) bool { return ua == testBot }),
				httpapi.WithIDGenerator(func() string { return "fixed-" + fn }))
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
			assert.Equal(t, rec.recorded(), policyActions(t, raw, fn, table),
				"%s's policy must allow exactly the actions its routes call", fn)
		})
	}
}

// policyActions returns the sorted actions that function's policies allow,
// and fails unless every policy is an inline statement that allows
// DynamoDB actions, named one by one, on the table and nothing else: no
// managed policy, no SAM policy template (DynamoDBCrudPolicy allows
// deletes and scans), no wildcard, no Deny or condition to reason about.
func policyActions(t *testing.T, raw *rawTemplate, function, table string) []string {
	t.Helper()
	var actions []string
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
			require.Equal(t, table, arnOf(st["Resource"]),
				"%s: the resource is the table itself, not its indexes or streams or any other table", function)
			list, ok := st["Action"].([]any)
			if !ok {
				list = []any{st["Action"]}
			}
			for _, a := range list {
				action, ok := a.(string)
				require.True(t, ok, "%s: %v", function, a)
				require.True(t, strings.HasPrefix(action, "dynamodb:"), "%s: %s", function, action)
				require.NotContains(t, action, "*", "%s: actions are named one by one", function)
				actions = append(actions, action)
			}
		}
	}
	slices.Sort(actions)
	return actions
}

// arnOf returns the logical ID whose ARN v is, written as GetAtt in its
// short (!GetAtt Table.Arn) or long form, or "" if v is anything else.
func arnOf(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return ""
	}
	switch att := m["Fn::GetAtt"].(type) {
	case string:
		if id, ok := strings.CutSuffix(att, ".Arn"); ok {
			return id
		}
	case []any:
		if len(att) == 2 && att[1] == "Arn" {
			id, _ := att[0].(string)
			return id
		}
	}
	return ""
}
