// Package config reads the settings that every entry point shares from the
// environment, so that the local server and each Lambda function agree on
// names, defaults and validation.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
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

// AdminKeyPattern is the rule for one admin key: at least 16 characters
// from the alphabet of base64, base64url and hex keys, so that a generated
// key always fits and a short, guessable one never does.
const AdminKeyPattern = adminKeyChar + `{16,}`

// adminKeyChar is the admin key alphabet, one character.
const adminKeyChar = `[A-Za-z0-9._~+/=-]`

// AdminKeysPattern is the rule for the whole of ADMIN_API_KEYS: one or more
// keys that each match AdminKeyPattern, separated by commas. template.yaml's
// AdminApiKeys parameter uses it as its AllowedPattern, so CloudFormation
// refuses exactly what Load refuses.
const AdminKeysPattern = "^" + AdminKeyPattern + "(," + AdminKeyPattern + ")*$"

var (
	adminKeyRE     = regexp.MustCompile("^" + AdminKeyPattern + "$")
	adminKeyCharRE = regexp.MustCompile("^" + adminKeyChar + "$")
)

// tableNameRE is DynamoDB's rule for a table name, checked at start so that
// a typo is refused by name rather than by the first request's 500.
var tableNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)

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
	// MaxCampaigns is how many campaigns the memory store holds before a
	// create is refused; MAX_CAMPAIGNS, default
	// memstore.DefaultMaxCampaigns. Zero, in a Config not made by Load,
	// means the store's default.
	MaxCampaigns int
	// AcceptDataLoss lets the memory store start from a data directory
	// whose log lost acknowledged records; ACCEPT_DATA_LOSS, true or
	// false, default false. It is meant for one start after an operator
	// has decided that what remains is better than nothing.
	AcceptDataLoss bool
	// FilterBots makes the API judge each impression's User-Agent against
	// the crawler list and record a known bot's impression as filtered
	// rather than counted; FILTER_BOTS, true or false, default true.
	FilterBots bool
	// DynamoDBAggregator makes the local server, with STORE=dynamodb, read
	// the table's stream and fold it into the counts, as the Lambda
	// aggregator does on AWS; DYNAMODB_AGGREGATOR, true or false, default
	// true. Any number of servers may do so on one table. Turn it off on
	// servers that share a table with another aggregator that keeps up.
	DynamoDBAggregator bool
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
		MaxCampaigns:     memstore.DefaultMaxCampaigns,
		FilterBots:       true,
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
	switch {
	case cfg.Store == StoreDynamoDB && cfg.DynamoDBTable == "":
		return Config{}, fmt.Errorf("config: DYNAMODB_TABLE is required when STORE=%s", StoreDynamoDB)
	case cfg.DynamoDBTable != "" && !tableNameRE.MatchString(cfg.DynamoDBTable):
		return Config{}, fmt.Errorf("config: DYNAMODB_TABLE must be a DynamoDB table name, 3 to 255 characters of A-Z a-z 0-9 _ . -, got %q", cfg.DynamoDBTable)
	}
	var err error
	if cfg.DedupTTL, err = Duration(getenv, "DEDUP_TTL", cfg.DedupTTL, adcount.MinDedupTTL, adcount.MaxDedupTTL); err != nil {
		return Config{}, err
	}
	if cfg.AdminKeys, err = adminKeys(getenv("ADMIN_API_KEYS")); err != nil {
		return Config{}, err
	}
	if cfg.FilterBots, err = Bool(getenv, "FILTER_BOTS", cfg.FilterBots); err != nil {
		return Config{}, err
	}
	if cfg.DynamoDBAggregator, err = Bool(getenv, "DYNAMODB_AGGREGATOR", true); err != nil {
		return Config{}, err
	}
	if err := loadPersistence(getenv, &cfg); err != nil {
		return Config{}, err
	}
	// A setting that the chosen store would ignore is a mistake to report,
	// not to skip: whoever set it expects it to do something.
	switch {
	case cfg.AcceptDataLoss && cfg.DataDir == "":
		return Config{}, errors.New("config: ACCEPT_DATA_LOSS applies only with DATA_DIR, which is not set")
	case cfg.Store == StoreDynamoDB && getenv("MAX_CAMPAIGNS") != "":
		return Config{}, fmt.Errorf("config: MAX_CAMPAIGNS applies only to the memory store, not STORE=%s", StoreDynamoDB)
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
	if cfg.FsyncBatch, err = Int(getenv, "FSYNC_BATCH", cfg.FsyncBatch, 1, MaxFsyncBatch); err != nil {
		return err
	}
	if cfg.MaxCampaigns, err = Int(getenv, "MAX_CAMPAIGNS", cfg.MaxCampaigns, 1, MaxCampaignsLimit); err != nil {
		return err
	}
	if cfg.AcceptDataLoss, err = Bool(getenv, "ACCEPT_DATA_LOSS", false); err != nil {
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

// Bool reads true or false from the variable name, or returns def when it
// is unset. Any other value is an error naming the variable: a typo such as
// "flase" must not silently mean either.
func Bool(getenv func(string) string, name string, def bool) (bool, error) {
	switch v := getenv(name); v {
	case "":
		return def, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, fmt.Errorf("config: %s must be true or false, got %q", name, v)
	}
}

// MaxCampaignsLimit bounds MAX_CAMPAIGNS: ten million campaigns' counters
// take over 100 GB, far past any machine this runs on.
const MaxCampaignsLimit = 10_000_000

// MaxFsyncBatch bounds FSYNC_BATCH. A batch holds its records in memory
// until they are synced, and past a million records a larger one no longer
// saves fsyncs worth having.
const MaxFsyncBatch = 1 << 20

// Int reads the whole number in the variable name, or returns def when it
// is unset. A value that does not parse or lies outside [lo, hi] is an
// error naming the variable and the range.
func Int(getenv func(string) string, name string, def, lo, hi int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("config: %s must be a whole number from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

// adminKeys splits ADMIN_API_KEYS into its keys. Unset (empty) is no key:
// the caller decides whether that means open (the local server) or refusal
// (a Lambda function). A value that is set must hold only keys that match
// AdminKeyPattern: a list of nothing but commas or spaces once opened the
// admin API while looking configured, and a short key is guessable. Spaces
// around a key are forgiven, since shells and .env files add them; an
// empty item is not, because it is most often a key that went missing.
func adminKeys(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var keys []string
	for i, k := range strings.Split(v, ",") {
		k = strings.TrimSpace(k)
		if !adminKeyRE.MatchString(k) {
			return nil, fmt.Errorf("config: ADMIN_API_KEYS must be comma-separated keys of at least 16 characters from A-Z a-z 0-9 . _ ~ + / = -; key %d of %d is %d characters%s",
				i+1, strings.Count(v, ",")+1, len(k), badChar(k))
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// badChar names the first character of k outside the admin key alphabet,
// without echoing the key itself into a log.
func badChar(k string) string {
	for _, r := range k {
		if !adminKeyCharRE.MatchString(string(r)) {
			return fmt.Sprintf(" and holds %q, which is not allowed", r)
		}
	}
	return ""
}
