// Package config reads the settings that every entry point shares from the
// environment, so that the local server and each Lambda function agree on
// names, defaults and validation.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Store names, the values STORE accepts.
const (
	// StoreMemory keeps everything in the process: exact for one server,
	// per instance on Lambda.
	StoreMemory = "memory"
	// StoreDynamoDB keeps one exact count in a DynamoDB table that every
	// process and Lambda instance shares.
	StoreDynamoDB = "dynamodb"
)

// DefaultCounterShards is DYNAMODB_COUNTER_SHARDS when it is not set. It
// matches the DynamoDB store's own default.
const DefaultCounterShards = 4

// Config holds the shared settings.
type Config struct {
	// Store names the store to use; STORE, default StoreMemory.
	Store string
	// DedupTTL is how long a repeat of the same (campaign, user, ad) is
	// ignored; DEDUP_TTL, a Go duration such as 1h or 90m.
	DedupTTL time.Duration
	// LogLevel is the lowest level logged; LOG_LEVEL, one of debug, info,
	// warn or error, default info.
	LogLevel slog.Level
	// AdminKeys are the active admin API keys; ADMIN_API_KEYS, separated
	// by commas so that a new key can be added before the old one is
	// removed. Empty leaves the admin routes open.
	AdminKeys []string

	// Persistence of the memory store. With DataDir empty it keeps
	// nothing on disk.

	// DataDir is where the memory store keeps its log and snapshots;
	// DATA_DIR, default empty (nothing is kept).
	DataDir string
	// FsyncInterval is how long the log gathers records before one fsync
	// makes them durable; FSYNC_INTERVAL, default 0 (each fsync starts as
	// soon as the previous one ends).
	FsyncInterval time.Duration
	// FsyncBatch is how many waiting records start an fsync at once;
	// FSYNC_BATCH, default 1024.
	FsyncBatch int
	// SnapshotInterval is how often the state is snapshotted and the log
	// behind it dropped; SNAPSHOT_INTERVAL, default 1m.
	SnapshotInterval time.Duration
	// DynamoDBTable is the table of the DynamoDB store; DYNAMODB_TABLE,
	// required when Store is StoreDynamoDB. The AWS SDK reads its own
	// settings, such as AWS_REGION and AWS_ENDPOINT_URL_DYNAMODB.
	DynamoDBTable string
	// CounterShards is over how many items the DynamoDB store spreads each
	// campaign's counters; DYNAMODB_COUNTER_SHARDS, default
	// DefaultCounterShards.
	CounterShards int
}

// Load reads the settings through getenv, which is os.Getenv in production
// and a map lookup in tests. An unset variable takes its default; a set but
// invalid one is an error naming the variable, so a typo never silently
// changes how impressions are counted.
func Load(getenv func(string) string) (Config, error) {
	cfg := Config{
		Store:            StoreMemory,
		DedupTTL:         adcount.DefaultDedupTTL,
		FsyncBatch:       1024,
		SnapshotInterval: time.Minute,
		CounterShards:    DefaultCounterShards,
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := cfg.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return Config{}, fmt.Errorf("config: LOG_LEVEL must be debug, info, warn or error, got %q", v)
		}
	}
	switch v := getenv("STORE"); v {
	case "":
	case StoreMemory, StoreDynamoDB:
		cfg.Store = v
	default:
		return Config{}, fmt.Errorf("config: STORE must be %q or %q, got %q", StoreMemory, StoreDynamoDB, v)
	}
	cfg.DynamoDBTable = getenv("DYNAMODB_TABLE")
	if cfg.Store == StoreDynamoDB && cfg.DynamoDBTable == "" {
		return Config{}, fmt.Errorf("config: DYNAMODB_TABLE is required when STORE=%s", StoreDynamoDB)
	}
	if v := getenv("DYNAMODB_COUNTER_SHARDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("config: DYNAMODB_COUNTER_SHARDS must be a positive whole number, got %q", v)
		}
		cfg.CounterShards = n
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
	if err := loadPersistence(getenv, &cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// loadPersistence reads the memory store's persistence settings.
func loadPersistence(getenv func(string) string, cfg *Config) error {
	cfg.DataDir = getenv("DATA_DIR")
	if v := getenv("FSYNC_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Second {
			return fmt.Errorf("config: FSYNC_INTERVAL must be a Go duration from 0s to 1s such as 2ms, got %q", v)
		}
		cfg.FsyncInterval = d
	}
	if v := getenv("FSYNC_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("config: FSYNC_BATCH must be a positive whole number, got %q", v)
		}
		cfg.FsyncBatch = n
	}
	if v := getenv("SNAPSHOT_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return fmt.Errorf("config: SNAPSHOT_INTERVAL must be a Go duration of at least 1s such as 5m, got %q", v)
		}
		cfg.SnapshotInterval = d
	}
	return nil
}
