package streampoll

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamostore"
)

// TestConvert turns Streams API records into the aggregator's: an image a
// record lacks stays nil, which is how the aggregator tells an INSERT.
func TestConvert(t *testing.T) {
	t.Parallel()
	at := time.Unix(1767225600, 0)
	got, err := convert([]stypes.Record{
		{EventName: stypes.OperationTypeInsert, Dynamodb: &stypes.StreamRecord{
			SequenceNumber: aws.String("100000000000000000001"), ApproximateCreationDateTime: aws.Time(at),
			NewImage: map[string]stypes.AttributeValue{
				"c": &stypes.AttributeValueMemberS{Value: "camp"},
				"b": &stypes.AttributeValueMemberN{Value: "29453760"},
				"m": &stypes.AttributeValueMemberM{Value: map[string]stypes.AttributeValue{"f": &stypes.AttributeValueMemberBOOL{Value: true}}},
			},
		}},
		{EventName: stypes.OperationTypeRemove, Dynamodb: &stypes.StreamRecord{
			SequenceNumber: aws.String("100000000000000000002"), ApproximateCreationDateTime: aws.Time(at),
			OldImage: map[string]stypes.AttributeValue{"c": &stypes.AttributeValueMemberS{Value: "camp"}},
		}},
	})
	require.NoError(t, err)
	assert.Equal(t, []dynamostore.StreamRecord{
		{EventName: "INSERT", Seq: "100000000000000000001", Created: at, New: map[string]types.AttributeValue{
			"c": &types.AttributeValueMemberS{Value: "camp"},
			"b": &types.AttributeValueMemberN{Value: "29453760"},
			"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"f": &types.AttributeValueMemberBOOL{Value: true}}},
		}},
		{EventName: "REMOVE", Seq: "100000000000000000002", Created: at, Old: map[string]types.AttributeValue{
			"c": &types.AttributeValueMemberS{Value: "camp"},
		}},
	}, got)

	_, err = convert([]stypes.Record{{EventID: aws.String("e1")}})
	assert.ErrorContains(t, err, "e1")
}
