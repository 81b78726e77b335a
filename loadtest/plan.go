package main

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// ppm is the resolution of the duplicate ratio and the read share: they are
// held as integer parts per million so that the request mix is exact integer
// arithmetic, never a float rounding.
const ppm = 1_000_000

// Plan is the whole traffic of one run as a pure function of the request
// index: which request is a stats read, which impression repeats an earlier
// key and which key each one carries. Because nothing is stored, a Plan is
// safe for concurrent use, and the verifier recomputes from the index what
// the targeter sent.
//
// The duplicate ratio is exact in every prefix: among the first n
// impressions, floor((n*dupPPM + dupPhase) / 1e6) are repeats, which is
// within one of n times the ratio (and equal to it when that is an integer).
// The read share works the same way over all requests.
type Plan struct {
	campaigns int
	users     int
	ads       int
	seed      uint64

	dupPPM, dupPhase   uint64 // dupPhase < ppm-dupPPM, so impression 0 is new
	readPPM, readPhase uint64
	slotMul, slotAdd   uint64 // affine permutation of a campaign's key slots
}

// PlanConfig describes the traffic a Plan generates.
type PlanConfig struct {
	Campaigns int     // campaigns the impressions spread over, at least 1
	Users     int     // distinct users per campaign
	Ads       int     // distinct ads per campaign
	DupRatio  float64 // share of impressions that repeat an earlier key, in [0, 1)
	ReadShare float64 // share of requests that read stats, in [0, 1)
	Seed      uint64  // the same seed gives the same traffic
}

// Request is one planned request.
type Request struct {
	// Index is the request's position in the run, from 0.
	Index uint64
	// Read is true for a stats read of Campaign; otherwise it is an
	// impression of Key.
	Read bool
	// Campaign is the index of the campaign the request is for.
	Campaign int
	// Key identifies the (campaign, user, ad) of an impression: the number
	// of the distinct key, in the order keys were first planned.
	Key uint64
	// Repeat is true for an impression whose key an earlier impression in
	// the plan already carried.
	Repeat bool
	// User and Ad are the impression's IDs.
	User, Ad string
}

// NewPlan checks cfg and returns its Plan.
func NewPlan(cfg PlanConfig) (*Plan, error) {
	var errs []error
	if cfg.Campaigns < 1 {
		errs = append(errs, fmt.Errorf("campaigns must be at least 1, got %d", cfg.Campaigns))
	}
	if cfg.Users < 1 || cfg.Ads < 1 {
		errs = append(errs, fmt.Errorf("users and ads per campaign must be at least 1, got %d and %d", cfg.Users, cfg.Ads))
	}
	if !(cfg.DupRatio >= 0 && cfg.DupRatio < 1) {
		errs = append(errs, fmt.Errorf("duplicate ratio must be in [0, 1), got %v", cfg.DupRatio))
	}
	if !(cfg.ReadShare >= 0 && cfg.ReadShare < 1) {
		errs = append(errs, fmt.Errorf("read share must be in [0, 1), got %v", cfg.ReadShare))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Plan{
		campaigns: cfg.Campaigns,
		users:     cfg.Users,
		ads:       cfg.Ads,
		seed:      cfg.Seed,
		dupPPM:    uint64(math.Round(cfg.DupRatio * ppm)),
		readPPM:   uint64(math.Round(cfg.ReadShare * ppm)),
	}
	if p.dupPPM >= ppm || p.readPPM >= ppm {
		return nil, errors.New("duplicate ratio and read share must be below 0.9999995")
	}
	p.dupPhase = mix(cfg.Seed, 1) % (ppm - p.dupPPM)
	p.readPhase = mix(cfg.Seed, 2) % ppm
	slots := uint64(cfg.Users) * uint64(cfg.Ads)
	p.slotAdd = mix(cfg.Seed, 3) % slots
	p.slotMul = coprime(mix(cfg.Seed, 4)%slots, slots)
	return p, nil
}

// Campaigns is the number of campaigns the plan spreads impressions over.
func (p *Plan) Campaigns() int { return p.campaigns }

// campaignOf is the campaign index of a key: keys are dealt to campaigns
// in turn.
func (p *Plan) campaignOf(key uint64) int { return int(key % uint64(p.campaigns)) }

// Request returns the request at index i. It fails only when the campaigns'
// key space (users times ads) is used up, which means the run needs more
// users or ads for its length.
func (p *Plan) Request(i uint64) (Request, error) {
	r := Request{Index: i}
	if selected(i+1, p.readPPM, p.readPhase) > selected(i, p.readPPM, p.readPhase) {
		r.Read = true
		r.Campaign = int(mix(p.seed, 5, i) % uint64(p.campaigns))
		return r, nil
	}
	w := i - selected(i, p.readPPM, p.readPhase) // impressions before this one
	dupsBefore := selected(w, p.dupPPM, p.dupPhase)
	fresh := w - dupsBefore // distinct keys planned before this one
	r.Key = fresh
	if selected(w+1, p.dupPPM, p.dupPhase) > dupsBefore {
		// fresh >= 1 here: dupPhase keeps impression 0 new, and after it the
		// repeats never outnumber the new keys.
		r.Repeat = true
		r.Key = mix(p.seed, 6, i) % fresh
	}
	return r, p.name(&r)
}

// name fills in the campaign, user and ad of the request's key. Keys are
// dealt to campaigns in turn; inside a campaign, a seeded permutation of the
// users-by-ads slots keeps distinct keys distinct without storing them.
func (p *Plan) name(r *Request) error {
	r.Campaign = p.campaignOf(r.Key)
	slot := r.Key / uint64(p.campaigns)
	slots := uint64(p.users) * uint64(p.ads)
	if slot >= slots {
		return fmt.Errorf("request %d needs more than %d distinct keys per campaign: raise -users or -ads", r.Index, slots)
	}
	slot = mulmod(slot, p.slotMul, slots) + p.slotAdd
	if slot >= slots {
		slot -= slots
	}
	r.User = fmt.Sprintf("user-%d", slot%uint64(p.users))
	r.Ad = fmt.Sprintf("ad-%d", slot/uint64(p.users))
	return nil
}

// selected is how many of the first n positions a low-discrepancy sequence
// of density share/1e6 selects: floor((n*share+phase)/1e6), with phase below
// 1e6. Position i is selected when selected(i+1) > selected(i).
func selected(n, share, phase uint64) uint64 {
	return (n*share + phase) / ppm
}

// mix hashes the seed with the values (splitmix64 finalizer), so that every
// random choice is a pure function of the seed and the request index.
func mix(seed uint64, vs ...uint64) uint64 {
	h := seed
	for _, v := range vs {
		h ^= v + 0x9e3779b97f4a7c15 + h<<6 + h>>2
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

// coprime returns the first value from start on that is coprime with n, so
// that multiplying by it permutes [0, n).
func coprime(start, n uint64) uint64 {
	for c := max(start, 1); ; c++ {
		if gcd(c, n) == 1 {
			return c
		}
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// mulmod is a*b mod m without overflow, for a, b < m.
func mulmod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, rem := bits.Div64(hi, lo, m)
	return rem
}
