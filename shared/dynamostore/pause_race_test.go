package dynamostore_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// hookRT runs hook once, before the first request of op is sent.
type hookRT struct {
	next http.RoundTripper
	op   string
	once sync.Once
	hook func()
}

func (h *hookRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), "."+h.op) && h.hook != nil {
		h.once.Do(h.hook)
	}
	return h.next.RoundTrip(r)
}

// TestAPauseTakesEffectAtOnceInTheProcessThatMadeIt: the hot path reads the
// campaign while a PATCH that pauses it is between its read and its
// commit. Its read began later but returns the older version; the cache
// must keep the PATCH's own paused copy, by version, or the process that
// made the pause would count for up to CampaignRefresh more, against the
// docs' promise that a pause reaches that process at once.
func TestAPauseTakesEffectAtOnceInTheProcessThatMadeIt(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(storetest.Epoch)
	tg := newTarget(t)
	h := &hookRT{op: "TransactWriteItems"}
	s := tg.store(t, func(next http.RoundTripper) http.RoundTripper { h.next = next; return h }, dynamostore.WithClock(clock.Now))
	id := "review-pause-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
	require.NoError(t, s.CreateCampaign(ctx, adcount.Campaign{ID: id, Name: "n", StartTime: clock.Now().Add(-time.Hour), CreatedAt: clock.Now()}))
	_, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: "u0", AdID: "a"})
	require.NoError(t, err)
	clock.Advance(dynamostore.CampaignRefresh) // the cached copy is stale

	h.hook = func() {
		// An impression arrives while the PATCH is committing: it began
		// after the PATCH read the campaign, and counts, which is fine.
		clock.Advance(time.Millisecond)
		_, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: "u1", AdID: "a"})
		require.NoError(t, err)
	}
	paused := true
	c, err := s.UpdateCampaign(ctx, id, adcount.CampaignPatch{Paused: &paused})
	require.NoError(t, err)
	require.True(t, c.Paused)

	// The PATCH has answered: the pause must be in effect in this process.
	clock.Advance(time.Millisecond)
	out, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: "u2", AdID: "a"})
	require.ErrorIs(t, err, adcount.ErrPaused, "an impression after the PATCH answered paused was %v", out)
}
