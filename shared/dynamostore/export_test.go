package dynamostore

import (
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/adcount/impression-counter/shared/reach"
)

// WithStageItems sets the most counter items one stage holds, so that
// tests can make a batch need several stages without thousands of
// campaigns.
func WithStageItems(n int) AggregatorOption { return func(a *Aggregator) { a.stageItems = n } }

// UserAttr is the marker attribute that carries a user's fingerprint, as
// the store writes it.
func UserAttr(userID string) types.AttributeValue { return userAttr(reach.Hash(userID)) }

// WithListScan sets the most list entries one filtered ListCampaigns call
// reads, so that tests can reach the bound without thousands of campaigns:
// the in-process server writes them too slowly.
func WithListScan(n int) Option { return func(s *Store) { s.listScan = n } }
