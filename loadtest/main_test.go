package main

import (
	"bytes"
	"context"
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
