package dynamostore

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Item keys. Every item of a campaign shares its partition, and the sort
// keys are chosen so that one Query from the oldest hour of the day window
// onwards returns exactly what Stats needs, in this order:
//
//	ADTOTAL#<ad>         one ad's all-time counts     (before the range)
//	DAY#<day>            hour counters of one day     (before the range)
//	HOUR#<hour>          minute counters of one hour  ("HOUR" < "META")
//	META                 the campaign itself          ("META" < "TOTAL")
//	TOTAL                the all-time counts
//
// So AdStats reads the ads' totals with one Query of the ADTOTAL# range,
// and Series the campaign's points with one Query of a DAY# or HOUR#
// range. An ad's time series has a partition of its own, AD#..., laid out
// as the campaign's is (HOUR#<hour>, DAY#<day>), so that a Query per ad
// reads a range of its points and the aggregator's writes of many ads
// spread over many partitions instead of heating the campaign's.
//
// The campaign list is the partition CAMPAIGNS: one entry per campaign,
// a copy of it, sorted by creation time and ID (listSK), so that a page is
// one Query read backwards.
//
// Items that the earlier, transactional write path left behind sort into
// the same range and Stats adds them in: HOUR#<hour>#<shard> until they
// expire, TOTAL#<shard> for good (docs/dynamodb.md, "Migration").
//
// A campaign's reach, the sets of its users (package reach), has a
// partition of its own, REACH#<campaign ID>, so that its items, a few KB
// each, neither heat the campaign's partition nor lie in the range of the
// campaign's Query, and so that each window is one Query of a short range:
//
//	B#<bucket>           the users of one ten-minute reach bucket
//	D#<day>              the users of one day
//	H#<hour>             the users of one hour       ("H#" < "TOTAL")
//	TOTAL                every user
//
// Stats reads the last hour's buckets with one Query, and the last day's
// hours with the total with another, from H#<first hour> to TOTAL.
//
// Dedup markers have a partition each, so that their writes spread over the
// table instead of queueing behind one campaign's partition. The
// aggregator's checkpoints and watermarks share the partition STREAM, so
// that one Query reads them all.
// MarkerKeyPrefix begins the partition key of every dedup marker: the only
// items whose changes can count. A reader of the table's stream passes the
// aggregator only their records (IsMarkerRecord); the Lambda function's
// event source mapping filters on it (template.yaml), because the
// aggregator's own writes are stream records too.
const MarkerKeyPrefix = "DEDUP#"

const (
	campaignPrefix = "CAMPAIGN#"
	adPrefix       = "AD#"
	adTotalPrefix  = "ADTOTAL#"
	markerPrefix   = MarkerKeyPrefix
	hourPrefix     = "HOUR#"
	dayPrefix      = "DAY#"
	totalSK        = "TOTAL"
	metaSK         = "META"
	markerSK       = "MARKER"
	listPK         = "CAMPAIGNS"
	streamPK       = "STREAM"
	shardPrefix    = "SHARD#"
	readerPrefix   = "READER#"
	stagePrefix    = "STAGE#"
	reachPrefix    = "REACH#"
	reachBucketPre = "B#"
	reachDayPre    = "D#"
	reachHourPre   = "H#"
	reachTotalSK   = "TOTAL"
)

func reachPK(campaign string) string { return reachPrefix + campaign }

// reachBucketSK, reachHourSK and reachDaySK name a campaign's reach items
// of one ten-minute bucket (adcount.ReachBucket), hour and day, with the
// number written as hourKey writes it, so that sort keys order as time
// does.
func reachBucketSK(b int64) string { return reachBucketPre + hourKey(b) }
func reachHourSK(h int64) string   { return reachHourPre + hourKey(h) }
func reachDaySK(d int64) string    { return reachDayPre + hourKey(d) }

// minutesPerReachBucket is how many window buckets (minutes) one reach
// bucket holds.
const minutesPerReachBucket = int64(adcount.ReachBucketWidth / adcount.BucketWidth)

// reachBucketOf returns the reach bucket that holds a window bucket: what
// adcount.ReachBucket answers for any moment of that minute.
func reachBucketOf(minute int64) int64 {
	b := minute / minutesPerReachBucket
	if minute%minutesPerReachBucket < 0 {
		b--
	}
	return b
}

func campaignPK(id string) string { return campaignPrefix + id }

// adPK names the partition of one ad's time series within its campaign:
// AD#<length of the campaign ID>#<campaign ID>#<ad ID>. The length makes
// it unambiguous, since either ID may hold a "#": campaign "a#b" with ad
// "c" is AD#3#a#b#c, campaign "a" with ad "b#c" is AD#1#a#b#c. With IDs of
// at most adcount.MaxIDBytes it is at most 520 bytes, within DynamoDB's
// 2,048 for a partition key.
func adPK(campaign, ad string) string {
	return adPrefix + strconv.Itoa(len(campaign)) + "#" + campaign + "#" + ad
}

// adTotalSK names the item in the campaign's partition that holds one
// ad's all-time counts: at most 264 bytes, within DynamoDB's 1,024 for a
// sort key.
func adTotalSK(ad string) string { return adTotalPrefix + ad }

// listSK names a campaign's entry in the list: its creation time, as 24
// hex digits that sort as times do (seconds since the Unix epoch with the
// sign bit flipped, then nanoseconds), "#", and its ID. Read backwards the
// list is then newest first and, among campaigns created at the same
// instant, by ID descending: adcount.NewerFirst. A campaign without a
// creation time (made before there was one) has the zero time, year 1,
// which sorts before every real one, so it lists last.
func listSK(createdAt time.Time, id string) string {
	return fmt.Sprintf("%016x%08x#%s", uint64(createdAt.Unix())^(1<<63), createdAt.Nanosecond(), id)
}

// listIDOffset is where the ID starts in a listSK.
const listIDOffset = 16 + 8 + 1

// idFromListSK returns the campaign ID that a list entry's sort key names.
func idFromListSK(sk string) (string, bool) {
	if len(sk) <= listIDOffset || sk[listIDOffset-1] != '#' {
		return "", false
	}
	return sk[listIDOffset:], true
}

func markerPK(k adcount.DedupKey) string { return markerPrefix + hex.EncodeToString(k[:]) }

// hourSK names the item that holds the minute counters of one hour. The
// hour is written so that sort keys order as hours do, for negative hours
// too: the sign bit flipped, as fixed-width hex.
func hourSK(hour int64) string { return hourPrefix + hourKey(hour) }

// daySK names the item that holds the hour counters of one day (UTC).
func daySK(day int64) string { return dayPrefix + hourKey(day) }

func hourKey(hour int64) string { return fmt.Sprintf("%016x", uint64(hour)^(1<<63)) }

// parseHourSK returns the hour an hourSK names; it reads the earlier
// path's HOUR#<hour>#<shard> items alike.
func parseHourSK(sk string) (int64, bool) { return parseKeyed(sk, hourPrefix) }

// parseKeyed returns the hour or day that a sort key made of prefix and
// hourKey names, ignoring anything after it.
func parseKeyed(sk, prefix string) (int64, bool) {
	n := len(prefix) + 16
	if len(sk) < n || !strings.HasPrefix(sk, prefix) {
		return 0, false
	}
	u, err := strconv.ParseUint(sk[len(prefix):n], 16, 64)
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

// dayOf splits an hour into its day and its hour in that day.
func dayOf(hour int64) (day int64, hourOfDay int64) {
	day = hour / 24
	if hour%24 < 0 {
		day--
	}
	return day, hour - day*24
}

// minuteAttr is the attribute of an hour item that counts one minute.
func minuteAttr(minute int64) string { return fmt.Sprintf("m%02d", minute) }

// hourAttr is the attribute of a day item that counts one hour.
func hourAttr(hour int64) string { return fmt.Sprintf("h%02d", hour) }

// Retention of the aggregator's counts (adcount.Retention states what a
// time series may ask for):
//   - MinuteRetention: the campaign's minutes, for the day window and a
//     day of minute points;
//   - the campaign's hours and days are kept for as long as the campaign:
//     its DAY# items never expire;
//   - AdMinuteRetention: one ad's minutes, for its last hour and an hour
//     of minute points;
//   - AdHourRetention: one ad's hours and so its days, for 90 days of day
//     points (and a day of hour points).
//
// The items go by TTL a little later than that, so that a reader never
// sees a count vanish from inside its range.
const (
	MinuteRetention   = 24 * time.Hour
	AdMinuteRetention = time.Hour
	AdHourRetention   = 90 * 24 * time.Hour
)

// hourEnd is the Unix second at which an hour ends.
func hourEnd(hour int64) int64 {
	return (hour + 1) * adcount.HourBuckets * int64(adcount.BucketWidth/time.Second)
}

// hourItemTTL is when a campaign's hour item can go: MinuteRetention after
// its hour has ended, plus an hour to spare, so that no last_day window
// reaches it.
func hourItemTTL(hour int64) int64 {
	return hourEnd(hour) + int64((MinuteRetention + time.Hour).Seconds())
}

// adHourItemTTL is when an ad's hour item can go: AdMinuteRetention after
// its hour has ended, plus an hour to spare; so it is kept at least two
// hours after it ends.
func adHourItemTTL(hour int64) int64 {
	return hourEnd(hour) + int64((AdMinuteRetention + time.Hour).Seconds())
}

// adDayItemTTL is when an ad's day item can go: AdHourRetention after its
// day has ended, plus two days to spare.
func adDayItemTTL(day int64) int64 {
	end := (day + 1) * 24 * 3600
	return end + int64((AdHourRetention + 48*time.Hour).Seconds())
}

// Retention of reach items: each is read for as long as a window or a
// point that adcount.ReachKept keeps covers it, and goes by TTL a margin
// after that, as the counters do:
//   - a ten-minute bucket is in last_hour until an hour after it began:
//     it goes two hours after it ends;
//   - an hour is in last_day, and is an hour point with unique users,
//     until 24 hours after it began: it goes as the campaign's hour items
//     do, 25 hours after it ends (hourItemTTL);
//   - a day is a day point with unique users until 7 days after it
//     began: it goes 8 days after it ends;
//   - the total never goes.
const (
	reachBucketKeep = 2 * time.Hour
	reachDayKeep    = 8 * 24 * time.Hour
)

// reachBucketTTL is when a ten-minute reach item can go.
func reachBucketTTL(b int64) int64 {
	return (b+1)*int64(adcount.ReachBucketWidth/time.Second) + int64(reachBucketKeep/time.Second)
}

// reachDayTTL is when a day's reach item can go.
func reachDayTTL(day int64) int64 {
	return (day+1)*24*3600 + int64(reachDayKeep/time.Second)
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
