package config_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
)

func TestDuration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		value   string
		lo, hi  time.Duration
		want    time.Duration
		wantErr string
	}{
		// Unset takes the default.
		{"Unset", "", time.Nanosecond, config.MaxDuration, 7 * time.Second, ""},
		{"InRange", "2ms", 0, time.Second, 2 * time.Millisecond, ""},
		// The bounds themselves are allowed.
		{"AtLow", "0s", 0, time.Second, 0, ""},
		{"AtHigh", "1s", 0, time.Second, time.Second, ""},
		{"AboveHigh", "2s", 0, time.Second, 0, "from 0s to 1s"},
		{"BelowLow", "500ms", time.Second, config.MaxDuration, 0, "at least 1s"},
		{"NotPositive", "0s", time.Nanosecond, config.MaxDuration, 0, "positive"},
		{"NotADuration", "soon", time.Nanosecond, config.MaxDuration, 0, "X_TIMEOUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Duration(func(string) string { return tc.value }, "X_TIMEOUT", 7*time.Second, tc.lo, tc.hi)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.ErrorContains(t, err, "X_TIMEOUT", "the message names the variable")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestLoadLogLevel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env     string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false}, // the default
		{"debug", slog.LevelDebug, false},
		{"WARN", slog.LevelWarn, false}, // case does not matter
		{"error", slog.LevelError, false},
		{"verbose", 0, true}, // a typo is an error, not a silent default
	}
	for _, tc := range cases {
		cfg, err := config.Load(func(k string) string {
			if k == "LOG_LEVEL" {
				return tc.env
			}
			return ""
		})
		if tc.wantErr {
			assert.ErrorContains(t, err, "LOG_LEVEL", tc.env)
			continue
		}
		require.NoError(t, err, tc.env)
		assert.Equal(t, tc.want, cfg.LogLevel, tc.env)
	}
}

func TestLoadAdminKeys(t *testing.T) {
	t.Parallel()
	const k1, k2 = "k1-0123456789abcdef", "K2+/=~._-ABCDEFGHIJ"
	cases := []struct {
		name    string
		env     string
		want    []string
		wantErr string
	}{
		// Unset: no key; the entry point decides whether that is allowed.
		{"Unset", "", nil, ""},
		{"One", k1, []string{k1}, ""},
		// During a rotation both keys are active; spaces around a key are
		// forgiven.
		{"Rotation", " " + k1 + " , " + k2, []string{k1, k2}, ""},
		// Exactly 16 characters is the shortest key template.yaml allows.
		{"SixteenCharacters", "0123456789abcdef", []string{"0123456789abcdef"}, ""},
		// Set, but no key in it: this once left the admin API open with a
		// warning that the variable was not set.
		{"OnlyAComma", ",", nil, "ADMIN_API_KEYS"},
		{"OnlySpaces", " ", nil, "ADMIN_API_KEYS"},
		{"CommasAndSpaces", " , ", nil, "ADMIN_API_KEYS"},
		// A short key is guessable; the template refuses it, so Load does.
		{"FiveCharacters", "admin", nil, "at least 16 characters"},
		{"FifteenCharacters", "0123456789abcde", nil, "ADMIN_API_KEYS"},
		// An empty item is most often a key that went missing.
		{"TrailingComma", k1 + ",", nil, "key 2 of 2"},
		// Outside the alphabet of generated keys.
		{"Quote", `0123456789abcdef"`, nil, `'"'`},
		{"InnerSpace", "0123456789 abcdef", nil, "ADMIN_API_KEYS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(func(k string) string {
				if k == "ADMIN_API_KEYS" {
					return tc.env
				}
				return ""
			})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				assert.ErrorContains(t, err, "ADMIN_API_KEYS", "the message names the variable")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.AdminKeys)
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		env       map[string]string
		wantTTL   time.Duration
		wantStore string
		wantErr   string
	}{
		// Nothing set: the documented default.
		{"Default", nil, time.Hour, "memory", ""},
		{"Set", map[string]string{"DEDUP_TTL": "90m", "STORE": "memory"}, 90 * time.Minute, "memory", ""},
		// A typo must not silently fall back to the default.
		{"NotADuration", map[string]string{"DEDUP_TTL": "1 hour"}, 0, "", "DEDUP_TTL"},
		{"Zero", map[string]string{"DEDUP_TTL": "0s"}, 0, "", "DEDUP_TTL"},
		{"Negative", map[string]string{"DEDUP_TTL": "-1h"}, 0, "", "DEDUP_TTL"},
		// The documented range is 1ms to 168h for every store; the DynamoDB
		// store once took 200h.
		{"OverAWeek", map[string]string{"DEDUP_TTL": "200h", "STORE": "dynamodb", "DYNAMODB_TABLE": "impressions"}, 0, "", "DEDUP_TTL must be a Go duration from 1ms to 168h0m0s"},
		{"UnderAMillisecond", map[string]string{"DEDUP_TTL": "999us"}, 0, "", "DEDUP_TTL"},
		{"AWeek", map[string]string{"DEDUP_TTL": "168h"}, 168 * time.Hour, "memory", ""},
		// An unknown store must not quietly become the memory store.
		{"UnknownStore", map[string]string{"STORE": "redis"}, 0, "", "STORE"},
		{"DynamoDB", map[string]string{"STORE": "dynamodb", "DYNAMODB_TABLE": "impressions"}, time.Hour, "dynamodb", ""},
		// Without a table the DynamoDB store has nowhere to count.
		{"DynamoDBWithoutTable", map[string]string{"STORE": "dynamodb"}, 0, "", "DYNAMODB_TABLE"},
		// DynamoDB would refuse these names at the first request, as a 500.
		{"TableNameTooShort", map[string]string{"STORE": "dynamodb", "DYNAMODB_TABLE": "ab"}, 0, "", "DYNAMODB_TABLE"},
		{"TableNameWithSlash", map[string]string{"STORE": "dynamodb", "DYNAMODB_TABLE": "prod/impressions"}, 0, "", "DYNAMODB_TABLE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantTTL, cfg.DedupTTL)
			assert.Equal(t, tc.wantStore, cfg.Store)
		})
	}
}

func TestLoadFilterBots(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		value   string
		want    bool
		wantErr string
	}{
		// Unset: known bots are filtered, as the README promises.
		{"Default", "", true, ""},
		{"On", "true", true, ""},
		{"Off", "false", false, ""},
		// A typo must not silently turn filtering either way.
		{"Typo", "no", false, "FILTER_BOTS must be true or false, got \"no\""},
		{"Capitalised", "True", false, "FILTER_BOTS must be true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(func(k string) string {
				if k == "FILTER_BOTS" {
					return tc.value
				}
				return ""
			})
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.FilterBots)
		})
	}
}

func TestLoadPersistence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    config.Config
		wantErr string
	}{
		// Nothing set: nothing is kept on disk, and the documented defaults.
		{"Default", nil, config.Config{FsyncBatch: 1024, SnapshotInterval: time.Minute, MaxCampaigns: 100_000}, ""},
		{"Set", map[string]string{"DATA_DIR": "/var/lib/adcount", "FSYNC_INTERVAL": "2ms", "FSYNC_BATCH": "64", "SNAPSHOT_INTERVAL": "5m"},
			config.Config{DataDir: "/var/lib/adcount", FsyncInterval: 2 * time.Millisecond, FsyncBatch: 64, SnapshotInterval: 5 * time.Minute, MaxCampaigns: 100_000}, ""},
		// Zero is a real choice: fsync as soon as the previous one ends.
		{"ZeroInterval", map[string]string{"FSYNC_INTERVAL": "0s"}, config.Config{FsyncBatch: 1024, SnapshotInterval: time.Minute, MaxCampaigns: 100_000}, ""},
		// Accepting lost data is a decision for one start, spelled out.
		{"AcceptDataLoss", map[string]string{"ACCEPT_DATA_LOSS": "true", "DATA_DIR": "/d"}, config.Config{DataDir: "/d", FsyncBatch: 1024, SnapshotInterval: time.Minute, MaxCampaigns: 100_000, AcceptDataLoss: true}, ""},
		// Settings the chosen store would ignore are refused by name.
		{"AcceptDataLossWithoutDataDir", map[string]string{"ACCEPT_DATA_LOSS": "true"}, config.Config{}, "ACCEPT_DATA_LOSS applies only with DATA_DIR"},
		{"MaxCampaignsWithDynamoDB", map[string]string{"MAX_CAMPAIGNS": "10", "STORE": "dynamodb", "DYNAMODB_TABLE": "impressions"}, config.Config{}, "MAX_CAMPAIGNS applies only to the memory store"},
		{"AcceptDataLossTypo", map[string]string{"ACCEPT_DATA_LOSS": "yes"}, config.Config{}, "ACCEPT_DATA_LOSS must be true or false"},
		// The campaign cap bounds the memory a flood of creates can claim.
		{"MaxCampaigns", map[string]string{"MAX_CAMPAIGNS": "10"}, config.Config{FsyncBatch: 1024, SnapshotInterval: time.Minute, MaxCampaigns: 10}, ""},
		{"MaxCampaignsZero", map[string]string{"MAX_CAMPAIGNS": "0"}, config.Config{}, "MAX_CAMPAIGNS must be a whole number from 1 to 10000000"},
		{"MaxCampaignsTooMany", map[string]string{"MAX_CAMPAIGNS": "10000001"}, config.Config{}, "MAX_CAMPAIGNS"},
		// Waiting seconds per fsync would stall every request; refuse it.
		{"IntervalTooLong", map[string]string{"FSYNC_INTERVAL": "2s"}, config.Config{}, "FSYNC_INTERVAL"},
		{"NegativeInterval", map[string]string{"FSYNC_INTERVAL": "-1ms"}, config.Config{}, "FSYNC_INTERVAL"},
		{"BatchNotANumber", map[string]string{"FSYNC_BATCH": "many"}, config.Config{}, "FSYNC_BATCH"},
		{"BatchZero", map[string]string{"FSYNC_BATCH": "0"}, config.Config{}, "FSYNC_BATCH"},
		// A batch holds its records in memory until they are synced.
		{"BatchTooLarge", map[string]string{"FSYNC_BATCH": "1048577"}, config.Config{}, "FSYNC_BATCH must be a whole number from 1 to 1048576"},
		// Snapshots back to back would do nothing but write.
		{"SnapshotTooOften", map[string]string{"SNAPSHOT_INTERVAL": "10ms"}, config.Config{}, "SNAPSHOT_INTERVAL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want.DataDir, cfg.DataDir)
			assert.Equal(t, tc.want.FsyncInterval, cfg.FsyncInterval)
			assert.Equal(t, tc.want.FsyncBatch, cfg.FsyncBatch)
			assert.Equal(t, tc.want.SnapshotInterval, cfg.SnapshotInterval)
			assert.Equal(t, tc.want.MaxCampaigns, cfg.MaxCampaigns)
			assert.Equal(t, tc.want.AcceptDataLoss, cfg.AcceptDataLoss)
		})
	}
}

func TestLoadDynamoDBSettings(t *testing.T) {
	t.Parallel()
	env := map[string]string{"STORE": "dynamodb", "DYNAMODB_TABLE": "impressions"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, "impressions", cfg.DynamoDBTable)
}
