package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// outcome is what one impression request established.
type outcome string

const (
	// counted: 200 with "counted": true. The service promises the key is
	// durably recorded, exactly once.
	counted outcome = "counted"
	// duplicate: 200 with "counted": false. A record for the key is durable.
	duplicate outcome = "duplicate"
	// rejected: a 4xx. Nothing changed.
	rejected outcome = "rejected"
	// unknown: no answer, or a 5xx. The key may or may not be recorded.
	unknown outcome = "unknown"
)

// client talks to one server.
type client struct {
	base string
	key  string
	http *http.Client
}

// newClient keeps up to conns connections to base alive.
func newClient(base, adminKey string, conns int, timeout time.Duration) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &client{base: base, key: adminKey, http: &http.Client{Transport: tr, Timeout: timeout}}
}

// impression posts one impression and says what its answer established.
// The error says why an answer was unknown or rejected.
func (c *client) impression(ctx context.Context, k key) (outcome, error) {
	body, _ := json.Marshal(map[string]string{"campaign_id": k.campaign, "user_id": k.user, "ad_id": k.ad})
	status, raw, err := c.do(ctx, http.MethodPost, "/api/v1/impressions", body, false)
	switch {
	case err != nil:
		return unknown, err
	case status >= 500:
		return unknown, fmt.Errorf("status %d: %s", status, raw)
	case status != http.StatusOK:
		return rejected, fmt.Errorf("status %d: %s", status, raw)
	}
	var reply struct {
		Counted *bool `json:"counted"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Counted == nil {
		return unknown, fmt.Errorf("200 without a counted field: %s", raw)
	}
	if *reply.Counted {
		return counted, nil
	}
	return duplicate, nil
}

// createCampaign creates a campaign that started an hour ago and returns
// its ID. A campaign whose answer was lost returns an error.
func (c *client) createCampaign(ctx context.Context, name string) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": name, "start_time": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
	status, raw, err := c.do(ctx, http.MethodPost, "/api/v1/campaigns", body, true)
	if err != nil {
		return "", err
	}
	if status != http.StatusCreated {
		return "", fmt.Errorf("create campaign: status %d: %s", status, raw)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(raw, &created); err != nil || created.ID == "" {
		return "", fmt.Errorf("create campaign: 201 without an id: %s", raw)
	}
	return created.ID, nil
}

// campaignExists reads a campaign: true on 200, false on 404.
func (c *client) campaignExists(ctx context.Context, id string) (bool, error) {
	status, raw, err := c.do(ctx, http.MethodGet, "/api/v1/campaigns/"+id, nil, true)
	switch {
	case err != nil:
		return false, err
	case status == http.StatusOK:
		return true, nil
	case status == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("read campaign %s: status %d: %s", id, status, raw)
}

// errCampaignGone is a 404 for a campaign that was created.
var errCampaignGone = errors.New("the campaign is gone")

// stats is what the checks read of a campaign's stats: its total, and
// its reach over all time; UniqueUsers is nil from a service without
// reach.
type stats struct {
	Total       int64
	UniqueUsers *int64
}

// total reads a campaign's total; errCampaignGone if it does not exist.
func (c *client) total(ctx context.Context, id string) (int64, error) {
	s, err := c.stats(ctx, id)
	return s.Total, err
}

// stats reads a campaign's stats; errCampaignGone if it does not exist.
func (c *client) stats(ctx context.Context, id string) (stats, error) {
	status, raw, err := c.do(ctx, http.MethodGet, "/api/v1/campaigns/"+id+"/stats", nil, true)
	if err != nil {
		return stats{}, err
	}
	if status == http.StatusNotFound {
		return stats{}, fmt.Errorf("stats of campaign %s: %w", id, errCampaignGone)
	}
	if status != http.StatusOK {
		return stats{}, fmt.Errorf("stats of campaign %s: status %d: %s", id, status, raw)
	}
	var s struct {
		Total       *int64 `json:"total"`
		UniqueUsers *struct {
			Total int64 `json:"total"`
		} `json:"unique_users"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.Total == nil {
		return stats{}, fmt.Errorf("stats of campaign %s: no total in %s", id, raw)
	}
	out := stats{Total: *s.Total}
	if s.UniqueUsers != nil {
		out.UniqueUsers = &s.UniqueUsers.Total
	}
	return out, nil
}

// browserUA is Chrome's User-Agent on Windows.
const browserUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

func (c *client) do(ctx context.Context, method, path string, body []byte, admin bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The service filters crawlers' impressions, and Go's own User-Agent
	// is on its list: the chaos traffic is a browser's, so that it counts.
	req.Header.Set("User-Agent", browserUA)
	if admin && c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, bytes.TrimSpace(raw), nil
}
