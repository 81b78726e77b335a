package config

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Setting describes one environment variable that configures the service.
type Setting struct {
	// Name is the environment variable.
	Name string
	// Default is what an unset variable means, written as a user would
	// set it; empty when unset means "none".
	Default string
	// Meaning says in one line what the setting does and what it accepts.
	Meaning string
}

// Settings is every environment variable any entry point reads, in the
// order the README's configuration table lists them. It is the one list:
// the local server's usage text is printed from it, and tests check that
// the README's table and Load's defaults agree with it, so a setting added
// here and nowhere else fails a test rather than going undocumented.
var Settings = []Setting{
	{"PORT", "8080", "port the local server listens on (0 picks a free one)"},
	{"DEDUP_TTL", "1h", "dedup window, a Go duration (90m, 24h); between 1ms and 168h"},
	{"STORE", StoreMemory, "which store keeps the counts: memory or dynamodb"},
	{"DYNAMODB_TABLE", "", "the DynamoDB table; required with STORE=dynamodb"},
	{"ADMIN_API_KEYS", "", "comma-separated admin keys, each at least 16 characters of A-Z a-z 0-9 . _ ~ + / = -; unset leaves the local server's admin API open"},
	{"SHUTDOWN_TIMEOUT", "10s", "on SIGINT or SIGTERM, how long requests in flight may take to finish"},
	{"READ_HEADER_TIMEOUT", "5s", "how long a client may take to send its request header; at most 10s"},
	{"MAX_CONNECTIONS", "auto", "connections the local server serves at once; auto is the smaller of 10000 and half the open-file limit"},
	{"LOG_LEVEL", "info", "lowest level logged: debug, info, warn or error"},
	{"DATA_DIR", "", "directory where the memory store keeps its log and snapshots; empty keeps nothing on disk"},
	{"FSYNC_INTERVAL", "0s", "with DATA_DIR: how long the log gathers records before one fsync; at most 1s"},
	{"FSYNC_BATCH", "1024", "with DATA_DIR: this many waiting records start an fsync at once (1-1048576)"},
	{"LAMBDA_PAYLOAD_VERSION", "2.0", "Lambda only: the API Gateway payload format, 2.0 or 1.0"},
	{"SNAPSHOT_INTERVAL", "1m", "with DATA_DIR: how often the state is snapshotted and the log behind it dropped; at least 1s"},
	{"ACCEPT_DATA_LOSS", "false", "with DATA_DIR, for one start: true starts from a log that lost acknowledged impressions, logging the loss"},
	{"MAX_CAMPAIGNS", "100000", "memory store: campaigns it holds before a create is refused with 409 (1-10000000)"},
	{"FILTER_BOTS", "true", "true judges each impression's User-Agent against the crawler list and counts known bots apart as filtered; false counts every impression"},
	{"DYNAMODB_AGGREGATOR", "true", "local server with STORE=dynamodb: true reads the table's stream and folds it into the counts, as the Lambda aggregator does; false leaves that to other servers"},
}

// WriteSettings writes Settings to w as an aligned table of name, default
// and meaning, for a command's usage text.
func WriteSettings(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	for _, s := range Settings {
		def := s.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, def, strings.TrimSpace(s.Meaning))
	}
	return tw.Flush()
}
