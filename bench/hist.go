package bench

import "math/bits"

// Hist is a log-linear latency histogram of nanoseconds: 64 buckets per
// power of two (under 1.6% error). Its zero value is empty; it is not safe
// for concurrent use (keep one per goroutine and Merge them).
type Hist struct{ counts [64 * 64]uint64 }

func histIndex(v uint64) int {
	if v < 128 {
		return int(v)
	}
	e := bits.Len64(v) - 7 // v>>e in [64, 128)
	return (e+1)*64 + int(v>>uint(e)) - 64
}

func histValue(i int) uint64 { // the bucket's upper bound
	if i < 128 {
		return uint64(i)
	}
	e := i/64 - 1
	return (uint64(i%64+64)+1)<<uint(e) - 1
}

// Add records one value, in nanoseconds.
func (h *Hist) Add(v uint64) {
	if i := histIndex(v); i < len(h.counts) {
		h.counts[i]++
	} else {
		h.counts[len(h.counts)-1]++
	}
}

// Merge adds o's values to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Count returns the number of values recorded.
func (h *Hist) Count() uint64 {
	var total uint64
	for _, c := range h.counts {
		total += c
	}
	return total
}

// Quantile returns the q-quantile in microseconds (0 if h is empty).
func (h *Hist) Quantile(q float64) float64 {
	total := h.Count()
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	want = max(want, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return float64(histValue(i)) / 1e3
		}
	}
	return float64(histValue(len(h.counts)-1)) / 1e3
}
