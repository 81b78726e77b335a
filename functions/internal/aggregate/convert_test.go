package aggregate_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
)

func TestAttributeConvertsEveryType(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// json is the attribute as a stream event carries it.
		json string
		want types.AttributeValue
	}{
		{"String", `{"S":"CAMPAIGN#c1"}`, &types.AttributeValueMemberS{Value: "CAMPAIGN#c1"}},
		// Numbers stay the decimal strings DynamoDB sends, never floats,
		// so that a 38-digit number keeps every digit.
		{"Number", `{"N":"12345678901234567890123456789012345678"}`, &types.AttributeValueMemberN{Value: "12345678901234567890123456789012345678"}},
		{"Binary", `{"B":"AQID"}`, &types.AttributeValueMemberB{Value: []byte{1, 2, 3}}},
		{"EmptyBinary", `{"B":""}`, &types.AttributeValueMemberB{Value: []byte{}}},
		{"True", `{"BOOL":true}`, &types.AttributeValueMemberBOOL{Value: true}},
		{"False", `{"BOOL":false}`, &types.AttributeValueMemberBOOL{Value: false}},
		{"Null", `{"NULL":true}`, &types.AttributeValueMemberNULL{Value: true}},
		{"StringSet", `{"SS":["a","b"]}`, &types.AttributeValueMemberSS{Value: []string{"a", "b"}}},
		{"NumberSet", `{"NS":["1","2.5"]}`, &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}}},
		{"BinarySet", `{"BS":["AQ==","Ag=="]}`, &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2}}}},
		{"EmptyList", `{"L":[]}`, &types.AttributeValueMemberL{Value: []types.AttributeValue{}}},
		{"EmptyMap", `{"M":{}}`, &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}},
		// Lists and maps convert to any depth.
		{"Nested", `{"M":{"l":{"L":[{"N":"1"},{"M":{"s":{"S":"x"}}},{"L":[{"NULL":true}]}]},"b":{"BOOL":true}}}`,
			&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{
					&types.AttributeValueMemberN{Value: "1"},
					&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"s": &types.AttributeValueMemberS{Value: "x"}}},
					&types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberNULL{Value: true}}},
				}},
				"b": &types.AttributeValueMemberBOOL{Value: true},
			}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var v events.DynamoDBAttributeValue
			require.NoError(t, json.Unmarshal([]byte(tc.json), &v))
			got, err := aggregate.Attribute(v)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestAttributeRefusesAValueWithoutItsType: aws-lambda-go's accessors panic
// on a value that does not hold its type; the converter reports it.
func TestAttributeRefusesAValueWithoutItsType(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		v    events.DynamoDBAttributeValue
	}{
		// The zero value says Binary and holds nothing.
		{"ZeroValue", events.DynamoDBAttributeValue{}},
		// Deep inside a map and a list, the whole value is refused.
		{"NestedInAMap", events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"x": {}})},
		{"NestedInAList", events.NewListAttribute([]events.DynamoDBAttributeValue{events.NewStringAttribute("ok"), {}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := aggregate.Attribute(tc.v)
			require.ErrorContains(t, err, "holds no value of its type")
			assert.Nil(t, got)
		})
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	raw := `{
	  "eventID": "7de3041dd709b024af6f29e4fa13d34c", "eventName": "MODIFY", "eventVersion": "1.1",
	  "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
	  "dynamodb": {
	    "ApproximateCreationDateTime": 1767225600.5,
	    "Keys": {"pk": {"S": "DEDUP#00"}, "sk": {"S": "MARKER"}},
	    "OldImage": {"pk": {"S": "DEDUP#00"}, "sk": {"S": "MARKER"}, "owner": {"S": "old"}},
	    "NewImage": {"pk": {"S": "DEDUP#00"}, "sk": {"S": "MARKER"}, "owner": {"S": "new"}, "c": {"S": "c1"}},
	    "SequenceNumber": "4421584500000000017450439092", "SizeBytes": 120, "StreamViewType": "NEW_AND_OLD_IMAGES"
	  },
	  "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/impressions/stream/2026-01-01T00:00:00.000"
	}`
	var r events.DynamoDBEventRecord
	require.NoError(t, json.Unmarshal([]byte(raw), &r))
	rec, err := aggregate.Record(r)
	require.NoError(t, err)
	assert.Equal(t, "MODIFY", rec.EventName)
	assert.Equal(t, "4421584500000000017450439092", rec.Seq)
	assert.Equal(t, time.Unix(1767225600, 500_000_000), rec.Created)
	assert.Equal(t, &types.AttributeValueMemberS{Value: "old"}, rec.Old["owner"])
	assert.Equal(t, &types.AttributeValueMemberS{Value: "c1"}, rec.New["c"])
	assert.Len(t, rec.New, 4)

	t.Run("AbsentImagesAreNil", func(t *testing.T) {
		t.Parallel()
		// A REMOVE carries no new image, an INSERT no old one.
		rec, err := aggregate.Record(events.DynamoDBEventRecord{EventName: "REMOVE", Change: events.DynamoDBStreamRecord{
			SequenceNumber: "1", OldImage: map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("x")}}})
		require.NoError(t, err)
		assert.Nil(t, rec.New)
		assert.NotNil(t, rec.Old)
	})
	t.Run("NoSequenceNumberIsRefused", func(t *testing.T) {
		t.Parallel()
		_, err := aggregate.Record(events.DynamoDBEventRecord{EventID: "e1", EventName: "INSERT"})
		assert.ErrorContains(t, err, "no sequence number")
	})
	t.Run("BadAttributeIsNamed", func(t *testing.T) {
		t.Parallel()
		_, err := aggregate.Record(events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
			SequenceNumber: "1", NewImage: map[string]events.DynamoDBAttributeValue{"c": {}}}})
		assert.ErrorContains(t, err, `NewImage: attribute "c"`)
	})
}
