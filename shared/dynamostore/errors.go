package dynamostore

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrMalformedItem means an item in the table is not as the store writes
// it, such as a counter that is not a whole number: the table was edited
// by hand or by another program. Retrying cannot help, so it is an internal
// error (500), and the error names the item and attribute to repair.
var ErrMalformedItem = errors.New("malformed item")

// retryable holds the SDK's own rules for what is worth retrying: throttling
// (ProvisionedThroughputExceeded, ThrottlingException, RequestLimitExceeded
// and the like), HTTP 5xx, connection failures and network timeouts.
var retryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// transient reports whether err means DynamoDB was throttled, failed or did
// not answer in time, so that the same request may succeed later. The SDK
// has already retried such an error by the time the store sees it.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		// The caller gave up; nobody is waiting for the answer.
		return false
	}
	return retryable.IsErrorRetryable(err) == aws.TrueTernary
}

// missingTable reports whether err says that the table does not exist (or
// is not visible to these credentials in this region): a deployment or
// configuration fault that no retry of the request can fix, but that
// creating the table or correcting DYNAMODB_TABLE or AWS_REGION does.
func missingTable(err error) bool {
	var rnf *types.ResourceNotFoundException
	return errors.As(err, &rnf)
}
