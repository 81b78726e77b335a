package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// CreateUntil creates a campaign as Create does, which counts impressions
// from start until end, not included. The API refuses an end that is not
// after start with an *adcount.FieldError on end_time.
func (c *Client) CreateUntil(ctx context.Context, name string, start, end time.Time) (adcount.Campaign, error) {
	return c.create(ctx, name, start, end)
}

// ListCampaigns returns one page of the campaigns, newest first, through
// GET /api/v1/campaigns. q.Now is not sent: the API computes statuses,
// and evaluates q.Status, at its own clock; q.Name is sent as the name
// search. A limit or a search the API refuses is an *adcount.FieldError on
// limit or name, as adcount.CampaignQuery.Check's.
func (c *Client) ListCampaigns(ctx context.Context, q adcount.CampaignQuery) (adcount.CampaignPage, error) {
	const op = "list campaigns"
	v := url.Values{"limit": {strconv.Itoa(q.Limit)}}
	if q.After != nil {
		v.Set("cursor", adcount.EncodeCursor(*q.After))
	}
	if q.Status != "" {
		v.Set("status", string(q.Status))
	}
	if q.Name != "" {
		v.Set("name", q.Name)
	}
	var out campaignListResponse
	if err := c.do(ctx, op, http.MethodGet, "/api/v1/campaigns?"+v.Encode(), true, nil, &out, nil); err != nil {
		return adcount.CampaignPage{}, err
	}
	page := adcount.CampaignPage{Campaigns: make([]adcount.Campaign, 0, len(out.Campaigns))}
	for _, r := range out.Campaigns {
		camp, err := r.campaign(op)
		if err != nil {
			return adcount.CampaignPage{}, err
		}
		page.Campaigns = append(page.Campaigns, camp)
	}
	if out.NextCursor != nil {
		next, err := adcount.DecodeCursor[adcount.CampaignCursor](*out.NextCursor)
		if err != nil {
			return adcount.CampaignPage{}, fmt.Errorf("apiclient: %s: next_cursor: %w", op, err)
		}
		page.Next = &next
	}
	return page, nil
}

// UpdateCampaign applies p to the campaign through PATCH
// /api/v1/campaigns/{id} and returns the campaign as changed: a name
// replaces the name, an end the end (the zero time removes it, sent as
// null), and Paused pauses or resumes. The API validates the patch as
// adcount.Campaign.Apply does and changes nothing for a bad one (an
// *adcount.FieldError); an unknown campaign matches adcount.ErrNotFound.
// The API refuses a patch that changes nothing, which the store contract
// allows, so an empty p reads the campaign instead. A name is checked
// before sending, because JSON cannot carry invalid UTF-8 unchanged.
func (c *Client) UpdateCampaign(ctx context.Context, id string, p adcount.CampaignPatch) (adcount.Campaign, error) {
	op := "update campaign " + id
	if err := checkID(op, id); err != nil {
		return adcount.Campaign{}, err
	}
	if p.Empty() {
		return c.Campaign(ctx, id)
	}
	var in patchRequest
	if p.Name != nil {
		if _, err := adcount.NewCampaign(id, *p.Name, adcount.MinStartTime); err != nil {
			return adcount.Campaign{}, fmt.Errorf("apiclient: %s: %w", op, err)
		}
		in.Name = p.Name
	}
	if p.EndTime != nil {
		in.EndTime = json.RawMessage("null")
		if !p.EndTime.IsZero() {
			in.EndTime = json.RawMessage(strconv.Quote(p.EndTime.Format(time.RFC3339Nano)))
		}
	}
	in.Paused = p.Paused
	var out campaignResponse
	if err := c.do(ctx, op, http.MethodPatch, "/api/v1/campaigns/"+url.PathEscape(id), true, in, &out, nil); err != nil {
		return adcount.Campaign{}, err
	}
	return out.campaign(op)
}

// Series returns the campaign's counted impressions per interval through
// GET /api/v1/campaigns/{id}/timeseries, with q's bounds sent exactly, and
// the unique users of the points that carry them (Point.HasUniqueUsers). A
// query the API refuses (adcount.SeriesQuery.Check's limits) is an
// *adcount.FieldError; an unknown campaign matches adcount.ErrNotFound.
func (c *Client) Series(ctx context.Context, campaignID string, q adcount.SeriesQuery) (adcount.Series, error) {
	op := "series " + campaignID
	if err := checkID(op, campaignID); err != nil {
		return adcount.Series{}, err
	}
	v := url.Values{
		"from": {q.From.Format(time.RFC3339Nano)},
		"to":   {q.To.Format(time.RFC3339Nano)},
	}
	if q.Interval != "" {
		v.Set("interval", string(q.Interval))
	}
	if q.AdID != "" {
		v.Set("ad_id", q.AdID)
	}
	var out seriesResponse
	path := "/api/v1/campaigns/" + url.PathEscape(campaignID) + "/timeseries?" + v.Encode()
	if err := c.do(ctx, op, http.MethodGet, path, true, nil, &out, nil); err != nil {
		return adcount.Series{}, err
	}
	s := adcount.Series{Points: make([]adcount.Point, len(out.Points))}
	for i, p := range out.Points {
		start, err := time.Parse(time.RFC3339Nano, p.Start)
		if err != nil {
			return adcount.Series{}, fmt.Errorf("apiclient: %s: point %d: start %q: %w", op, i, p.Start, err)
		}
		s.Points[i] = adcount.Point{Start: start.UTC(), Count: p.Count}
		if p.UniqueUsers != nil {
			s.Points[i].UniqueUsers, s.Points[i].HasUniqueUsers = *p.UniqueUsers, true
		}
	}
	var err error
	if s.AsOf, err = parseAsOf(out.AsOf); err != nil {
		return adcount.Series{}, fmt.Errorf("apiclient: %s: %w", op, err)
	}
	return s, nil
}

// AdStats returns one page of the campaign's per-ad breakdown through GET
// /api/v1/campaigns/{id}/ads, the ads with the most impressions first. An
// unknown campaign matches adcount.ErrNotFound.
func (c *Client) AdStats(ctx context.Context, campaignID string, q adcount.AdQuery) (adcount.AdPage, error) {
	op := "ad stats " + campaignID
	if err := checkID(op, campaignID); err != nil {
		return adcount.AdPage{}, err
	}
	v := url.Values{"limit": {strconv.Itoa(q.Limit)}}
	if q.After != nil {
		v.Set("cursor", adcount.EncodeCursor(*q.After))
	}
	var out adStatsResponse
	path := "/api/v1/campaigns/" + url.PathEscape(campaignID) + "/ads?" + v.Encode()
	if err := c.do(ctx, op, http.MethodGet, path, true, nil, &out, nil); err != nil {
		return adcount.AdPage{}, err
	}
	page := adcount.AdPage{Ads: make([]adcount.AdStats, len(out.Ads))}
	for i, a := range out.Ads {
		page.Ads[i] = adcount.AdStats{AdID: a.AdID, LastHour: a.LastHour, LastDay: a.LastDay, Total: a.Total, Filtered: a.Filtered}
	}
	if out.NextCursor != nil {
		next, err := adcount.DecodeCursor[adcount.AdCursor](*out.NextCursor)
		if err != nil {
			return adcount.AdPage{}, fmt.Errorf("apiclient: %s: next_cursor: %w", op, err)
		}
		page.Next = &next
	}
	var err error
	if page.AsOf, err = parseAsOf(out.AsOf); err != nil {
		return adcount.AdPage{}, fmt.Errorf("apiclient: %s: %w", op, err)
	}
	return page, nil
}

// parseAsOf reads an answer's as_of: the zero time when absent.
func parseAsOf(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("as_of %q: %w", s, err)
	}
	return t, nil
}

// The reporting routes' JSON shapes.
type (
	patchRequest struct {
		Name *string `json:"name,omitempty"`
		// EndTime is null to remove the end; absent, it is kept.
		EndTime json.RawMessage `json:"end_time,omitempty"`
		Paused  *bool           `json:"paused,omitempty"`
	}
	campaignListResponse struct {
		Campaigns  []campaignResponse `json:"campaigns"`
		NextCursor *string            `json:"next_cursor"`
	}
	seriesResponse struct {
		Points []struct {
			Start string `json:"start"`
			Count int64  `json:"count"`
			// UniqueUsers is present only on the points whose reach
			// the server keeps; 0 there means nobody.
			UniqueUsers *int64 `json:"unique_users"`
		} `json:"points"`
		AsOf string `json:"as_of"`
	}
	adStatsResponse struct {
		Ads []struct {
			AdID     string `json:"ad_id"`
			LastHour int64  `json:"last_hour"`
			LastDay  int64  `json:"last_day"`
			Total    int64  `json:"total"`
			Filtered int64  `json:"filtered"`
		} `json:"ads"`
		NextCursor *string `json:"next_cursor"`
		AsOf       string  `json:"as_of"`
	}
)
