package adcount_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

func TestNameMatches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, campaign, search string
		want                   bool
	}{
		{"Substring", "Summer sale 2026", "sale", true},
		{"WholeName", "Summer sale", "Summer sale", true},
		{"UpperFindsLower", "Summer sale", "SALE", true},
		{"LowerFindsMixed", "Black FRIDAY", "friday", true},
		{"NotThere", "Summer sale", "winter", false},
		// The search is not trimmed: a leading space asks for a word's
		// start.
		{"LeadingSpaceIsAWordStart", "Summer sale", " sale", true},
		{"LeadingSpaceMissesTheFirstWord", "Sale now", " sale", false},
		{"LongerThanTheName", "Sale", "Sales", false},
		// Case folding is Unicode's, as strings.EqualFold's.
		{"GreekSigmaForms", "ΟΔΥΣΣΕΥΣ", "οδυσσευς", true},
		{"KelvinSignIsK", "Kilo", "\u212Ailo", true},
		{"LongSIsS", "Sale", "\u017Fale", true},
		{"Accented", "Crème brûlée", "CRÈME", true},
		// "İ" lowers to "i" but does not fold to it: EqualFold tells them
		// apart, and so does the search.
		{"DottedCapitalIIsNotI", "pilot", "İ", false},
		{"DottedCapitalIFindsItself", "İstanbul", "İst", true},
		{"Emoji", "Launch 🚀 now", "🚀", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, adcount.NameMatches(tc.campaign, tc.search))
		})
	}
}

func TestCheckNameSearch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, search string
		ok           bool
	}{
		{"OneCharacter", "a", true},
		{"AsLongAsAName", strings.Repeat("é", adcount.MaxNameRunes), true},
		// Empty is no search; a caller that means none leaves it unset.
		{"Empty", "", false},
		{"LongerThanAnyName", strings.Repeat("a", adcount.MaxNameRunes+1), false},
		{"InvalidUTF8", "sale\xff", false},
		{"Blank", " ", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := adcount.CheckNameSearch(tc.search)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			var fe *adcount.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "name", fe.Field)
			assert.ErrorIs(t, err, adcount.ErrInvalid)
		})
	}
}

func TestCampaignQuery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	active := adcount.Campaign{Name: "Summer Sale", StartTime: now}
	paused := adcount.Campaign{Name: "Summer sale", StartTime: now, Paused: true}
	cases := []struct {
		name     string
		q        adcount.CampaignQuery
		field    string // the field Check refuses; empty when valid
		filtered bool
		keeps    []bool // active, paused
	}{
		{"NoFilter", adcount.CampaignQuery{Limit: 1}, "", false, []bool{true, true}},
		{"Status", adcount.CampaignQuery{Limit: 1, Status: adcount.StatusPaused}, "", true, []bool{false, true}},
		{"Name", adcount.CampaignQuery{Limit: 1, Name: "sale"}, "", true, []bool{true, true}},
		{"NameNotFound", adcount.CampaignQuery{Limit: 1, Name: "winter"}, "", true, []bool{false, false}},
		// Both filters must pass.
		{"NameAndStatus", adcount.CampaignQuery{Limit: 1, Name: "SALE", Status: adcount.StatusActive}, "", true, []bool{true, false}},
		{"BadLimit", adcount.CampaignQuery{Limit: 0}, "limit", false, nil},
		{"BadStatus", adcount.CampaignQuery{Limit: 1, Status: "running"}, "status", true, nil},
		{"BadName", adcount.CampaignQuery{Limit: 1, Name: strings.Repeat("a", adcount.MaxNameRunes+1)}, "name", true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.q.Now = now
			assert.Equal(t, tc.filtered, tc.q.Filtered())
			err := tc.q.Check()
			if tc.field != "" {
				var fe *adcount.FieldError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, tc.field, fe.Field)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.keeps, []bool{tc.q.Keeps(active), tc.q.Keeps(paused)})
		})
	}
}
