package dynamostore

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

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
