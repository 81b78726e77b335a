package aggregate

import (
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/dynamostore"
)

// Record converts one record of a Lambda DynamoDB stream event into the
// aggregator's StreamRecord, its images into the AWS SDK's attribute types.
// It returns an error for a record without a sequence number, which no
// partial batch response could name, and for an attribute that holds no
// value of its type.
func Record(r events.DynamoDBEventRecord) (dynamostore.StreamRecord, error) {
	seq := r.Change.SequenceNumber
	if seq == "" {
		return dynamostore.StreamRecord{}, fmt.Errorf("aggregate: %s record %q has no sequence number", r.EventName, r.EventID)
	}
	old, err := Image(r.Change.OldImage)
	if err != nil {
		return dynamostore.StreamRecord{}, fmt.Errorf("aggregate: record %s: OldImage: %w", seq, err)
	}
	img, err := Image(r.Change.NewImage)
	if err != nil {
		return dynamostore.StreamRecord{}, fmt.Errorf("aggregate: record %s: NewImage: %w", seq, err)
	}
	return dynamostore.StreamRecord{
		EventName: r.EventName,
		Seq:       seq,
		Created:   r.Change.ApproximateCreationDateTime.Time,
		Old:       old,
		New:       img,
	}, nil
}

// Image converts an item image. An absent or empty image is nil, as
// StreamRecord has it where a record carries none: an INSERT's old image,
// a REMOVE's new one.
func Image(img map[string]events.DynamoDBAttributeValue) (map[string]types.AttributeValue, error) {
	if len(img) == 0 {
		return nil, nil
	}
	out := make(map[string]types.AttributeValue, len(img))
	for name, v := range img {
		av, err := Attribute(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		out[name] = av
	}
	return out, nil
}

// errNoValue is the cause of Attribute's error for a value that does not
// hold what its type says.
var errNoValue = errors.New("holds no value of its type")

// Attribute converts one attribute value, of any of DynamoDB's ten types,
// lists and maps to any depth.
//
// aws-lambda-go's accessors panic on a value that does not hold what its
// type says, such as the zero DynamoDBAttributeValue (a Binary with no
// bytes). JSON decoding never makes one, but the function must not crash
// on one: Attribute recovers and returns an error instead, so that the
// record is reported as a failure at its position.
func Attribute(v events.DynamoDBAttributeValue) (av types.AttributeValue, err error) {
	defer func() {
		if r := recover(); r != nil {
			av, err = nil, fmt.Errorf("a %s %w (%v)", typeName(v.DataType()), errNoValue, r)
		}
	}()
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}, nil
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}, nil
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}, nil
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}, nil
	case events.DataTypeNull:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}, nil
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}, nil
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}, nil
	case events.DataTypeList:
		list := v.List()
		out := make([]types.AttributeValue, len(list))
		for i, e := range list {
			if out[i], err = Attribute(e); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case events.DataTypeMap:
		m, err := Image(v.Map())
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = map[string]types.AttributeValue{}
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	}
	return nil, fmt.Errorf("unknown DynamoDB attribute type %d", v.DataType())
}

// typeName names a DynamoDB data type as the JSON protocol does.
func typeName(t events.DynamoDBDataType) string {
	switch t {
	case events.DataTypeBinary:
		return "B"
	case events.DataTypeBoolean:
		return "BOOL"
	case events.DataTypeBinarySet:
		return "BS"
	case events.DataTypeList:
		return "L"
	case events.DataTypeMap:
		return "M"
	case events.DataTypeNumber:
		return "N"
	case events.DataTypeNumberSet:
		return "NS"
	case events.DataTypeNull:
		return "NULL"
	case events.DataTypeString:
		return "S"
	case events.DataTypeStringSet:
		return "SS"
	}
	return fmt.Sprintf("type %d", t)
}
