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
		name           string
		dup, read, bot float64
		perRequest     int
		seed           uint64
	}{
		// No repeats at all: every impression is a new key.
		{"NoDuplicates", 0, 0, 0, 1, 1},
		// A ratio whose multiples are integers every 5 requests.
		{"OneInFive", 0.2, 0, 0, 1, 2},
		// A ratio with no exact decimal form: within one in every prefix.
		{"OneThird", 1.0 / 3, 0, 0, 1, 3},
		// The duplicate storm: nearly every impression repeats.
		{"Storm", 0.99, 0, 0, 1, 4},
		// Reads mixed in must not disturb the duplicate ratio among
		// impressions, and must be exact themselves.
		{"WithReads", 0.3, 0.1, 0, 1, 5},
		// A different seed moves the phase, not the counts.
		{"OtherSeed", 0.3, 0.1, 0, 1, 99},
		// Bots are a share of impressions, exact on their own, and leave
		// the other ratios alone.
		{"WithBots", 0.2, 0.05, 0.1, 1, 6},
		// Batches: the ratios hold over impressions and requests alike,
		// whatever the batch size.
		{"Batches", 0.2, 0.1, 0.1, 7, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustPlan(t, PlanConfig{Campaigns: 3, Users: 1000, Ads: 20, PerRequest: tc.perRequest, DupRatio: tc.dup, ReadShare: tc.read, BotShare: tc.bot, Seed: tc.seed})
			var reqs, reads, imps, repeats, bots float64
			for i := range uint64(20_000 / tc.perRequest) {
				r := p.Request(i)
				reqs++
				if r.Read {
					reads++
					require.Less(t, math.Abs(reads-reqs*tc.read), 1.0, "reads after %v requests", reqs)
					continue
				}
				require.Equal(t, tc.perRequest, r.Count)
				for k := range uint64(r.Count) {
					im, err := p.Impression(r.First + k)
					require.NoError(t, err)
					imps++
					if im.Repeat {
						repeats++
					}
					if im.Bot {
						bots++
					}
					require.Less(t, math.Abs(repeats-imps*tc.dup), 1.0, "repeats after %v impressions", imps)
					require.Less(t, math.Abs(bots-imps*tc.bot), 1.0, "bots after %v impressions", imps)
				}
				require.Less(t, math.Abs(reads-reqs*tc.read), 1.0, "reads after %v requests", reqs)
			}
			// Where the expected count is a whole number it is met exactly.
			if whole := imps * tc.dup; whole == math.Trunc(whole) {
				assert.Equal(t, whole, repeats)
			}
		})
	}
}

func TestPlanRequestsTileTheImpressions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		perRequest int
		read       float64
	}{
		// One per request: the impression ordinal counts the impression
		// requests.
		{"Single", 1, 0.1},
		// A batch takes the next PerRequest ordinals, reads or not between.
		{"Batch", 100, 0.1},
		// The largest batch the API takes, without reads.
		{"MaxBatch", maxBatch, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustPlan(t, PlanConfig{Campaigns: 2, Users: 1_000_000, Ads: 1, PerRequest: tc.perRequest, DupRatio: 0.2, ReadShare: tc.read, Seed: 11})
			next := uint64(0)
			for i := range uint64(500) {
				r := p.Request(i)
				if r.Read {
					continue
				}
				require.Equal(t, next, r.First, "request %d starts where the one before ended", i)
				next += uint64(r.Count)
			}
		})
	}
	t.Run("SameImpressionsWhateverTheBatch", func(t *testing.T) {
		t.Parallel()
		cfg := PlanConfig{Campaigns: 3, Users: 100, Ads: 3, DupRatio: 0.5, BotShare: 0.2, Seed: 4}
		one := mustPlan(t, cfg)
		cfg.PerRequest = 10
		ten := mustPlan(t, cfg)
		for w := range uint64(300) {
			a, err := one.Impression(w)
			require.NoError(t, err)
			b, err := ten.Impression(w)
			require.NoError(t, err)
			require.Equal(t, a, b)
		}
	})
}

func TestPlanKeys(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, PlanConfig{Campaigns: 4, Users: 50, Ads: 7, DupRatio: 0.4, ReadShare: 0.05, BotShare: 0.1, Seed: 42})
	firstSeen := map[uint64]tuple{}
	names := map[tuple]uint64{}
	for i := range uint64(2_000) {
		r := p.Request(i)
		if r.Read {
			require.GreaterOrEqual(t, r.Campaign, 0)
			require.Less(t, r.Campaign, 4)
			continue
		}
		im, err := p.Impression(r.First)
		require.NoError(t, err)
		name := tuple{campaign: im.Campaign, user: im.UserID(), ad: im.AdID()}
		seen, ok := firstSeen[im.Key]
		if im.Repeat {
			require.True(t, ok, "request %d repeats key %d, which no earlier request carried", i, im.Key)
			require.Equal(t, seen, name, "a repeat carries the same campaign, user and ad")
			continue
		}
		require.False(t, ok, "request %d is new but key %d was sent before", i, im.Key)
		owner, dup := names[name]
		require.False(t, dup, "new keys %d and %d map to the same %v", owner, im.Key, name)
		firstSeen[im.Key] = name
		names[name] = im.Key
	}

	t.Run("FirstImpressionIsNew", func(t *testing.T) {
		for seed := range uint64(50) {
			p := mustPlan(t, PlanConfig{Campaigns: 1, Users: 10, Ads: 1, DupRatio: 0.999, Seed: seed})
			im, err := p.Impression(0)
			require.NoError(t, err)
			assert.False(t, im.Repeat, "seed %d", seed)
		}
	})
	t.Run("SameSeedSameTraffic", func(t *testing.T) {
		cfg := PlanConfig{Campaigns: 2, Users: 100, Ads: 3, DupRatio: 0.5, ReadShare: 0.2, BotShare: 0.3, Seed: 7}
		a, b := mustPlan(t, cfg), mustPlan(t, cfg)
		cfg.Seed = 8
		c := mustPlan(t, cfg)
		differs := false
		for i := range uint64(500) {
			require.Equal(t, a.Request(i), b.Request(i))
			ia, _ := a.Impression(i)
			ib, _ := b.Impression(i)
			ic, _ := c.Impression(i)
			require.Equal(t, ia, ib)
			differs = differs || ia != ic || a.Request(i) != c.Request(i)
		}
		assert.True(t, differs, "another seed sends other traffic")
	})
	t.Run("KeySpaceExhausted", func(t *testing.T) {
		// 2 campaigns of 3 users by 2 ads hold 12 distinct keys.
		p := mustPlan(t, PlanConfig{Campaigns: 2, Users: 3, Ads: 2, Seed: 1})
		for w := range uint64(12) {
			_, err := p.Impression(w)
			require.NoError(t, err)
		}
		_, err := p.Impression(12)
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
		// Only bots would leave nothing to count.
		{"AllBots", PlanConfig{Campaigns: 1, Users: 1, Ads: 1, BotShare: 1}, "bot share"},
		{"NegativeBatch", PlanConfig{Campaigns: 1, Users: 1, Ads: 1, PerRequest: -1}, "impressions per request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewPlan(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
