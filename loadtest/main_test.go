package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		// Without a target there is nothing to attack.
		{"NoTarget", nil, "-target must be an http(s) URL"},
		{"NotHTTP", []string{"-target", "ftp://h"}, "-target must be an http(s) URL"},
		// Maximum throughput is bounded by the workers; without a bound
		// vegeta would start goroutines without end.
		{"ClosedModelWithoutWorkers", []string{"-target", "http://127.0.0.1:1", "-rate", "0"}, "needs -max-workers"},
		{"NegativeRate", []string{"-target", "http://127.0.0.1:1", "-rate", "-1"}, "-rate must be 0 or more"},
		{"ZeroDuration", []string{"-target", "http://127.0.0.1:1", "-duration", "0s"}, "must be positive"},
		// The plan checks its own numbers before any campaign is created.
		{"RatioOutOfRange", []string{"-target", "http://127.0.0.1:1", "-dup", "1.5"}, "duplicate ratio"},
		// A repeat after the dedup window rightly counts again, which
		// verification would call a double count.
		{"LongerThanDedupWindow", []string{"-target", "http://127.0.0.1:1", "-duration", "2m", "-dedup-ttl", "1m"}, "inside the dedup window"},
		{"StrayArgument", []string{"-target", "http://127.0.0.1:1", "extra"}, "unexpected arguments"},
		{"UnknownFlag", []string{"-rps", "5"}, "flag provided but not defined"},
		// The batch route takes at most a thousand impressions.
		{"BatchTooLarge", []string{"-target", "http://127.0.0.1:1", "-batch", "1001"}, "-batch must be 0 (off) or 1 to 1000"},
		{"NegativeBatch", []string{"-target", "http://127.0.0.1:1", "-batch", "-1"}, "-batch must be 0 (off) or 1 to 1000"},
		// One route per run.
		{"PixelAndBatch", []string{"-target", "http://127.0.0.1:1", "-pixel", "-batch", "10"}, "pick one"},
		// Items' User-Agents exist only in batches.
		{"ItemUAWithoutBatch", []string{"-target", "http://127.0.0.1:1", "-item-ua"}, "it needs -batch"},
		// The per-ad breakdown's pages hold at most 500 ads.
		{"AdPageTooLarge", []string{"-target", "http://127.0.0.1:1", "-ad-page", "501"}, "-ad-page must be 0"},
		// Only bots would leave nothing to count.
		{"AllBots", []string{"-target", "http://127.0.0.1:1", "-bot-share", "1"}, "bot share"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tc.args, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
			require.ErrorContains(t, err, tc.want)
			assert.True(t, errors.As(err, new(usageError)), "bad flags exit 2, not 1")
		})
	}
}

func TestAdminKeyComesFromFlagOrEnvironment(t *testing.T) {
	t.Parallel()
	env := func(k string) string { return map[string]string{adminKeyEnv: "from-env"}[k] }
	o, err := parseFlags([]string{"-target", "http://127.0.0.1:1"}, env, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "from-env", o.adminKey)
	o, err = parseFlags([]string{"-target", "http://127.0.0.1:1", "-admin-key", "from-flag"}, env, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "from-flag", o.adminKey, "the flag wins over the environment")

	var help bytes.Buffer
	_, err = parseFlags([]string{"-h"}, env, &help)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.NotContains(t, help.String(), "from-env", "help never prints the key")
}

func TestEmitWritesVegetaTargets(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-target", "http://127.0.0.1:1", "-campaign-ids", "a,b", "-emit", "5", "-dup", "0"},
		func(string) string { return "" }, &out, &bytes.Buffer{})
	require.NoError(t, err)
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	require.Len(t, lines, 5)
	assert.Contains(t, string(lines[0]), `"method":"POST","url":"http://127.0.0.1:1/api/v1/impressions?req=0"`)

	var summary bytes.Buffer
	out.Reset()
	err = run(context.Background(), []string{"-target", "http://127.0.0.1:1", "-campaign-ids", "a", "-emit", "3", "-batch", "10", "-dup", "0.2", "-bot-share", "0.1"},
		func(string) string { return "" }, &out, &summary)
	require.NoError(t, err)
	lines = bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	require.Len(t, lines, 3)
	var tgt struct {
		Method, URL string
		Body        []byte
	}
	require.NoError(t, json.Unmarshal(lines[2], &tgt))
	assert.Equal(t, "http://127.0.0.1:1/api/v1/impressions/batch?req=2", tgt.URL)
	var b batchBody
	decodeStrict(t, tgt.Body, &b)
	assert.Len(t, b.Impressions, 10)
	assert.Contains(t, summary.String(), "wrote 3 targets: 24 new keys, 6 repeats, 3 from bots, 0 stats reads")
}

func TestHelpIsNotAnError(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorIs(t, err, flag.ErrHelp)
}

func TestRequestsLimitStopsTheAttack(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{
		"-target", wrongCounter(t, 0), "-rate", "0", "-workers", "2", "-max-workers", "2",
		"-requests", "30", "-duration", "1m", "-campaigns", "1", "-users", "100", "-progress", "0",
	}, func(string) string { return "" }, &out, &bytes.Buffer{})
	require.NoError(t, err, out.String())
	assert.Regexp(t, `Requests\s+\[total, rate, throughput\]\s+30,`, out.String())
	assert.Contains(t, out.String(), "verification passed")
}

func TestVerifyRefusesCampaignsWithImpressions(t *testing.T) {
	t.Parallel()
	// The fake's stats already count one impression before the run.
	err := run(context.Background(), []string{"-target", wrongCounter(t, 1), "-campaign-ids", "c1", "-duration", "1s", "-progress", "0"},
		func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
	require.ErrorContains(t, err, "already has 1 impressions")
}

func TestHarnessFailsOnWrongCounts(t *testing.T) {
	t.Parallel()
	routes := []struct {
		name string
		args []string
	}{
		{"Single", nil},
		{"Batch", []string{"-batch", "10", "-item-ua"}},
		{"Pixel", []string{"-pixel"}},
	}
	cases := []struct {
		name string
		opts fakeOptions
		bots string
		want string // "" passes; otherwise a problem the report names
	}{
		// The control: the fake with honest stats passes.
		{"HonestStatsPass", fakeOptions{}, "0", ""},
		// One impression more than acknowledged: a double count.
		{"ExtraCountFails", fakeOptions{skew: 1}, "0", "stats total is"},
		// One fewer: an acknowledged impression lost.
		{"LostCountFails", fakeOptions{skew: -1}, "0", "stats total is"},
		// Bots filtered, each key once in the filtered stat: passes.
		{"BotsFilteredPass", fakeOptions{}, "0.2", ""},
		// A filtered stat one off what the answers said.
		{"FilteredStatWrongFails", fakeOptions{filteredSkew: 1}, "0.2", "stats filtered is"},
		// Bots counted like viewers: the filter is off.
		{"BotsCountedFails", fakeOptions{noFilter: true}, "0.2", "is the bot filter off?"},
		// A time series that holds one impression more than the stats.
		{"SeriesOffByOneFails", fakeOptions{seriesSkew: 1}, "0", "day points sum to"},
		// The per-ad totals sum right, but one count is on the wrong ad.
		{"CountOnTheWrongAdFails", fakeOptions{adShift: true}, "0.2", "'s total is"},
		// A cursor that hands back the last ad of the page before.
		{"AdRepeatedAcrossPagesFails", fakeOptions{repeatAd: true}, "0", "twice"},
		// One user fewer than the replies counted impressions of, where
		// the service must count exactly.
		{"ReachOneShortFails", fakeOptions{reachSkew: -1}, "0", "unique_users total is"},
		// A frequency a cent off the count over the unique users.
		{"FrequencyOffByACentFails", fakeOptions{freqSkew: 0.01}, "0", "frequency total is"},
	}
	for _, route := range routes {
		for _, tc := range cases {
			t.Run(route.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				var stdout bytes.Buffer
				err := run(context.Background(), append([]string{
					"-target", fakeAPI(t, tc.opts), "-rate", "50", "-duration", "1s", "-campaigns", "2",
					"-users", "1000", "-ads", "4", "-dup", "0.5", "-bot-share", tc.bots, "-reads", "0.1", "-progress", "0",
				}, route.args...), func(string) string { return "" }, &stdout, &bytes.Buffer{})
				if tc.want == "" {
					require.NoError(t, err, stdout.String())
					assert.Contains(t, stdout.String(), "verification passed")
					return
				}
				require.ErrorIs(t, err, errVerification)
				assert.Contains(t, stdout.String(), "verification FAILED")
				assert.Contains(t, stdout.String(), tc.want)
			})
		}
	}
}

// TestImpressionsCarryABrowsersUserAgent: the fake, like the service,
// filters Go's default User-Agent, so a run whose impressions left it on
// would see them filtered and fail.
func TestImpressionsCarryABrowsersUserAgent(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"-pixel"}, {"-batch", "5", "-item-ua"}} {
		var stdout bytes.Buffer
		err := run(context.Background(), append([]string{
			"-target", fakeAPI(t, fakeOptions{}), "-rate", "50", "-duration", "1s", "-campaigns", "1", "-users", "1000", "-progress", "0",
		}, args...), func(string) string { return "" }, &stdout, &bytes.Buffer{})
		require.NoError(t, err, "%v: %s", args, stdout.String())
		assert.Regexp(t, `Impressions\s+\[answered.*\]\s+[1-9]\d*, [\d.]+, [1-9]\d*, \d+, 0, 0, 0\n`, stdout.String(), "%v: nothing filtered", args)
	}
	// The control: with Go's default User-Agent, the fake filters them.
	var stdout bytes.Buffer
	err := run(context.Background(), []string{
		"-target", fakeAPI(t, fakeOptions{}), "-rate", "50", "-duration", "1s", "-campaigns", "1", "-users", "1000", "-progress", "0", "-ua", "Go-http-client/1.1",
	}, func(string) string { return "" }, &stdout, &bytes.Buffer{})
	require.ErrorIs(t, err, errVerification)
	assert.Contains(t, stdout.String(), "carried a browser's User-Agent")
}

// TestVerifyReportsCanBeTurnedOff: against a service without the
// reporting routes, the run fails with a hint, unless -verify-reports=false,
// which checks the stats alone.
func TestVerifyReportsCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	args := []string{"-target", fakeAPI(t, fakeOptions{noReports: true}), "-rate", "50", "-duration", "1s", "-campaigns", "1", "-users", "1000", "-progress", "0"}
	var stdout bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &stdout, &bytes.Buffer{})
	require.ErrorContains(t, err, "-verify-reports=false")
	assert.False(t, errors.Is(err, errVerification), "the reports could not be read: not a verdict on the counts")

	stdout.Reset()
	err = run(context.Background(), append(args, "-verify-reports=false"), func(string) string { return "" }, &stdout, &bytes.Buffer{})
	require.NoError(t, err, stdout.String())
	assert.Contains(t, stdout.String(), "verification passed")
	assert.NotContains(t, stdout.String(), "per-ad breakdown")
}

// TestVerifyReachCanBeTurnedOff: against a service without reach, the
// run fails naming the flag, unless -verify-reach=false, which checks the
// rest.
func TestVerifyReachCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	args := []string{"-target", fakeAPI(t, fakeOptions{noReach: true}), "-rate", "50", "-duration", "1s", "-campaigns", "1", "-users", "1000", "-progress", "0"}
	var stdout bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &stdout, &bytes.Buffer{})
	require.ErrorIs(t, err, errVerification)
	assert.Contains(t, stdout.String(), "-verify-reach=false")

	stdout.Reset()
	err = run(context.Background(), append(args, "-verify-reach=false"), func(string) string { return "" }, &stdout, &bytes.Buffer{})
	require.NoError(t, err, stdout.String())
	assert.Contains(t, stdout.String(), "verification passed")
	assert.NotContains(t, stdout.String(), "unique users")
}

// TestFilteredUsersAddNoReach: a service that counts the users of
// filtered impressions in reach fails. The run has fewer users than
// impressions (100 users by 100 ads), so that reach is below the count
// and the service's bound by the count cannot hide the extra users.
func TestFilteredUsersAddNoReach(t *testing.T) {
	t.Parallel()
	for _, botReach := range []bool{false, true} {
		var stdout bytes.Buffer
		err := run(context.Background(), []string{
			"-target", fakeAPI(t, fakeOptions{botReach: botReach}), "-rate", "0", "-workers", "1", "-max-workers", "1", "-requests", "2",
			"-batch", "100", "-item-ua", "-duration", "1m", "-campaigns", "1", "-users", "100", "-ads", "100", "-dup", "0", "-bot-share", "0.3", "-progress", "0",
		}, func(string) string { return "" }, &stdout, &bytes.Buffer{})
		if !botReach {
			require.NoError(t, err, "the control: %s", stdout.String())
			continue
		}
		require.ErrorIs(t, err, errVerification)
		assert.Contains(t, stdout.String(), "unique_users total is")
	}
}

// TestReachAboveTheExactRangeIsAnEstimate sends 3,000 users to one
// campaign, more than the service counts exactly, two ads each (6,000
// impressions: every slot of 3,000 users by 2 ads), and checks that an
// estimate passes within the tolerance and fails outside it.
func TestReachAboveTheExactRangeIsAnEstimate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		scale float64 // the fake's estimate over the true reach
		extra []string
		want  string // "" passes; otherwise a problem the report names
	}{
		// The control: exact above the range is within any tolerance.
		{"ExactPasses", 1, nil, ""},
		// 3% high and low: within 5%, about 2σ of the sketch.
		{"ThreePercentHighPasses", 1.03, nil, ""},
		{"ThreePercentLowPasses", 0.97, nil, ""},
		// 6% off is beyond 3σ: a broken estimate.
		{"SixPercentHighFails", 1.06, nil, "2850 to 3150 is within 5%"},
		{"SixPercentLowFails", 0.94, nil, "unique_users total is 2820"},
		// ...unless the tolerance is widened for it.
		{"SixPercentWithinWiderTolerance", 1.06, []string{"-reach-tolerance", "0.1"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout bytes.Buffer
			err := run(context.Background(), append([]string{
				"-target", fakeAPI(t, fakeOptions{reachScale: tc.scale}), "-rate", "0", "-workers", "1", "-max-workers", "1", "-requests", "6",
				"-batch", "1000", "-item-ua", "-duration", "1m", "-campaigns", "1", "-users", "3000", "-ads", "2", "-dup", "0", "-progress", "0",
			}, tc.extra...), func(string) string { return "" }, &stdout, &bytes.Buffer{})
			assert.Contains(t, stdout.String(), "3000         0       ", "3,000 users reached, none uncertain")
			if tc.want == "" {
				require.NoError(t, err, stdout.String())
				assert.Contains(t, stdout.String(), "unique users and frequency match")
				return
			}
			require.ErrorIs(t, err, errVerification)
			assert.Contains(t, stdout.String(), tc.want)
		})
	}
}
