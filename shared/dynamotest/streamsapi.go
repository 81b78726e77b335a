package dynamotest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"time"
)

// IteratorLifetime is how long a shard iterator stays valid, on the
// server's clock, as in DynamoDB Streams.
const IteratorLifetime = 15 * time.Minute

// serveStreams answers a request of the DynamoDB Streams API.
func (s *Server) serveStreams(op string, body []byte) response {
	switch op {
	case "ListStreams":
		return s.listStreams(body)
	case "DescribeStream":
		return s.describeStream(body)
	case "GetShardIterator":
		return s.getShardIterator(body)
	case "GetRecords":
		return s.getRecords(body)
	default:
		return apiError(http.StatusBadRequest, "UnknownOperationException", "unknown operation "+op)
	}
}

func notFound(format string, args ...any) response {
	return apiError(http.StatusBadRequest, "ResourceNotFoundException", "Requested resource not found: "+fmt.Sprintf(format, args...))
}

// limit checks a request's Limit against its maximum, and applies the
// default.
func limit(l *int, def, maxLimit int) (int, bool) {
	if l == nil {
		return def, true
	}
	return *l, *l >= 1 && *l <= maxLimit
}

// streamByARN returns the stream, or nil; the caller holds s.mu.
func (s *Server) streamByARN(arn string) *stream {
	for _, st := range s.streams {
		if st.arn == arn {
			return st
		}
	}
	return nil
}

func (s *Server) listStreams(body []byte) response {
	var in struct {
		TableName               string
		Limit                   *int
		ExclusiveStartStreamArn string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	n, ok := limit(in.Limit, 100, 100)
	if !ok {
		return validation("Limit must be between 1 and 100")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct{ StreamArn, TableName, StreamLabel string }
	out := struct {
		Streams                []entry
		LastEvaluatedStreamArn string `json:",omitempty"`
	}{Streams: []entry{}}
	started := in.ExclusiveStartStreamArn == ""
	for _, st := range s.streams {
		if !started {
			started = st.arn == in.ExclusiveStartStreamArn
			continue
		}
		if in.TableName != "" && st.table != in.TableName {
			continue
		}
		if len(out.Streams) == n {
			out.LastEvaluatedStreamArn = out.Streams[n-1].StreamArn
			break
		}
		out.Streams = append(out.Streams, entry{st.arn, st.table, st.label})
	}
	return jsonResponse(out)
}

func (s *Server) describeStream(body []byte) response {
	var in struct {
		StreamArn             string
		Limit                 *int
		ExclusiveStartShardId string
		ShardFilter           *struct{ Type, ShardId string }
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	n, ok := limit(in.Limit, 100, 100)
	if !ok {
		return validation("Limit must be between 1 and 100")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streamByARN(in.StreamArn)
	if st == nil {
		return notFound("Stream: %s not found", in.StreamArn)
	}
	type seqRange struct {
		StartingSequenceNumber string
		EndingSequenceNumber   string `json:",omitempty"`
	}
	type shardDesc struct {
		ShardId             string
		ParentShardId       string `json:",omitempty"`
		SequenceNumberRange seqRange
	}
	status := "ENABLED"
	if !st.enabled {
		status = "DISABLED"
	}
	desc := struct {
		StreamArn, StreamLabel, StreamStatus, StreamViewType, TableName string
		CreationRequestDateTime                                         float64
		KeySchema                                                       []keyElem
		Shards                                                          []shardDesc
		LastEvaluatedShardId                                            string `json:",omitempty"`
	}{
		StreamArn: st.arn, StreamLabel: st.label, StreamStatus: status, StreamViewType: st.viewType,
		TableName: st.table, CreationRequestDateTime: float64(st.created.UnixMilli()) / 1000,
		KeySchema: st.keySchema, Shards: []shardDesc{},
	}
	// Shard ids sort in the order the shards opened, so a page starts
	// after the id it is given, whether or not that shard exists.
	for _, sh := range st.shards {
		if sh.id <= in.ExclusiveStartShardId {
			continue
		}
		if f := in.ShardFilter; f != nil && f.Type == "CHILD_SHARDS" && sh.parent != f.ShardId {
			continue
		}
		if len(desc.Shards) == n {
			desc.LastEvaluatedShardId = desc.Shards[n-1].ShardId
			break
		}
		desc.Shards = append(desc.Shards, shardDesc{sh.id, sh.parent, seqRange{sh.start, sh.end}})
	}
	return jsonResponse(map[string]any{"StreamDescription": desc})
}

// iterator is what a shard iterator holds: the position of the next record
// to read in a shard, and when it was issued.
type iterator struct {
	Stream string `json:"a"`
	Shard  string `json:"s"`
	Pos    int    `json:"p"`
	Issued int64  `json:"t"` // Unix ns on the server's clock
}

func (it iterator) encode() string {
	b, _ := json.Marshal(it)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeIterator(s string) (iterator, bool) {
	var it iterator
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &it) != nil || it.Stream == "" || it.Pos < 0 {
		return iterator{}, false
	}
	return it, true
}

// cmpSeq compares two sequence numbers as the numbers they are.
func cmpSeq(a, b string) (int, bool) {
	var x, y big.Int
	if _, ok := x.SetString(a, 10); !ok {
		return 0, false
	}
	if _, ok := y.SetString(b, 10); !ok {
		return 0, false
	}
	return x.Cmp(&y), true
}

func (s *Server) getShardIterator(body []byte) response {
	var in struct {
		StreamArn, ShardId, ShardIteratorType, SequenceNumber string
		Timestamp                                             *float64
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streamByARN(in.StreamArn)
	if st == nil {
		return notFound("Stream: %s not found", in.StreamArn)
	}
	sh := st.byID[in.ShardId]
	if sh == nil {
		return notFound("Shard: %s in Stream: %s not found", in.ShardId, in.StreamArn)
	}
	pos := 0
	switch in.ShardIteratorType {
	case "TRIM_HORIZON":
	case "LATEST":
		pos = len(sh.records)
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		// The sequence number must lie in the shard's range; the position
		// is the first record at or after it.
		lo, ok1 := cmpSeq(in.SequenceNumber, sh.start)
		hi, ok2 := 0, true
		if sh.end != "" {
			hi, ok2 = cmpSeq(in.SequenceNumber, sh.end)
		}
		if !ok1 || !ok2 || lo < 0 || hi > 0 {
			return validation("Invalid SequenceNumber %q for shard %s", in.SequenceNumber, in.ShardId)
		}
		after := in.ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
		pos = len(sh.records)
		for i, r := range sh.records {
			c, _ := cmpSeq(r.Dynamodb.SequenceNumber, in.SequenceNumber)
			if c > 0 || (c == 0 && !after) {
				pos = i
				break
			}
		}
	case "AT_TIMESTAMP":
		if in.Timestamp == nil {
			return validation("AT_TIMESTAMP needs a Timestamp")
		}
		pos = len(sh.records)
		for i, r := range sh.records {
			if float64(r.Dynamodb.ApproximateCreationDateTime) >= *in.Timestamp {
				pos = i
				break
			}
		}
	default:
		return validation("Invalid ShardIteratorType %q", in.ShardIteratorType)
	}
	it := iterator{Stream: st.arn, Shard: sh.id, Pos: pos, Issued: s.now().UnixNano()}
	return jsonResponse(map[string]string{"ShardIterator": it.encode()})
}

func (s *Server) getRecords(body []byte) response {
	var in struct {
		ShardIterator string
		Limit         *int
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return validation("%v", err)
	}
	n, ok := limit(in.Limit, 1000, 1000)
	if !ok {
		return validation("Limit must be between 1 and 1000")
	}
	it, ok := decodeIterator(in.ShardIterator)
	if !ok {
		return validation("Invalid ShardIterator")
	}
	now := s.now()
	if now.Sub(time.Unix(0, it.Issued)) > IteratorLifetime {
		return apiError(http.StatusBadRequest, "ExpiredIteratorException", "Iterator expired. The iterator was created at time "+
			time.Unix(0, it.Issued).UTC().Format(time.RFC1123)+" while right now it is "+now.UTC().Format(time.RFC1123)+
			" which is further in the future than the tolerated delay of 900000 milliseconds.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streamByARN(it.Stream)
	if st == nil {
		return notFound("Stream: %s not found", it.Stream)
	}
	sh := st.byID[it.Shard]
	if sh == nil || it.Pos > len(sh.records) {
		return notFound("Shard: %s in Stream: %s not found", it.Shard, it.Stream)
	}
	end := min(it.Pos+n, len(sh.records))
	out := struct {
		Records           []*streamRecord
		NextShardIterator string `json:",omitempty"`
	}{Records: sh.records[it.Pos:end]}
	// A closed shard read to its end has no next iterator: its reader
	// goes on to its children.
	if sh.end == "" || end < len(sh.records) {
		out.NextShardIterator = iterator{Stream: st.arn, Shard: sh.id, Pos: end, Issued: now.UnixNano()}.encode()
	}
	return jsonResponse(out)
}
