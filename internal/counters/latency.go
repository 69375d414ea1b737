package counters

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/stats"
)

// latencyBounds are stats.LatencyBounds, in nanoseconds.
var latencyBounds = func() (b [stats.NumLatencyBuckets - 1]int64) {
	for i, d := range stats.LatencyBounds() {
		b[i] = int64(d)
	}
	return b
}()

// histogram is a fixed-bucket histogram of durations: one atomic add for the
// bucket and one for the sum per observation. Its count is the sum of its
// buckets.
type histogram struct {
	buckets [stats.NumLatencyBuckets]atomic.Uint64
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

func (h *histogram) snapshot(s *stats.LatencySnapshot) {
	for i := range h.buckets {
		n := h.buckets[i].Load()
		s.Buckets[i] = n
		s.Count += n
	}
	s.Sum = time.Duration(h.sum.Load())
}

// latencyTableSize is the size of the open-addressing table of types: a power
// of two, twice stats.LatencyTypes, so that probes stay short.
const latencyTableSize = 2 * stats.LatencyTypes

type typeHistogram struct {
	t codec.Type
	h histogram
}

// latency keeps a histogram per packet type without locks: a type's
// histogram is found by probing a small table of atomic pointers, and
// created, for the first stats.LatencyTypes types, by a compare-and-swap.
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

// reserve takes one of the stats.LatencyTypes places for a new type.
func (l *latency) reserve() bool {
	for {
		n := l.used.Load()
		if n >= stats.LatencyTypes {
			return false
		}
		if l.used.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// snapshot returns a histogram per type seen, by type, then the overflow
// histogram if it counted anything.
func (l *latency) snapshot() []stats.LatencySnapshot {
	var out []stats.LatencySnapshot
	for i := range l.slots {
		if th := l.slots[i].Load(); th != nil {
			s := stats.LatencySnapshot{Type: th.t}
			th.h.snapshot(&s)
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b stats.LatencySnapshot) int { return int(a.Type) - int(b.Type) })
	o := stats.LatencySnapshot{Other: true}
	l.other.snapshot(&o)
	if o.Count > 0 {
		out = append(out, o)
	}
	return out
}
