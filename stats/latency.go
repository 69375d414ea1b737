package stats

import (
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
