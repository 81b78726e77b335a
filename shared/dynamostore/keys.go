package dynamostore

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Item keys. Every item of a campaign shares its partition, and the sort
// keys are chosen so that one Query from the oldest hour of the day window
// onwards returns exactly what Stats needs, in this order:
//
//	HOUR#<hour>#<shard>  minute counters of one hour ("HOUR" < "META")
//	META                 the campaign itself          ("META" < "TOTAL")
//	TOTAL#<shard>        the all-time count
//
// Dedup markers have a partition each, so that their writes spread over the
// table instead of queueing behind one campaign's partition.
const (
	campaignPrefix = "CAMPAIGN#"
	markerPrefix   = "DEDUP#"
	hourPrefix     = "HOUR#"
	totalPrefix    = "TOTAL#"
	metaSK         = "META"
	markerSK       = "MARKER"
)

func campaignPK(id string) string { return campaignPrefix + id }

func markerPK(k adcount.DedupKey) string { return markerPrefix + hex.EncodeToString(k[:]) }

func totalSK(shard int) string { return fmt.Sprintf("%s%03d", totalPrefix, shard) }

// hourSK names the item that holds the minute counters of one hour for one
// shard. The hour is written so that sort keys order as hours do, for
// negative hours too: the sign bit flipped, as fixed-width hex.
func hourSK(hour int64, shard int) string {
	return fmt.Sprintf("%s%s#%03d", hourPrefix, hourKey(hour), shard)
}

func hourKey(hour int64) string { return fmt.Sprintf("%016x", uint64(hour)^(1<<63)) }

// parseHourSK returns the hour an hourSK names.
func parseHourSK(sk string) (int64, bool) {
	const n = len(hourPrefix) + 16
	if len(sk) < n {
		return 0, false
	}
	u, err := strconv.ParseUint(sk[len(hourPrefix):n], 16, 64)
	if err != nil {
		return 0, false
	}
	return int64(u ^ (1 << 63)), true
}

// hourOf splits a window bucket into its hour and its minute in that hour.
func hourOf(bucket int64) (hour int64, minute int64) {
	hour = bucket / adcount.HourBuckets
	if bucket%adcount.HourBuckets < 0 {
		hour--
	}
	return hour, bucket - hour*adcount.HourBuckets
}

// minuteAttr is the attribute of an hour item that counts one minute.
func minuteAttr(minute int64) string { return fmt.Sprintf("m%02d", minute) }

// hourItemTTL is when an hour item can go: a day after its hour has ended,
// when no last_day window reaches it any more, plus an hour to spare.
func hourItemTTL(hour int64) int64 {
	end := (hour + 1) * adcount.HourBuckets * int64(adcount.BucketWidth/time.Second)
	return end + int64((25 * time.Hour).Seconds())
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		PartitionKey: &types.AttributeValueMemberS{Value: pk},
		SortKey:      &types.AttributeValueMemberS{Value: sk},
	}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// getString reads a string attribute of an item, reporting false if it is
// missing or of another type.
func getString(item map[string]types.AttributeValue, name string) (string, bool) {
	v, ok := item[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", false
	}
	return v.Value, true
}

// counter reads a counter attribute of an item: a whole number, zero or
// more, which is all that the store's ADD updates ever write. Anything else
// is an ErrMalformedItem, never read as zero: a count that is silently
// wrong is worse than a stats read that fails.
func counter(item map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("%w: counter %s is %s, not a number", ErrMalformedItem, name, attrType(item[name]))
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: counter %s is %q, not a whole number of impressions", ErrMalformedItem, name, v.Value)
	}
	return n, nil
}

// attrType names an attribute's DynamoDB type, for error messages.
func attrType(v types.AttributeValue) string {
	switch v.(type) {
	case nil:
		return "missing"
	case *types.AttributeValueMemberS:
		return "a string"
	case *types.AttributeValueMemberN:
		return "a number"
	case *types.AttributeValueMemberBOOL:
		return "a boolean"
	case *types.AttributeValueMemberNULL:
		return "null"
	default:
		return fmt.Sprintf("of type %T", v)
	}
}
