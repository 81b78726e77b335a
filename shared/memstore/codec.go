package memstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/reach"
)

// Record types. The first byte of every payload in the log and the
// snapshot says which it is; all integers are little-endian. A time is
//
//	seconds i64, nanoseconds u32 (Unix; the zero time.Time is -62135596800, 0)
//
// # What the former formats restore to
//
// A directory written before campaigns could end or pause, and before ads
// were counted apart (recCampaign, recImpression, recImpressions,
// recCounters, recCountersFiltered), restores as follows, and is written
// in the current format from then on:
//
//   - its campaigns have no end, are not paused, and have no creation
//     time, so they list after every campaign created since;
//   - an impression of a former log record keeps its minute, so it counts
//     in the campaign's minutes, hours and days as if it had been recorded
//     now; it names no ad (a dedup key is a hash, and holds none), so it
//     counts under no ad: in the campaign's Stats and Series, in no
//     AdStats, and in no ad's series;
//   - no former record names the user of an impression, so the
//     impressions they hold add no unique users: a campaign restored from
//     them reports reach only for what it counts from then on, bounded by
//     its counts (adcount.UniqueUsers.Bound). recImpressionsAds records
//     and snapshots without recReach records, written before reach
//     existed, restore the same way;
//   - a former snapshot's counters hold the total and a day of minutes:
//     those minutes make the campaign's hours and days too, and the
//     impressions counted before that day keep no time at all. They stay
//     in the total, and are in no point of any series: day points then sum
//     to less than the total, by what the former format could not say.
//     Nothing is invented for them.
const (
	// recCampaign (log, written before campaigns could end or pause): a
	// campaign was created.
	//	id str16, name str16, start time
	recCampaign byte = 1
	// recImpression (log, written before batches): an impression counted
	// at t, its key a duplicate until expiry, both Unix milliseconds. It is
	// still read, as a counted impression of no ad, and no longer written.
	//	t i64, expiry i64, key [16], campaign id str16
	recImpression byte = 2
	// recSnapshotHeader (snapshot, first): the last log record it covers.
	//	cut u64
	recSnapshotHeader byte = 3
	// recCounters (snapshot, written before filtered impressions): as
	// recCountersFiltered without the filtered count, which is read as 0.
	//	campaign as in recCampaign, lsn u64, total i64, head i64,
	//	n u16, n × (back u16, count i64)
	recCounters byte = 4
	// recDedup (snapshot): live dedup keys and their expiries.
	//	n u32, n × (key [16], expiry i64)
	recDedup byte = 5
	// recSnapshotDurable (snapshot, last): the last log record that was
	// durable once everything before it in the snapshot was. The log must
	// reach it on restore, or acknowledged records are missing.
	//	lsn u64
	recSnapshotDurable byte = 6
	// recImpressions (log, written before ads were counted apart): as
	// recImpressionsAds without the ads. Still read, each impression of no
	// ad; no longer written.
	//	t i64, expiry i64, c u16, c × campaign id str16,
	//	n u16, n × (campaign u16, flags u8, key [16])
	recImpressions byte = 7
	// recCountersFiltered (snapshot, written before campaigns could end or
	// pause): a campaign and its counters as of log record lsn; only
	// non-zero minutes are listed, by distance back from head.
	//	campaign as in recCampaign, lsn u64, total i64, filtered i64,
	//	head i64, n u16, n × (back u16, count i64)
	recCountersFiltered byte = 8
	// recCampaignV2 (log): a campaign was created. Flag bit 0 is Paused;
	// the other bits are zero. A zero end or creation time is none.
	//	id str16, name str16, start time, end time, created time, flags u8
	recCampaignV2 byte = 9
	// recCampaignUpdate (log): UpdateCampaign changed a campaign; the
	// record holds the whole campaign as changed, as recCampaignV2 does,
	// so that replaying it twice, or over a snapshot that already holds
	// it, gives the same campaign.
	recCampaignUpdate byte = 10
	// recImpressionsAds (log): the impressions of one RecordImpressions or
	// RecordImpression call that were new within the dedup window, all
	// decided at t and a duplicate until expiry (Unix milliseconds), in
	// batch order. The campaigns and the ads are listed once each, and
	// each impression names its campaign and its ad by their places in
	// those lists. Flag bit 0 marks a filtered impression, which counts in
	// the filtered counts instead of the impressions; the other bits are
	// zero.
	//	t i64, expiry i64, c u16, c × campaign id str16,
	//	a u16, a × ad id str16,
	//	n u16, n × (campaign u16, ad u16, flags u8, key [16])
	recImpressionsAds byte = 11
	// recCampaignState (snapshot): a campaign and its own counters as of
	// log record lsn: the minutes of its last day and the hours of its
	// last 90 days, only the non-zero ones, by distance back from each
	// ring's head. Its recDays and recAds records follow it.
	//	campaign as in recCampaignV2, lsn u64, total i64, filtered i64,
	//	minutes: head i64, n u16, n × (back u16, count i64),
	//	hours: head i64, n u16, n × (back u16, count i64)
	recCampaignState byte = 12
	// recDays (snapshot): days of the campaign named, in day order,
	// continuing those of any recDays before it; copied with the
	// recCampaignState, so as of its lsn.
	//	campaign id str16, n u32, n × (day i32, count i64)
	recDays byte = 13
	// recAds (snapshot): ads of the campaign named, each as of its own log
	// record lsn: a campaign's ads are copied some at a time, so that its
	// impressions never wait for all of them. Each ring lists its
	// non-zero buckets by distance back from its head.
	//	campaign id str16, n u16, n × (ad id str16, lsn u64, total i64,
	//	filtered i64, 3 × (head i64, k u8, k × (back u8, count i64)))
	//	(the rings: 60 minutes, 24 hours, 90 days)
	recAds byte = 14
	// recImpressionsReach (log): as recImpressionsAds, and each counted
	// impression, one without the filtered flag, carries its user's
	// fingerprint (reach.Hash, whose low 16 bits are zero) in its top 48
	// bits, so that replay rebuilds the campaign's reach. A filtered
	// impression carries none: it never adds reach.
	//	t i64, expiry i64, c u16, c × campaign id str16,
	//	a u16, a × ad id str16,
	//	n u16, n × (campaign u16, ad u16, flags u8, key [16], [user u48])
	recImpressionsReach byte = 15
	// recReach (snapshot): the unique users of the campaign named, as of
	// the lsn of the recCampaignState before it, which it follows. Each
	// ring lists its non-empty sets by distance back from its head; a set
	// is its reach.Set encoding, and an empty total is length 0.
	//	campaign id str16,
	//	3 × (head i64, k u8, k × (back u8, len u16, set [len]))
	//	(the rings: 6 ten-minute buckets, 24 hours, 7 days),
	//	total: len u16, set [len]
	recReach byte = 16
)

// flagFiltered marks a filtered impression in an impressions record;
// flagPaused a paused campaign in a campaign record.
const (
	flagFiltered byte = 1
	flagPaused   byte = 1
)

// Sizes of a recImpressionsReach record.
const (
	impressionsHeader = 1 + 8 + 8 + 2 + 2 + 2      // type, t, expiry, c, a, n
	impressionsItem   = 2 + 2 + 1 + 16 + userBytes // campaign, ad, flags, key, user
	userBytes         = 6                          // the top 48 bits of reach.Hash
	// maxOneImpressionPayload is the largest record of one impression,
	// which a batch of one builds on its stack.
	maxOneImpressionPayload = impressionsHeader + 2*(2+adcount.MaxIDBytes) + impressionsItem
	// maxImpressionsPayload is the largest record of a batch: every
	// impression of another campaign and another ad, each with the longest
	// ID.
	maxImpressionsPayload = impressionsHeader + adcount.MaxBatch*(2*(2+adcount.MaxIDBytes)+impressionsItem)
)

// Sizes of a recReach record. A Set's encoding is one byte of form and
// then at most reach.ExactLimit fingerprints of 6 bytes, or the sketch's
// 8-byte header and its 2^reach.Precision registers;
// TestReachRecordsRoundTrip holds the encodings to maxSetBytes.
const (
	maxSetBytes    = 1 + max(reach.ExactLimit*6, 8+1<<reach.Precision)
	reachSets      = reachTens + reachHours + reachDays
	maxReachRecord = 1 + 2 + adcount.MaxIDBytes + 3*(8+1) + reachSets*(1+2+maxSetBytes) + 2 + maxSetBytes
)

// Sizes of the snapshot's records.
const (
	timeBytes = 8 + 4
	// maxCampaignFields is the most a campaign takes as recCampaignV2
	// holds it: a name is at most MaxNameRunes runes of at most 4 bytes.
	maxCampaignFields = 2*(2+adcount.MaxIDBytes) + adcount.MaxNameRunes*utf8.UTFMax + 3*timeBytes + 1
	maxCampaignState  = 1 + maxCampaignFields + 3*8 + 2*(8+2) + (campaignMinutes+campaignHours)*(2+8)
	// daysPerRecord and adsPerRecord are how many days and ads one
	// recDays or recAds record holds at most.
	daysPerRecord = 1 << 16
	maxDaysRecord = 1 + 2 + adcount.MaxIDBytes + 4 + daysPerRecord*(4+8)
	adsPerRecord  = 256
	maxAdBytes    = 2 + adcount.MaxIDBytes + 3*8 + 3*(8+1) + (adMinutes+adHours+adDays)*(1+8)
	maxAdsRecord  = 1 + 2 + adcount.MaxIDBytes + 2 + adsPerRecord*maxAdBytes
)

// Every record must fit one log or snapshot frame; the counts of an
// impressions record and of a recAds record fit a u16, and an ad's ring
// distances a u8.
var (
	_ [wal.MaxPayload - maxImpressionsPayload]struct{}
	_ [wal.MaxPayload - maxCampaignState]struct{}
	_ [wal.MaxPayload - maxDaysRecord]struct{}
	_ [wal.MaxPayload - maxAdsRecord]struct{}
	_ [wal.MaxPayload - maxReachRecord]struct{}
	_ [math.MaxUint16 - maxSetBytes]struct{}
	_ [math.MaxUint8 - reachHours]struct{}
	_ [math.MaxUint16 - adcount.MaxBatch]struct{}
	_ [math.MaxUint16 - adsPerRecord]struct{}
	_ [math.MaxUint16 - campaignHours]struct{}
	_ [math.MaxUint8 - adDays]struct{}
)

// dedupBatch is how many keys one recDedup record holds.
const dedupBatch = 4096

func appendStr16(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(t.Unix()))
	return binary.LittleEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

// appendCampaign appends c's fields as recCampaignV2 holds them.
func appendCampaign(b []byte, c adcount.Campaign) []byte {
	b = appendStr16(b, c.ID)
	b = appendStr16(b, c.Name)
	b = appendTime(b, c.StartTime)
	b = appendTime(b, c.EndTime)
	b = appendTime(b, c.CreatedAt)
	var flags byte
	if c.Paused {
		flags |= flagPaused
	}
	return append(b, flags)
}

// encodeCampaign returns a recCampaignV2 or recCampaignUpdate record.
func encodeCampaign(typ byte, c adcount.Campaign) []byte {
	return appendCampaign([]byte{typ}, c)
}

// appendRing appends a ring's head, then its non-zero buckets by distance
// back from head, the count and the distances as wide as wide says: a u16
// for a campaign's rings, a u8 for an ad's.
func appendRing[S slots](b []byte, r *ring[S], wide bool) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(r.head))
	nAt := len(b)
	if wide {
		b = binary.LittleEndian.AppendUint16(b, 0)
	} else {
		b = append(b, 0)
	}
	n := 0
	for back := range r.size() {
		v := r.slots[r.slot(r.head-back)]
		if v == 0 {
			continue
		}
		if wide {
			b = binary.LittleEndian.AppendUint16(b, uint16(back))
		} else {
			b = append(b, byte(back))
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
		n++
	}
	if wide {
		binary.LittleEndian.PutUint16(b[nAt:], uint16(n))
	} else {
		b[nAt] = byte(n)
	}
	return b
}

// campaignCopy is one campaign's own counters as a snapshot holds them,
// copied under its lock.
type campaignCopy struct {
	campaign adcount.Campaign
	lsn      uint64
	total    int64
	filtered int64
	series   campaignSeries
	days     dayCounts
	reach    []byte // its recReach record, empty for a campaign without reach
}

func appendCampaignState(b []byte, c *campaignCopy) []byte {
	b = append(b, recCampaignState)
	b = appendCampaign(b, c.campaign)
	b = binary.LittleEndian.AppendUint64(b, c.lsn)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.total))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.filtered))
	b = appendRing(b, &c.series.minutes, true)
	return appendRing(b, &c.series.hours, true)
}

// appendDays appends a recDays record of the given days.
func appendDays(b []byte, id string, days []int32, counts []int64) []byte {
	b = append(b, recDays)
	b = appendStr16(b, id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(days)))
	for i, d := range days {
		b = binary.LittleEndian.AppendUint32(b, uint32(d))
		b = binary.LittleEndian.AppendUint64(b, uint64(counts[i]))
	}
	return b
}

// appendAds appends a recAds record of the given ads, at most
// adsPerRecord of them.
func appendAds(b []byte, id string, ads []adState) []byte {
	b = append(b, recAds)
	b = appendStr16(b, id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ads)))
	for i := range ads {
		a := &ads[i]
		b = appendStr16(b, a.id)
		b = binary.LittleEndian.AppendUint64(b, a.lsn)
		b = binary.LittleEndian.AppendUint64(b, uint64(a.total))
		b = binary.LittleEndian.AppendUint64(b, uint64(a.filtered))
		b = appendRing(b, &a.minutes, false)
		b = appendRing(b, &a.hours, false)
		b = appendRing(b, &a.days, false)
	}
	return b
}

// appendUser appends the top 48 bits of fingerprint h, little-endian.
func appendUser(b []byte, h uint64) []byte {
	v := h >> 16
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40))
}

// user reads a fingerprint as appendUser wrote it.
func (d *decoder) user() uint64 {
	b := d.take(userBytes)
	var v uint64
	for i := userBytes - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v << 16
}

// appendReach appends a recReach record of r, the reach of campaign id.
// It is called under the campaign's lock, so that the sets are those of
// the counters copied with them.
func appendReach(b []byte, id string, r *campaignReach) ([]byte, error) {
	b = append(b, recReach)
	b = appendStr16(b, id)
	var err error
	if b, err = appendSetRing(b, &r.tens); err != nil {
		return b, err
	}
	if b, err = appendSetRing(b, &r.hours); err != nil {
		return b, err
	}
	if b, err = appendSetRing(b, &r.days); err != nil {
		return b, err
	}
	return appendSet(b, &r.total)
}

// appendSetRing appends a ring's head, then its non-empty sets by distance
// back from head.
func appendSetRing[S setSlots](b []byte, r *setRing[S]) ([]byte, error) {
	b = binary.LittleEndian.AppendUint64(b, uint64(r.head))
	nAt := len(b)
	b = append(b, 0)
	n := 0
	for back := range r.size() {
		set := &r.slots[r.slot(r.head-back)].set
		if set.Empty() {
			continue
		}
		b = append(b, byte(back))
		var err error
		if b, err = appendSet(b, set); err != nil {
			return b, err
		}
		n++
	}
	b[nAt] = byte(n)
	return b, nil
}

// appendSet appends a set's encoding after its length, or length 0 for an
// empty set.
func appendSet(b []byte, s *reach.Set) ([]byte, error) {
	if s.Empty() {
		return binary.LittleEndian.AppendUint16(b, 0), nil
	}
	lenAt := len(b)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b, err := s.AppendBinary(b)
	if err != nil {
		return b, err
	}
	binary.LittleEndian.PutUint16(b[lenAt:], uint16(len(b)-lenAt-2))
	return b, nil
}

// dedupEntry is a live key and its expiry in Unix milliseconds.
type dedupEntry struct {
	key    adcount.DedupKey
	expiry int64
}

func appendDedup(b []byte, entries []dedupEntry) []byte {
	b = append(b, recDedup)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.key[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.expiry))
	}
	return b
}

// decoder reads the fields of one payload. The first read past the end
// sets err, and every later read returns zero values, so a decoding
// function checks err once at its end.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("record is shorter than its fields")

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return make([]byte, n) // the first error stands
	}
	if len(d.b) < n {
		d.err = errShort
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte    { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return binary.LittleEndian.Uint16(d.take(2)) }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.take(8)) }
func (d *decoder) i64() int64  { return int64(d.u64()) }
func (d *decoder) str16() string {
	return string(d.take(int(d.u16())))
}

func (d *decoder) key() adcount.DedupKey {
	return adcount.DedupKey(d.take(len(adcount.DedupKey{})))
}

func (d *decoder) time() time.Time {
	sec, nsec := d.i64(), d.u32()
	return time.Unix(sec, int64(nsec)).UTC()
}

// campaignV1 reads a campaign as recCampaign holds it.
func (d *decoder) campaignV1() adcount.Campaign {
	id, name := d.str16(), d.str16()
	return adcount.Campaign{ID: id, Name: name, StartTime: d.time()}
}

// campaign reads a campaign as recCampaignV2 holds it.
func (d *decoder) campaign() adcount.Campaign {
	id, name := d.str16(), d.str16()
	c := adcount.Campaign{ID: id, Name: name, StartTime: d.time(), EndTime: d.time(), CreatedAt: d.time()}
	flags := d.u8()
	if flags&^flagPaused != 0 && d.err == nil {
		d.err = fmt.Errorf("unknown campaign flags %#x", flags)
	}
	c.Paused = flags&flagPaused != 0
	return c
}

// done reports a short record, or bytes left over, as an error.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes left over after the record's fields", len(d.b))
	}
	return d.err
}

// decodeRing reads a ring as appendRing wrote it.
func decodeRing[S slots](d *decoder, r *ring[S], wide bool) {
	r.head = d.i64()
	var n int
	if wide {
		n = int(d.u16())
	} else {
		n = int(d.u8())
	}
	for range n {
		var back int64
		if wide {
			back = int64(d.u16())
		} else {
			back = int64(d.u8())
		}
		v := d.i64()
		if d.err != nil {
			return
		}
		if back >= r.size() {
			d.err = fmt.Errorf("ring slot %d is outside a ring of %d", back, r.size())
			return
		}
		r.setBack(back, v)
	}
}

// decodeCountersV1 reads a recCountersFiltered record, or with
// withFiltered false a recCounters record, whose filtered count is 0. The
// minutes it holds make the hours and days as well; see "What the former
// formats restore to".
func decodeCountersV1(d *decoder, withFiltered bool) (*campaignCopy, error) {
	c := &campaignCopy{campaign: d.campaignV1(), lsn: d.u64(), total: d.i64()}
	if withFiltered {
		c.filtered = d.i64()
	}
	minutes, hours := &c.series.minutes, &c.series.hours
	minutes.head = d.i64()
	n := int(d.u16())
	for range n {
		back, v := int64(d.u16()), d.i64()
		if back >= campaignMinutes {
			return nil, fmt.Errorf("ring slot %d is outside the day", back)
		}
		minutes.setBack(back, v)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	// Oldest first, so that the hour ring's head ends at the newest.
	for back := campaignMinutes - 1; back >= 0; back-- {
		b := minutes.head - back
		if v := minutes.at(b); v != 0 {
			hours.add(floorDiv(b, minutesPerHour), v)
			c.days.add(dayNumber(floorDiv(b, minutesPerDay)), v)
		}
	}
	return c, nil
}

// decodeCampaignState reads a recCampaignState record.
func decodeCampaignState(d *decoder) (*campaignCopy, error) {
	c := &campaignCopy{campaign: d.campaign(), lsn: d.u64(), total: d.i64(), filtered: d.i64()}
	decodeRing(d, &c.series.minutes, true)
	decodeRing(d, &c.series.hours, true)
	return c, d.done()
}

// decodeReach reads the body of a recReach record after its campaign ID.
// Bytes that no reach.Set encodes to are an error, as any other damage.
func decodeReach(d *decoder) (*campaignReach, error) {
	r := new(campaignReach)
	decodeSetRing(d, &r.tens)
	decodeSetRing(d, &r.hours)
	decodeSetRing(d, &r.days)
	decodeSet(d, &r.total, true)
	return r, d.done()
}

// decodeSetRing reads a ring as appendSetRing wrote it.
func decodeSetRing[S setSlots](d *decoder, r *setRing[S]) {
	r.head = d.i64()
	n := int(d.u8())
	for range n {
		back := int64(d.u8())
		if d.err != nil {
			return
		}
		if back >= r.size() {
			d.err = fmt.Errorf("reach set %d is outside a ring of %d", back, r.size())
			return
		}
		set := &r.slots[r.slot(r.head-back)].set
		if !set.Empty() {
			d.err = fmt.Errorf("reach set %d is listed twice", back)
			return
		}
		decodeSet(d, set, false)
	}
}

// decodeSet reads a set as appendSet wrote it; length 0, an empty set, only
// where empty allows it.
func decodeSet(d *decoder, s *reach.Set, empty bool) {
	n := int(d.u16())
	if d.err != nil {
		return
	}
	if n == 0 {
		if !empty {
			d.err = errors.New("an empty reach set is listed")
		}
		return
	}
	b := d.take(n)
	if d.err != nil {
		return
	}
	if err := s.UnmarshalBinary(b); err != nil {
		d.err = err
	}
}
