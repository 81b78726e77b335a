package memstore

import "github.com/adcount/impression-counter/shared/adcount"

// ring holds one campaign's counts for the last adcount.DayBuckets buckets,
// the most a window reads. Its size is fixed: traffic only changes the
// numbers in it. It is not safe for concurrent use; the campaign's mutex
// guards it.
type ring struct {
	// head is the newest bucket written; slots hold buckets
	// (head-DayBuckets, head], each at index bucket mod DayBuckets.
	head  int64
	slots [adcount.DayBuckets]int64
}

func slot(b int64) int64 {
	i := b % adcount.DayBuckets
	if i < 0 {
		i += adcount.DayBuckets
	}
	return i
}

// add counts n in bucket b. Moving head forward first clears the slots of
// buckets that fell out of the day, so a slot never mixes two buckets. A
// bucket older than the ring holds, which only a clock stepping back by a
// day could produce, is in no window and is dropped.
func (r *ring) add(b, n int64) {
	if b > r.head {
		if b-r.head >= adcount.DayBuckets {
			clear(r.slots[:])
		} else {
			for x := r.head + 1; x <= b; x++ {
				r.slots[slot(x)] = 0
			}
		}
		r.head = b
	}
	if b <= r.head-adcount.DayBuckets {
		return
	}
	r.slots[slot(b)] += n
}

// sum returns the count of the buckets in w that the ring still holds.
// Buckets after head have no impressions yet.
func (r *ring) sum(w adcount.BucketRange) int64 {
	first := max(w.First, r.head-adcount.DayBuckets+1)
	last := min(w.Last, r.head)
	var total int64
	for b := first; b <= last; b++ {
		total += r.slots[slot(b)]
	}
	return total
}
