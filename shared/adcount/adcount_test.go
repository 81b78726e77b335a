package adcount_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

func TestNewCampaign(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 1, 9, 0, 0, 0, time.FixedZone("EST", -5*3600))
	cases := []struct {
		name      string
		inName    string
		start     time.Time
		wantName  string
		wantField string // empty when valid
	}{
		// Surrounding white space is not part of the name.
		{"Trimmed", "  Spring sale\n", start, "Spring sale", ""},
		// The limit counts characters, not bytes: 200 two-byte runes pass.
		{"MaxRunes", strings.Repeat("é", 200), start, strings.Repeat("é", 200), ""},
		{"TooLong", strings.Repeat("a", 201), start, "", "name"},
		{"Empty", "", start, "", "name"},
		{"Blank", " \t ", start, "", "name"},
		{"InvalidUTF8", "bad\xff", start, "", "name"},
		{"NoStart", "Spring sale", time.Time{}, "", "start_time"},
		// The start's range is 1970 to 9999, in UTC, bounds included.
		{"FirstStart", "Spring sale", adcount.MinStartTime, "Spring sale", ""},
		{"LastStart", "Spring sale", adcount.MaxStartTime, "Spring sale", ""},
		{"Before1970", "Spring sale", adcount.MinStartTime.Add(-time.Nanosecond), "", "start_time"},
		{"YearZero", "Spring sale", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), "", "start_time"},
		{"After9999", "Spring sale", adcount.MaxStartTime.Add(time.Nanosecond), "", "start_time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := adcount.NewCampaign("id-1", tc.inName, tc.start)
			if tc.wantField != "" {
				var fe *adcount.FieldError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, tc.wantField, fe.Field)
				assert.ErrorIs(t, err, adcount.ErrInvalid)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantName, c.Name)
			assert.Equal(t, time.UTC, c.StartTime.Location(), "stored in UTC")
			assert.True(t, c.StartTime.Equal(tc.start))
		})
	}
}

func TestImpressionValidate(t *testing.T) {
	t.Parallel()
	ok := adcount.Impression{CampaignID: "c", UserID: "u", AdID: "a"}
	cases := []struct {
		name      string
		mutate    func(*adcount.Impression)
		wantField string
	}{
		{"Valid", func(*adcount.Impression) {}, ""},
		// Exactly at the byte limit is allowed.
		{"AtLimit", func(i *adcount.Impression) { i.UserID = strings.Repeat("u", adcount.MaxIDBytes) }, ""},
		{"OverLimit", func(i *adcount.Impression) { i.AdID = strings.Repeat("a", adcount.MaxIDBytes+1) }, "ad_id"},
		// The limit is in bytes: 129 two-byte runes are 258 bytes.
		{"OverLimitMultibyte", func(i *adcount.Impression) { i.UserID = strings.Repeat("é", 129) }, "user_id"},
		{"MissingCampaign", func(i *adcount.Impression) { i.CampaignID = "" }, "campaign_id"},
		{"MissingUser", func(i *adcount.Impression) { i.UserID = "" }, "user_id"},
		{"MissingAd", func(i *adcount.Impression) { i.AdID = "" }, "ad_id"},
		{"InvalidUTF8", func(i *adcount.Impression) { i.UserID = "\xc3" }, "user_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			imp := ok
			tc.mutate(&imp)
			err := imp.Validate()
			if tc.wantField == "" {
				assert.NoError(t, err)
				return
			}
			var fe *adcount.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.wantField, fe.Field)
			assert.Contains(t, err.Error(), tc.wantField, "the message names the field")
		})
	}
}

func TestDedupKey(t *testing.T) {
	t.Parallel()
	base := adcount.Impression{CampaignID: "c", UserID: "ab", AdID: "c"}
	assert.Equal(t, base.Key(), base.Key(), "stable")
	others := []adcount.Impression{
		{CampaignID: "c", UserID: "a", AdID: "bc"}, // same bytes, other split
		{CampaignID: "ca", UserID: "b", AdID: "c"}, // campaign takes a byte
		{CampaignID: "c", UserID: "ab", AdID: "d"}, // another ad
		{CampaignID: "c", UserID: "abc", AdID: ""}, // empty field
		{CampaignID: "cab", UserID: "", AdID: "c"}, //nolint // moved across two fields
	}
	for _, o := range others {
		assert.NotEqual(t, base.Key(), o.Key(), "%+v", o)
	}
}

func TestBucketAndWindows(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		t    time.Time
		want int64
	}{
		{"Epoch", time.Unix(0, 0), 0},
		{"LastNanoOfFirstBucket", time.Unix(59, 999_999_999), 0},
		{"SecondBucket", time.Unix(60, 0), 1},
		// Before 1970 buckets round down, not toward zero.
		{"BeforeEpoch", time.Unix(-1, 0), -1},
		{"BeforeEpochWholeBucket", time.Unix(-60, 0), -1},
		{"BeforeEpochPastBucket", time.Unix(-61, 0), -2},
		{"Aligned", at, at.Unix() / 60},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, adcount.Bucket(tc.t))
		})
	}

	b := adcount.Bucket(at)
	assert.Equal(t, adcount.BucketRange{First: b - 59, Last: b}, adcount.LastHour(at))
	assert.Equal(t, adcount.BucketRange{First: b - 1439, Last: b}, adcount.LastDay(at))
	assert.True(t, adcount.LastHour(at).Contains(b-59))
	assert.False(t, adcount.LastHour(at).Contains(b-60))
	assert.False(t, adcount.LastHour(at).Contains(b+1))
}

func TestCampaignStarted(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := adcount.Campaign{StartTime: start}
	assert.False(t, c.Started(start.Add(-time.Nanosecond)))
	assert.True(t, c.Started(start))
	assert.True(t, c.Started(start.Add(time.Nanosecond)))
}

func TestCheckDedupTTL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ttl  time.Duration
		ok   bool
	}{
		// Dedup is exact to the millisecond, so that is the shortest window.
		{"Millisecond", time.Millisecond, true},
		{"UnderAMillisecond", time.Millisecond - 1, false},
		{"Zero", 0, false},
		{"Negative", -time.Hour, false},
		{"Default", adcount.DefaultDedupTTL, true},
		// A week is the longest window any store keeps.
		{"AWeek", 168 * time.Hour, true},
		{"OverAWeek", 200 * time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := adcount.CheckDedupTTL(tc.ttl)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, adcount.ErrInvalid)
			assert.ErrorContains(t, err, "168h")
		})
	}
}

func TestCheckBatchSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		n    int
		ok   bool
	}{
		// An empty batch is no error: it records nothing.
		{"Empty", 0, true},
		{"One", 1, true},
		// The limit itself is allowed ...
		{"AtTheLimit", adcount.MaxBatch, true},
		// ... one more is refused whole.
		{"OverTheLimit", adcount.MaxBatch + 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := adcount.CheckBatchSize(tc.n)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			var fe *adcount.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "impressions", fe.Field)
			assert.ErrorIs(t, err, adcount.ErrInvalid)
			assert.ErrorContains(t, err, "1000")
		})
	}
}
