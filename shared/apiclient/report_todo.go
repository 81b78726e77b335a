package apiclient

// Scaffolding while the reporting issue is built: each method is replaced
// by its real one before the issue is done.

import (
	"context"
	"errors"

	"github.com/adcount/impression-counter/shared/adcount"
)

var errTODO = errors.New("apiclient: not built yet")

func (c *Client) ListCampaigns(context.Context, adcount.CampaignQuery) (adcount.CampaignPage, error) {
	return adcount.CampaignPage{}, errTODO
}

func (c *Client) UpdateCampaign(context.Context, string, adcount.CampaignPatch) (adcount.Campaign, error) {
	return adcount.Campaign{}, errTODO
}

func (c *Client) Series(context.Context, string, adcount.SeriesQuery) (adcount.Series, error) {
	return adcount.Series{}, errTODO
}

func (c *Client) AdStats(context.Context, string, adcount.AdQuery) (adcount.AdPage, error) {
	return adcount.AdPage{}, errTODO
}
