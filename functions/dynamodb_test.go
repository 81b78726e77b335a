//go:build linux

package functions_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestDynamoDBUnderEmulator runs the functions as Lambda runs them, each
// in its own process with its own DynamoDB client, against one table on the
// in-process DynamoDB server: a campaign created through one admin
// instance is counted by two concurrent ingest instances, aggregated from
// the table's stream by the aggregate function, and read through another
// admin instance, and every count, and the campaign's reach, agrees
// exactly.
func TestDynamoDBUnderEmulator(t *testing.T) {
	t.Parallel()
	gw := apigwtest.NewGateway(httpapi.Routes())
	for _, p := range []lambdaproxy.Payload{lambdaproxy.PayloadV2, lambdaproxy.PayloadV1} {
		t.Run("Payload"+string(p), func(t *testing.T) {
			t.Parallel()
			// The server listens on a loopback port, which the bootstraps,
			// in other processes, reach through the SDK's endpoint setting.
			endpoint := dynamotest.Start(t)
			const table = "impressions"
			_, err := dynamostore.CreateTable(context.Background(), dynamotest.Client(t, endpoint, nil), table)
			require.NoError(t, err)
			env := []string{"STORE=dynamodb", "DYNAMODB_TABLE=" + table, lambdaproxy.PayloadEnv + "=" + string(p)}
			for k, v := range dynamotest.Env(endpoint) {
				env = append(env, k+"="+v)
			}
			// Stats are read through an admin instance other than the one
			// that created the campaign, so the table, not one instance's
			// memory, must carry everything between them.
			// The aggregate function folds the markers that ingest writes
			// into the counts, fed the table's stream as its event source
			// mapping feeds it on AWS.
			mapping := startStreamMapping(t, endpoint, table, startFunction(t, serve.Aggregate, env...))
			campaigns := startFunction(t, serve.Admin, env...)
			trackers := []*function{startFunction(t, serve.Ingest, env...), startFunction(t, serve.Ingest, env...)}
			stats := startFunction(t, serve.Admin, env...)

			// A campaign counts from its start, so it started an hour ago.
			began := time.Now()
			startTime := began.Add(-time.Hour).UTC().Truncate(time.Second)
			start := startTime.Format(time.RFC3339)
			created := campaigns.call(t, gw, p, asAdmin(apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns",
				Body: `{"name":"Launch","start_time":"` + start + `"}`}))
			require.Equal(t, http.StatusCreated, created.Status, created.Body)
			id, _ := created.jsonBody(t)["id"].(string)
			require.NotEmpty(t, id)
			got := campaigns.call(t, gw, p, asAdmin(apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + id}))
			require.Equal(t, http.StatusOK, got.Status, got.Body)

			// readStats reads the stats once the mapping has applied every
			// impression acknowledged so far, and returns them without
			// their as_of.
			readStats := func(t *testing.T) map[string]any {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), storetest.SettleBound)
				defer cancel()
				require.NoError(t, mapping.Settle(ctx))
				r := stats.call(t, gw, p, asAdmin(apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/" + id + "/stats"}))
				require.Equal(t, http.StatusOK, r.Status, r.Body)
				body := r.jsonBody(t)
				delete(body, "as_of")
				return body
			}
			// The second admin instance sees the campaign another process
			// created: the table is shared, not a memory store.
			assert.Equal(t, statsWith(id, 0, 0, 0, 0), readStats(t))

			// Ten distinct (user, ad) pairs, each sent twice to each of the
			// two instances, which run at the same time: forty requests
			// of which exactly ten count.
			type key struct{ user, ad string }
			var keys []key
			for u := range 5 {
				for a := range 2 {
					keys = append(keys, key{fmt.Sprintf("user-%d", u), fmt.Sprintf("ad-%d", a)})
				}
			}
			counted := make([]map[key]int, len(trackers))
			t.Run("Record", func(t *testing.T) {
				for i, f := range trackers {
					counted[i] = map[key]int{}
					t.Run(fmt.Sprintf("Instance%d", i), func(t *testing.T) {
						t.Parallel()
						for range 2 {
							for _, k := range keys {
								r := f.call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions",
									Header: http.Header{"Content-Type": {"application/json"}},
									Body:   fmt.Sprintf(`{"campaign_id":%q,"user_id":%q,"ad_id":%q}`, id, k.user, k.ad)})
								require.Equal(t, http.StatusOK, r.Status, r.Body)
								if r.jsonBody(t)["counted"] == true {
									counted[i][k]++
								}
							}
						}
					})
				}
			})
			for _, k := range keys {
				assert.Equal(t, 1, counted[0][k]+counted[1][k], "%v counts once across both instances", k)
			}

			// Impressions that must change nothing.
			tomorrow := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
			future := campaigns.call(t, gw, p, asAdmin(apigwtest.Request{Method: "POST", Target: "/api/v1/campaigns",
				Body: `{"name":"Next week","start_time":"` + tomorrow + `"}`}))
			require.Equal(t, http.StatusCreated, future.Status, future.Body)
			futureID, _ := future.jsonBody(t)["id"].(string)
			for _, tc := range []struct {
				name, campaign string
				status         int
			}{
				// No such campaign: 404.
				{"UnknownCampaignIs404", "no-such-campaign", http.StatusNotFound},
				// The campaign's start is checked inside the transaction.
				{"NotStartedIs409", futureID, http.StatusConflict},
				// A repeat of a counted impression, much later in the test.
				{"RepeatIsNotCounted", id, http.StatusOK},
			} {
				r := trackers[0].call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions",
					Body: fmt.Sprintf(`{"campaign_id":%q,"user_id":"user-0","ad_id":"ad-0"}`, tc.campaign)})
				assert.Equal(t, tc.status, r.Status, "%s: %s", tc.name, r.Body)
				assert.NotEqual(t, true, r.jsonBody(t)["counted"], tc.name)
			}

			// A batch and the pixel count through the same table: two new
			// keys, a repeat inside the batch, an old key and a crawler's
			// impression in the batch; a new key and a crawler from the
			// pixel. Three more count, and two are filtered.
			const crawler = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
			batch := trackers[1].call(t, gw, p, apigwtest.Request{Method: "POST", Target: "/api/v1/impressions/batch",
				Header: http.Header{"Content-Type": {"application/json"}},
				Body: fmt.Sprintf(`{"impressions":[{"campaign_id":%[1]q,"user_id":"batch-0","ad_id":"ad-0"},{"campaign_id":%[1]q,"user_id":"batch-1","ad_id":"ad-0"},`+
					`{"campaign_id":%[1]q,"user_id":"batch-1","ad_id":"ad-0"},{"campaign_id":%[1]q,"user_id":"user-0","ad_id":"ad-0"},`+
					`{"campaign_id":%[1]q,"user_id":"batch-2","ad_id":"ad-0","user_agent":%[2]q}]}`, id, crawler)})
			require.Equal(t, http.StatusOK, batch.Status, batch.Body)
			assert.Equal(t, map[string]any{"counted": 2.0, "duplicates": 2.0, "filtered": 1.0, "rejected": 0.0}, batch.jsonBody(t)["summary"])
			var outcomes []any
			for _, r := range batch.jsonBody(t)["results"].([]any) {
				outcomes = append(outcomes, r.(map[string]any)["outcome"])
			}
			assert.Equal(t, []any{"counted", "counted", "duplicate", "duplicate", "filtered"}, outcomes)
			for _, px := range []struct{ user, agent, outcome string }{
				{"pixel-0", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "counted"},
				{"pixel-1", crawler, "filtered"},
			} {
				r := trackers[0].call(t, gw, p, apigwtest.Request{Method: "GET",
					Target: "/api/v1/pixel.gif?campaign_id=" + url.QueryEscape(id) + "&user_id=" + px.user + "&ad_id=ad-0",
					Header: http.Header{"User-Agent": {px.agent}}})
				require.Equal(t, http.StatusOK, r.Status, r.Body)
				assert.Equal(t, "image/gif", r.Header.Get("Content-Type"))
				assert.Equal(t, px.outcome, r.Header.Get("X-Impression-Outcome"), px.user)
				assert.True(t, strings.HasPrefix(r.Body, "GIF89a"), "the gateway decodes the binary body: %q", r.Body)
			}

			// 13 impressions by 8 users (user-0 to user-4, batch-0,
			// batch-1, pixel-0): 1.63 each. The repeats and the crawlers
			// add no user.
			want, users := float64(len(keys)+3), 8.0
			assert.Equal(t, statsWith(id, want, 2, users, 1.63), readStats(t), "admin reports exactly what ingest counted, and who")

			// The list, the series and the breakdown, through the admin
			// instance that did not create the campaigns, agree with the
			// stats and with what ingest counted, ad by ad.
			t.Run("Reports", func(t *testing.T) { dynamoReports(t, stats, gw, p, id, began, startTime, users) })

			// A pause, a resume and an end reach both ingest instances
			// within the store's bound; the stats still count exactly
			// what was acknowledged.
			var more int
			t.Run("LifecycleReachesEveryInstance", func(t *testing.T) { more = lifecycleReachesIngest(t, campaigns, trackers, gw, p, id) })
			// Each impression counted then was a new user's.
			want, users = want+float64(more), users+float64(more)
			frequency := adcount.Stats{Total: int64(want), UniqueUsers: adcount.UniqueUsers{Total: int64(users)}}.Frequency().Total
			assert.Equal(t, statsWith(id, want, 2, users, frequency), readStats(t),
				"what counted while a change was on its way, and nothing after it")
		})
	}
}
