package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
	return settled(ctx, since, wait, "stats of campaign "+id, func() (Stats, time.Time, error) {
		s, err := c.stats(ctx, id)
		return s, s.AsOf, err
	})
}

// settled calls read, which returns an answer and its as_of, until as_of
// is zero or past since, as settledStats describes; what names the answer
// in errors.
func settled[T any](ctx context.Context, since time.Time, wait time.Duration, what string, read func() (T, time.Time, error)) (T, error) {
	var zero T
	deadline := time.Now().Add(wait)
	pause := 10 * time.Millisecond
	for {
		v, asOf, err := read()
		if err != nil || asOf.IsZero() || asOf.After(since) {
			return v, err
		}
		if time.Now().After(deadline) {
			return zero, fmt.Errorf("read %s: as_of is %v, still not past the end of the attack (%v) after %v: the service's aggregator is behind",
				what, asOf.Format(time.RFC3339Nano), since.Format(time.RFC3339Nano), wait)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 250*time.Millisecond)
	}
}

// campaign reads a campaign.
func (c *apiClient) campaign(ctx context.Context, id string) (campaign, error) {
	var got campaign
	if err := c.do(ctx, http.MethodGet, campaignPath(id), nil, http.StatusOK, &got); err != nil {
		return campaign{}, fmt.Errorf("read campaign %s: %w", id, err)
	}
	return got, nil
}

// series reads a campaign's time series of interval from from to the
// service's now, of one ad if adID is set, once its as_of passes since
// (see settledStats).
func (c *apiClient) series(ctx context.Context, id, interval string, from time.Time, adID string, since time.Time, wait time.Duration) (Series, error) {
	q := url.Values{"interval": {interval}, "from": {from.UTC().Format(time.RFC3339Nano)}}
	if adID != "" {
		q.Set("ad_id", adID)
	}
	path := campaignPath(id) + "/timeseries?" + q.Encode()
	return settled(ctx, since, wait, "the "+interval+" series of campaign "+id, func() (Series, time.Time, error) {
		var s Series
		if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &s); err != nil {
			return Series{}, time.Time{}, fmt.Errorf("read the %s series of campaign %s: %w", interval, id, err)
		}
		return s, s.AsOf, nil
	})
}

// adPage reads one page of a campaign's per-ad breakdown, after cursor if
// it is set, once its as_of passes since (see settledStats).
func (c *apiClient) adPage(ctx context.Context, id string, limit int, cursor string, since time.Time, wait time.Duration) (adPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := campaignPath(id) + "/ads?" + q.Encode()
	return settled(ctx, since, wait, "the per-ad breakdown of campaign "+id, func() (adPage, time.Time, error) {
		var p adPage
		if err := c.do(ctx, http.MethodGet, path, nil, http.StatusOK, &p); err != nil {
			return adPage{}, time.Time{}, fmt.Errorf("read the per-ad breakdown of campaign %s: %w", id, err)
		}
		return p, p.AsOf, nil
	})
}

// reports reads what verifyReports checks of one campaign: its day series
// from its start, its minute series over the run unless the run began
// longer ago than minutes are kept, every page of its per-ad breakdown,
// limit ads a page, and the day series of the ad listed first. Every
// answer is read once its as_of passes since. ads is the run's ads per
// campaign, which bounds the pages read.
func (c *apiClient) reports(ctx context.Context, id string, began, since time.Time, wait time.Duration, limit, ads int) (campaignReports, error) {
	var r campaignReports
	camp, err := c.campaign(ctx, id)
	if err != nil {
		return r, err
	}
	now, start := time.Now(), camp.StartTime
	if start.After(began) {
		// Nothing counted before its start; a campaign that had not
		// started counted nothing, and its series must still be asked
		// from before the service's now.
		start = began
	}
	if r.Days, err = c.series(ctx, id, "day", seriesFrom(start, now, 24*time.Hour, 1<<62), "", since, wait); err != nil {
		return r, err
	}
	if from := began.Add(-time.Minute); now.Sub(from) < minuteReach {
		s, err := c.series(ctx, id, "minute", from, "", since, wait)
		if err != nil {
			return r, err
		}
		r.Minutes = &s
	}
	r.Limit = limit
	// A run's ads fill this many pages, and the last may be followed by
	// an empty one.
	most := (ads+limit-1)/limit + 1
	cursor := ""
	for {
		p, err := c.adPage(ctx, id, limit, cursor, since, wait)
		if err != nil {
			return r, err
		}
		r.Ads = append(r.Ads, p.Ads...)
		r.PageSizes = append(r.PageSizes, len(p.Ads))
		if p.NextCursor == nil {
			break
		}
		if len(r.PageSizes) == most {
			r.Unfinished = true
			break
		}
		cursor = *p.NextCursor
	}
	if len(r.Ads) > 0 {
		s, err := c.series(ctx, id, "day", seriesFrom(start, now, 24*time.Hour, adDayReach), r.Ads[0].AdID, since, wait)
		if err != nil {
			return r, err
		}
		r.AdDays = &s
	}
	return r, nil
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
