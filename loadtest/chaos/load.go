package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errorPause is how long a worker waits after a request without a definite
// answer, so that a dead server is not hammered in a tight loop.
const errorPause = 20 * time.Millisecond

// createCommand creates -n campaigns and prints their IDs, comma-separated.
func createCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	n := fs.Int("n", 2, "campaigns to create")
	return func(ctx context.Context) error {
		c := newClient(*e.target, e.adminKey, 1, 10*time.Second)
		ids := make([]string, 0, *n)
		for i := range *n {
			id, err := c.createCampaign(ctx, fmt.Sprintf("chaos %d", i))
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		_, err := fmt.Fprintln(e.stdout, strings.Join(ids, ","))
		return err
	}
}

// bounds stop a traffic loop: a signal (ctx), a duration or a count.
type bounds struct {
	workers  int
	duration time.Duration
	max      int64
	timeout  time.Duration
}

func (b *bounds) register(fs *flag.FlagSet, workers int) {
	fs.IntVar(&b.workers, "workers", workers, "requests in flight")
	fs.DurationVar(&b.duration, "duration", time.Minute, "stop after this long at the latest")
	fs.Int64Var(&b.max, "max", 1_000_000, "stop after this many requests at the latest")
	fs.DurationVar(&b.timeout, "timeout", 5*time.Second, "per-request timeout")
}

// loop runs b.workers copies of step until ctx is done, the duration is
// over or b.max steps have started. A step in flight when ctx ends runs to
// its own end, so that its answer is recorded.
func (b bounds) loop(ctx context.Context, step func(worker int, n int64)) {
	deadline := time.Now().Add(b.duration)
	var started atomic.Int64
	var wg sync.WaitGroup
	for w := range b.workers {
		wg.Go(func() {
			for n := int64(0); ctx.Err() == nil && time.Now().Before(deadline); n++ {
				if started.Add(1) > b.max {
					return
				}
				step(w, n)
			}
		})
	}
	wg.Wait()
}

// loadCommand sends impressions with new keys, and a share of repeats of
// keys it sent before, until stopped, recording every answer.
func loadCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	var b bounds
	b.register(fs, 16)
	ids := fs.String("campaign-ids", "", "comma-separated campaigns to spread impressions over (required)")
	path := fs.String("ledger", "", "file to append every answer to (required)")
	prefix := fs.String("prefix", "", "user ID prefix, unique for each run (required)")
	repeat := fs.Float64("repeat", 0.2, "share of requests that repeat a key this run sent before")
	return func(ctx context.Context) error {
		if *ids == "" || *path == "" || *prefix == "" {
			return fmt.Errorf("%w: load needs -campaign-ids, -ledger and -prefix", errUsage)
		}
		campaigns := strings.Split(*ids, ",")
		l, err := openLedger(*path)
		if err != nil {
			return err
		}
		c := newClient(*e.target, e.adminKey, b.workers, b.timeout)
		var tally [4]atomic.Int64 // counted, duplicate, rejected, unknown
		sent := make([][]key, b.workers)
		rngs := make([]*rand.Rand, b.workers)
		for w := range rngs {
			rngs[w] = rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		}
		b.loop(ctx, func(w int, n int64) {
			var k key
			if len(sent[w]) > 0 && rngs[w].Float64() < *repeat {
				k = sent[w][rngs[w].IntN(len(sent[w]))]
			} else {
				k = key{campaigns[int(n)%len(campaigns)], fmt.Sprintf("%s-%d-%d", *prefix, w, n), "ad-1"}
				sent[w] = append(sent[w], k)
			}
			// Not ctx: an answer that arrives after the stop signal
			// still counts and must be recorded.
			o, _ := c.impression(context.Background(), k)
			l.impression(o, k)
			tally[index(o)].Add(1)
			if o == unknown || o == rejected {
				time.Sleep(errorPause)
			}
		})
		fmt.Fprintf(e.stderr, "chaos load %s: %d counted, %d duplicate, %d rejected, %d unknown\n",
			*prefix, tally[0].Load(), tally[1].Load(), tally[2].Load(), tally[3].Load())
		return l.Close()
	}
}

func index(o outcome) int {
	switch o {
	case counted:
		return 0
	case duplicate:
		return 1
	case rejected:
		return 2
	}
	return 3
}

// campaignsCommand creates campaigns until stopped, recording every ID
// that came back with a 201.
func campaignsCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	var b bounds
	b.register(fs, 4)
	path := fs.String("ledger", "", "file to append every created campaign to (required)")
	prefix := fs.String("prefix", "", "campaign name prefix (required)")
	return func(ctx context.Context) error {
		if *path == "" || *prefix == "" {
			return fmt.Errorf("%w: campaigns needs -ledger and -prefix", errUsage)
		}
		l, err := openLedger(*path)
		if err != nil {
			return err
		}
		c := newClient(*e.target, e.adminKey, b.workers, b.timeout)
		var created, failed atomic.Int64
		b.loop(ctx, func(w int, n int64) {
			id, err := c.createCampaign(context.Background(), fmt.Sprintf("%s-%d-%d", *prefix, w, n))
			if err != nil {
				l.campaignUnknown()
				failed.Add(1)
				time.Sleep(errorPause)
				return
			}
			l.campaign(id)
			created.Add(1)
		})
		fmt.Fprintf(e.stderr, "chaos campaigns %s: %d created, %d without a definite answer\n", *prefix, created.Load(), failed.Load())
		return errors.Join(l.Close())
	}
}
