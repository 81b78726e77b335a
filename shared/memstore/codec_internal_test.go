package memstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/reach"
)

var epoch = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func quietOpen(t *testing.T, dir string, now time.Time) *Store {
	t.Helper()
	s, err := Open(dir, WithClock(func() time.Time { return now }), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithSnapshotInterval(time.Hour))
	require.NoError(t, err)
	return s
}

// TestCampaignRecordsRoundTrip encodes campaigns as the log holds them and
// decodes them back, zero times and pauses included.
func TestCampaignRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		c    adcount.Campaign
	}{
		// From before ends, pauses and creation times: all zero.
		{"Plain", adcount.Campaign{ID: "c", Name: "n", StartTime: epoch}},
		// Everything set, to the nanosecond.
		{"Full", adcount.Campaign{ID: "c", Name: "Spring ☀", StartTime: epoch.Add(time.Nanosecond),
			EndTime: epoch.Add(time.Hour + 7), Paused: true, CreatedAt: epoch.Add(-time.Minute - 3)}},
		// Times before 1970 have negative seconds.
		{"Before1970", adcount.Campaign{ID: "c", Name: "n", StartTime: adcount.MinStartTime, CreatedAt: time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC)}},
	}
	for _, tc := range cases {
		for _, typ := range []byte{recCampaignV2, recCampaignUpdate} {
			payload := encodeCampaign(typ, tc.c)
			require.Equal(t, typ, payload[0])
			d := &decoder{b: payload[1:]}
			got := d.campaign()
			require.NoError(t, d.done(), tc.name)
			assert.Equal(t, tc.c, got, tc.name)
		}
	}
	d := &decoder{b: append(encodeCampaign(recCampaignV2, cases[0].c)[1:len(encodeCampaign(recCampaignV2, cases[0].c))-1], 2)}
	d.campaign()
	assert.ErrorContains(t, d.done(), "unknown campaign flags", "a flag this version does not know is damage")
}

// TestRingsKeepWhatRetentionSays holds the rings' sizes to the retention
// the contract promises, so that a query Check lets through is always in
// a ring.
func TestRingsKeepWhatRetentionSays(t *testing.T) {
	t.Parallel()
	var (
		cs campaignSeries
		a  adState
	)
	assert.Equal(t, adcount.Retention(adcount.Minute, false), cs.minutes.size())
	assert.Equal(t, adcount.Retention(adcount.Hour, false), cs.hours.size())
	assert.Zero(t, adcount.Retention(adcount.Day, false), "a campaign's days are kept for ever")
	assert.Equal(t, adcount.Retention(adcount.Minute, true), a.minutes.size())
	assert.Equal(t, adcount.Retention(adcount.Hour, true), a.hours.size())
	assert.Equal(t, adcount.Retention(adcount.Day, true), a.days.size())
}

// TestTimeSeriesStateFitsTheBudget adds up what a campaign's time series
// hold, by the types' sizes, against the budget of docs/performance.md:
// 64 KiB for a campaign with a year of days and 10 ads, 2 KiB for each
// further ad. BenchmarkCampaignMemory measures the same on the heap, with
// the maps, the allocator's size classes and the IDs.
func TestTimeSeriesStateFitsTheBudget(t *testing.T) {
	t.Parallel()
	const (
		ptr     = int(unsafe.Sizeof(uintptr(0)))
		yearDay = int(unsafe.Sizeof(int32(0)) + unsafe.Sizeof(int64(0)))
		// An ad's entry in the map and the list, with the map at its
		// fullest (7/8) and the list at twice its length, and a short ID.
		adOverhead = (int(unsafe.Sizeof(""))+ptr)*8/7 + 2*ptr + 16
	)
	perAd := int(unsafe.Sizeof(adState{})) + adOverhead
	// The reach's sets are empty here: a campaign whose every set is full
	// is TestReachMemoryStaysInBudget's.
	campaign := int(unsafe.Sizeof(campaignState{})) + int(unsafe.Sizeof(campaignSeries{})) + int(unsafe.Sizeof(adcount.Campaign{})) +
		int(unsafe.Sizeof(campaignReach{})) + 365*yearDay + 10*perAd
	t.Logf("campaign with 10 ads and a year of days: %d B; each further ad: %d B", campaign, perAd)
	assert.LessOrEqual(t, campaign, 64<<10)
	assert.LessOrEqual(t, perAd, 2<<10)
}

// TestDayCountsTakeDaysInAnyOrder adds days out of order, as a batch that
// read the clock before midnight and was counted after another may.
func TestDayCountsTakeDaysInAnyOrder(t *testing.T) {
	t.Parallel()
	var d dayCounts
	for _, day := range []int32{10, 12, 11, 12, 3, 20, 10} {
		d.add(day, int64(day))
	}
	assert.Equal(t, []int32{3, 10, 11, 12, 20}, d.days)
	assert.Equal(t, []int64{3, 20, 11, 24, 20}, d.counts)
	assert.Equal(t, when{minute: -1, ten: -1, hour: -1, day: -1}, inBucket(-1), "the minute before 1970 is in the hour and day before")
	assert.Equal(t, int32(1<<31-1), dayNumber(1<<40), "a day beyond what the type holds is the last one")
}

// TestSmallRings checks the arithmetic of the ads' rings, which are far
// smaller than the minute ring TestRing checks.
func TestSmallRings(t *testing.T) {
	t.Parallel()
	var r ring[[adHours]int64]
	r.add(100, 1)
	r.add(99, 2)
	r.add(100-adHours, 4) // older than the ring holds: dropped
	r.add(110, 8)
	assert.Equal(t, []int64{0, 2, 1, 0, 8, 0}, []int64{r.at(98), r.at(99), r.at(100), r.at(109), r.at(110), r.at(111)})
	r.add(99+adHours, 16) // 99 leaves the ring
	assert.Equal(t, int64(0), r.at(99))
	assert.Equal(t, int64(1+8+16), r.sum(0, 200))
}

// appendFormerCounters appends a recCountersFiltered record as the store
// wrote it before campaigns could end, from its format in codec.go.
func appendFormerCounters(b []byte, c adcount.Campaign, lsn uint64, total, filtered, head int64, slots map[int64]int64) []byte {
	b = append(b, recCountersFiltered)
	b = appendStr16(b, c.ID)
	b = appendStr16(b, c.Name)
	b = appendTime(b, c.StartTime)
	b = binary.LittleEndian.AppendUint64(b, lsn)
	b = binary.LittleEndian.AppendUint64(b, uint64(total))
	b = binary.LittleEndian.AppendUint64(b, uint64(filtered))
	b = binary.LittleEndian.AppendUint64(b, uint64(head))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(slots)))
	for back, v := range slots {
		b = binary.LittleEndian.AppendUint16(b, uint16(back))
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// TestAFormerSnapshotKeepsWhatItKnew restores a snapshot of the former
// format whose total holds impressions older than its day of minutes, as
// every campaign that ran for more than a day has: the minutes become
// hours and days, the total stays whole, and the older impressions are in
// no point, as codec.go says.
func TestAFormerSnapshotKeepsWhatItKnew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := adcount.Campaign{ID: "c", Name: "old", StartTime: epoch.AddDate(0, 0, -30)}
	now := epoch.Add(30 * time.Minute)
	head := adcount.Bucket(epoch) // 10:00
	// 10:00, 9:59, 9:00 and 23:59 the day before: three hours, two days.
	slots := map[int64]int64{0: 1, 1: 2, 60: 4, 601: 8}
	require.NoError(t, wal.WriteSnapshot(nil, dir, func(w *wal.SnapshotWriter) error {
		for _, rec := range [][]byte{
			binary.LittleEndian.AppendUint64([]byte{recSnapshotHeader}, 0),
			appendFormerCounters(nil, c, 0, 100, 3, head, slots),
			binary.LittleEndian.AppendUint64([]byte{recSnapshotDurable}, 0),
		} {
			if err := w.Add(rec); err != nil {
				return err
			}
		}
		return nil
	}))
	s := quietOpen(t, dir, now)
	defer func() { assert.NoError(t, s.Close()) }()
	ctx := context.Background()
	st, err := s.Stats(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 3, LastDay: 15, Total: 100, Filtered: 3, AsOf: now}, st)

	points := func(iv adcount.Interval, from time.Time, n int) []int64 {
		t.Helper()
		series, err := s.Series(ctx, c.ID, adcount.SeriesQuery{From: from, To: from.Add(time.Duration(n) * iv.Duration()), Interval: iv})
		require.NoError(t, err)
		var counts []int64
		for _, p := range series.Points {
			counts = append(counts, p.Count)
		}
		return counts
	}
	assert.Equal(t, []int64{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 1, 0}, points(adcount.Hour, epoch.Add(-11*time.Hour), 13))
	assert.Equal(t, []int64{0, 8, 7}, points(adcount.Day, epoch.Truncate(24*time.Hour).AddDate(0, 0, -2), 3),
		"the 85 impressions older than the minutes are in the total only")

	// What the store writes now keeps the same.
	require.NoError(t, s.Snapshot())
	before := fmt.Sprint(points(adcount.Hour, epoch.Add(-11*time.Hour), 13), points(adcount.Day, epoch.Truncate(24*time.Hour).AddDate(0, 0, -2), 3))
	require.NoError(t, s.Close())
	s = quietOpen(t, dir, now)
	assert.Equal(t, before, fmt.Sprint(points(adcount.Hour, epoch.Add(-11*time.Hour), 13), points(adcount.Day, epoch.Truncate(24*time.Hour).AddDate(0, 0, -2), 3)))
}

// TestLargeCampaignsSnapshotInFrames gives a campaign more days and ads
// than one snapshot record holds, and checks that a snapshot splits them
// into records that fit a frame and that they all come back.
func TestLargeCampaignsSnapshotInFrames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := quietOpen(t, dir, epoch)
	ctx := context.Background()
	c, err := adcount.NewCampaign("c", "large", epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c))
	v, _ := s.campaigns.Load(c.ID)
	cs := v.(*campaignState)
	// Built by hand: a campaign would have to run for 180 years.
	cs.mu.Lock()
	for d := range int32(daysPerRecord + 10) {
		cs.days.add(d, int64(d)+1)
	}
	for i := range 2*adsPerRecord + 1 {
		a := cs.ad(fmt.Sprint("ad-", i))
		a.add(inBucket(adcount.Bucket(epoch)-int64(i)), int64(i), 1, 0)
	}
	wantDays := dayCounts{days: append([]int32(nil), cs.days.days...), counts: append([]int64(nil), cs.days.counts...)}
	wantAds := map[string]adState{}
	for _, a := range cs.ads {
		wantAds[a.id] = *a
	}
	cs.mu.Unlock()
	require.NoError(t, s.Close()) // snapshots

	s = quietOpen(t, dir, epoch)
	defer func() { assert.NoError(t, s.Close()) }()
	v, _ = s.campaigns.Load(c.ID)
	cs = v.(*campaignState)
	assert.Equal(t, wantDays, cs.days)
	gotAds := map[string]adState{}
	for _, a := range cs.ads {
		gotAds[a.id] = *a
	}
	assert.Equal(t, wantAds, gotAds)
}

// reachOf returns a campaign's reach with users in every bucket of every
// ring: ExactReach users in some, a sketch's worth in others, as
// campaignReach.add puts them there.
func reachOf(t *testing.T, now time.Time) *campaignReach {
	t.Helper()
	r := new(campaignReach)
	user := uint64(0)
	for b := range reachTens + reachHours + reachDays {
		// Back in time, so that each ring's head stays at now.
		w := at(now.Add(-time.Duration(b) * adcount.ReachBucketWidth))
		n := []int{1, adcount.ExactReach, adcount.ExactReach + 1, 5000}[b%4]
		for range n {
			user++
			r.add(w, reach.Hash(fmt.Sprint("u", user)))
		}
	}
	return r
}

// TestReachRecordsRoundTrip encodes a campaign's reach as a snapshot
// holds it and decodes it back, set for set; every set's encoding fits
// maxSetBytes, and the whole record maxReachRecord.
func TestReachRecordsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []*campaignReach{new(campaignReach), reachOf(t, epoch)} {
		rec, err := appendReach(nil, "c", r)
		require.NoError(t, err)
		require.Equal(t, recReach, rec[0])
		require.LessOrEqual(t, int64(len(rec)), maxReachRecord)
		d := &decoder{b: rec[1:]}
		require.Equal(t, "c", d.str16())
		got, err := decodeReach(d)
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	for _, n := range []int{adcount.ExactReach, 100_000} {
		var s reach.Set
		for i := range n {
			s.Add(reach.Hash(fmt.Sprint(i)))
		}
		b, err := s.MarshalBinary()
		require.NoError(t, err)
		assert.LessOrEqual(t, len(b), maxSetBytes, "%d users", n)
	}
}

// TestDamagedReachRecordsAreErrors decodes a reach record cut short at
// every length, and with each byte changed, and records that no Set
// encodes to: none may panic, and what is not a reach record is an error.
func TestDamagedReachRecordsAreErrors(t *testing.T) {
	t.Parallel()
	r := new(campaignReach)
	for u := range 3 {
		r.add(at(epoch), reach.Hash(fmt.Sprint(u)))
	}
	for u := range 2000 {
		r.total.Add(reach.Hash(fmt.Sprint("more", u)))
	}
	rec, err := appendReach(nil, "c", r)
	require.NoError(t, err)
	body := rec[1+2+1:] // after the type and the ID
	for n := range len(body) {
		_, err := decodeReach(&decoder{b: body[:n]})
		require.Error(t, err, "cut at %d of %d", n, len(body))
	}
	for i := range body {
		damaged := bytes.Clone(body)
		damaged[i] ^= 0xa5
		assert.NotPanics(t, func() { _, _ = decodeReach(&decoder{b: damaged}) }, "byte %d", i)
	}
	cases := []struct {
		name string
		set  []byte
	}{
		// A form that no Set has.
		{"UnknownForm", []byte{9, 1, 2, 3}},
		// Fingerprints out of order.
		{"ExactOutOfOrder", []byte{1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1}},
		// Part of a fingerprint.
		{"ExactTorn", []byte{1, 0, 0, 0}},
		// A sketch of another precision.
		{"SketchPrecision", []byte{2, 2, 14, 0, 0, 0, 0, 0x40, 0}},
		// A sketch cut short.
		{"SketchTorn", append([]byte{2, 2, reach.Precision, 0, 0, 0, 0, 0x10, 0}, make([]byte, 100)...)},
	}
	for _, tc := range cases {
		b := binary.LittleEndian.AppendUint64(nil, 0) // tens: head
		b = append(b, 1, 0)                           // one set, back 0
		b = binary.LittleEndian.AppendUint16(b, uint16(len(tc.set)))
		b = append(b, tc.set...)
		for range 2 { // hours and days: empty
			b = binary.LittleEndian.AppendUint64(b, 0)
			b = append(b, 0)
		}
		b = binary.LittleEndian.AppendUint16(b, 0) // no total
		_, err := decodeReach(&decoder{b: b})
		assert.ErrorIs(t, err, reach.ErrInvalidEncoding, tc.name)
	}
}

// TestASnapshotWithDamagedReachIsRefused writes a snapshot whose frames
// are whole but whose reach record holds bytes no Set encodes to, as a
// bug or a bad disk behind a valid checksum would: Open refuses it with
// an error, and does not start with less.
func TestASnapshotWithDamagedReachIsRefused(t *testing.T) {
	t.Parallel()
	c := adcount.Campaign{ID: "c", Name: "damaged", StartTime: epoch}
	good := reachOf(t, epoch)
	for _, tc := range []struct {
		name   string
		damage func(rec []byte) []byte
		want   string
	}{
		// The first set's form byte, after type, ID, head, count, back
		// and length.
		{"SetForm", func(rec []byte) []byte { rec[1+2+1+8+1+1+2] = 7; return rec }, "invalid encoding"},
		// A second reach record for the campaign.
		{"Twice", func(rec []byte) []byte { return rec }, "reach is listed twice"},
		// A reach record of a campaign the snapshot does not list.
		{"Unlisted", func(rec []byte) []byte { rec[3] = 'x'; return rec }, "does not list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rec, err := appendReach(nil, c.ID, good)
			require.NoError(t, err)
			records := [][]byte{
				binary.LittleEndian.AppendUint64([]byte{recSnapshotHeader}, 0),
				appendCampaignState(nil, &campaignCopy{campaign: c, total: 1}),
			}
			if tc.name == "Twice" {
				records = append(records, bytes.Clone(rec))
			}
			records = append(records, tc.damage(rec), binary.LittleEndian.AppendUint64([]byte{recSnapshotDurable}, 0))
			require.NoError(t, wal.WriteSnapshot(nil, dir, func(w *wal.SnapshotWriter) error {
				for _, rec := range records {
					if err := w.Add(rec); err != nil {
						return err
					}
				}
				return nil
			}))
			_, err = Open(dir, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
