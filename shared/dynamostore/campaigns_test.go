package dynamostore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/storetest"
)

func ptr[T any](v T) *T { return &v }

// TestCampaignChangesReachEveryStoreWithinTheRefresh runs two stores on
// one table, as two Lambda instances, on one clock the test moves. A
// pause, a resume and an end made through one reach the other at most
// CampaignRefresh after it last read the campaign, and never later; the
// store that made the change sees it at once. The end itself is exact to
// the instant, since the cached campaign carries it.
func TestCampaignChangesReachEveryStoreWithinTheRefresh(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	admin := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	ingest := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, admin, storetest.Epoch)
	const bound = dynamostore.CampaignRefresh
	end := storetest.Epoch.Add(2*bound + 11*time.Second)
	steps := []struct {
		name  string
		at    time.Duration // since the test began
		patch *adcount.CampaignPatch
		via   *dynamostore.Store
		want  error
	}{
		// ingest reads the campaign now and caches it.
		{name: "FirstRead", at: 0, via: ingest},
		// Paused through admin, which sees it at once.
		{name: "Paused", at: time.Second, patch: &adcount.CampaignPatch{Paused: ptr(true)}, via: admin, want: adcount.ErrPaused},
		// ingest trusts its copy until the bound after its read, never
		// at or past it.
		{name: "InsideTheBound", at: bound - storetest.Tick, via: ingest},
		{name: "AtTheBound", at: bound, via: ingest, want: adcount.ErrPaused},
		// Resumed: admin counts at once; ingest, which read at the
		// bound, refuses until the bound after that.
		{name: "Resumed", at: bound + time.Second, patch: &adcount.CampaignPatch{Paused: ptr(false)}, via: admin},
		{name: "ResumeNotYetSeen", at: 2*bound - storetest.Tick, via: ingest, want: adcount.ErrPaused},
		{name: "ResumeSeen", at: 2 * bound, via: ingest},
		// An end set after ingest's read: seen at its next read, and
		// from then on exact to the instant.
		{name: "EndSet", at: 2*bound + time.Second, patch: &adcount.CampaignPatch{EndTime: ptr(end)}, via: admin},
		{name: "EndSeen", at: 3 * bound, via: ingest},
		{name: "JustBeforeTheEnd", at: end.Sub(storetest.Epoch) - storetest.Tick, via: ingest},
		{name: "AtTheEnd", at: end.Sub(storetest.Epoch), via: ingest, want: adcount.ErrEnded},
	}
	for i, st := range steps {
		clock.Set(storetest.Epoch.Add(st.at))
		if st.patch != nil {
			_, err := admin.UpdateCampaign(context.Background(), c.ID, *st.patch)
			require.NoError(t, err, st.name)
		}
		_, err := st.via.RecordImpression(context.Background(), adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("u", i), AdID: "a"})
		if st.want == nil {
			require.NoError(t, err, st.name)
		} else {
			require.ErrorIs(t, err, st.want, st.name)
		}
	}
}

// TestCampaignReadsAreShared counts the hot path's campaign reads on a
// server that bills them: one read however many impressions are in flight
// for the campaign at once, none more until CampaignRefresh has passed
// since it, and none cached for an ID that does not exist, so that a
// campaign created a moment later counts at once.
func TestCampaignReadsAreShared(t *testing.T) {
	t.Parallel()
	srv := dynamotest.StartServer(t)
	ctx := context.Background()
	_, err := dynamostore.CreateTable(ctx, dynamotest.Client(t, srv.URL, nil), "impressions")
	require.NoError(t, err)
	clock := storetest.NewClock(storetest.Epoch)
	s, err := dynamostore.New(dynamotest.Client(t, srv.URL, dynamotest.Label("store")), "impressions",
		dynamostore.WithClock(clock.Now), dynamostore.WithTimeout(time.Minute))
	require.NoError(t, err)
	admin, err := dynamostore.New(dynamotest.Client(t, srv.URL, nil), "impressions")
	require.NoError(t, err)
	reads := func() int64 {
		return srv.CallerUsage("store").Operations["GetItem"].Requests
	}
	id := uuid.NewString()
	_, err = s.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: "u", AdID: "a"})
	require.ErrorIs(t, err, adcount.ErrNotFound)
	c, err := adcount.NewCampaign(id, "Spring sale", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, admin.CreateCampaign(ctx, c))

	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			_, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: fmt.Sprint("u", i), AdID: "a"})
			assert.NoError(t, err, "created after the miss, it counts at once")
		})
	}
	wg.Wait()
	assert.Equal(t, int64(2), reads(), "the miss, then one read shared by 32 impressions")
	clock.Advance(dynamostore.CampaignRefresh - storetest.Tick)
	require.True(t, record(t, s, adcount.Impression{CampaignID: id, UserID: "later", AdID: "a"}))
	assert.Equal(t, int64(2), reads(), "within the refresh bound: cached")
	clock.Advance(storetest.Tick)
	require.True(t, record(t, s, adcount.Impression{CampaignID: id, UserID: "later still", AdID: "a"}))
	assert.Equal(t, int64(3), reads(), "at the bound: read again")
}

// TestListCampaignsOrdersTiesAndEarlierCampaigns pages through campaigns
// created at the same instant, which order by ID, descending, and a
// campaign without a creation time, as from before the list, which lists
// last; pages of every size give the same order, each campaign once.
func TestListCampaignsOrdersTiesAndEarlierCampaigns(t *testing.T) {
	t.Parallel()
	tg := newQuietTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	ctx := context.Background()
	var want []adcount.Campaign
	make := func(id string, created time.Time) {
		c, err := adcount.NewCampaign(id, "Campaign "+id, storetest.Epoch)
		require.NoError(t, err)
		c.CreatedAt = created
		require.NoError(t, s.CreateCampaign(ctx, c))
		want = append(want, c)
	}
	make("legacy", time.Time{})
	for _, id := range []string{"b", "a", "c#d", "c"} {
		make(id, storetest.Epoch.Add(time.Millisecond))
	}
	make("newest", storetest.Epoch.Add(time.Second+time.Nanosecond))
	make("oldest", time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))
	slices.SortFunc(want, adcount.NewerFirst)
	require.Equal(t, "legacy", want[len(want)-1].ID, "the zero time sorts last")

	for limit := 1; limit <= len(want)+1; limit++ {
		var got []string
		var after *adcount.CampaignCursor
		for range len(want) + 2 {
			p, err := s.ListCampaigns(ctx, adcount.CampaignQuery{Limit: limit, After: after, Now: clock.Now()})
			require.NoError(t, err)
			for _, c := range p.Campaigns {
				got = append(got, c.ID)
			}
			if p.Next == nil {
				break
			}
			after = p.Next
		}
		var ids []string
		for _, c := range want {
			ids = append(ids, c.ID)
		}
		assert.Equal(t, ids, got, "limit %d", limit)
	}
}

// TestUpdateCampaignRetriesAConflict cancels the patch's transaction as
// DynamoDB does when another transaction holds the item: the patch is
// tried again and applies once.
func TestUpdateCampaignRetriesAConflict(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	f, wrap := newFaults()
	s := tg.store(t, wrap)
	c := createCampaign(t, s, storetest.Epoch)
	f.set("TransactWriteItems", faultConflict, 2)
	got, err := s.UpdateCampaign(context.Background(), c.ID, adcount.CampaignPatch{Name: ptr("Renamed")})
	require.NoError(t, err)
	assert.Equal(t, "Renamed", got.Name)
	assert.Equal(t, 3, f.requests(), "two cancelled, one committed")
	read, err := s.Campaign(context.Background(), c.ID)
	require.NoError(t, err)
	assert.Equal(t, "Renamed", read.Name)
}

// TestUpdateCampaignOfAnEarlierCampaign patches a campaign written before
// versions, ends and the list, as the earlier store wrote it: the patch
// applies, and the campaign joins the list, last.
func TestUpdateCampaignOfAnEarlierCampaign(t *testing.T) {
	t.Parallel()
	tg := newQuietTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	ctx := context.Background()
	id := uuid.NewString()
	putEarlierCampaign(t, tg, id)
	got, err := s.UpdateCampaign(ctx, id, adcount.CampaignPatch{Paused: ptr(true)})
	require.NoError(t, err)
	assert.True(t, got.Paused)
	assert.True(t, got.CreatedAt.IsZero())
	_, err = s.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: "u", AdID: "a"})
	require.ErrorIs(t, err, adcount.ErrPaused)
	page, err := s.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 10, Now: clock.Now()})
	require.NoError(t, err)
	require.Len(t, page.Campaigns, 1)
	assert.Equal(t, id, page.Campaigns[0].ID)
	assert.True(t, page.Campaigns[0].Paused)
}

// putEarlierCampaign writes a campaign item as the store before this one
// did: name and start, no version, end, pause, creation time or list
// entry.
func putEarlierCampaign(t *testing.T, tg *target, id string) {
	t.Helper()
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	_, err := tg.client(t, nil).PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(tg.table),
		Item: map[string]types.AttributeValue{
			"pk": s("CAMPAIGN#" + id), "sk": s("META"), "name": s("Earlier"),
			"start": s(storetest.Epoch.Format(time.RFC3339Nano)), "startMs": n(fmt.Sprint(storetest.Epoch.UnixMilli())), "startNs": n("0"),
			"creator": s("old"),
		},
	})
	require.NoError(t, err)
}

// TestFilteredListReadsAtMostTheBound lists a table of campaigns of which
// only the oldest passes the filter, with each kind of filter, under a
// bound of 50 list entries a call (the store's is 5,000; the in-process
// server writes thousands of campaigns too slowly). Each call reads no
// more than the bound and answers a page with a cursor, short or empty;
// following the cursors finds the campaign and reads each entry once,
// so that a filter few campaigns pass costs bounded reads per request and
// loses nothing.
func TestFilteredListReadsAtMostTheBound(t *testing.T) {
	t.Parallel()
	const (
		bound     = 50
		campaigns = 2*bound + 30
	)
	srv := dynamotest.StartServer(t)
	ctx := context.Background()
	_, err := dynamostore.CreateTable(ctx, dynamotest.Client(t, srv.URL, nil), "impressions")
	require.NoError(t, err)
	clock := storetest.NewClock(storetest.Epoch)
	writer, err := dynamostore.New(dynamotest.Client(t, srv.URL, nil), "impressions")
	require.NoError(t, err)
	for i := range campaigns {
		name := fmt.Sprint("Hay ", i)
		if i == 0 || i == campaigns-bound/2 {
			name = fmt.Sprint("The Needle ", i)
		}
		c, err := adcount.NewCampaign(uuid.NewString(), name, storetest.Epoch)
		require.NoError(t, err)
		c.CreatedAt = storetest.Epoch.Add(time.Duration(i) * time.Millisecond)
		c.Paused = strings.HasPrefix(name, "The Needle")
		require.NoError(t, writer.CreateCampaign(ctx, c))
	}

	cases := []struct {
		name string
		q    adcount.CampaignQuery
	}{
		{"Name", adcount.CampaignQuery{Limit: 10, Name: "NEEDLE"}},
		{"Status", adcount.CampaignQuery{Limit: 10, Status: adcount.StatusPaused}},
		{"Both", adcount.CampaignQuery{Limit: adcount.MaxPageLimit, Name: "needle", Status: adcount.StatusPaused}},
		// A page of one is full at the first match: its cursor is that
		// campaign's, and the next call starts after it.
		{"PageOfOne", adcount.CampaignQuery{Limit: 1, Name: "needle"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			caller := "list-" + tc.name
			s, err := dynamostore.New(dynamotest.Client(t, srv.URL, dynamotest.Label(caller)), "impressions", dynamostore.WithListScan(bound))
			require.NoError(t, err)
			read := func() int64 { return srv.CallerUsage(caller).Operations["Query"].ItemsRead }
			q := tc.q
			q.Now = clock.Now()
			var found []string
			for calls := 1; ; calls++ {
				require.LessOrEqual(t, calls, campaigns, "the list must end")
				before := read()
				p, err := s.ListCampaigns(ctx, q)
				require.NoError(t, err)
				assert.LessOrEqual(t, read()-before, int64(bound), "call %d reads at most the bound", calls)
				for _, c := range p.Campaigns {
					found = append(found, c.Name)
				}
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			assert.Equal(t, []string{fmt.Sprint("The Needle ", campaigns-bound/2), "The Needle 0"}, found)
			assert.LessOrEqual(t, read(), int64(campaigns+1), "each entry read once over all the calls, but the one that tells a full page")
		})
	}
	// Unfiltered, the bound does not apply: a page is full.
	s, err := dynamostore.New(dynamotest.Client(t, srv.URL, nil), "impressions", dynamostore.WithListScan(bound))
	require.NoError(t, err)
	p, err := s.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 2 * bound, Now: clock.Now()})
	require.NoError(t, err)
	assert.Len(t, p.Campaigns, 2*bound)
	assert.NotNil(t, p.Next)
}
