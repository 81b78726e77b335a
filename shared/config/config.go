// Package config reads the settings that every entry point shares from the
// environment, so that the local server and each Lambda function agree on
// names, defaults and validation.
package config

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/memstore/wal"
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
		FsyncBatch:       wal.DefaultFsyncBatch,
		SnapshotInterval: memstore.DefaultSnapshotInterval,
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
	var err error
	if cfg.CounterShards, err = positiveInt(getenv, "DYNAMODB_COUNTER_SHARDS", cfg.CounterShards); err != nil {
		return Config{}, err
	}
	if cfg.DedupTTL, err = Duration(getenv, "DEDUP_TTL", cfg.DedupTTL, adcount.MinDedupTTL, adcount.MaxDedupTTL); err != nil {
		return Config{}, err
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
	var err error
	if cfg.FsyncInterval, err = Duration(getenv, "FSYNC_INTERVAL", cfg.FsyncInterval, 0, time.Second); err != nil {
		return err
	}
	if cfg.FsyncBatch, err = positiveInt(getenv, "FSYNC_BATCH", cfg.FsyncBatch); err != nil {
		return err
	}
	cfg.SnapshotInterval, err = Duration(getenv, "SNAPSHOT_INTERVAL", cfg.SnapshotInterval, time.Second, MaxDuration)
	return err
}

// MaxDuration is the longest time.Duration, for a Duration with no upper
// bound.
const MaxDuration = time.Duration(math.MaxInt64)

// Duration reads the Go duration in the variable name, or returns def when
// it is unset. A value that does not parse or lies outside [lo, hi] is an
// error naming the variable. Entry points use it for their own settings
// too, so every duration setting is read and refused the same way.
func Duration(getenv func(string) string, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err == nil && d >= lo && d <= hi {
		return d, nil
	}
	switch {
	case hi != MaxDuration:
		return 0, fmt.Errorf("config: %s must be a Go duration from %v to %v, got %q", name, lo, hi, v)
	case lo <= time.Nanosecond:
		return 0, fmt.Errorf("config: %s must be a positive Go duration such as 10s or 1h, got %q", name, v)
	default:
		return 0, fmt.Errorf("config: %s must be a Go duration of at least %v, got %q", name, lo, v)
	}
}

// positiveInt reads the whole number in the variable name, or returns def
// when it is unset.
func positiveInt(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("config: %s must be a positive whole number, got %q", name, v)
	}
	return n, nil
}
