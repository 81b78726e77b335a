package dynamostore

// Scaffolding while the reporting issue is built: each method is replaced
// by its real one before the issue is done.

import (
	"context"
	"errors"

	"github.com/adcount/impression-counter/shared/adcount"
)

var errTODO = errors.New("dynamostore: not built yet")

func (s *Store) Series(context.Context, string, adcount.SeriesQuery) (adcount.Series, error) {
	return adcount.Series{}, errTODO
}

func (s *Store) AdStats(context.Context, string, adcount.AdQuery) (adcount.AdPage, error) {
	return adcount.AdPage{}, errTODO
}
