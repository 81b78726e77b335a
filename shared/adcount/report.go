package adcount

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"time"
)

// Page sizes of the campaign list and the per-ad breakdown.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 500
)

// CheckPageLimit returns an ErrInvalid FieldError on "limit" unless n is
// from 1 to MaxPageLimit.
func CheckPageLimit(n int) error {
	if n < 1 || n > MaxPageLimit {
		return fieldError("limit", "must be from 1 to %d, got %d", MaxPageLimit, n)
	}
	return nil
}

// CampaignCursor is where a page of the campaign list ends: the list is in
// (CreatedAt, ID) order, newest first, and the next page starts after this
// position. Pages are stable while campaigns are created: a new campaign
// sorts before every cursor already handed out, so it never shifts a later
// page.
type CampaignCursor struct {
	CreatedAt time.Time
	ID        string
}

// Covers reports whether c is on the page that the cursor ends or on an
// earlier one, so that the next page leaves it out.
func (k CampaignCursor) Covers(c Campaign) bool {
	if !c.CreatedAt.Equal(k.CreatedAt) {
		return c.CreatedAt.After(k.CreatedAt)
	}
	return c.ID >= k.ID
}

// CursorAfter returns the cursor of a page whose last campaign is c.
func CursorAfter(c Campaign) CampaignCursor {
	return CampaignCursor{CreatedAt: c.CreatedAt, ID: c.ID}
}

// NewerFirst orders campaigns as the list does: by CreatedAt, newest first,
// then by ID, descending. It fits slices.SortFunc.
func NewerFirst(a, b Campaign) int {
	switch {
	case a.CreatedAt.After(b.CreatedAt):
		return -1
	case a.CreatedAt.Before(b.CreatedAt):
		return 1
	case a.ID > b.ID:
		return -1
	case a.ID < b.ID:
		return 1
	}
	return 0
}

// CampaignQuery asks for one page of the campaign list.
type CampaignQuery struct {
	// Limit is the page size, from 1 to MaxPageLimit.
	Limit int
	// After, if set, is the end of the previous page.
	After *CampaignCursor
	// Status, if set, keeps only campaigns with that status at Now.
	Status Status
	// Name, if set, keeps only campaigns whose name holds it, whatever
	// the case (see NameMatches). CheckNameSearch says which are valid.
	Name string
	// Now is the moment statuses are computed at.
	Now time.Time
}

// Check returns an ErrInvalid FieldError for a limit CheckPageLimit
// refuses, a status that is none of Statuses, or a name search that
// CheckNameSearch refuses. Every store checks a query with it, so that
// all refuse the same ones.
func (q CampaignQuery) Check() error {
	if err := CheckPageLimit(q.Limit); err != nil {
		return err
	}
	if q.Status != "" {
		if _, err := ParseStatus(string(q.Status)); err != nil {
			return err
		}
	}
	if q.Name != "" {
		return CheckNameSearch(q.Name)
	}
	return nil
}

// Filtered reports whether the query keeps only some campaigns, so that
// a store may have to read past a page's worth to fill it.
func (q CampaignQuery) Filtered() bool {
	return q.Status != "" || q.Name != ""
}

// Keeps reports whether c belongs in the query's list: it has q.Status at
// q.Now, if set, and its name holds q.Name, if set. It is the one place
// that decides, so that every store lists the same campaigns.
func (q CampaignQuery) Keeps(c Campaign) bool {
	if q.Status != "" && c.Status(q.Now) != q.Status {
		return false
	}
	return q.Name == "" || NameMatches(c.Name, q.Name)
}

// CampaignPage is one page of the campaign list.
type CampaignPage struct {
	Campaigns []Campaign
	// Next is the cursor of the next page, or nil on the last page.
	Next *CampaignCursor
}

// AdStats are one ad's counts within its campaign. LastHour is exact to
// the minute, as the campaign's is. LastDay counts whole hours: the
// current hour and the 23 before it, so it covers 23 to 24 hours and never
// an impression older than a day. Keeping one ad's minutes for a whole day
// would cost 11 KiB an ad; see docs/performance.md.
type AdStats struct {
	AdID     string
	LastHour int64
	LastDay  int64
	Total    int64
	Filtered int64
}

// AdCursor is where a page of the per-ad breakdown ends: the breakdown is
// in (Total descending, AdID ascending) order. Totals grow while pages
// are read, so an ad whose total passes the cursor's between two pages
// can be left out of, or repeated on, the next one; the Total of every
// ad that is listed is exact as of its read.
type AdCursor struct {
	Total int64
	AdID  string
}

// Covers reports whether a is on the page that the cursor ends or on an
// earlier one, so that the next page leaves it out.
func (k AdCursor) Covers(a AdStats) bool {
	if a.Total != k.Total {
		return a.Total > k.Total
	}
	return a.AdID <= k.AdID
}

// MoreFirst orders ads as the breakdown does: by total, descending, then
// by ad ID. It fits slices.SortFunc.
func MoreFirst(a, b AdStats) int {
	switch {
	case a.Total > b.Total:
		return -1
	case a.Total < b.Total:
		return 1
	case a.AdID < b.AdID:
		return -1
	case a.AdID > b.AdID:
		return 1
	}
	return 0
}

// AdQuery asks for one page of a campaign's per-ad breakdown.
type AdQuery struct {
	Limit int
	After *AdCursor
}

// AdPage is one page of a campaign's per-ad breakdown.
type AdPage struct {
	Ads []AdStats
	// Next is the cursor of the next page, or nil on the last page.
	Next *AdCursor
	// AsOf is as in Stats.
	AsOf time.Time
}

// cursorEncoding is the cursors' text form: base64url JSON, opaque to
// clients, whose only promise is that it round-trips.
var cursorEncoding = base64.RawURLEncoding

// EncodeCursor returns the opaque text form of a CampaignCursor or an
// AdCursor.
func EncodeCursor[C CampaignCursor | AdCursor](c C) string {
	b, _ := json.Marshal(c) // two plain fields: it cannot fail
	return cursorEncoding.EncodeToString(b)
}

// DecodeCursor parses a cursor that EncodeCursor made, or returns an
// ErrInvalid FieldError on "cursor".
func DecodeCursor[C CampaignCursor | AdCursor](s string) (C, error) {
	var c C
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) > 1024 {
		return c, errBadCursor()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a cursor of the other kind is no cursor
	if dec.Decode(&c) != nil || dec.More() {
		return c, errBadCursor()
	}
	// Every cursor handed out names a campaign or an ad.
	switch k := any(c).(type) {
	case CampaignCursor:
		if k.ID == "" {
			return c, errBadCursor()
		}
	case AdCursor:
		if k.AdID == "" {
			return c, errBadCursor()
		}
	}
	return c, nil
}

func errBadCursor() error {
	return fieldError("cursor", "is not a cursor this API handed out; start again without it")
}
