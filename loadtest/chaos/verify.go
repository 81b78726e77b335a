package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/adcount/impression-counter/loadtest/internal/reachcheck"
)

// verifyCommand checks a running server against a ledger that may span
// many restarts:
//
//  1. No key was answered counted twice: a second counted means the service
//     forgot a key it had acknowledged, and counted it again.
//  2. Each campaign's total lies between the keys answered counted and the
//     distinct keys sent.
//  3. The probe: every key sent is sent once more. A key that was
//     acknowledged (counted or duplicate) must now answer duplicate; one
//     that answers counted was lost. Afterwards every key sent is in the
//     store, so each total must equal its distinct keys exactly: more is a
//     double count.
//  4. Every campaign answered 201 still exists.
//  5. After the probe, each campaign's unique users are the distinct users
//     of the keys sent to it, all of which it now holds: exactly up to
//     1,000 users, within 5% above, where the service estimates
//     (loadtest/internal/reachcheck). So reach survives every restart as
//     the counts do.
//
// It prints one summary line for the script and exits 1 on any problem.
func verifyCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	path := fs.String("ledger", "", "ledger to verify (required)")
	workers := fs.Int("workers", 16, "probe requests in flight")
	return func(ctx context.Context) error {
		if *path == "" {
			return fmt.Errorf("%w: verify needs -ledger", errUsage)
		}
		f, err := os.Open(*path)
		if err != nil {
			return err
		}
		b, err := readBook(f)
		f.Close()
		if err != nil {
			return err
		}
		c := newClient(*e.target, e.adminKey, *workers, 10*time.Second)
		r, err := verify(ctx, c, b, *workers)
		if err != nil {
			return err
		}
		r.print(e.stdout)
		if !r.ok() {
			return fmt.Errorf("%w: %d lost, %d counted twice, %d campaigns missing", errFailed, r.lost, r.double, r.missingCampaigns)
		}
		return nil
	}
}

// verdict is what verify found.
type verdict struct {
	requests, keys, acknowledged, countedKeys int
	lost, double, missingCampaigns            int
	campaigns                                 int
	// reachOff counts the campaigns whose unique users, after the probe,
	// are not the users of the keys sent.
	reachOff int
	problems []string
}

func (v *verdict) ok() bool {
	return v.lost == 0 && v.double == 0 && v.missingCampaigns == 0 && v.reachOff == 0
}

func (v *verdict) problem(format string, args ...any) {
	if len(v.problems) < 20 {
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	}
}

func (v *verdict) print(w io.Writer) {
	for _, p := range v.problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	fmt.Fprintf(w, "summary requests=%d keys=%d acked=%d counted=%d lost=%d double=%d campaigns=%d missing_campaigns=%d reach_off=%d\n",
		v.requests, v.keys, v.acknowledged, v.countedKeys, v.lost, v.double, v.campaigns, v.missingCampaigns, v.reachOff)
}

func verify(ctx context.Context, c *client, b *book, workers int) (*verdict, error) {
	v := &verdict{requests: b.requests, keys: len(b.keys), campaigns: len(b.campaigns)}
	perCampaign := map[string]struct{ sent, counted int64 }{}
	users := map[string]map[string]bool{} // the users of each campaign's keys
	for _, k := range b.order {
		rec := b.keys[k]
		pc := perCampaign[k.campaign]
		pc.sent++
		if users[k.campaign] == nil {
			users[k.campaign] = map[string]bool{}
		}
		users[k.campaign][k.user] = true
		if rec.acknowledged() {
			v.acknowledged++
		}
		if rec.counted > 0 {
			v.countedKeys++
			pc.counted++
		}
		if rec.counted > 1 {
			v.double += rec.counted - 1
			v.problem("key %v was answered counted %d times", k, rec.counted)
		}
		perCampaign[k.campaign] = pc
	}
	ids := make([]string, 0, len(perCampaign))
	for id := range perCampaign {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	before := map[string]int64{}
	gone := map[string]bool{}
	for _, id := range ids {
		t, err := c.total(ctx, id)
		if errors.Is(err, errCampaignGone) {
			// Everything acknowledged in it is lost; the probe
			// and the totals skip it.
			gone[id] = true
			v.missingCampaigns++
			for _, k := range b.order {
				if k.campaign == id && b.keys[k].acknowledged() {
					v.lost++
				}
			}
			v.problem("campaign %s, which impressions were sent to, is gone", id)
			continue
		}
		if err != nil {
			return nil, err
		}
		before[id] = t
		pc := perCampaign[id]
		if t < pc.counted {
			v.problem("campaign %s: total %d is below the %d keys answered counted", id, t, pc.counted)
		}
		if t > pc.sent {
			v.problem("campaign %s: total %d is above the %d distinct keys sent", id, t, pc.sent)
		}
	}

	probeCounted, err := probe(ctx, c, b, gone, workers, v)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if gone[id] {
			continue
		}
		s, err := c.stats(ctx, id)
		if err != nil {
			return nil, err
		}
		t := s.Total
		reachProblem(v, id, s, int64(len(users[id])))
		pc := perCampaign[id]
		switch {
		case t > pc.sent:
			v.double += int(t - pc.sent)
			v.problem("campaign %s: after the probe the total is %d, above the %d distinct keys sent", id, t, pc.sent)
		case t < pc.sent:
			v.lost += int(pc.sent - t)
			v.problem("campaign %s: after the probe the total is %d, below the %d distinct keys sent", id, t, pc.sent)
		}
		if got := t - before[id]; got != probeCounted[id] {
			v.problem("campaign %s: the probe's %d counted answers moved the total by %d", id, probeCounted[id], got)
			if got > probeCounted[id] {
				v.double += int(got - probeCounted[id])
			}
		}
	}

	for _, id := range b.campaigns {
		ok, err := c.campaignExists(ctx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			v.missingCampaigns++
			v.problem("campaign %s was created (201) and is gone", id)
		}
	}
	return v, nil
}

// reachProblem checks a campaign's unique users after the probe, when it
// holds every key sent, against users, the distinct users of those keys.
func reachProblem(v *verdict, id string, s stats, users int64) {
	if s.UniqueUsers == nil {
		v.reachOff++
		v.problem("campaign %s: the stats carry no unique_users", id)
		return
	}
	least, most := reachcheck.Bounds(users, users, reachcheck.DefaultTolerance)
	if got := *s.UniqueUsers; got < least || got > most {
		v.reachOff++
		v.problem("campaign %s: after the probe unique_users is %d, but it holds the keys of %d distinct users (%d to %d allowed)", id, got, users, least, most)
	}
}

// probe sends every key once more and counts, per campaign, the keys that
// counted now. An acknowledged key that counts now was lost.
func probe(ctx context.Context, c *client, b *book, gone map[string]bool, workers int, v *verdict) (map[string]int64, error) {
	var (
		mu      sync.Mutex
		counts  = map[string]int64{}
		failure error
		next    = make(chan key)
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for k := range next {
				o, err := probeOne(ctx, c, k)
				mu.Lock()
				switch {
				case err != nil:
					if failure == nil {
						failure = fmt.Errorf("probe %v: %w", k, err)
					}
				case o == counted:
					counts[k.campaign]++
					if b.keys[k].acknowledged() {
						v.lost++
						v.problem("key %v was acknowledged (%+v) and counted again after the restart: it was lost", k, *b.keys[k])
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, k := range b.order {
		if gone[k.campaign] {
			continue
		}
		mu.Lock()
		stop := failure != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		next <- k
	}
	close(next)
	wg.Wait()
	if failure == nil {
		failure = ctx.Err()
	}
	return counts, failure
}

// probeOne retries a request without a definite answer a few times: the
// server is up, so one is expected at once.
func probeOne(ctx context.Context, c *client, k key) (outcome, error) {
	var err error
	for range 3 {
		var o outcome
		if o, err = c.impression(ctx, k); o == counted || o == duplicate {
			return o, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return unknown, err
}
