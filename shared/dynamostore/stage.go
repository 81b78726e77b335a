package dynamostore

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Staging: applying a batch whose counter items do not fit one transaction,
// still exactly once.
//
// A transaction holds at most 100 actions, and the checkpoint is one
// sequence number, so before per-ad counters a big batch was applied as
// prefixes of its records, each with its own checkpoint. That stops
// working once each record adds to six items: records of many
// (campaign, ad) pairs interleave, so a prefix that fits 99 items is some
// 20 records long, and a page of 1,000 records would take some 50
// transactions, each writing nearly the same items again.
//
// So a batch that needs more than one transaction is staged instead. Its
// counter items are split into n parts, in key order, and:
//
//  1. one transaction moves the checkpoint past every record of the batch,
//     on the condition that it is where it was read, and records on it the
//     stage (a new token, n, and done = 1, and the position before); it
//     applies part 0's counters and stores parts 1 to n-1 as items of
//     their own (STAGE#<shard>, <token>#<k>: the additions as compressed
//     JSON);
//  2. each further part k is one transaction that applies its counters and
//     sets done = k+1 on the condition that the checkpoint's stage is this
//     one and done = k.
//
// Whoever reads a checkpoint with done < n, this aggregator after a
// failure, another one, or a Streams reader's next Apply, finishes the
// stage from the stored parts before anything else. Each part is applied
// by the one transaction that moves done past it, so exactly once. The
// records of an unfinished stage are not yet counted, so Applied.Through
// and Checkpoint stop before them: the stream delivers them again, and
// that Apply finishes the stage and then skips them.
//
// The parts expire by TTL after stageTTL; nothing deletes them, since a
// delete would cost as much as the write did.

const (
	// maxStageParts bounds the parts of one stage. Its first transaction
	// holds the checkpoint, the n-1 stored parts and part 0's counters, so
	// part 0 holds 100-n counter items and each other part 99.
	maxStageParts = 50
	// maxStageItems is the most counter items one stage holds.
	maxStageItems = (maxTransactItems-2)*maxStageParts + 1
	// maxStageSize bounds a stage's estimated size as JSON (stagedSize),
	// so that its first transaction stays well within DynamoDB's 4 MB a
	// transaction; a part of 99 items of the longest keys is under 250
	// KB, within the 400 KB of an item.
	maxStageSize = 2 << 20
	// stageTTL is how long a stored part is kept: as long as the
	// checkpoint that refers to it outlives its last move.
	stageTTL = checkpointTTL
)

// stagedItem is one counter item's additions, as a stage stores them.
type stagedItem struct {
	PK   string           `json:"p"`
	SK   string           `json:"s"`
	Adds map[string]int64 `json:"a"`
	TTL  int64            `json:"t,omitempty"`
	Keep bool             `json:"k,omitempty"`
}

// stagedSize estimates the JSON of a stagedItem with no additions yet,
// and stagedAttrSize what each addition adds to it.
func stagedSize(k itemKey) int       { return len(k.pk) + len(k.sk) + 48 }
func stagedAttrSize(attr string) int { return len(attr) + 24 }

// splitParts splits items, more than one transaction holds, into the
// parts of a stage: the fewest n such that part 0 holds 100-n items and
// the others 99 each.
func splitParts(items []stagedItem) [][]stagedItem {
	n := 2
	for (maxTransactItems-2)*n+1 < len(items) {
		n++
	}
	first := min(len(items), maxTransactItems-n)
	parts := [][]stagedItem{items[:first]}
	for rest := items[first:]; len(rest) > 0; {
		k := min(len(rest), maxTransactItems-1)
		parts, rest = append(parts, rest[:k]), rest[k:]
	}
	return parts
}

// stage applies items, the additions of g, the records after cp through
// last, as a stage (see above). It reports false, having changed nothing,
// if another aggregator moved the checkpoint first, and returns the
// checkpoint as it left it: after an error in a later part, a stage still
// pending.
func (a *Aggregator) stage(ctx context.Context, shardID string, g *fold, items []stagedItem, cp checkpointState, last string, created time.Time, res *Applied) (checkpointState, bool, error) {
	parts := splitParts(items)
	st := checkpointState{seq: last, stage: newToken(), parts: int64(len(parts)), done: 1, from: cp.seq}
	actions := make([]types.TransactWriteItem, 0, maxTransactItems)
	for _, it := range parts[0] {
		actions = append(actions, types.TransactWriteItem{Update: a.counterUpdate(it)})
	}
	expires := a.now().Add(stageTTL).Unix()
	for k := 1; k < len(parts); k++ {
		data, err := encodePart(parts[k])
		if err != nil {
			return cp, false, err
		}
		actions = append(actions, types.TransactWriteItem{Update: &types.Update{
			TableName:                 aws.String(a.table),
			Key:                       partKey(shardID, st.stage, int64(k)),
			UpdateExpression:          aws.String("SET #d = :d, #ttl = :ttl"),
			ExpressionAttributeNames:  map[string]string{"#d": attrData, "#ttl": TTLAttribute},
			ExpressionAttributeValues: map[string]types.AttributeValue{":d": &types.AttributeValueMemberB{Value: data}, ":ttl": num(expires)},
		}})
	}
	actions = append(actions, types.TransactWriteItem{Update: a.checkpointUpdate(shardID, cp.seq, last, created, &st)})
	moved, err := a.transact(ctx, actions)
	if err != nil || !moved {
		return cp, false, err
	}
	res.Transactions++
	res.Counted += g.counted
	res.Filtered += g.filtered
	st, err = a.drain(ctx, shardID, st, parts, res)
	return st, true, err
}

// drain applies the parts of cp's stage from cp.done on, and returns the
// checkpoint as it left it. parts, if not nil, holds the stage's parts,
// as the call that staged it has them; otherwise each is read from the
// table. A part that another aggregator applies first is skipped.
func (a *Aggregator) drain(ctx context.Context, shardID string, cp checkpointState, parts [][]stagedItem, res *Applied) (checkpointState, error) {
	for cp.pending() {
		var items []stagedItem
		if parts != nil && cp.done < int64(len(parts)) {
			items = parts[cp.done]
		} else {
			var err error
			if items, err = a.readPart(ctx, shardID, cp.stage, cp.done); err != nil {
				return cp, err
			}
		}
		actions := make([]types.TransactWriteItem, 0, len(items)+1)
		for _, it := range items {
			actions = append(actions, types.TransactWriteItem{Update: a.counterUpdate(it)})
		}
		actions = append(actions, types.TransactWriteItem{Update: a.partDone(shardID, cp)})
		moved, err := a.transact(ctx, actions)
		if err != nil {
			return cp, err
		}
		if !moved {
			next, err := a.checkpoint(ctx, shardID)
			if err != nil {
				return cp, err
			}
			if next.stage != cp.stage {
				parts = nil
			}
			cp = next
			continue
		}
		res.Transactions++
		cp.done++
	}
	return cp, nil
}

// partDone counts part cp.done of cp's stage applied, on the condition
// that it is the next part of that stage.
func (a *Aggregator) partDone(shardID string, cp checkpointState) *types.Update {
	now := a.now()
	return &types.Update{
		TableName:                aws.String(a.table),
		Key:                      key(streamPK, shardPrefix+shardID),
		UpdateExpression:         aws.String("SET #done = :next, #at = :at, #ttl = :ttl"),
		ConditionExpression:      aws.String("#stg = :stg AND #done = :done"),
		ExpressionAttributeNames: map[string]string{"#stg": attrStage, "#done": attrDone, "#at": attrAppliedAt, "#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":stg": str(cp.stage), ":done": num(cp.done), ":next": num(cp.done + 1),
			":at": num(now.UnixMilli()), ":ttl": num(now.Add(checkpointTTL).Unix()),
		},
	}
}

// partKey names stored part k of a shard's stage. The shard's stages share
// a partition of their own, apart from the checkpoints', so that big
// stored parts do not heat the STREAM partition that every reader reads.
func partKey(shardID, stage string, k int64) map[string]types.AttributeValue {
	return key(stagePrefix+shardID, stage+"#"+strconv.FormatInt(k, 10))
}

// readPart reads stored part k of a stage strongly consistently.
func (a *Aggregator) readPart(ctx context.Context, shardID, stage string, k int64) ([]stagedItem, error) {
	ctx, cancel := withTimeout(ctx, a.timeout)
	defer cancel()
	out, err := a.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            partKey(shardID, stage, k),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, wrapUnavailable(err)
	}
	data, ok := out.Item[attrData].(*types.AttributeValueMemberB)
	if !ok {
		return nil, fmt.Errorf("%w: part %d of staged batch %s of shard %s is missing", ErrMalformedItem, k, stage, shardID)
	}
	items, err := decodePart(data.Value)
	if err != nil {
		return nil, fmt.Errorf("part %d of staged batch %s of shard %s: %w", k, stage, shardID, err)
	}
	return items, nil
}

// encodePart returns a part's stored form: its JSON, compressed, since
// writes are billed by size and the keys repeat.
func encodePart(items []stagedItem) ([]byte, error) {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(w).Encode(items); err != nil {
		return nil, fmt.Errorf("encode staged part: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode staged part: %w", err)
	}
	return buf.Bytes(), nil
}

// decodePart reads what encodePart wrote, refusing anything the
// aggregator could not have written rather than counting it.
func decodePart(data []byte) ([]stagedItem, error) {
	r := flate.NewReader(bytes.NewReader(data))
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, 4*maxStageSize))
	if err != nil {
		return nil, fmt.Errorf("%w: staged part does not decompress: %w", ErrMalformedItem, err)
	}
	var items []stagedItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: staged part is not JSON: %w", ErrMalformedItem, err)
	}
	if len(items) == 0 || len(items) >= maxTransactItems {
		return nil, fmt.Errorf("%w: staged part holds %d items", ErrMalformedItem, len(items))
	}
	for _, it := range items {
		if it.PK == "" || it.SK == "" || len(it.Adds) == 0 {
			return nil, fmt.Errorf("%w: staged part holds an item without a key or additions", ErrMalformedItem)
		}
		for attr, n := range it.Adds {
			if attr == "" || n <= 0 {
				return nil, fmt.Errorf("%w: staged part adds %d to %q of %s %s", ErrMalformedItem, n, attr, it.PK, it.SK)
			}
		}
	}
	return items, nil
}
