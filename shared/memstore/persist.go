package memstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore/wal"
)

// DefaultSnapshotInterval is how often a store made by Open writes a
// snapshot and drops the log it covers, unless the log grows past
// wal.DefaultSegmentBytes first.
const DefaultSnapshotInterval = time.Minute

// persistOptions are the settings only Open uses.
type persistOptions struct {
	fsyncInterval    time.Duration
	fsyncBatch       int
	snapshotInterval time.Duration
	logger           *slog.Logger
	fs               wal.FS // nil for the operating system's
	acceptLoss       bool

	given []string // the names of the options above that were passed, for New's error
}

func (p *persistOptions) set(name string) {
	if !slices.Contains(p.given, name) {
		p.given = append(p.given, name)
	}
}

// WithFsyncInterval sets how long the log gathers records before one fsync
// makes them all durable; see wal.Options.FsyncInterval. The default, zero,
// starts each fsync as soon as the previous one ends. Only Open uses it.
func WithFsyncInterval(d time.Duration) Option {
	return func(s *Store) { s.persist.fsyncInterval = d; s.persist.set("WithFsyncInterval") }
}

// WithFsyncBatch sets how many pending records start an fsync without
// waiting for the interval; the default is wal.DefaultFsyncBatch. Only Open
// uses it.
func WithFsyncBatch(n int) Option {
	return func(s *Store) { s.persist.fsyncBatch = n; s.persist.set("WithFsyncBatch") }
}

// WithSnapshotInterval sets how often Open's store writes a snapshot; the
// default is DefaultSnapshotInterval.
func WithSnapshotInterval(d time.Duration) Option {
	return func(s *Store) { s.persist.snapshotInterval = d; s.persist.set("WithSnapshotInterval") }
}

// WithLogger sets where Open's store reports what it restored, a torn log
// tail it dropped and snapshots that failed. The default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) { s.persist.logger = l; s.persist.set("WithLogger") }
}

// WithAcceptLoss lets Open start from a data directory whose log ends
// before records it had acknowledged as durable (a log file truncated,
// zeroed or deleted), logging what is lost. Without it such a directory is
// refused with an error that names the file and the missing records, as
// every other kind of damage is. It is for an operator who has decided,
// for one start, that the remaining data is better than none; once started,
// the store records the shorter log as its new starting point.
func WithAcceptLoss(accept bool) Option {
	return func(s *Store) { s.persist.acceptLoss = accept; s.persist.set("WithAcceptLoss") }
}

// snapshotRetryMin is the first wait before a failed snapshot is retried;
// each failure doubles it, up to the snapshot interval.
const snapshotRetryMin = time.Second

// journal is what a store made by Open keeps on disk: the hook through
// which every change is logged before it is applied. A store made by New
// has a nil journal, whose methods log nothing and report success.
type journal struct {
	dir    string
	lock   *wal.DirLock
	log    *wal.Log
	logger *slog.Logger

	snapMu    sync.Mutex // one snapshot at a time
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open returns a store that keeps its state in dir, creating dir if
// needed, after restoring what dir holds: the last snapshot, then every
// log record after it, each impression at its original time, so that dedup
// windows and sliding windows continue as if the process had never
// stopped.
//
// RecordImpression, RecordImpressions and CreateCampaign return only after
// their record is fsynced, so a crash loses nothing they acknowledged; a
// batch is one record. A data directory written before filtered
// impressions and batch records existed opens as it always did, and is
// written in the new format from then on (which older versions cannot
// read). Records are fsynced
// in batches (WithFsyncInterval, WithFsyncBatch). Every
// WithSnapshotInterval, or sooner if the log grows large, the state is
// written to a new snapshot and the log it covers is deleted.
//
// A damaged file stops Open with an error naming the file and offset; it
// never starts from less than the files hold. The one exception is a record
// at the very end of the log, past the last record the log knew durable
// (its watermark), that a crash or a failed write cut short: its fsync
// never returned, so it was never acknowledged, and it is dropped with a
// warning. A log that ends before that point has lost acknowledged
// impressions and stops Open with a *wal.LossError, unless WithAcceptLoss.
//
// Once a write or fsync of the log fails, every later write returns
// ErrUnavailable and Ping reports it, until a restart recovers what was
// durable. A snapshot that fails (a file that cannot be opened, say) is
// retried with a backoff, and writes go on meanwhile.
// Only one process may use dir at a time. Call Close when done.
func Open(dir string, opts ...Option) (*Store, error) {
	s, err := newStore(opts)
	if err != nil {
		return nil, err
	}
	p := &s.persist
	if p.snapshotInterval <= 0 {
		p.snapshotInterval = DefaultSnapshotInterval
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	lock, err := wal.LockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("memstore: open %s: %w", dir, err)
	}
	start := time.Now()
	r := &restorer{s: s, now: s.now().UnixMilli(), ttl: s.ttl.Milliseconds()}
	if _, err := wal.ReadSnapshot(dir, r.snapshotRecord); err != nil {
		lock.Close()
		return nil, fmt.Errorf("memstore: restore from %s: %w", dir, err)
	}
	log, err := wal.Open(dir, r.cut, wal.Options{
		FsyncInterval: p.fsyncInterval,
		FsyncBatch:    p.fsyncBatch,
		Logger:        p.logger,
		FS:            p.fs,
		Durable:       r.durable,
		AcceptLoss:    p.acceptLoss,
	}, r.logRecord)
	if err != nil {
		lock.Close()
		var loss *wal.LossError
		if errors.As(err, &loss) {
			return nil, fmt.Errorf("memstore: restore from %s: %w; restore the files from a backup, or start once with the loss accepted (WithAcceptLoss)", dir, err)
		}
		return nil, fmt.Errorf("memstore: restore from %s: %w", dir, err)
	}
	s.index.build(s)
	s.journal = &journal{dir: dir, lock: lock, log: log, logger: p.logger, stop: make(chan struct{}), stopped: make(chan struct{})}
	p.logger.Info("memstore: restored", "dir", dir, "campaigns", r.campaigns, "impressions_replayed", r.impressions,
		"snapshot_covers_log_through", r.cut, "took", time.Since(start).String())
	go s.snapshotLoop(p.snapshotInterval)
	return s, nil
}

// Close takes a final snapshot, makes every record durable, stops the
// background work and releases the directory. Calls after the first return
// the first one's result. A store made by New has nothing to close.
// Nothing may use the store during or after Close.
func (s *Store) Close() error {
	d := s.journal
	if d == nil {
		return nil
	}
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
		snapErr := s.Snapshot()
		d.closeErr = errors.Join(snapErr, d.log.Close(), d.lock.Close())
	})
	return d.closeErr
}

// snapshotLoop takes a snapshot every interval, and when the log has grown
// large. A failed snapshot, such as one that could not open a file while
// the process was out of descriptors or the directory was read-only, is
// retried after a backoff that doubles from snapshotRetryMin up to the
// interval; meanwhile the log keeps every record and writes go on.
func (s *Store) snapshotLoop(every time.Duration) {
	d := s.journal
	defer close(d.stopped)
	tick := time.NewTicker(every)
	defer tick.Stop()
	full := d.log.Full()
	var retry <-chan time.Time
	var backoff time.Duration
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		case <-full:
		case <-retry:
		}
		if err := s.Snapshot(); err != nil {
			backoff = snapshotBackoff(backoff, every)
			d.logger.Error("memstore: snapshot failed; the log keeps every record until one succeeds", "dir", d.dir, "retry_in", backoff.String(), "err", err)
			full, retry = nil, time.After(backoff)
			continue
		}
		backoff, full, retry = 0, d.log.Full(), nil
	}
}

// snapshotBackoff is the wait before the next attempt of a snapshot that
// failed after waiting prev (zero after a success): snapshotRetryMin at
// first, then twice the last, never more than the snapshot interval, so a
// lasting fault is retried as often as a healthy store snapshots.
func snapshotBackoff(prev, every time.Duration) time.Duration {
	return min(max(2*prev, snapshotRetryMin), every)
}

// Ping reports whether the store can record impressions: for a store made
// by Open, an error matching adcount.ErrUnavailable once its log has failed
// and refuses every write until a restart; nil otherwise. A store made by
// New cannot fail this way and always answers nil. Readiness checks call
// it, so that a server whose writes all fail is taken out of service.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: ping: %w", err)
	}
	if s.journal == nil {
		return nil
	}
	if err := s.journal.log.Err(); err != nil {
		return fmt.Errorf("memstore: ping %s: %w: %w", s.journal.dir, adcount.ErrUnavailable, err)
	}
	return nil
}

// Snapshot writes the store's state to a new snapshot, replacing the old one
// atomically, and deletes the log records it covers. The store does this on
// its own (WithSnapshotInterval); Snapshot is for doing it now. Impressions
// keep flowing meanwhile: each campaign and each dedup shard is locked only
// while it is copied. It does nothing for a store made by New.
func (s *Store) Snapshot() error {
	d := s.journal
	if d == nil {
		return nil
	}
	d.snapMu.Lock()
	defer d.snapMu.Unlock()

	cut, states, err := s.cutLog()
	if err != nil {
		return fmt.Errorf("memstore: snapshot %s: %w", d.dir, err)
	}
	now := s.now().UnixMilli()
	err = wal.WriteSnapshot(s.persist.fs, d.dir, func(w *wal.SnapshotWriter) error {
		buf := binary.LittleEndian.AppendUint64([]byte{recSnapshotHeader}, cut)
		if err := w.Add(buf); err != nil {
			return err
		}
		var (
			c   campaignCopy
			ads = make([]adState, adsPerRecord)
		)
		for _, cs := range states {
			var err error
			if buf, err = snapshotCampaign(w, buf, cs, &c, ads); err != nil {
				return err
			}
		}
		var entries []dedupEntry
		for i := range s.dedup {
			entries = s.dedup[i].live(entries[:0], now)
			for chunk := range slices.Chunk(entries, dedupBatch) {
				buf = appendDedup(buf[:0], chunk)
				if err := w.Add(buf); err != nil {
					return err
				}
			}
		}
		// Every key and count copied above has its record in the log; the
		// snapshot may replace those records only once they are durable.
		if err := d.log.Barrier().Wait(); err != nil {
			return err
		}
		return w.Add(binary.LittleEndian.AppendUint64([]byte{recSnapshotDurable}, d.log.Durable()))
	})
	if err != nil {
		return fmt.Errorf("memstore: snapshot %s: %w", d.dir, err)
	}
	if err := d.log.RemoveThrough(cut); err != nil {
		return fmt.Errorf("memstore: snapshot %s: %w", d.dir, err)
	}
	return nil
}

// snapshotCampaign adds one campaign's records to a snapshot: its own
// counters, then its reach, then its days, then its ads, some at a time.
// A campaign's counters, reach and lsn change together under its lock, as
// do each ad's, so
// each copy says exactly which records it holds: the campaign's counters
// and days are copied at one moment, and each group of ads at a later one,
// each ad with its own lsn. So a campaign with 100,000 ads holds up its
// impressions for one group's copy at a time, never for all of them.
// Every ad that existed at the cut is copied, since ads are only ever
// added. c and ads are room for the copies; buf is returned for reuse.
func snapshotCampaign(w *wal.SnapshotWriter, buf []byte, cs *campaignState, c *campaignCopy, ads []adState) ([]byte, error) {
	cs.mu.Lock()
	c.campaign, c.lsn, c.total, c.filtered = cs.get(), cs.lsn, cs.total, cs.filtered
	c.series = campaignSeries{}
	if cs.series != nil {
		c.series = *cs.series
	}
	c.days.days = append(c.days.days[:0], cs.days.days...)
	c.days.counts = append(c.days.counts[:0], cs.days.counts...)
	c.reach = c.reach[:0]
	var err error
	if cs.reach != nil {
		// Encoded under the lock, into room kept from campaign to
		// campaign: the sets are at most about 230 KB, and a copy of
		// them would cost as much as this and allocate besides.
		c.reach, err = appendReach(c.reach, cs.id, cs.reach)
	}
	cs.mu.Unlock()
	if err != nil {
		return buf, fmt.Errorf("campaign %s: reach: %w", cs.id, err)
	}
	buf = appendCampaignState(buf[:0], c)
	if err := w.Add(buf); err != nil {
		return buf, err
	}
	if len(c.reach) > 0 {
		if err := w.Add(c.reach); err != nil {
			return buf, err
		}
	}
	for days, counts := range chunks2(c.days.days, c.days.counts, daysPerRecord) {
		buf = appendDays(buf[:0], cs.id, days, counts)
		if err := w.Add(buf); err != nil {
			return buf, err
		}
	}
	for from := 0; ; from += len(ads) {
		cs.mu.Lock()
		group := cs.ads[min(from, len(cs.ads)):min(from+len(ads), len(cs.ads))]
		for i, a := range group {
			ads[i] = *a
		}
		cs.mu.Unlock()
		if len(group) == 0 {
			return buf, nil
		}
		buf = appendAds(buf[:0], cs.id, ads[:len(group)])
		if err := w.Add(buf); err != nil {
			return buf, err
		}
	}
}

// chunks2 yields a and b, slices of the same length, n elements at a time.
func chunks2[A, B any](a []A, b []B, n int) func(yield func([]A, []B) bool) {
	return func(yield func([]A, []B) bool) {
		for from := 0; from < len(a); from += n {
			to := min(from+n, len(a))
			if !yield(a[from:to], b[from:to]) {
				return
			}
		}
	}
}

// cutLog starts a new log segment and lists the campaigns. Every record up
// to the returned cut is in the older segments and already applied in
// memory: impressions are applied under their campaign's lock in the same
// critical section that logs them. Campaigns are created and updated
// under createMu, held here, so the list holds exactly the campaigns
// created up to cut, each with every update up to cut. An update after the
// cut may be in the snapshot too: its record holds the whole campaign, so
// replaying it again changes nothing.
// Records after the cut may be in the snapshot too; replay tells them apart
// by each campaign's lsn, and dedup keys restore idempotently.
func (s *Store) cutLog() (uint64, []*campaignState, error) {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	cut, err := s.journal.log.Rotate()
	if err != nil {
		return 0, nil, err
	}
	var states []*campaignState
	s.campaigns.Range(func(_, v any) bool {
		states = append(states, v.(*campaignState))
		return true
	})
	return cut, states, nil
}

// campaign logs the creation (recCampaignV2) or update
// (recCampaignUpdate) of c and waits until it is durable.
func (j *journal) campaign(typ byte, c adcount.Campaign) error {
	if j == nil {
		return nil
	}
	_, commit, err := j.log.Append(encodeCampaign(typ, c))
	if err != nil {
		return err
	}
	return commit.Wait()
}

// durableThrough waits until record lsn is durable, or ctx ends. Stats
// call it so that no count is shown before it is durable: one that a
// failed fsync then took back would make a total fall after a restart.
func (j *journal) durableThrough(ctx context.Context, lsn uint64) error {
	if j == nil || lsn <= j.log.Durable() {
		return nil
	}
	c := j.log.Barrier()
	select {
	case <-c.Done():
		return c.Wait()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// restorer rebuilds a store from its snapshot and log. It runs before the
// store is shared, so it takes no locks.
type restorer struct {
	s           *Store
	now, ttl    int64 // Unix milliseconds, milliseconds
	cut         uint64
	durable     uint64 // the log must reach this record
	campaigns   int
	impressions int
}

func (r *restorer) snapshotRecord(payload []byte) error {
	if len(payload) == 0 {
		return errors.New("empty record")
	}
	d := &decoder{b: payload[1:]}
	switch payload[0] {
	case recSnapshotHeader:
		r.cut = d.u64()
		return d.done()
	case recSnapshotDurable:
		r.durable = d.u64()
		return d.done()
	case recCounters, recCountersFiltered, recCampaignState:
		var (
			c   *campaignCopy
			err error
		)
		if payload[0] == recCampaignState {
			c, err = decodeCampaignState(d)
		} else {
			c, err = decodeCountersV1(d, payload[0] == recCountersFiltered)
		}
		if err != nil {
			return err
		}
		cs := newCampaignState(c.campaign)
		cs.lsn, cs.total, cs.filtered = c.lsn, c.total, c.filtered
		cs.days = c.days
		if c.series != (campaignSeries{}) {
			cs.series = &c.series
		}
		if !r.s.publish(cs) {
			return fmt.Errorf("campaign %s is listed twice", cs.id)
		}
		r.campaigns++
		return nil
	case recReach:
		return r.reachRecord(d)
	case recDays:
		return r.daysRecord(d)
	case recAds:
		return r.adsRecord(d)
	case recDedup:
		n := int(d.u32())
		for range n {
			r.restoreKey(d.key(), d.i64())
		}
		return d.done()
	}
	return fmt.Errorf("unknown snapshot record type %d", payload[0])
}

// reachRecord applies a recReach record to the campaign listed before
// it, which has no reach yet.
func (r *restorer) reachRecord(d *decoder) error {
	id := d.str16()
	if d.err != nil {
		return d.err
	}
	cs, err := r.listed(id)
	if err != nil {
		return err
	}
	if cs.reach != nil {
		return fmt.Errorf("campaign %s: reach is listed twice", id)
	}
	rc, err := decodeReach(d)
	if err != nil {
		return fmt.Errorf("campaign %s: reach: %w", id, err)
	}
	cs.reach = rc
	return nil
}

// daysRecord applies a recDays record to the campaign listed before it.
func (r *restorer) daysRecord(d *decoder) error {
	id, n := d.str16(), int(d.u32())
	if d.err != nil {
		return d.err
	}
	cs, err := r.listed(id)
	if err != nil {
		return err
	}
	days := &cs.days
	for range n {
		day, count := int32(d.u32()), d.i64()
		if d.err != nil {
			break
		}
		if k := len(days.days); k > 0 && day <= days.days[k-1] {
			return fmt.Errorf("campaign %s: day %d after day %d", id, day, days.days[k-1])
		}
		days.days = append(days.days, day)
		days.counts = append(days.counts, count)
	}
	return d.done()
}

// adsRecord applies a recAds record to the campaign listed before it.
func (r *restorer) adsRecord(d *decoder) error {
	id, n := d.str16(), int(d.u16())
	if d.err != nil {
		return d.err
	}
	cs, err := r.listed(id)
	if err != nil {
		return err
	}
	for range n {
		a := &adState{id: d.str16(), lsn: d.u64(), total: d.i64(), filtered: d.i64()}
		decodeRing(d, &a.minutes, false)
		decodeRing(d, &a.hours, false)
		decodeRing(d, &a.days, false)
		if d.err != nil {
			break
		}
		if _, ok := cs.byAd[a.id]; ok {
			return fmt.Errorf("campaign %s: ad %s is listed twice", id, a.id)
		}
		if cs.byAd == nil {
			cs.byAd = make(map[string]*adState)
		}
		cs.byAd[a.id] = a
		cs.ads = append(cs.ads, a)
	}
	return d.done()
}

// listed returns the campaign a snapshot listed before a record of its
// days or ads.
func (r *restorer) listed(id string) (*campaignState, error) {
	v, ok := r.s.campaigns.Load(id)
	if !ok {
		return nil, fmt.Errorf("reach, days or ads of campaign %s, which the snapshot does not list before them", id)
	}
	return v.(*campaignState), nil
}

func (r *restorer) restoreKey(key adcount.DedupKey, expiry int64) {
	r.s.dedup[key[0]%dedupShards].restore(key, expiry, r.now, r.ttl)
}

// logRecord applies one log record. Records up to the snapshot's cut are
// in the snapshot already; after it, an impression is in the snapshot if
// its campaign's snapshot lsn reaches it. Dedup keys restore idempotently.
func (r *restorer) logRecord(lsn uint64, payload []byte) error {
	if len(payload) == 0 {
		return errors.New("empty record")
	}
	d := &decoder{b: payload[1:]}
	switch payload[0] {
	case recCampaign, recCampaignV2:
		var c adcount.Campaign
		if payload[0] == recCampaign {
			c = d.campaignV1()
		} else {
			c = d.campaign()
		}
		if err := d.done(); err != nil {
			return err
		}
		if lsn <= r.cut {
			return nil
		}
		if !r.s.publish(newCampaignState(c)) {
			return fmt.Errorf("campaign %s is created twice", c.ID)
		}
		r.campaigns++
		return nil
	case recCampaignUpdate:
		c := d.campaign()
		if err := d.done(); err != nil {
			return err
		}
		if lsn <= r.cut {
			return nil
		}
		v, ok := r.s.campaigns.Load(c.ID)
		if !ok {
			return fmt.Errorf("update of campaign %s, which no record creates", c.ID)
		}
		cs := v.(*campaignState)
		if !c.CreatedAt.Equal(cs.created) {
			return fmt.Errorf("update of campaign %s changes its creation time", c.ID)
		}
		cs.campaign.Store(&c)
		return nil
	case recImpression:
		t, expiry, key, id := d.i64(), d.i64(), d.key(), d.str16()
		if err := d.done(); err != nil {
			return err
		}
		if lsn <= r.cut {
			return nil
		}
		v, ok := r.s.campaigns.Load(id)
		if !ok {
			return fmt.Errorf("impression for campaign %s, which no record creates", id)
		}
		r.restoreKey(key, expiry)
		cs := v.(*campaignState)
		if lsn <= cs.lsn {
			return nil
		}
		cs.add(at(time.UnixMilli(t)), 1, 0, lsn)
		r.impressions++
		return nil
	case recImpressions:
		return r.impressionsRecord(lsn, d, false, false)
	case recImpressionsAds:
		return r.impressionsRecord(lsn, d, true, false)
	case recImpressionsReach:
		return r.impressionsRecord(lsn, d, true, true)
	}
	return fmt.Errorf("unknown log record type %d", payload[0])
}

// impressionsRecord applies a recImpressionsReach record, or with
// withUsers false a recImpressionsAds record, whose impressions add no
// reach, or with withAds false too a recImpressions record, whose
// impressions are of no ad. A snapshot holds all of a record's impressions
// of one campaign or none, because a batch counts them together under the
// campaign's lock; so each campaign's lsn decides for all of its
// impressions in the record, their users included, and each ad's lsn for
// all of that ad's.
func (r *restorer) impressionsRecord(lsn uint64, d *decoder, withAds, withUsers bool) error {
	type replay struct {
		id                string
		cs                *campaignState
		counted, filtered int64
	}
	t, expiry := d.i64(), d.i64()
	campaigns := make([]replay, d.u16())
	for i := range campaigns {
		campaigns[i].id = d.str16()
	}
	var ads []string
	if withAds {
		ads = make([]string, d.u16())
		for i := range ads {
			ads[i] = d.str16()
		}
	}
	type key struct {
		key      adcount.DedupKey
		campaign int
		ad       int
		filtered bool
		user     uint64
	}
	keys := make([]key, d.u16())
	for i := range keys {
		ci, ai := int(d.u16()), -1
		if withAds {
			ai = int(d.u16())
		}
		flags, k := d.u8(), d.key()
		var user uint64
		if withUsers && flags&flagFiltered == 0 {
			user = d.user()
		}
		if d.err != nil {
			break
		}
		if ci >= len(campaigns) {
			return fmt.Errorf("impression of campaign %d of %d", ci, len(campaigns))
		}
		if withAds && ai >= len(ads) {
			return fmt.Errorf("impression of ad %d of %d", ai, len(ads))
		}
		if flags&^flagFiltered != 0 {
			return fmt.Errorf("unknown impression flags %#x", flags)
		}
		filtered := flags&flagFiltered != 0
		if filtered {
			campaigns[ci].filtered++
		} else {
			campaigns[ci].counted++
		}
		keys[i] = key{k, ci, ai, filtered, user}
	}
	if err := d.done(); err != nil {
		return err
	}
	if lsn <= r.cut {
		return nil
	}
	for i := range campaigns {
		v, ok := r.s.campaigns.Load(campaigns[i].id)
		if !ok {
			return fmt.Errorf("impressions for campaign %s, which no record creates", campaigns[i].id)
		}
		campaigns[i].cs = v.(*campaignState)
	}
	for _, k := range keys {
		r.restoreKey(k.key, expiry)
	}
	w := at(time.UnixMilli(t))
	apply := make([]bool, len(campaigns))
	for i, c := range campaigns {
		if apply[i] = lsn > c.cs.lsn; apply[i] {
			c.cs.add(w, c.counted, c.filtered, lsn)
			r.impressions += int(c.counted + c.filtered)
		}
	}
	if withUsers {
		for _, k := range keys {
			if apply[k.campaign] && !k.filtered {
				campaigns[k.campaign].cs.addUser(w, k.user)
			}
		}
	}
	if !withAds {
		return nil
	}
	// Each (campaign, ad) once, so that its lsn decides for all of its
	// impressions before the first of them moves it.
	type pair struct{ campaign, ad int }
	perAd := make(map[pair][2]int64)
	for _, k := range keys {
		n := perAd[pair{k.campaign, k.ad}]
		if k.filtered {
			n[1]++
		} else {
			n[0]++
		}
		perAd[pair{k.campaign, k.ad}] = n
	}
	for p, n := range perAd {
		a := campaigns[p.campaign].cs.ad(ads[p.ad])
		if lsn > a.lsn {
			a.add(w, n[0], n[1], lsn)
		}
	}
	return nil
}
