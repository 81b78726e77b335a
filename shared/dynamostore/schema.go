package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names. Short names keep items small, and item size is what
// DynamoDB bills.
const (
	// PartitionKey is the table's string partition key.
	PartitionKey = "pk"
	// SortKey is the table's string sort key.
	SortKey = "sk"
	// TTLAttribute holds the epoch second after which DynamoDB's TTL process
	// may delete an item. Dedup markers and hour counters carry it;
	// campaigns and totals never expire.
	TTLAttribute = "ttl"

	attrName      = "name"    // campaign: name
	attrStart     = "start"   // campaign: start time, RFC 3339 in UTC
	attrStartMs   = "startMs" // campaign: start, whole Unix milliseconds (floor)
	attrStartNs   = "startNs" // campaign: start, nanoseconds past startMs
	attrCreator   = "creator" // campaign: the CreateCampaign call that wrote it
	attrEnd       = "end"     // campaign, list entry: end time, RFC 3339 in UTC; absent: none
	attrPaused    = "paused"  // campaign, list entry: true while paused; absent: false
	attrCreated   = "created" // campaign, list entry: creation time, RFC 3339 in UTC; absent: unknown
	attrVersion   = "v"       // campaign: bumped by every change; absent before the first
	attrExpiresMs = "expMs"   // dedup marker: Unix ms at which it stops counting
	attrOwner     = "owner"   // dedup marker: the RecordImpression call that wrote it
	attrEpoch     = "e"       // dedup marker: the owner that wrote c, a and b; see countOf
	attrCampaign  = "c"       // dedup marker: the campaign it counts for
	attrAd        = "a"       // dedup marker: the ad
	attrBucket    = "b"       // dedup marker: the minute (adcount.Bucket) it counted in
	attrUser      = "u"       // dedup marker: the user's fingerprint (reach.Hash) >> 16; absent on markers older than reach
	attrCount     = "n"       // total counter: impressions counted
	attrFiltered  = "f"       // total counter: filtered impressions counted; dedup marker: 1 if filtered
	attrSeq       = "seq"     // checkpoint: sequence number applied through, 40 digits
	attrWatermark = "wm"      // checkpoint, reader: Unix ms of the watermark
	attrAppliedAt = "at"      // checkpoint: Unix ms of the aggregator's clock when it moved
	attrStage     = "stg"     // checkpoint: the token of the last staged batch; see stage.go
	attrParts     = "parts"   // checkpoint: how many parts that batch has
	attrDone      = "done"    // checkpoint: how many of them are applied
	attrFrom      = "from"    // checkpoint: the sequence number before that batch
	attrData      = "d"       // staged part: its counter additions, compressed JSON
	attrSet       = "s"       // reach item: the users, reach.Set's canonical encoding
	attrSetZ      = "z"       // reach item: the same, compressed (flate), where that is shorter
)

// TableSchema is the table the store needs: the key schema, the attribute
// definitions for the keys, on-demand billing and the TTL attribute. The
// create-table path builds its request from it, and the deployment template
// must declare the same, so a test can hold the two together.
type TableSchema struct {
	KeySchema            []types.KeySchemaElement
	AttributeDefinitions []types.AttributeDefinition
	BillingMode          types.BillingMode
	TTLAttribute         string
	// StreamViewType is the table stream the aggregator reads: both
	// images, so that it can tell a recount (a new owner) from a marker
	// that only changed otherwise.
	StreamViewType types.StreamViewType
}

// Schema returns the table the store needs. See docs/dynamodb.md for what
// each item holds.
func Schema() TableSchema {
	return TableSchema{
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(PartitionKey), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(SortKey), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(PartitionKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(SortKey), AttributeType: types.ScalarAttributeTypeS},
		},
		BillingMode:    types.BillingModePayPerRequest,
		TTLAttribute:   TTLAttribute,
		StreamViewType: types.StreamViewTypeNewAndOldImages,
	}
}

// TableAdmin is the part of the DynamoDB API that CreateTable uses: the
// table operations, and Scan, PutItem and UpdateItem for migrating an
// existing table's items. *dynamodb.Client implements it.
type TableAdmin interface {
	CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	UpdateTable(context.Context, *dynamodb.UpdateTableInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// CreateTable creates the table named name as Schema describes it, with
// its stream, waits until it is active and turns on TTL. It is for local
// use and tests; deployments declare the table in the template, and run
// it once against the deployed table to migrate it (docs/dynamodb.md,
// "Migration"). A table that already exists is left as it is, apart from
// turning TTL and the stream on if they are off and migrating its items
// (see migrate), so running it twice is harmless, and it upgrades a table
// made by an earlier version of the store. It reports whether it created
// the table.
func CreateTable(ctx context.Context, api TableAdmin, name string) (created bool, err error) {
	s := Schema()
	_, err = api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		KeySchema:            s.KeySchema,
		AttributeDefinitions: s.AttributeDefinitions,
		BillingMode:          s.BillingMode,
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: s.StreamViewType},
	})
	var inUse *types.ResourceInUseException
	switch {
	case err == nil:
		created = true
	case errors.As(err, &inUse):
	default:
		return false, fmt.Errorf("dynamostore: create table %s: %w", name, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(api, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	desc, err := waiter.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute)
	if err != nil {
		return created, fmt.Errorf("dynamostore: wait for table %s: %w", name, err)
	}
	if spec := desc.Table.StreamSpecification; spec == nil || !aws.ToBool(spec.StreamEnabled) {
		_, err := api.UpdateTable(ctx, &dynamodb.UpdateTableInput{
			TableName:           aws.String(name),
			StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: s.StreamViewType},
		})
		if err != nil {
			return created, fmt.Errorf("dynamostore: enable the stream of %s: %w", name, err)
		}
	} else if spec.StreamViewType != s.StreamViewType {
		return created, fmt.Errorf("dynamostore: table %s has a %s stream; the aggregator needs %s: turn the stream off and run create-table again", name, spec.StreamViewType, s.StreamViewType)
	}
	ttl, err := api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		return created, fmt.Errorf("dynamostore: describe TTL of %s: %w", name, err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != s.TTLAttribute ||
		(d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling) {
		_, err = api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(s.TTLAttribute), Enabled: aws.Bool(true)},
		})
		if err != nil {
			return created, fmt.Errorf("dynamostore: enable TTL on %s: %w", name, err)
		}
	}
	if created {
		return created, nil // nothing to migrate
	}
	if err := migrate(ctx, api, name); err != nil {
		return created, fmt.Errorf("dynamostore: migrate %s: %w", name, err)
	}
	return created, nil
}

// migrate brings the items that an earlier version of the store wrote up
// to what this one reads, idempotently, in one Scan of the table:
//   - a campaign without a version, so written before the campaign list,
//     gets its list entry (a put on the condition that there is none; an
//     UpdateCampaign writes one too). It lists last: it has no creation
//     time.
//   - a campaign's day item with a TTL, written when day items expired,
//     loses it: day points are now kept for as long as the campaign.
//
// The Scan reads every item, markers included, so it costs about one RRU
// per 8 KB of the table (eventually consistent); docs/dynamodb.md has the
// figure. Items written concurrently by the new code need nothing, so it
// is safe on a table in use; run it after every old process is gone,
// since an old one still creates campaigns without list entries.
func migrate(ctx context.Context, api TableAdmin, name string) error {
	pages := dynamodb.NewScanPaginator(api, &dynamodb.ScanInput{
		TableName:        aws.String(name),
		FilterExpression: aws.String("begins_with(#pk, :campaign) AND (#sk = :meta OR begins_with(#sk, :day))"),
		ExpressionAttributeNames: map[string]string{
			"#pk": PartitionKey, "#sk": SortKey,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":campaign": str(campaignPrefix), ":meta": str(metaSK), ":day": str(dayPrefix),
		},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			pk, _ := getString(item, PartitionKey)
			sk, _ := getString(item, SortKey)
			var err error
			switch {
			case sk == metaSK:
				err = listLegacyCampaign(ctx, api, name, strings.TrimPrefix(pk, campaignPrefix), item)
			case strings.HasPrefix(sk, dayPrefix):
				err = keepDayItem(ctx, api, name, pk, sk, item)
			}
			if err != nil {
				return fmt.Errorf("item %s %s: %w", pk, sk, err)
			}
		}
	}
	return nil
}

// listLegacyCampaign writes the list entry of a campaign item from before
// the list, unless it has one.
func listLegacyCampaign(ctx context.Context, api TableAdmin, table, id string, item map[string]types.AttributeValue) error {
	if _, ok := item[attrVersion]; ok {
		return nil // written with its entry
	}
	c, err := campaignFromItem(id, item)
	if err != nil {
		return err
	}
	_, err = api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(table),
		Item:                     listEntry(c),
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": PartitionKey},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	return err
}

// keepDayItem removes the TTL of a campaign's day item, if it has one.
func keepDayItem(ctx context.Context, api TableAdmin, table, pk, sk string, item map[string]types.AttributeValue) error {
	if _, ok := item[TTLAttribute]; !ok {
		return nil
	}
	_, err := api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(table),
		Key:                      key(pk, sk),
		UpdateExpression:         aws.String("REMOVE #ttl"),
		ConditionExpression:      aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#ttl": TTLAttribute, "#pk": PartitionKey},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // deleted meanwhile: nothing to keep
	}
	return err
}
