package dynamostore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/adcount"
)

var _ adcount.Pinger = (*Store)(nil)

// Ping reports whether the store can serve requests, for readiness checks:
// nil if DescribeTable finds the table ACTIVE (or UPDATING, which still
// serves every read and write), and an error wrapping ErrUnavailable if the
// table is missing or not yet (or no longer) usable, DynamoDB cannot be
// reached, or it refuses the credentials, which every signed call checks.
//
// It reuses its last answer, good or bad, for the WithPingCache duration
// on the store's clock, so that probes cost one call per process every few
// seconds; concurrent calls wait for one check between them, or for their
// context to end. A check that the caller cancelled is not kept. It needs
// the dynamodb:DescribeTable permission on the table.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case s.ping <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("dynamostore: ping table %s: %w: %w", s.table, adcount.ErrUnavailable, ctx.Err())
	}
	defer func() { <-s.ping }()
	now := s.now()
	if !s.pingAt.IsZero() && !now.Before(s.pingAt) && now.Sub(s.pingAt) < s.pingCache {
		return s.pingErr
	}
	err := s.checkTable(ctx)
	if errors.Is(err, context.Canceled) {
		return err
	}
	// The answer is as old as its arrival, not its question, so a slow
	// check is still reused for the whole period.
	s.pingAt, s.pingErr = s.now(), err
	return err
}

// checkTable makes the one DescribeTable call behind Ping.
func (s *Store) checkTable(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
	if err != nil {
		if missingTable(err) {
			return fmt.Errorf("dynamostore: ping: %w: table %s not found: %w", adcount.ErrUnavailable, s.table, err)
		}
		return fmt.Errorf("dynamostore: ping table %s: %w: %w", s.table, adcount.ErrUnavailable, err)
	}
	var status types.TableStatus
	if out.Table != nil {
		status = out.Table.TableStatus
	}
	switch status {
	case types.TableStatusActive, types.TableStatusUpdating:
		return nil
	default:
		return fmt.Errorf("dynamostore: ping table %s: %w: table status is %q, not ACTIVE", s.table, adcount.ErrUnavailable, status)
	}
}
