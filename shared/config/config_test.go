package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
)

func TestLoadAdminKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  string
		want []string
	}{
		{"Unset", "", nil},
		{"One", "k1", []string{"k1"}},
		// During a rotation both keys are active; spaces and empty items
		// from a trailing comma are dropped.
		{"Rotation", " k1 , k2,", []string{"k1", "k2"}},
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
		// An unknown store must not quietly become the memory store.
		{"UnknownStore", map[string]string{"STORE": "redis"}, 0, "", "STORE"},
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
