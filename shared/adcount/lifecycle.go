package adcount

import (
	"time"
)

// Status is where a campaign stands at a moment, computed from its start,
// its end and its pause flag whenever it is read; nothing stores it, so it
// can never go stale.
type Status string

// The statuses, in the API's spelling.
const (
	// StatusScheduled: before the start time; impressions are refused
	// with ErrNotStarted.
	StatusScheduled Status = "scheduled"
	// StatusActive: live; impressions count.
	StatusActive Status = "active"
	// StatusPaused: paused by an operator and not yet ended; impressions
	// are refused with ErrPaused.
	StatusPaused Status = "paused"
	// StatusEnded: at or after the end time; impressions are refused with
	// ErrEnded.
	StatusEnded Status = "ended"
)

// Statuses lists every status, in the order a campaign usually passes
// through them.
var Statuses = []Status{StatusScheduled, StatusActive, StatusPaused, StatusEnded}

// ParseStatus returns the status s names, or an ErrInvalid FieldError on
// field "status".
func ParseStatus(s string) (Status, error) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fieldError("status", "must be one of scheduled, active, paused or ended, got %q", s)
}

// Status returns the campaign's status at now. An end wins over a pause,
// and a pause over a start still to come: an ended campaign can never
// count again, and a paused one will not count at its start until it is
// resumed.
func (c Campaign) Status(now time.Time) Status {
	switch {
	case c.Ended(now):
		return StatusEnded
	case c.Paused:
		return StatusPaused
	case !c.Started(now):
		return StatusScheduled
	}
	return StatusActive
}

// Ended reports whether the campaign has an end time and now is at or
// after it.
func (c Campaign) Ended(now time.Time) bool {
	return !c.EndTime.IsZero() && !now.Before(c.EndTime)
}

// Live returns nil if an impression at now counts for the campaign, and
// otherwise why not: ErrEnded, ErrPaused or ErrNotStarted, in the order of
// Status. Every store refuses impressions with exactly these errors.
func (c Campaign) Live(now time.Time) error {
	switch c.Status(now) {
	case StatusEnded:
		return ErrEnded
	case StatusPaused:
		return ErrPaused
	case StatusScheduled:
		return ErrNotStarted
	}
	return nil
}

// CampaignPatch is a change to a campaign: each field that is set
// replaces the campaign's. It is how both a create with an end time and
// PATCH /api/v1/campaigns/{id} change a campaign, so both validate alike.
type CampaignPatch struct {
	// Name, if set, is trimmed and validated as NewCampaign does.
	Name *string
	// EndTime, if set, is the new end: it must be after the start time.
	// A pointer to the zero time removes the end.
	EndTime *time.Time
	// Paused, if set, pauses (true) or resumes (false) the campaign.
	Paused *bool
}

// Empty reports whether the patch changes nothing.
func (p CampaignPatch) Empty() bool {
	return p.Name == nil && p.EndTime == nil && p.Paused == nil
}

// Apply returns c with p applied, or an ErrInvalid FieldError naming the
// first field that is wrong; c itself never changes, so a bad patch
// changes nothing.
func (c Campaign) Apply(p CampaignPatch) (Campaign, error) {
	if p.Name != nil {
		checked, err := NewCampaign(c.ID, *p.Name, c.StartTime)
		if err != nil {
			return Campaign{}, err
		}
		c.Name = checked.Name
	}
	if p.EndTime != nil {
		end := *p.EndTime
		switch {
		case end.IsZero():
			c.EndTime = time.Time{}
		case end.Before(MinStartTime) || end.After(MaxStartTime):
			return Campaign{}, fieldError("end_time", "must be between %s and %s", MinStartTime.Format(time.RFC3339), MaxStartTime.Format(time.RFC3339))
		case !end.After(c.StartTime):
			return Campaign{}, fieldError("end_time", "must be after start_time (%s)", c.StartTime.Format(time.RFC3339Nano))
		default:
			c.EndTime = end.UTC()
		}
	}
	if p.Paused != nil {
		c.Paused = *p.Paused
	}
	return c, nil
}
