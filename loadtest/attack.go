package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	"github.com/tsenart/vegeta/v12/lib/plot"
)

// runResult is everything an attack produced.
type runResult struct {
	began   time.Time
	metrics *vegeta.Metrics
	plot    *plot.Plot
	ledger  *ledger
	// targetErr is why the targeter stopped the attack early, if it did.
	targetErr string
}

// attack runs the attack o describes until its duration is over or ctx is
// cancelled, feeding every result to the metrics, the plot and the ledger.
func attack(ctx context.Context, o options, ts *targets, stderr io.Writer) (*runResult, error) {
	atk := vegeta.NewAttacker(
		vegeta.Workers(o.workers),
		vegeta.MaxWorkers(o.maxWorkers),
		vegeta.Timeout(o.timeout),
		vegeta.KeepAlive(true),
		vegeta.MaxConnections(o.connections),
	)
	// A zero ConstantPacer sends as fast as the workers allow.
	pacer := vegeta.ConstantPacer{Freq: o.rate, Per: time.Second}
	if o.rate == 0 {
		pacer = vegeta.ConstantPacer{}
	}
	var pace vegeta.Pacer = pacer
	if o.requests > 0 {
		pace = limitPacer{Pacer: pacer, max: o.requests}
	}
	began := time.Now()
	res := &runResult{began: began, metrics: &vegeta.Metrics{}, ledger: newLedger(ts.plan, ts.mode, began)}
	if o.out != "" {
		res.plot = plot.New(plot.Title("loadtest " + o.model()))
	}

	var requests, failures atomic.Uint64
	stopProgress := progress(stderr, o.progress, res.began, &requests, &failures)
	defer stopProgress()
	stopOnCancel := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stopOnCancel()

	for r := range atk.Attack(ts.targeter(), pace, o.duration, "loadtest") {
		requests.Add(1)
		if r.Error != "" {
			failures.Add(1)
		}
		if r.Method == "" && r.Error != "" {
			// The targeter failed: the attack stops, and this result
			// never reached the service.
			res.targetErr = r.Error
			continue
		}
		res.ledger.add(r)
		// Errors name the URL; without the index, vegeta's error set
		// groups them instead of listing every request.
		r.Error = withoutIndex(r.Error)
		res.metrics.Add(r)
		if res.plot != nil {
			if err := res.plot.Add(r); err != nil {
				return nil, fmt.Errorf("plot: %w", err)
			}
		}
	}
	res.metrics.Close()
	if res.targetErr != "" {
		return nil, fmt.Errorf("the traffic plan ran out: %s", res.targetErr)
	}
	return res, nil
}

// limitPacer stops an attack after max requests.
type limitPacer struct {
	vegeta.Pacer
	max uint64
}

func (p limitPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.max {
		return 0, true
	}
	return p.Pacer.Pace(elapsed, hits)
}

// progress prints a line every interval until the returned func is called.
func progress(w io.Writer, every time.Duration, began time.Time, requests, failures *atomic.Uint64) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		last, lastAt := uint64(0), began
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				n := requests.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				fmt.Fprintf(w, "loadtest: %6.1fs elapsed  %9d requests  %9.1f req/s  %d errors\n",
					now.Sub(began).Seconds(), n, rate, failures.Load())
				last, lastAt = n, now
			}
		}
	}()
	return func() { close(done); <-finished }
}

// report prints vegeta's text report and, given a directory, writes the JSON
// report, the HDR histogram and the HTML latency plot there.
func (res *runResult) report(stdout io.Writer, dir string) error {
	if err := vegeta.NewTextReporter(res.metrics).Report(stdout); err != nil {
		return err
	}
	l := res.ledger
	imps, repeats, bots := l.traffic()
	fmt.Fprintf(stdout, "Traffic       [impressions, new keys, repeats, bots, stats reads]  %d, %d, %d, %d, %d\n",
		imps, imps-repeats, repeats, bots, len(l.reads)+l.readsFailed)
	ing := res.ingest()
	fmt.Fprintf(stdout, "Impressions   [answered, per second, counted, duplicate, filtered, rejected, unknown]  %d, %.1f, %d, %d, %d, %d, %d\n",
		ing.Answered, ing.PerSecond, ing.Counted, ing.Duplicate, ing.Filtered, ing.Rejected, ing.Unknown)
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	res.plot.Close()
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"report.json", vegeta.NewJSONReporter(res.metrics)},
		{"impressions.json", func(w io.Writer) error { return json.NewEncoder(w).Encode(ing) }},
		{"histogram.hdr", vegeta.NewHDRHistogramPlotReporter(res.metrics)},
		{"plot.html", func(w io.Writer) error { _, err := res.plot.WriteTo(w); return err }},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := writeFile(path, f.write); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	return nil
}

// ingest is what the run's impressions got, for the report and the
// scripts that compare routes by impressions per second.
type ingest struct {
	Route      string  `json:"route"`
	PerRequest int     `json:"per_request"`
	Requests   uint64  `json:"requests"`
	Sent       int     `json:"sent"`
	Answered   int     `json:"answered"` // counted, duplicate or filtered
	Counted    int     `json:"counted"`
	Duplicate  int     `json:"duplicate"`
	Filtered   int     `json:"filtered"`
	Rejected   int     `json:"rejected"`
	Unknown    int     `json:"unknown"` // uncertain or unreadable
	Seconds    float64 `json:"seconds"`
	// PerSecond is Answered over the attack's duration plus the wait for
	// its last replies, the span vegeta's throughput uses.
	PerSecond float64 `json:"per_second"`
}

func (res *runResult) ingest() ingest {
	l := res.ledger
	secs := (res.metrics.Duration + res.metrics.Wait).Seconds()
	ing := ingest{
		Route:      l.mode.String(),
		PerRequest: l.plan.PerRequest(),
		Requests:   res.metrics.Requests,
		Sent:       len(l.outcomes),
		Answered:   l.impressions(),
		Counted:    l.tally[counted],
		Duplicate:  l.tally[duplicate],
		Filtered:   l.tally[filtered],
		Rejected:   l.tally[rejected],
		Unknown:    l.tally[uncertain] + l.tally[unreadable],
		Seconds:    secs,
	}
	if secs > 0 {
		ing.PerSecond = float64(ing.Answered) / secs
	}
	return ing
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(write(f), f.Close())
}

// emitTargets writes the first n targets of the plan as vegeta JSON target
// lines, for `vegeta attack -format=json`, and tells summary what it wrote:
// without bots, a run that answers every request must end with as many
// counted impressions as new keys.
func emitTargets(ts *targets, n uint64, w, summary io.Writer) error {
	buf := bufio.NewWriter(w)
	enc := vegeta.NewJSONTargetEncoder(buf)
	var fresh, repeats, bots, reads uint64
	for i := range n {
		var t vegeta.Target
		if err := ts.target(i, &t); err != nil {
			return err
		}
		if err := enc.Encode(&t); err != nil {
			return err
		}
		r := ts.plan.Request(i)
		if r.Read {
			reads++
			continue
		}
		for k := range uint64(r.Count) {
			im, err := ts.plan.Impression(r.First + k)
			if err != nil {
				return err
			}
			switch {
			case im.Repeat:
				repeats++
			default:
				fresh++
			}
			if im.Bot {
				bots++
			}
		}
	}
	if err := buf.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(summary, "loadtest: wrote %d targets: %d new keys, %d repeats, %d from bots, %d stats reads\n", n, fresh, repeats, bots, reads)
	return err
}
