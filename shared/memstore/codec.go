package memstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore/wal"
)

// Record types. The first byte of every payload in the log and the
// snapshot says which it is; all integers are little-endian.
const (
	// recCampaign (log): a campaign was created.
	//	id str16, name str16, start seconds i64, start nanoseconds u32
	recCampaign byte = 1
	// recImpression (log, written before batches): an impression counted
	// at t, its key a duplicate until expiry, both Unix milliseconds. It is
	// still read, as a counted impression, and no longer written.
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
	// recImpressions (log): the impressions of one RecordImpressions or
	// RecordImpression call that were new within the dedup window, all
	// decided at t and a duplicate until expiry (Unix milliseconds), in
	// batch order. The campaigns are listed once, and each
	// impression names its campaign by its place in that list. Flag bit 0
	// marks a filtered impression, which counts in the campaign's filtered
	// count instead of its impressions; the other bits are zero.
	//	t i64, expiry i64, c u16, c × campaign id str16,
	//	n u16, n × (campaign u16, flags u8, key [16])
	recImpressions byte = 7
	// recCountersFiltered (snapshot): a campaign and its counters as of log
	// record lsn; only non-zero ring slots are listed, by distance back from
	// head.
	//	campaign as in recCampaign, lsn u64, total i64, filtered i64,
	//	head i64, n u16, n × (back u16, count i64)
	recCountersFiltered byte = 8
)

// flagFiltered marks a filtered impression in a recImpressions record.
const flagFiltered byte = 1

// Sizes of a recImpressions record.
const (
	impressionsHeader = 1 + 8 + 8 + 2 + 2 // type, t, expiry, c, n
	impressionsItem   = 2 + 1 + 16        // campaign, flags, key
	// maxOneImpressionPayload is the largest record of one impression,
	// which a batch of one builds on its stack.
	maxOneImpressionPayload = impressionsHeader + 2 + adcount.MaxIDBytes + impressionsItem
	// maxImpressionsPayload is the largest record of a batch: every
	// impression of another campaign with the longest ID.
	maxImpressionsPayload = impressionsHeader + adcount.MaxBatch*(2+adcount.MaxIDBytes+impressionsItem)
)

// A batch's record must fit one log frame, and its count fields a u16.
var (
	_ [wal.MaxPayload - maxImpressionsPayload]struct{}
	_ [math.MaxUint16 - adcount.MaxBatch]struct{}
)

// dedupBatch is how many keys one recDedup record holds.
const dedupBatch = 4096

func appendStr16(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendCampaignFields(b []byte, c adcount.Campaign) []byte {
	b = appendStr16(b, c.ID)
	b = appendStr16(b, c.Name)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.StartTime.Unix()))
	return binary.LittleEndian.AppendUint32(b, uint32(c.StartTime.Nanosecond()))
}

func encodeCampaign(c adcount.Campaign) []byte {
	return appendCampaignFields([]byte{recCampaign}, c)
}

// counters is one campaign's state as a snapshot holds it.
type counters struct {
	campaign adcount.Campaign
	lsn      uint64
	total    int64
	filtered int64
	ring     ring
}

func appendCounters(b []byte, c *counters) []byte {
	b = append(b, recCountersFiltered)
	b = appendCampaignFields(b, c.campaign)
	b = binary.LittleEndian.AppendUint64(b, c.lsn)
	b = binary.LittleEndian.AppendUint64(b, uint64(c.total))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.filtered))
	b = binary.LittleEndian.AppendUint64(b, uint64(c.ring.head))
	nAt := len(b)
	b = binary.LittleEndian.AppendUint16(b, 0)
	n := 0
	for back := range adcount.DayBuckets {
		if v := c.ring.slots[slot(c.ring.head-back)]; v != 0 {
			b = binary.LittleEndian.AppendUint16(b, uint16(back))
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
			n++
		}
	}
	binary.LittleEndian.PutUint16(b[nAt:], uint16(n))
	return b
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
	if d.err != nil || len(d.b) < n {
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

func (d *decoder) campaign() adcount.Campaign {
	id, name := d.str16(), d.str16()
	sec, nsec := d.i64(), d.u32()
	return adcount.Campaign{ID: id, Name: name, StartTime: time.Unix(sec, int64(nsec)).UTC()}
}

// done reports a short record, or bytes left over, as an error.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes left over after the record's fields", len(d.b))
	}
	return d.err
}

// decodeCounters reads a recCountersFiltered record, or with withFiltered
// false a recCounters record, whose filtered count is 0.
func decodeCounters(d *decoder, withFiltered bool) (*counters, error) {
	c := &counters{campaign: d.campaign(), lsn: d.u64(), total: d.i64()}
	if withFiltered {
		c.filtered = d.i64()
	}
	c.ring.head = d.i64()
	n := int(d.u16())
	for range n {
		back, v := int64(d.u16()), d.i64()
		if back >= adcount.DayBuckets {
			return nil, fmt.Errorf("ring slot %d is outside the day", back)
		}
		c.ring.slots[slot(c.ring.head-back)] = v
	}
	return c, d.done()
}
