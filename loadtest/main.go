// Command loadtest drives the impression counter's HTTP API with vegeta and
// then checks that the service counted exactly what it acknowledged, so that
// every load test is also a correctness test.
//
//	go run ./loadtest -target http://127.0.0.1:8080 -rate 1000 -duration 20s
//
// It creates its campaigns through the API, sends impressions (and, if
// asked, stats reads) planned from a seed, prints a progress line while it
// runs and vegeta's text report at the end, then reads every campaign's stats
// and compares them with the replies. Impressions go one per request
// (POST /api/v1/impressions), in batches (-batch N, POST
// /api/v1/impressions/batch) or as a browser loads a tracking pixel
// (-pixel, GET /api/v1/pixel.gif), with a browser's User-Agent; -bot-share
// sends a share of them as a known crawler, which the service must filter. It exits 1 when the counts or the
// replies contradict each other, and 2 on bad flags.
//
// It talks HTTP only and imports nothing of the service, so it measures any
// deployment: the local server, or the API in front of the Lambda functions.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/adcount/impression-counter/loadtest/internal/reachcheck"
)

// adminKeyEnv is the environment variable that may hold the admin key, so
// that it stays out of shell history and process listings.
const adminKeyEnv = "LOADTEST_ADMIN_KEY"

// errVerification means the run finished and the counts were wrong.
var errVerification = errors.New("verification failed")

// usageError is a problem with the flags.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	target      string
	rate        int
	duration    time.Duration
	workers     uint64
	maxWorkers  uint64
	timeout     time.Duration
	campaigns   int
	users       int
	ads         int
	dupRatio    float64
	readShare   float64
	seed        uint64
	adminKey    string
	campaignIDs string
	verify      bool
	reports     bool
	reach       bool
	reachTol    float64
	adPage      int
	settle      time.Duration
	out         string
	progress    time.Duration
	emit        uint64
	requests    uint64
	dedupTTL    time.Duration
	connections int
	batch       int
	pixel       bool
	botShare    float64
	userAgent   string
	itemUA      bool
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.target, "target", "", "base URL of the API, such as http://127.0.0.1:8080 (required)")
	fs.IntVar(&o.rate, "rate", 500, "requests per second (open model); 0 sends as fast as -max-workers allow (closed model)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to attack")
	fs.Uint64Var(&o.workers, "workers", 10, "workers to start with")
	fs.Uint64Var(&o.maxWorkers, "max-workers", 0, "most workers; required with -rate 0, 0 means unbounded otherwise")
	fs.IntVar(&o.connections, "connections", 0, "most connections to the target; a request waits for a free one, and the wait counts in its latency; 0 means unbounded")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "per-request timeout; a request that times out may or may not have been counted")
	fs.IntVar(&o.campaigns, "campaigns", 4, "campaigns to create and spread impressions over")
	fs.IntVar(&o.users, "users", 100_000, "distinct users per campaign")
	fs.IntVar(&o.ads, "ads", 10, "distinct ads per campaign")
	fs.Float64Var(&o.dupRatio, "dup", 0.2, "share of impressions that repeat an earlier (campaign, user, ad), exact to 1e-6")
	fs.Float64Var(&o.readShare, "reads", 0, "share of requests that read a campaign's stats, exact to 1e-6")
	fs.IntVar(&o.batch, "batch", 0, fmt.Sprintf("send impressions in batches of this many (1 to %d) to %s; 0 sends one per request to %s", maxBatch, pathBatch, pathImpressions))
	fs.BoolVar(&o.pixel, "pixel", false, "load each impression as a browser loads a tracking pixel: GET "+pathPixel+", outcome in the "+outcomeHeader+" header")
	fs.Float64Var(&o.botShare, "bot-share", 0, "share of impressions sent with a crawler's User-Agent (Googlebot), exact to 1e-6; the service must filter them, and its filtered stat is verified")
	fs.StringVar(&o.userAgent, "ua", defaultBrowserUA, "User-Agent of the impressions that must count (a browser's: the service filters Go's default and curl's); empty sends none")
	fs.BoolVar(&o.itemUA, "item-ua", false, "with -batch, give every item a user_agent field (-ua), as an ad server forwards its viewers'; without it only bot items carry one")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the traffic; the same seed and flags send the same requests")
	fs.StringVar(&o.adminKey, "admin-key", "", "admin API key sent as a Bearer token on campaign and stats routes (default $"+adminKeyEnv+")")
	fs.StringVar(&o.campaignIDs, "campaign-ids", "", "comma-separated IDs of existing campaigns to use instead of creating -campaigns new ones; -verify needs them to have no impressions yet")
	fs.DurationVar(&o.dedupTTL, "dedup-ttl", time.Hour, "the service's DEDUP_TTL; a verified run must be shorter, or repeats would rightly count again")
	fs.BoolVar(&o.verify, "verify", true, "read the stats after the attack and check them against the replies")
	fs.BoolVar(&o.reports, "verify-reports", true, "with -verify, also check each campaign's time series and per-ad breakdown against its stats and the replies; turn it off against a service without the reporting routes")
	fs.BoolVar(&o.reach, "verify-reach", true, "with -verify, also check each campaign's unique_users and frequency against the distinct users whose impressions the replies counted; turn it off against a service without reach")
	fs.Float64Var(&o.reachTol, "reach-tolerance", reachcheck.DefaultTolerance, fmt.Sprintf("with -verify-reach, how far (a share) unique_users may lie from the users reached when they are more than %d, which the service estimates; within %d it must be exact", reachcheck.Exact, reachcheck.Exact))
	fs.IntVar(&o.adPage, "ad-page", 0, fmt.Sprintf("with -verify-reports, the page size the per-ad breakdown is read in (1 to %d); 0 reads it in about three pages, so that the cursor is checked", maxPageLimit))
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "with -verify, how long to wait for a service that aggregates behind its writes to report counts (as_of) past the end of the attack")
	fs.StringVar(&o.out, "out", "", "directory to write report.json, histogram.hdr and plot.html to")
	fs.DurationVar(&o.progress, "progress", time.Second, "interval of the progress line; 0 turns it off")
	fs.Uint64Var(&o.requests, "requests", 0, "stop after this many requests, even before -duration; 0 means no limit")
	fs.Uint64Var(&o.emit, "emit", 0, "write this many targets as vegeta JSON lines to stdout instead of attacking (for the vegeta CLI)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, usageError{err}
	}
	if o.adminKey == "" {
		// Read here rather than as the flag's default, which -h would print.
		o.adminKey = getenv(adminKeyEnv)
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var errs []error
	if u, err := url.Parse(o.target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("-target must be an http(s) URL such as http://127.0.0.1:8080, got %q", o.target))
	}
	o.target = strings.TrimRight(o.target, "/")
	if o.rate < 0 {
		errs = append(errs, fmt.Errorf("-rate must be 0 or more, got %d", o.rate))
	}
	if o.rate == 0 && o.maxWorkers == 0 {
		errs = append(errs, errors.New("-rate 0 (maximum throughput) needs -max-workers, the number of requests in flight"))
	}
	if o.duration <= 0 || o.timeout <= 0 {
		errs = append(errs, errors.New("-duration and -timeout must be positive"))
	}
	if o.verify && o.duration+o.timeout >= o.dedupTTL {
		errs = append(errs, fmt.Errorf("a verified run must end inside the dedup window: -duration %v plus -timeout %v is not below -dedup-ttl %v", o.duration, o.timeout, o.dedupTTL))
	}
	if o.connections < 0 {
		errs = append(errs, fmt.Errorf("-connections must be 0 or more, got %d", o.connections))
	}
	if o.batch < 0 || o.batch > maxBatch {
		errs = append(errs, fmt.Errorf("-batch must be 0 (off) or 1 to %d, the API's limit, got %d", maxBatch, o.batch))
	}
	if o.pixel && o.batch > 0 {
		errs = append(errs, errors.New("-pixel and -batch are two ways to send impressions: pick one"))
	}
	if o.itemUA && o.batch == 0 {
		errs = append(errs, errors.New("-item-ua sets batch items' user_agent: it needs -batch"))
	}
	if !(o.reachTol >= 0 && o.reachTol < 1) {
		errs = append(errs, fmt.Errorf("-reach-tolerance must be in [0, 1), got %v", o.reachTol))
	}
	if o.adPage < 0 || o.adPage > maxPageLimit {
		errs = append(errs, fmt.Errorf("-ad-page must be 0 (about three pages) or 1 to %d, the API's limit, got %d", maxPageLimit, o.adPage))
	}
	if o.workers == 0 {
		errs = append(errs, errors.New("-workers must be at least 1"))
	}
	if o.maxWorkers == 0 {
		o.maxWorkers = 1<<64 - 1
	}
	if ids := o.ids(); len(ids) > 0 {
		o.campaigns = len(ids)
	}
	return o, usageErrorOf(errors.Join(errs...))
}

func usageErrorOf(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// ids is the list -campaign-ids gives, if any.
func (o options) ids() []string {
	if o.campaignIDs == "" {
		return nil
	}
	return strings.Split(o.campaignIDs, ",")
}

// run is the whole command; main only turns its error into an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	plan, err := NewPlan(PlanConfig{
		Campaigns: o.campaigns, Users: o.users, Ads: o.ads,
		PerRequest: max(o.batch, 1), DupRatio: o.dupRatio, ReadShare: o.readShare, BotShare: o.botShare, Seed: o.seed,
	})
	if err != nil {
		return usageError{err}
	}
	// The harness's own calls get time even when -timeout is tight.
	client := newAPIClient(o.target, o.adminKey, max(o.timeout, 10*time.Second))
	ids := o.ids()
	if ids == nil {
		for c := range o.campaigns {
			id, err := client.createCampaign(ctx, fmt.Sprintf("loadtest seed %d campaign %d", o.seed, c))
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
	}
	if o.verify && o.campaignIDs != "" && o.emit == 0 {
		// Verification compares totals with this run's replies alone.
		for _, id := range ids {
			s, err := client.stats(ctx, id)
			if err != nil {
				return err
			}
			if s.Total != 0 {
				return usageError{fmt.Errorf("campaign %s already has %d impressions: -verify needs new campaigns (or -verify=false)", id, s.Total)}
			}
		}
	}
	ts, err := newTargets(plan, o.target, ids, targetConfig{Mode: o.mode(), BrowserUA: o.userAgent, ItemUA: o.itemUA, AdminKey: o.adminKey})
	if err != nil {
		return err
	}
	if o.emit > 0 {
		return emitTargets(ts, o.emit, stdout, stderr)
	}

	fmt.Fprintf(stderr, "loadtest: %s, %s, for %v against %s; %d campaigns, duplicates %v, bots %v, reads %v, seed %d\n",
		o.route(), o.model(), o.duration, o.target, o.campaigns, o.dupRatio, o.botShare, o.readShare, o.seed)
	res, err := attack(ctx, o, ts, stderr)
	if err != nil {
		return err
	}
	if err := res.report(stdout, o.out); err != nil {
		return err
	}
	if !o.verify {
		return nil
	}
	stats := make([]Stats, len(ids))
	attackEnd := time.Now()
	for c, id := range ids {
		if stats[c], err = client.settledStats(ctx, id, attackEnd, o.settle); err != nil {
			return err
		}
	}
	var reports []campaignReports
	if o.reports {
		limit := pageLimit(o.adPage, o.ads)
		reports = make([]campaignReports, len(ids))
		for c, id := range ids {
			if reports[c], err = client.reports(ctx, id, res.began, attackEnd, o.settle, limit, o.ads); err != nil {
				return fmt.Errorf("%w (a service without the reporting routes needs -verify-reports=false)", err)
			}
		}
	}
	elapsed := time.Since(res.began)
	v := res.ledger.verify(stats, elapsed)
	if reports != nil {
		res.ledger.verifyReports(&v, reports, elapsed)
	}
	if o.reach {
		res.ledger.verifyReach(&v, elapsed, o.reachTol)
	}
	fmt.Fprintln(stdout)
	if _, err := v.WriteTo(stdout); err != nil {
		return err
	}
	if !v.OK() {
		return fmt.Errorf("%w: %d problems, listed above", errVerification, len(v.Problems))
	}
	return nil
}

// mode is the route the impressions take.
func (o options) mode() mode {
	switch {
	case o.batch > 0:
		return modeBatch
	case o.pixel:
		return modePixel
	}
	return modeSingle
}

// route describes the route in words.
func (o options) route() string {
	switch o.mode() {
	case modeBatch:
		return fmt.Sprintf("batches of %d to %s", o.batch, pathBatch)
	case modePixel:
		return "pixel loads of " + pathPixel
	}
	return "one impression per request to " + pathImpressions
}

// model describes the load model in words.
func (o options) model() string {
	if o.rate == 0 {
		return fmt.Sprintf("closed model, %d workers at maximum throughput", o.maxWorkers)
	}
	return fmt.Sprintf("open model, %d requests/s", o.rate)
}
