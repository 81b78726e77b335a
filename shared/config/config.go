// Package config reads the settings that every entry point shares from the
// environment, so that the local server and each Lambda function agree on
// names, defaults and validation.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Store names, the values STORE accepts.
const (
	// StoreMemory keeps everything in the process: exact for one server,
	// per instance on Lambda.
	StoreMemory = "memory"
)

// Config holds the shared settings.
type Config struct {
	// Store names the store to use; STORE, default StoreMemory.
	Store string
	// DedupTTL is how long a repeat of the same (campaign, user, ad) is
	// ignored; DEDUP_TTL, a Go duration such as 1h or 90m.
	DedupTTL time.Duration
	// AdminKeys are the active admin API keys; ADMIN_API_KEYS, separated
	// by commas so that a new key can be added before the old one is
	// removed. Empty leaves the admin routes open.
	AdminKeys []string
}

// Load reads the settings through getenv, which is os.Getenv in production
// and a map lookup in tests. An unset variable takes its default; a set but
// invalid one is an error naming the variable, so a typo never silently
// changes how impressions are counted.
func Load(getenv func(string) string) (Config, error) {
	cfg := Config{Store: StoreMemory, DedupTTL: adcount.DefaultDedupTTL}
	switch v := getenv("STORE"); v {
	case "":
	case StoreMemory:
		cfg.Store = v
	default:
		return Config{}, fmt.Errorf("config: STORE must be %q, got %q", StoreMemory, v)
	}
	if v := getenv("DEDUP_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("config: DEDUP_TTL must be a positive Go duration such as 1h or 30m, got %q", v)
		}
		cfg.DedupTTL = d
	}
	for _, k := range strings.Split(getenv("ADMIN_API_KEYS"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			cfg.AdminKeys = append(cfg.AdminKeys, k)
		}
	}
	return cfg, nil
}
