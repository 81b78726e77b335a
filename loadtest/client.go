package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// apiClient makes the harness's own calls to the admin routes: creating the
// run's campaigns before the attack and reading their stats after it.
type apiClient struct {
	base   string
	header http.Header
	http   *http.Client
}

func newAPIClient(base, adminKey string, timeout time.Duration) *apiClient {
	return &apiClient{base: base, header: adminHeader(adminKey), http: &http.Client{Timeout: timeout}}
}

// createCampaign registers a campaign that started an hour ago, so that
// every impression of the run counts, and returns its ID.
func (c *apiClient) createCampaign(ctx context.Context, name string) (string, error) {
	body, err := json.Marshal(map[string]string{
		"name":       name,
		"start_time": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return "", err
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, pathCampaigns, body, http.StatusCreated, &created); err != nil {
		return "", fmt.Errorf("create campaign %q: %w", name, err)
	}
	if created.ID == "" {
		return "", fmt.Errorf("create campaign %q: the reply has no id", name)
	}
	return created.ID, nil
}

// stats reads a campaign's counts.
func (c *apiClient) stats(ctx context.Context, id string) (Stats, error) {
	var s Stats
	if err := c.do(ctx, http.MethodGet, statsPath(id), nil, http.StatusOK, &s); err != nil {
		return Stats{}, fmt.Errorf("read stats of campaign %s: %w", id, err)
	}
	return s, nil
}

// settledStats reads a campaign's counts once they include everything
// the service acknowledged before since: a service that aggregates behind
// its writes (the DynamoDB store) says in as_of how fresh its counts are,
// and the harness reads again, backing off to a quarter second, until
// as_of passes since or wait runs out. An answer without as_of is taken
// as it is. since is on this machine's clock, so the service's clock must
// agree with it to well under a second, as NTP keeps clocks.
func (c *apiClient) settledStats(ctx context.Context, id string, since time.Time, wait time.Duration) (Stats, error) {
	deadline := time.Now().Add(wait)
	pause := 10 * time.Millisecond
	for {
		s, err := c.stats(ctx, id)
		if err != nil || s.AsOf.IsZero() || s.AsOf.After(since) {
			return s, err
		}
		if time.Now().After(deadline) {
			return Stats{}, fmt.Errorf("read stats of campaign %s: as_of is %v, still not past the end of the attack (%v) after %v: the service's aggregator is behind",
				id, s.AsOf.Format(time.RFC3339Nano), since.Format(time.RFC3339Nano), wait)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return Stats{}, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 250*time.Millisecond)
	}
}

// do sends one request and decodes a reply with the wanted status into out.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s answered %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return nil
}
