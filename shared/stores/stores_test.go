package stores_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/stores"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	s, err := stores.Open(context.Background(), config.Config{Store: config.StoreMemory, DedupTTL: time.Hour}, noEnv, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.IsType(t, &memstore.Store{}, s)

	_, err = stores.Open(context.Background(), config.Config{Store: "nope", DedupTTL: time.Hour}, noEnv, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "unknown store")
	_, err = stores.Open(context.Background(), config.Config{Store: config.StoreMemory}, noEnv, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "dedup_ttl", "the store's own limits are enforced")
}

func TestOpenWithDataDirPersists(t *testing.T) {
	t.Parallel()
	cfg := config.Config{Store: config.StoreMemory, DedupTTL: time.Hour, DataDir: t.TempDir(), FsyncBatch: 16, SnapshotInterval: time.Minute}
	s, err := stores.Open(context.Background(), cfg, noEnv, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	c, ok := s.(io.Closer)
	require.True(t, ok, "a store with files to close says so")
	_, err = stores.Open(context.Background(), cfg, noEnv, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "in use", "the settings reached the store")
	require.NoError(t, c.Close())
}

// TestOpenDynamoDB opens the DynamoDB store the way every entry point does,
// with the AWS settings in getenv pointing at an in-process server, and
// counts an impression through it. Nothing is read from the process
// environment, so it runs in parallel.
func TestOpenDynamoDB(t *testing.T) {
	t.Parallel()
	getenv := mapEnv(dynamotest.Env(dynamotest.Start(t)))
	ctx := context.Background()
	cfg := config.Config{Store: config.StoreDynamoDB, DynamoDBTable: "impressions", DedupTTL: time.Hour}
	created, err := stores.CreateTable(ctx, cfg, getenv)
	require.NoError(t, err)
	assert.True(t, created)

	s, err := stores.Open(ctx, cfg, getenv, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.IsType(t, &dynamostore.Store{}, s)
	c, err := adcount.NewCampaign("c1", "Launch", time.Now().Add(-time.Minute))
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c))
	counted, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"})
	require.NoError(t, err)
	assert.Equal(t, adcount.Counted, counted)
	p, ok := s.(adcount.Pinger)
	require.True(t, ok, "the DynamoDB store has a readiness check")
	assert.NoError(t, p.Ping(ctx))

	_, err = stores.Open(ctx, config.Config{Store: config.StoreDynamoDB, DynamoDBTable: "impressions", DedupTTL: 0}, getenv, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "dedup", "the store's own limits are enforced")
	_, err = stores.CreateTable(ctx, config.Config{Store: config.StoreDynamoDB}, getenv)
	assert.ErrorContains(t, err, "DYNAMODB_TABLE")
}

// TestOpenAppliesTheCampaignLimit checks that MAX_CAMPAIGNS reaches the
// memory store, with and without a data directory.
func TestOpenAppliesTheCampaignLimit(t *testing.T) {
	t.Parallel()
	for name, dir := range map[string]string{"InMemory": "", "WithDataDir": t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Config{Store: config.StoreMemory, DedupTTL: time.Hour, DataDir: dir, FsyncBatch: 1, SnapshotInterval: time.Minute, MaxCampaigns: 1}
			s, err := stores.Open(context.Background(), cfg, noEnv, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			if c, ok := s.(io.Closer); ok {
				t.Cleanup(func() { assert.NoError(t, c.Close()) })
			}
			for i, want := range []error{nil, adcount.ErrLimit} {
				c, err := adcount.NewCampaign(fmt.Sprint("c", i), "n", time.Now())
				require.NoError(t, err)
				err = s.CreateCampaign(context.Background(), c)
				if want == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, want)
				}
			}
		})
	}
}

// TestAWSSettingsComeFromGetenv puts a proxy that notes each request's
// signature in front of an in-process server, and checks that the region,
// credentials and endpoint the client uses are the ones in getenv, under
// each name the SDK documents for them.
func TestAWSSettingsComeFromGetenv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  func(proxy string) map[string]string
		// region and keyID are what the request's signature must name;
		// token, if set, is the session token it must carry.
		region, keyID, token string
	}{
		// The names the README gives.
		{"ServiceEndpoint", func(proxy string) map[string]string {
			return map[string]string{"AWS_REGION": "eu-west-3", "AWS_ENDPOINT_URL_DYNAMODB": proxy,
				"AWS_ACCESS_KEY_ID": "getenv-key", "AWS_SECRET_ACCESS_KEY": "s"}
		}, "eu-west-3", "getenv-key", ""},
		// The older names, and temporary credentials as Lambda gives a
		// function its role's.
		{"GeneralEndpointAndDefaultRegion", func(proxy string) map[string]string {
			return map[string]string{"AWS_DEFAULT_REGION": "ap-south-2", "AWS_ENDPOINT_URL": proxy,
				"AWS_ACCESS_KEY_ID": "temporary-key", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "session-token"}
		}, "ap-south-2", "temporary-key", "session-token"},
		// The DynamoDB endpoint wins over the general one, and
		// AWS_REGION over AWS_DEFAULT_REGION.
		{"SpecificNamesWin", func(proxy string) map[string]string {
			return map[string]string{"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-central-1",
				"AWS_ENDPOINT_URL_DYNAMODB": proxy, "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
				"AWS_ACCESS_KEY_ID": "getenv-key", "AWS_SECRET_ACCESS_KEY": "s"}
		}, "us-west-2", "getenv-key", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy, seen := signatureProxy(t, dynamotest.Start(t))
			cfg := config.Config{Store: config.StoreDynamoDB, DynamoDBTable: "impressions", DedupTTL: time.Hour}
			_, err := stores.CreateTable(context.Background(), cfg, mapEnv(tc.env(proxy)))
			require.NoError(t, err, "the client reached the endpoint in getenv")
			headers := seen()
			require.NotEmpty(t, headers)
			for _, h := range headers {
				assert.Contains(t, h.Get("Authorization"), "Credential="+tc.keyID+"/")
				assert.Contains(t, h.Get("Authorization"), "/"+tc.region+"/dynamodb/aws4_request")
				assert.Equal(t, tc.token, h.Get("X-Amz-Security-Token"))
			}
		})
	}
}

// noEnv is an empty environment, for the stores that read none of it.
func noEnv(string) string { return "" }

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// signatureProxy forwards requests to the server at target and returns its
// own URL and a function that lists the headers of the requests so far.
func signatureProxy(t *testing.T, target string) (string, func() []http.Header) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	var (
		mu      sync.Mutex
		headers []http.Header
	)
	next := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers = append(headers, r.Header.Clone())
		mu.Unlock()
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []http.Header {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(headers)
	}
}

// TestStreamsEndpointComesFromGetenv checks that the Streams client, and
// the poller built on it, go to the endpoint getenv names under the SDK's
// names for it, signed for the region in getenv.
func TestStreamsEndpointComesFromGetenv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  func(proxy string) map[string]string
	}{
		// The name the SDK gives the Streams API's own endpoint.
		{"ServiceEndpoint", func(proxy string) map[string]string {
			return map[string]string{"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": proxy, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1"}
		}},
		// The general endpoint, as for a server of both APIs on one port.
		{"GeneralEndpoint", func(proxy string) map[string]string {
			return map[string]string{"AWS_ENDPOINT_URL": proxy}
		}},
		// The Streams endpoint wins over the general one.
		{"SpecificNameWins", func(proxy string) map[string]string {
			return map[string]string{"AWS_ENDPOINT_URL_DYNAMODB_STREAMS": proxy, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy, seen := signatureProxy(t, dynamotest.Start(t))
			env := tc.env(proxy)
			env["AWS_REGION"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "eu-west-3", "getenv-key", "s"
			cfg := config.Config{Store: config.StoreDynamoDB, DynamoDBTable: "impressions", DedupTTL: time.Hour}

			p, err := stores.OpenPoller(context.Background(), cfg, mapEnv(env))
			require.NoError(t, err)
			_, err = p.Poll(context.Background())
			require.ErrorContains(t, err, "has no stream", "the poller asked the server in getenv")
			headers := seen()
			require.NotEmpty(t, headers)
			for _, h := range headers {
				assert.Equal(t, "DynamoDBStreams_20120810.ListStreams", h.Get("X-Amz-Target"))
				assert.Contains(t, h.Get("Authorization"), "Credential=getenv-key/")
				assert.Contains(t, h.Get("Authorization"), "/eu-west-3/dynamodb/aws4_request")
			}
		})
	}

	_, err := stores.OpenPoller(context.Background(), config.Config{Store: config.StoreDynamoDB}, noEnv)
	assert.ErrorContains(t, err, "DYNAMODB_TABLE")
}
