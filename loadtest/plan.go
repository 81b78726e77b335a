package main

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// ppm is the resolution of the duplicate ratio, the read share and the bot
// share: they are held as integer parts per million so that the request mix
// is exact integer arithmetic, never a float rounding.
const ppm = 1_000_000

// Plan is the whole traffic of one run as a pure function of the request
// index: which request is a stats read, which impressions each other
// request carries, which impression repeats an earlier key, which one a bot
// sends, and which key each one carries. Because nothing is stored, a Plan
// is safe for concurrent use, and the verifier recomputes from the index
// what the targeter sent.
//
// Impressions have their own ordinal, from 0, in the order they are sent:
// the k-th impression request (counting only requests that are not reads)
// carries the impressions k*PerRequest to k*PerRequest+PerRequest-1, so a
// batch run and a single run of the same seed send the same impressions.
//
// The duplicate ratio is exact in every prefix: among the first n
// impressions, floor((n*dupPPM + dupPhase) / 1e6) are repeats, which is
// within one of n times the ratio (and equal to it when that is an integer).
// The read share (over requests) and the bot share (over impressions) work
// the same way.
type Plan struct {
	campaigns  int
	users      int
	ads        int
	perRequest int
	seed       uint64

	dupPPM, dupPhase   uint64 // dupPhase < ppm-dupPPM, so impression 0 is new
	readPPM, readPhase uint64
	botPPM, botPhase   uint64
	slotMul, slotAdd   uint64 // affine permutation of a campaign's key slots
}

// PlanConfig describes the traffic a Plan generates.
type PlanConfig struct {
	Campaigns  int     // campaigns the impressions spread over, at least 1
	Users      int     // distinct users per campaign
	Ads        int     // distinct ads per campaign
	PerRequest int     // impressions per impression request; 0 means 1
	DupRatio   float64 // share of impressions that repeat an earlier key, in [0, 1)
	ReadShare  float64 // share of requests that read stats, in [0, 1)
	BotShare   float64 // share of impressions a known bot sends, in [0, 1)
	Seed       uint64  // the same seed gives the same traffic
}

// Request is one planned request: a stats read, or impressions.
type Request struct {
	// Index is the request's position in the run, from 0.
	Index uint64
	// Read is true for a stats read of Campaign; otherwise the request
	// carries the impressions First to First+Count-1.
	Read     bool
	Campaign int
	First    uint64
	Count    int
}

// Impression is one planned impression.
type Impression struct {
	// Ordinal is the impression's position among all impressions of the
	// run, from 0.
	Ordinal uint64
	// Key identifies the (campaign, user, ad): the number of the distinct
	// key, in the order keys were first planned.
	Key uint64
	// Repeat is true when an earlier impression in the plan already
	// carried Key (sent by a bot or not).
	Repeat bool
	// Bot is true for an impression sent with a known crawler's
	// User-Agent, which the service must filter rather than count.
	Bot bool
	// Campaign is the index of the key's campaign.
	Campaign int
	// User and Ad number the key's user and ad inside the campaign; the
	// IDs sent are "user-<User>" and "ad-<Ad>".
	User, Ad uint64
}

// UserID is the user_id the impression carries.
func (im Impression) UserID() string { return string(im.appendUserID(nil)) }

// AdID is the ad_id the impression carries.
func (im Impression) AdID() string { return string(im.appendAdID(nil)) }

func (im Impression) appendUserID(b []byte) []byte {
	return strconv.AppendUint(append(b, "user-"...), im.User, 10)
}

func (im Impression) appendAdID(b []byte) []byte {
	return strconv.AppendUint(append(b, "ad-"...), im.Ad, 10)
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
	if cfg.PerRequest < 0 {
		errs = append(errs, fmt.Errorf("impressions per request must be at least 1, got %d", cfg.PerRequest))
	}
	for _, share := range []struct {
		name string
		v    float64
	}{{"duplicate ratio", cfg.DupRatio}, {"read share", cfg.ReadShare}, {"bot share", cfg.BotShare}} {
		if !(share.v >= 0 && share.v < 1) {
			errs = append(errs, fmt.Errorf("%s must be in [0, 1), got %v", share.name, share.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Plan{
		campaigns:  cfg.Campaigns,
		users:      cfg.Users,
		ads:        cfg.Ads,
		perRequest: max(cfg.PerRequest, 1),
		seed:       cfg.Seed,
		dupPPM:     uint64(math.Round(cfg.DupRatio * ppm)),
		readPPM:    uint64(math.Round(cfg.ReadShare * ppm)),
		botPPM:     uint64(math.Round(cfg.BotShare * ppm)),
	}
	if p.dupPPM >= ppm || p.readPPM >= ppm || p.botPPM >= ppm {
		return nil, errors.New("duplicate ratio, read share and bot share must be below 0.9999995")
	}
	p.dupPhase = mix(cfg.Seed, 1) % (ppm - p.dupPPM)
	p.readPhase = mix(cfg.Seed, 2) % ppm
	p.botPhase = mix(cfg.Seed, 7) % ppm
	slots := uint64(cfg.Users) * uint64(cfg.Ads)
	p.slotAdd = mix(cfg.Seed, 3) % slots
	p.slotMul = coprime(mix(cfg.Seed, 4)%slots, slots)
	return p, nil
}

// Campaigns is the number of campaigns the plan spreads impressions over.
func (p *Plan) Campaigns() int { return p.campaigns }

// PerRequest is the number of impressions each impression request carries.
func (p *Plan) PerRequest() int { return p.perRequest }

// campaignOf is the campaign index of a key: keys are dealt to campaigns
// in turn.
func (p *Plan) campaignOf(key uint64) int { return int(key % uint64(p.campaigns)) }

// Request returns the request at index i.
func (p *Plan) Request(i uint64) Request {
	r := Request{Index: i}
	if selected(i+1, p.readPPM, p.readPhase) > selected(i, p.readPPM, p.readPhase) {
		r.Read = true
		r.Campaign = int(mix(p.seed, 5, i) % uint64(p.campaigns))
		return r
	}
	k := i - selected(i, p.readPPM, p.readPhase) // impression requests before this one
	r.First, r.Count = k*uint64(p.perRequest), p.perRequest
	return r
}

// Impression returns the impression with ordinal w. It fails only when the
// campaigns' key space (users times ads) is used up, which means the run
// needs more users or ads for its length.
func (p *Plan) Impression(w uint64) (Impression, error) {
	im := Impression{Ordinal: w}
	dupsBefore := selected(w, p.dupPPM, p.dupPhase)
	fresh := w - dupsBefore // distinct keys planned before this one
	im.Key = fresh
	if selected(w+1, p.dupPPM, p.dupPhase) > dupsBefore {
		// fresh >= 1 here: dupPhase keeps impression 0 new, and after it the
		// repeats never outnumber the new keys.
		im.Repeat = true
		im.Key = mix(p.seed, 6, w) % fresh
	}
	im.Bot = selected(w+1, p.botPPM, p.botPhase) > selected(w, p.botPPM, p.botPhase)
	return im, p.name(&im)
}

// repeats is how many of the count impressions from ordinal first on
// repeat an earlier key.
func (p *Plan) repeats(first, count uint64) uint64 {
	return selected(first+count, p.dupPPM, p.dupPhase) - selected(first, p.dupPPM, p.dupPhase)
}

// bots is how many of the count impressions from ordinal first on a bot
// sends.
func (p *Plan) bots(first, count uint64) uint64 {
	return selected(first+count, p.botPPM, p.botPhase) - selected(first, p.botPPM, p.botPhase)
}

// name fills in the campaign, user and ad of the impression's key. Keys are
// dealt to campaigns in turn; inside a campaign, a seeded permutation of the
// users-by-ads slots keeps distinct keys distinct without storing them.
func (p *Plan) name(im *Impression) error {
	im.Campaign = p.campaignOf(im.Key)
	var ok bool
	if im.User, im.Ad, ok = p.slot(im.Key); !ok {
		return fmt.Errorf("impression %d needs more than %d distinct keys per campaign: raise -users or -ads", im.Ordinal, uint64(p.users)*uint64(p.ads))
	}
	return nil
}

// slot returns the user and ad numbers of a key inside its campaign, or
// false if the key is beyond the campaign's users-by-ads slots.
func (p *Plan) slot(key uint64) (user, ad uint64, ok bool) {
	slot := key / uint64(p.campaigns)
	slots := uint64(p.users) * uint64(p.ads)
	if slot >= slots {
		return 0, 0, false
	}
	slot = mulmod(slot, p.slotMul, slots) + p.slotAdd
	if slot >= slots {
		slot -= slots
	}
	return slot % uint64(p.users), slot / uint64(p.users), true
}

// adOf is the ad number of a key that Impression named without error.
func (p *Plan) adOf(key uint64) uint64 {
	_, ad, _ := p.slot(key)
	return ad
}

// Ads is the number of distinct ads per campaign; the ad numbered n is
// sent as "ad-<n>".
func (p *Plan) Ads() int { return p.ads }

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
