// Package storetest holds the conformance suite that every adcount.Store
// must pass, and the hand-moved clock that tests use instead of sleeping.
//
// The suite also runs against stores that cannot do all a test store can:
// a client of the HTTP API, which chooses its own campaign IDs, or a server
// in another process, whose clock cannot be moved. Options say what a store
// cannot do, and the cases that need it are left out of that run, never
// counted as passed. Stores that persist add the cases that reopen them.
package storetest

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when a test moves it. It is safe for
// concurrent use, so a store may read it while the test advances it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until it is moved.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start}
}

// Now returns the clock's current time. Pass it as a store's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d, or back if d is negative.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
