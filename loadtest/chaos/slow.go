package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// slowCommand opens two slow clients at once, one that drips its header and
// one that drips its body, and checks that the server cuts each off near
// its timeout, neither much earlier nor much later, while it goes on
// answering other requests.
func slowCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	header := fs.Duration("header-timeout", 5*time.Second, "the server's READ_HEADER_TIMEOUT")
	body := fs.Duration("body-timeout", 10*time.Second, "the server's read timeout for a whole request")
	slack := fs.Duration("slack", 4*time.Second, "how much later than its timeout a cut-off may come on a busy machine")
	return func(ctx context.Context) error {
		u, err := url.Parse(*e.target)
		if err != nil {
			return fmt.Errorf("%w: -target: %w", errUsage, err)
		}
		head := "POST /api/v1/impressions HTTP/1.1\r\nHost: " + u.Host + "\r\n"
		cases := []struct {
			name     string
			start    string // sent at once
			want     time.Duration
			cutAfter time.Duration
			err      error
		}{
			{name: "slow header", start: head + "X-Slow: ", want: *header},
			{name: "slow body", start: head + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", want: *body},
		}
		canary := newClient(*e.target, e.adminKey, 1, 2*time.Second)
		stop := make(chan struct{})
		var canaryFailures, canaryRequests atomic.Int64
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
				canaryRequests.Add(1)
				if status, _, err := canary.do(ctx, http.MethodGet, "/healthz", nil, false); err != nil || status != http.StatusOK {
					canaryFailures.Add(1)
				}
			}
		}()
		var wg sync.WaitGroup
		for i := range cases {
			wg.Go(func() {
				cases[i].cutAfter, cases[i].err = dripUntilCut(ctx, u.Host, cases[i].start, cases[i].want+*slack+time.Second)
			})
		}
		wg.Wait()
		close(stop)
		var failures []error
		for _, c := range cases {
			verdict := "ok"
			switch {
			case c.err != nil:
				verdict = c.err.Error()
			case c.cutAfter < c.want-time.Second:
				verdict = fmt.Sprintf("cut too early, expected about %v", c.want)
			case c.cutAfter > c.want+*slack:
				verdict = fmt.Sprintf("cut too late, expected about %v", c.want)
			}
			fmt.Fprintf(e.stdout, "%s: cut off after %.1fs (timeout %v): %s\n", c.name, c.cutAfter.Seconds(), c.want, verdict)
			if verdict != "ok" {
				failures = append(failures, fmt.Errorf("%s: %s", c.name, verdict))
			}
		}
		fmt.Fprintf(e.stdout, "other clients meanwhile: %d of %d health checks answered 200\n",
			canaryRequests.Load()-canaryFailures.Load(), canaryRequests.Load())
		if canaryFailures.Load() > 0 {
			failures = append(failures, fmt.Errorf("%d health checks failed while slow clients were connected", canaryFailures.Load()))
		}
		if len(failures) > 0 {
			return fmt.Errorf("%w: %w", errFailed, errors.Join(failures...))
		}
		return nil
	}
}

// dripUntilCut connects to addr, sends start, then one more byte every
// half second, and returns how long after connecting the server answered
// or closed the connection. It gives up after limit.
func dripUntilCut(ctx context.Context, addr, start string, limit time.Duration) (time.Duration, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	began := time.Now()
	if _, err := conn.Write([]byte(start)); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	cut := make(chan struct{})
	go func() {
		// Any byte or error back means the server has given up waiting.
		_, _ = conn.Read(make([]byte, 1))
		close(cut)
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-cut:
			return time.Since(began), nil
		case <-tick.C:
			if time.Since(began) > limit {
				return time.Since(began), fmt.Errorf("still connected after %v", limit)
			}
			if _, err := conn.Write([]byte("a")); err != nil {
				<-cut
				return time.Since(began), nil
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// idleCommand measures the latency of impressions one at a time, then
// opens -conns keep-alive connections that each make one health check and
// then sit idle, measures again, and fails if the median rose by more than
// -factor (plus a millisecond of noise).
func idleCommand(fs *flag.FlagSet, e env) func(context.Context) error {
	conns := fs.Int("conns", 1000, "idle connections to hold")
	samples := fs.Int("samples", 300, "impressions timed before and while the connections are open")
	factor := fs.Float64("factor", 3, "how many times the median may grow")
	return func(ctx context.Context) error {
		u, err := url.Parse(*e.target)
		if err != nil {
			return fmt.Errorf("%w: -target: %w", errUsage, err)
		}
		c := newClient(*e.target, e.adminKey, 1, 5*time.Second)
		id, err := c.createCampaign(ctx, "chaos idle")
		if err != nil {
			return err
		}
		before, err := timeImpressions(ctx, c, id, "before", *samples)
		if err != nil {
			return err
		}
		held, closeAll := holdIdle(ctx, u.Host, *conns)
		defer closeAll()
		during, err := timeImpressions(ctx, c, id, "during", *samples)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "idle connections held: %d of %d\n", held, *conns)
		fmt.Fprintf(e.stdout, "impression latency without them: p50 %s, p99 %s\n", ms(before, 50), ms(before, 99))
		fmt.Fprintf(e.stdout, "impression latency with them:    p50 %s, p99 %s\n", ms(during, 50), ms(during, 99))
		limit := time.Duration(float64(pct(before, 50))**factor) + time.Millisecond
		switch {
		case held < *conns:
			return fmt.Errorf("%w: the server served only %d of %d idle connections; if it now bounds connections, ask for fewer", errFailed, held, *conns)
		case pct(during, 50) > limit:
			return fmt.Errorf("%w: the median latency rose from %s to %s with %d idle connections (limit %s)", errFailed, ms(before, 50), ms(during, 50), held, limit)
		}
		return nil
	}
}

// timeImpressions sends n new impressions one at a time and returns their
// latencies, sorted.
func timeImpressions(ctx context.Context, c *client, campaign, tag string, n int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		began := time.Now()
		o, err := c.impression(ctx, key{campaign, fmt.Sprintf("idle-%s-%d", tag, i), "ad-1"})
		if o != counted {
			return nil, fmt.Errorf("impression %d %s the idle connections: %s: %v", i, tag, o, err)
		}
		lat = append(lat, time.Since(began))
	}
	slices.Sort(lat)
	return lat, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(sorted []time.Duration, p int) string {
	return fmt.Sprintf("%.2fms", float64(pct(sorted, p).Microseconds())/1000)
}

// holdIdle opens n connections to addr, makes one keep-alive health check
// on each, and leaves them open. It returns how many got a 200.
func holdIdle(ctx context.Context, addr string, n int) (int, func()) {
	var (
		mu    sync.Mutex
		conns []net.Conn
		held  int
		sem   = make(chan struct{}, 50)
		wg    sync.WaitGroup
	)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return
			}
			resp.Body.Close()
			_ = conn.SetDeadline(time.Time{})
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				held++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return held, func() {
		for _, c := range conns {
			c.Close()
		}
	}
}
