package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
)

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
		// An unknown store must not quietly become the memory store.
		{"UnknownStore", map[string]string{"STORE": "redis"}, 0, "", "STORE"},
		{"DynamoDB", map[string]string{"STORE": "dynamodb", "DYNAMODB_TABLE": "impressions"}, time.Hour, "dynamodb", ""},
		// Without a table the DynamoDB store has nowhere to count.
		{"DynamoDBWithoutTable", map[string]string{"STORE": "dynamodb"}, 0, "", "DYNAMODB_TABLE"},
		{"ShardsNotANumber", map[string]string{"DYNAMODB_COUNTER_SHARDS": "many"}, 0, "", "DYNAMODB_COUNTER_SHARDS"},
		{"ZeroShards", map[string]string{"DYNAMODB_COUNTER_SHARDS": "0"}, 0, "", "DYNAMODB_COUNTER_SHARDS"},
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

func TestLoadDynamoDBSettings(t *testing.T) {
	t.Parallel()
	env := map[string]string{"STORE": "dynamodb", "DYNAMODB_TABLE": "impressions", "DYNAMODB_COUNTER_SHARDS": "8"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, "impressions", cfg.DynamoDBTable)
	assert.Equal(t, 8, cfg.CounterShards)

	cfg, err = config.Load(func(string) string { return "" })
	require.NoError(t, err)
	assert.Equal(t, config.DefaultCounterShards, cfg.CounterShards, "the default")
}
