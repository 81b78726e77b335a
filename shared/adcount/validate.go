package adcount

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Input limits. They bound the memory and storage one request can claim.
const (
	// MaxNameRunes is the longest campaign name, in characters, after
	// surrounding white space is trimmed.
	MaxNameRunes = 200
	// MaxIDBytes is the longest campaign_id, user_id or ad_id, in bytes.
	MaxIDBytes = 256
)

// MinStartTime and MaxStartTime bound a campaign's start time. No campaign
// starts before 1970, and a start after 9999 has no RFC 3339 form to be
// answered with. Treat them as constants.
var (
	MinStartTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxStartTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// NewCampaign validates a campaign's name and start time and returns the
// campaign with the given ID, its name trimmed and its start time in UTC.
// Errors are *FieldError values that match ErrInvalid.
func NewCampaign(id, name string, start time.Time) (Campaign, error) {
	name = strings.TrimSpace(name)
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		return Campaign{}, fieldError("name", "must be valid UTF-8")
	case n == 0:
		return Campaign{}, fieldError("name", "is required and must not be blank")
	case n > MaxNameRunes:
		return Campaign{}, fieldError("name", "must be at most %d characters, got %d", MaxNameRunes, n)
	}
	if start.IsZero() {
		return Campaign{}, fieldError("start_time", "is required")
	}
	if start.Before(MinStartTime) || start.After(MaxStartTime) {
		return Campaign{}, fieldError("start_time", "must be between %s and %s", MinStartTime.Format(time.RFC3339), MaxStartTime.Format(time.RFC3339))
	}
	return Campaign{ID: id, Name: name, StartTime: start.UTC()}, nil
}

// Validate checks that every field of the impression is a non-empty, valid
// UTF-8 string of at most MaxIDBytes bytes. Errors are *FieldError values
// that match ErrInvalid.
func (imp Impression) Validate() error {
	for _, f := range [...]struct{ name, value string }{
		{"campaign_id", imp.CampaignID},
		{"user_id", imp.UserID},
		{"ad_id", imp.AdID},
	} {
		if err := validateID(f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

func validateID(field, v string) error {
	switch {
	case v == "":
		return fieldError(field, "is required and must be a non-empty string")
	case len(v) > MaxIDBytes:
		return fieldError(field, "must be at most %d bytes, got %d", MaxIDBytes, len(v))
	case !utf8.ValidString(v):
		return fieldError(field, "must be valid UTF-8")
	}
	return nil
}
