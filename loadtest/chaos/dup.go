package main

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"
)

// dupCommand sends -copies identical requests for each of -keys new keys,
// released together, and checks that exactly one of each key's copies
// answered counted, every other one duplicate, and that the campaign's
// total is the number of keys.
func dupCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	keys := fs.Int("keys", 500, "distinct keys")
	copies := fs.Int("copies", 32, "identical concurrent requests per key")
	parallel := fs.Int("parallel", 4, "keys whose copies are in flight at once")
	return func(ctx context.Context) error {
		c := newClient(*e.target, e.adminKey, *copies**parallel, 10*time.Second)
		id, err := c.createCampaign(ctx, "chaos duplicates")
		if err != nil {
			return err
		}
		var (
			mu                sync.Mutex
			wrong, unanswered int
			countedN, dupN    int
			firstWrong        string
			sem               = make(chan struct{}, *parallel)
			keysWG            sync.WaitGroup
		)
		for i := range *keys {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			keysWG.Go(func() {
				defer func() { <-sem }()
				k := key{id, fmt.Sprintf("dup-%d", i), "ad-1"}
				release := make(chan struct{})
				answers := make(chan outcome, *copies)
				var wg sync.WaitGroup
				for range *copies {
					wg.Go(func() {
						<-release
						o, _ := c.impression(ctx, k)
						answers <- o
					})
				}
				close(release)
				wg.Wait()
				close(answers)
				var n [4]int
				for o := range answers {
					n[index(o)]++
				}
				mu.Lock()
				defer mu.Unlock()
				countedN += n[0]
				dupN += n[1]
				unanswered += n[2] + n[3]
				if n[0] != 1 && n[2]+n[3] == 0 {
					wrong++
					if firstWrong == "" {
						firstWrong = fmt.Sprintf("key %s: %d of %d copies answered counted", k.user, n[0], *copies)
					}
				}
			})
		}
		keysWG.Wait()
		total, err := c.total(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "summary requests=%d keys=%d counted=%d duplicate=%d unanswered=%d wrong_keys=%d total=%d\n",
			countedN+dupN+unanswered, *keys, countedN, dupN, unanswered, wrong, total)
		switch {
		case wrong > 0:
			return fmt.Errorf("%w: %d keys did not get exactly one counted answer; first: %s", errFailed, wrong, firstWrong)
		case unanswered > 0:
			return fmt.Errorf("%w: %d requests got no 200 from a healthy server", errFailed, unanswered)
		case total != int64(*keys):
			return fmt.Errorf("%w: the campaign's total is %d, not the %d keys sent", errFailed, total, *keys)
		}
		return nil
	}
}
