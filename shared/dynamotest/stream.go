package dynamotest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"
)

// Stream view types.
const (
	viewKeysOnly        = "KEYS_ONLY"
	viewNewImage        = "NEW_IMAGE"
	viewOldImage        = "OLD_IMAGE"
	viewNewAndOldImages = "NEW_AND_OLD_IMAGES"
)

// table is what the server knows of a table beyond minidyn: its key schema,
// TTL attribute and latest stream.
type table struct {
	keySchema []keyElem
	stream    *stream // the latest stream, enabled or not; nil if never
}

// stream is one table stream: its shards, each with the records it holds.
// Records are never trimmed: the server lives for one test, well inside
// the 24 hours DynamoDB keeps them.
type stream struct {
	arn, label, table string
	viewType          string
	keySchema         []keyElem
	created           time.Time
	enabled           bool
	shards            []*shard // in the order they opened
	byID              map[string]*shard
	seq               uint64 // the last sequence counter handed out
}

// shard is one stream shard. It takes the records of the items whose
// partition key hashes into [lo, hi] while it is open.
type shard struct {
	id, parent string
	lo, hi     uint64
	gen        int    // how many splits lie between it and the stream's first shards
	start, end string // its sequence number range; end is "" while it is open
	records    []*streamRecord
}

// streamRecord is a stream record as GetRecords returns it.
type streamRecord struct {
	EventID      string           `json:"eventID"`
	EventName    string           `json:"eventName"`
	EventVersion string           `json:"eventVersion"`
	EventSource  string           `json:"eventSource"`
	AWSRegion    string           `json:"awsRegion"`
	Dynamodb     streamRecordBody `json:"dynamodb"`
}

type streamRecordBody struct {
	ApproximateCreationDateTime int64  `json:"ApproximateCreationDateTime"`
	Keys                        item   `json:"Keys"`
	NewImage                    item   `json:"NewImage,omitempty"`
	OldImage                    item   `json:"OldImage,omitempty"`
	SequenceNumber              string `json:"SequenceNumber"`
	SizeBytes                   int64  `json:"SizeBytes"`
	StreamViewType              string `json:"StreamViewType"`
}

// newStream starts a stream of the table with n shards that split the
// partition-key hash space evenly. Its label is the creation time to the
// millisecond, later than that of the table's previous stream.
func (s *Server) newStream(name string, t *table, viewType string, n int) *stream {
	now := s.now().UTC()
	if prev := t.stream; prev != nil && !now.After(prev.created) {
		now = prev.created.Add(time.Millisecond)
	}
	label := now.Format("2006-01-02T15:04:05.000")
	st := &stream{
		arn:       fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s/stream/%s", Region, account, name, label),
		label:     label,
		table:     name,
		viewType:  viewType,
		keySchema: t.keySchema,
		created:   now,
		enabled:   true,
		byID:      map[string]*shard{},
	}
	width := math.MaxUint64/uint64(n) + 1
	for i := range n {
		lo := uint64(i) * width
		hi := lo + width - 1
		if i == n-1 {
			hi = math.MaxUint64
		}
		st.open(lo, hi, "", 0)
	}
	t.stream = st
	s.streams = append(s.streams, st)
	return st
}

// account is the AWS account in the ARNs the server makes up.
const account = "000000000000"

// nextSeq hands out the stream's next sequence number for a shard of
// generation gen: digits that increase within a shard and never repeat in
// the stream. Each split adds a digit, as the numbers of DynamoDB's newer
// shards are often longer, so that a reader that compares them as strings
// rather than numbers fails here too.
func (st *stream) nextSeq(gen int) string {
	st.seq++
	return "1" + strings.Repeat("0", gen) + fmt.Sprintf("%020d", st.seq)
}

func (st *stream) open(lo, hi uint64, parent string, gen int) *shard {
	var id string
	for id == "" || st.byID[id] != nil {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = fmt.Sprintf("shardId-%020d-%s", st.created.UnixMilli()+int64(len(st.shards)), hex.EncodeToString(b[:]))
	}
	sh := &shard{id: id, parent: parent, lo: lo, hi: hi, gen: gen, start: st.nextSeq(gen)}
	st.shards = append(st.shards, sh)
	st.byID[id] = sh
	return sh
}

func (sh *shard) close() {
	if sh.end != "" {
		return
	}
	sh.end = sh.start
	if n := len(sh.records); n > 0 {
		sh.end = sh.records[n-1].Dynamodb.SequenceNumber
	}
}

// disable closes every shard of the stream: it stays readable, and takes
// no more records.
func (st *stream) disable() {
	st.enabled = false
	for _, sh := range st.shards {
		sh.close()
	}
}

// reshard closes every open shard and opens two children for each, which
// split its hash range.
func (st *stream) reshard() {
	for _, sh := range st.shards {
		if sh.end != "" {
			continue
		}
		sh.close()
		mid := sh.lo + (sh.hi-sh.lo)/2
		st.open(sh.lo, mid, sh.id, sh.gen+1)
		st.open(mid+1, sh.hi, sh.id, sh.gen+1)
	}
}

// append adds the record of one item change to the open shard its
// partition key hashes into. old or new is nil where there is none.
func (st *stream) append(key, old, new item, at time.Time) {
	h := partitionHash(key, st.keySchema)
	var sh *shard
	for _, c := range st.shards {
		if c.end == "" && c.lo <= h && h <= c.hi {
			sh = c
			break
		}
	}
	if sh == nil {
		return // cannot happen: the open shards cover the hash space
	}
	name := "MODIFY"
	switch {
	case old == nil:
		name = "INSERT"
	case new == nil:
		name = "REMOVE"
	}
	body := streamRecordBody{
		ApproximateCreationDateTime: at.Unix(),
		Keys:                        key,
		SequenceNumber:              st.nextSeq(sh.gen),
		StreamViewType:              st.viewType,
	}
	if st.viewType == viewNewImage || st.viewType == viewNewAndOldImages {
		body.NewImage = new
	}
	if st.viewType == viewOldImage || st.viewType == viewNewAndOldImages {
		body.OldImage = old
	}
	body.SizeBytes = int64(itemSize(key) + itemSize(body.NewImage) + itemSize(body.OldImage))
	var id [16]byte
	_, _ = rand.Read(id[:])
	sh.records = append(sh.records, &streamRecord{
		EventID:      hex.EncodeToString(id[:]),
		EventName:    name,
		EventVersion: "1.1",
		EventSource:  "aws:dynamodb",
		AWSRegion:    Region,
		Dynamodb:     body,
	})
}
