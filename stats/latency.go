package stats

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/codec"
)

// LatencyTypes is how many distinct packet types get a latency histogram of
// their own: the first LatencyTypes types observed. Later types share one
// overflow histogram (exported with the label type="other"), so that a peer
// sending packets of arbitrary types cannot inflate the number of series.
const LatencyTypes = 32

// latencyBounds are the upper bounds of the latency histogram's buckets, in
// nanoseconds: 1-2.5-5 steps from 1 µs (an inline handler that only queues a
// reply) to 10 s (a handler stuck on a slow backend).
var latencyBounds = [...]int64{
	1e3, 5e3, 10e3, 50e3, 100e3, 500e3, // 1 µs … 500 µs
	1e6, 5e6, 10e6, 50e6, 100e6, 500e6, // 1 ms … 500 ms
	1e9, 5e9, 10e9, // 1 s … 10 s
}

// NumLatencyBuckets is the number of buckets of a latency histogram: one per
// bound of LatencyBounds, plus one for the durations above the last.
const NumLatencyBuckets = len(latencyBounds) + 1

// LatencyBounds returns the upper bounds of the latency histogram's buckets
// (inclusive, ascending). A copy: changing it changes nothing.
func LatencyBounds() []time.Duration {
	b := make([]time.Duration, len(latencyBounds))
	for i, ns := range latencyBounds {
		b[i] = time.Duration(ns)
	}
	return b
}

// histogram is a fixed-bucket histogram of durations: one atomic add for the
// bucket and one for the sum per observation. Its count is the sum of its
// buckets.
type histogram struct {
	buckets [NumLatencyBuckets]atomic.Uint64
	sum     atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(latencyBounds) && ns > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(ns)
}

func (h *histogram) observeN(d time.Duration, n uint64) {
	ns := int64(d)
	i := 0
	for i < len(latencyBounds) && ns > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(n)
	h.sum.Add(ns * int64(n))
}

func (h *histogram) snapshot(s *LatencySnapshot) {
	for i := range h.buckets {
		n := h.buckets[i].Load()
		s.Buckets[i] = n
		s.Count += n
	}
	s.Sum = time.Duration(h.sum.Load())
}

// latencyTableSize is the size of the open-addressing table of types: a power
// of two, twice LatencyTypes, so that probes stay short.
const latencyTableSize = 2 * LatencyTypes

type typeHistogram struct {
	t codec.Type
	h histogram
}

// latency keeps a histogram per packet type without locks: a type's
// histogram is found by probing a small table of atomic pointers, and
// created, for the first LatencyTypes types, by a compare-and-swap.
type latency struct {
	slots [latencyTableSize]atomic.Pointer[typeHistogram]
	used  atomic.Int32
	other histogram
}

func (l *latency) observe(t codec.Type, d time.Duration) { l.find(t).observe(d) }

func (l *latency) find(t codec.Type) *histogram {
	i := (uint32(t) * 2654435761) >> (32 - 6) // Fibonacci hashing to 6 bits
	reserved := false
	for range latencyTableSize {
		th := l.slots[i].Load()
		if th == nil {
			if !reserved {
				if !l.reserve() {
					return &l.other
				}
				reserved = true
			}
			nt := &typeHistogram{t: t}
			if l.slots[i].CompareAndSwap(nil, nt) {
				return &nt.h
			}
			th = l.slots[i].Load() // taken meanwhile: maybe by our type
		}
		if th.t == t {
			if reserved {
				l.used.Add(-1)
			}
			return &th.h
		}
		i = (i + 1) % latencyTableSize
	}
	if reserved {
		l.used.Add(-1)
	}
	return &l.other // unreachable: the table is never more than half full
}

// reserve takes one of the LatencyTypes places for a new type.
func (l *latency) reserve() bool {
	for {
		n := l.used.Load()
		if n >= LatencyTypes {
			return false
		}
		if l.used.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// snapshot returns a histogram per type seen, by type, then the overflow
// histogram if it counted anything.
func (l *latency) snapshot() []LatencySnapshot {
	var out []LatencySnapshot
	for i := range l.slots {
		if th := l.slots[i].Load(); th != nil {
			s := LatencySnapshot{Type: th.t}
			th.h.snapshot(&s)
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b LatencySnapshot) int { return int(a.Type) - int(b.Type) })
	o := LatencySnapshot{Other: true}
	l.other.snapshot(&o)
	if o.Count > 0 {
		out = append(out, o)
	}
	return out
}

// LatencySnapshot is the handler latency histogram of one packet type.
type LatencySnapshot struct {
	// Type is the packet type; meaningless when Other is set.
	Type codec.Type
	// Other marks the histogram shared by the types seen after the first
	// LatencyTypes.
	Other bool
	// Count is the number of handled packets, Sum the time their handlers
	// took in all.
	Count uint64
	Sum   time.Duration
	// Buckets counts the packets by handler time: Buckets[i] those that
	// took more than LatencyBounds()[i-1] and at most LatencyBounds()[i];
	// the last, those above the last bound. (Not cumulative.)
	Buckets [NumLatencyBuckets]uint64
}
