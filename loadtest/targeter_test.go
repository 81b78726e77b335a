package main

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestTargeterIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	const goroutines, each = 8, 2_000
	p := mustPlan(t, PlanConfig{Campaigns: 3, Users: 10_000, Ads: 5, DupRatio: 0.25, ReadShare: 0.1, Seed: 3})
	ts, err := newTargets(p, "http://127.0.0.1:1", []string{"c0", "c1", "c2"}, "secret")
	require.NoError(t, err)
	tr := ts.targeter()

	got := make([][]vegeta.Target, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				var tgt vegeta.Target
				if err := tr(&tgt); err != nil {
					t.Error(err)
					return
				}
				got[g] = append(got[g], tgt)
			}
		})
	}
	wg.Wait()

	byIndex := map[uint64]vegeta.Target{}
	bodies := map[*byte]bool{}
	for _, ts := range got {
		for _, tgt := range ts {
			i, err := resultIndex(tgt.URL)
			require.NoError(t, err)
			_, dup := byIndex[i]
			require.False(t, dup, "index %d was handed out twice", i)
			byIndex[i] = tgt
			if len(tgt.Body) > 0 {
				require.False(t, bodies[&tgt.Body[0]], "request %d shares a body buffer", i)
				bodies[&tgt.Body[0]] = true
			}
		}
	}
	require.Len(t, byIndex, goroutines*each, "every index from 0 handed out once")

	// Whatever the interleaving, index i got exactly the plan's request i,
	// so the duplicate ratio is the plan's, exactly.
	repeats, imps := 0, 0
	for i := range uint64(goroutines * each) {
		want, err := p.Request(i)
		require.NoError(t, err)
		tgt, ok := byIndex[i]
		require.True(t, ok, "index %d missing", i)
		if want.Read {
			assert.Equal(t, http.MethodGet, tgt.Method)
			assert.Equal(t, "Bearer secret", tgt.Header.Get("Authorization"), "stats reads carry the admin key")
			continue
		}
		imps++
		if want.Repeat {
			repeats++
		}
		assert.Equal(t, http.MethodPost, tgt.Method)
		assert.Empty(t, tgt.Header.Get("Authorization"), "ingest is open; the admin key stays off it")
		var body impressionBody
		require.NoError(t, json.Unmarshal(tgt.Body, &body))
		assert.Equal(t, impressionBody{CampaignID: ts.campaignIDs[want.Campaign], UserID: want.User, AdID: want.Ad}, body)
	}
	assert.Equal(t, int(selected(uint64(imps), p.dupPPM, p.dupPhase)), repeats, "a quarter of %d impressions repeat, to within one", imps)
	assert.InDelta(t, imps/4, repeats, 1)
}

func TestWithoutIndex(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		// A transport error quotes the URL; the index goes.
		{"Error", `Post "http://h/api/v1/impressions?req=123": timeout`, `Post "http://h/api/v1/impressions": timeout`},
		// A status text has no URL and stays.
		{"Status", "503 Service Unavailable", "503 Service Unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, withoutIndex(tc.in))
		})
	}
}
