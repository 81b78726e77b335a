// Package reachcheck says what reach a service may report for users a
// client knows it reached, so that the load harness and the chaos checks
// hold the service to one rule. Like them it imports nothing of the
// service: the numbers are the API's documented contract.
package reachcheck

import "math"

// Exact is the largest number of distinct users the service counts
// exactly, as its API documents: a window with at most this many reports
// exactly that many, and above it the count is a HyperLogLog estimate.
const Exact = 1000

// DefaultTolerance is how far an estimate of more than Exact users may lie
// from the users a client knows were reached, as a share of them. The
// service's sketch (HyperLogLog with 4,096 registers) has a relative
// standard error of 1.04/√4096 ≈ 1.6%, and its 2% target at one standard
// deviation is verified statistically, over many populations on fixed
// seeds, by the service's own tests. A client sees one estimate a window,
// so one check can only ask for a few standard deviations: 5% is about 3σ
// of the sketch (2.5σ of the target), which a correct service misses about
// 0.3% of the time. The estimate is a function of the user IDs, so the
// same traffic that misses misses every time rather than flakily, and
// other traffic, or a wider tolerance, tells a rare estimate from a broken
// one.
const DefaultTolerance = 0.05

// ppm is the resolution of a tolerance: bounds are integer arithmetic in
// parts per million, never a float rounding.
const ppm = 1_000_000

// Bounds returns the least and the most unique users a service may report
// for a window whose true reach is between lo and hi distinct users:
// exactly the reach when it is at most Exact, and within tol of it, as a
// share, when it is more. For a range that straddles Exact the answer is
// the union of both, which is one interval.
func Bounds(lo, hi int64, tol float64) (least, most int64) {
	if hi <= Exact {
		return lo, hi
	}
	t := int64(math.Round(tol * ppm))
	most = (hi*(ppm+t) + ppm - 1) / ppm
	least = min(lo, max(lo, Exact+1)*(ppm-t)/ppm)
	return max(least, 0), most
}

// Frequency is the frequency the service must report for count
// impressions by users unique users: their quotient rounded to two
// decimals, and 0 without users.
func Frequency(count, users int64) float64 {
	if users <= 0 {
		return 0
	}
	return math.Round(float64(count)/float64(users)*100) / 100
}
