package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type tuple struct {
	campaign int
	user, ad string
}

func mustPlan(t *testing.T, cfg PlanConfig) *Plan {
	t.Helper()
	p, err := NewPlan(cfg)
	require.NoError(t, err)
	return p
}

func TestPlanRatiosAreExactInEveryPrefix(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		dup, read float64
		seed      uint64
	}{
		// No repeats at all: every impression is a new key.
		{"NoDuplicates", 0, 0, 1},
		// A ratio whose multiples are integers every 5 requests.
		{"OneInFive", 0.2, 0, 2},
		// A ratio with no exact decimal form: within one in every prefix.
		{"OneThird", 1.0 / 3, 0, 3},
		// The duplicate storm: nearly every impression repeats.
		{"Storm", 0.99, 0, 4},
		// Reads mixed in must not disturb the duplicate ratio among
		// impressions, and must be exact themselves.
		{"WithReads", 0.3, 0.1, 5},
		// A different seed moves the phase, not the counts.
		{"OtherSeed", 0.3, 0.1, 99},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustPlan(t, PlanConfig{Campaigns: 3, Users: 1000, Ads: 20, DupRatio: tc.dup, ReadShare: tc.read, Seed: tc.seed})
			var reqs, reads, imps, repeats float64
			for i := range uint64(20_000) {
				r, err := p.Request(i)
				require.NoError(t, err)
				reqs++
				if r.Read {
					reads++
				} else {
					imps++
					if r.Repeat {
						repeats++
					}
				}
				require.Less(t, math.Abs(reads-reqs*tc.read), 1.0, "reads after %v requests", reqs)
				require.Less(t, math.Abs(repeats-imps*tc.dup), 1.0, "repeats after %v impressions", imps)
			}
			// Where the expected count is a whole number it is met exactly.
			if whole := imps * tc.dup; whole == math.Trunc(whole) {
				assert.Equal(t, whole, repeats)
			}
		})
	}
}

func TestPlanKeys(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, PlanConfig{Campaigns: 4, Users: 50, Ads: 7, DupRatio: 0.4, ReadShare: 0.05, Seed: 42})
	firstSeen := map[uint64]tuple{}
	names := map[tuple]uint64{}
	for i := range uint64(2_000) {
		r, err := p.Request(i)
		require.NoError(t, err)
		if r.Read {
			require.GreaterOrEqual(t, r.Campaign, 0)
			require.Less(t, r.Campaign, 4)
			continue
		}
		name := tuple{campaign: r.Campaign, user: r.User, ad: r.Ad}
		seen, ok := firstSeen[r.Key]
		if r.Repeat {
			require.True(t, ok, "request %d repeats key %d, which no earlier request carried", i, r.Key)
			require.Equal(t, seen, name, "a repeat carries the same campaign, user and ad")
			continue
		}
		require.False(t, ok, "request %d is new but key %d was sent before", i, r.Key)
		owner, dup := names[name]
		require.False(t, dup, "new keys %d and %d map to the same %v", owner, r.Key, name)
		firstSeen[r.Key] = name
		names[name] = r.Key
	}

	t.Run("FirstImpressionIsNew", func(t *testing.T) {
		for seed := range uint64(50) {
			p := mustPlan(t, PlanConfig{Campaigns: 1, Users: 10, Ads: 1, DupRatio: 0.999, Seed: seed})
			r, err := p.Request(0)
			require.NoError(t, err)
			assert.False(t, r.Repeat, "seed %d", seed)
		}
	})
	t.Run("SameSeedSameTraffic", func(t *testing.T) {
		cfg := PlanConfig{Campaigns: 2, Users: 100, Ads: 3, DupRatio: 0.5, ReadShare: 0.2, Seed: 7}
		a, b := mustPlan(t, cfg), mustPlan(t, cfg)
		cfg.Seed = 8
		c := mustPlan(t, cfg)
		differs := false
		for i := range uint64(500) {
			ra, _ := a.Request(i)
			rb, _ := b.Request(i)
			rc, _ := c.Request(i)
			require.Equal(t, ra, rb)
			differs = differs || ra != rc
		}
		assert.True(t, differs, "another seed sends other traffic")
	})
	t.Run("KeySpaceExhausted", func(t *testing.T) {
		// 2 campaigns of 3 users by 2 ads hold 12 distinct keys.
		p := mustPlan(t, PlanConfig{Campaigns: 2, Users: 3, Ads: 2, Seed: 1})
		for i := range uint64(12) {
			_, err := p.Request(i)
			require.NoError(t, err)
		}
		_, err := p.Request(12)
		require.ErrorContains(t, err, "raise -users or -ads")
	})
}

func TestNewPlanRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  PlanConfig
		want string
	}{
		// Every impression needs a campaign.
		{"NoCampaigns", PlanConfig{Campaigns: 0, Users: 1, Ads: 1}, "campaigns"},
		// An empty key space cannot hold one key.
		{"NoUsers", PlanConfig{Campaigns: 1, Users: 0, Ads: 1}, "users and ads"},
		// Only repeats would leave nothing to repeat.
		{"AllDuplicates", PlanConfig{Campaigns: 1, Users: 1, Ads: 1, DupRatio: 1}, "duplicate ratio"},
		{"NegativeDuplicates", PlanConfig{Campaigns: 1, Users: 1, Ads: 1, DupRatio: -0.1}, "duplicate ratio"},
		// Only reads would send no impression to verify.
		{"AllReads", PlanConfig{Campaigns: 1, Users: 1, Ads: 1, ReadShare: 1}, "read share"},
		{"NaNReads", PlanConfig{Campaigns: 1, Users: 1, Ads: 1, ReadShare: math.NaN()}, "read share"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewPlan(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
