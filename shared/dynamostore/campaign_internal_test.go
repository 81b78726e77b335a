package dynamostore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamotest"
)

// TestGetCampaignItemReportsNotFound checks that a missing campaign item is
// an error its callers can test for, never a nil item with a nil error that
// each caller must remember to check.
func TestGetCampaignItemReportsNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dynamotest.Client(t, dynamotest.Start(t), nil)
	_, err := CreateTable(ctx, db, "impressions")
	require.NoError(t, err)
	s, err := New(db, "impressions")
	require.NoError(t, err)

	item, err := s.getCampaignItem(ctx, "missing")
	require.ErrorIs(t, err, adcount.ErrNotFound)
	assert.Nil(t, item)
}
