package main

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
)

// streamTable creates the store's table with a stream on srv, as the
// deployment declares it.
func streamTable(t *testing.T, srv *dynamotest.Server, name string) {
	t.Helper()
	s := dynamostore.Schema()
	_, err := dynamotest.Client(t, srv.URL, nil).CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String(name), KeySchema: s.KeySchema, AttributeDefinitions: s.AttributeDefinitions, BillingMode: s.BillingMode,
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	require.NoError(t, err)
}

func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestDynamoDBServerReadsTheStream starts the server with STORE=dynamodb:
// with DYNAMODB_AGGREGATOR on, the default, it reads the table's stream
// through the Streams API at the endpoint the SDK's settings name, and
// /metrics shows the aggregator's series; with it off, it does neither.
func TestDynamoDBServerReadsTheStream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		setting string
		reads   bool
	}{
		// Why: the default aggregates, so that one local server with
		// STORE=dynamodb gives fresh stats with nothing else running.
		{"OnByDefault", "", true},
		// Why: servers that leave aggregation to others send the Streams
		// API nothing.
		{"Off", "false", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := dynamotest.StartServer(t)
			streamTable(t, srv, "impressions")
			env := dynamotest.Env(srv.URL)
			env["STORE"], env["DYNAMODB_TABLE"] = "dynamodb", "impressions"
			if tc.setting != "" {
				env["DYNAMODB_AGGREGATOR"] = tc.setting
			}
			base := startServer(t, env, nil)
			metrics := scrapeMetrics(t, base)
			if !tc.reads {
				assert.NotContains(t, metrics, "adcount_aggregator_")
				assert.Zero(t, srv.Usage().Operations["ListStreams"].Requests)
				return
			}
			assert.Contains(t, metrics, "adcount_aggregator_lag_seconds ")
			assert.Contains(t, metrics, "adcount_aggregator_failures_total{stage=")
			// The poller's first round lists the stream's shards.
			require.Eventually(t, func() bool {
				return srv.Usage().Operations["DescribeStream"].Requests > 0
			}, 10*time.Second, 10*time.Millisecond)
		})
	}
}
