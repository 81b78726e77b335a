package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/botfilter"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
)

// markStore is a memory store that remembers whether each impression it
// was given came marked Filtered, which is the handler's whole part in
// filtering: the store does the rest.
type markStore struct {
	adcount.Store
	mu     sync.Mutex
	marked map[string]bool // by user ID
}

func (s *markStore) RecordImpression(ctx context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	s.mu.Lock()
	s.marked[imp.UserID] = imp.Filtered
	s.mu.Unlock()
	return s.Store.RecordImpression(ctx, imp)
}

// TestFilterBotsSetting: with FILTER_BOTS unset or true the server judges
// User-Agents by the crawler list (curl's, Go's and Googlebot's are bots;
// a browser's and the Go client's are not); with false it judges none.
func TestFilterBotsSetting(t *testing.T) {
	t.Parallel()
	userAgents := map[string]bool{
		"curl/8.5.0":                true,
		"Go-http-client/1.1":        true,
		apiclient.FilteredUserAgent: true,
		browserUA:                   false,
		apiclient.DefaultUserAgent:  false,
	}
	for _, setting := range []string{"", "true", "false"} {
		t.Run("FILTER_BOTS="+setting, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(func(k string) string {
				if k == "FILTER_BOTS" {
					return setting
				}
				return ""
			})
			require.NoError(t, err)
			isBot, err := botfilter.Judge(cfg.FilterBots)
			require.NoError(t, err)
			mem, err := memstore.New()
			require.NoError(t, err)
			c, err := adcount.NewCampaign("c", "c", time.Now().Add(-time.Minute))
			require.NoError(t, err)
			require.NoError(t, mem.CreateCampaign(context.Background(), c))
			store := &markStore{Store: mem, marked: map[string]bool{}}
			srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithBotFilter(isBot), httpapi.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))))
			t.Cleanup(srv.Close)
			for ua := range userAgents {
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/impressions", strings.NewReader(`{"campaign_id":"c","user_id":"`+ua+`","ad_id":"a"}`))
				require.NoError(t, err)
				req.Header.Set("User-Agent", ua)
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				require.Equal(t, http.StatusOK, resp.StatusCode, ua)
			}
			for ua, bot := range userAgents {
				assert.Equal(t, bot && setting != "false", store.marked[ua], "%q", ua)
			}
		})
	}
}
