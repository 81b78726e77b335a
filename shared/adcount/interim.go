package adcount

import (
	"context"
	"errors"
)

// RecordEach records imps one by one through s.RecordImpression.
//
// TODO(batch): interim, for stores whose native batch path is not written
// yet; removed when every store has one.
func RecordEach(ctx context.Context, s Store, imps []Impression) ([]Result, error) {
	if err := CheckBatchSize(len(imps)); err != nil {
		return nil, err
	}
	results := make([]Result, len(imps))
	for i, imp := range imps {
		out, err := s.RecordImpression(ctx, imp)
		switch {
		case err == nil:
			results[i].Outcome = out
		case isItemError(err):
			results[i].Err = err
		default:
			return nil, err
		}
	}
	return results, nil
}

func isItemError(err error) bool {
	for _, target := range []error{ErrInvalid, ErrNotFound, ErrNotStarted} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
