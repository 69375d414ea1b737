package bench

import "testing"

func TestHistogram(t *testing.T) {
	var h Hist
	for v := uint64(1); v <= 100000; v++ {
		h.Add(v * 1000) // 1 µs .. 100 ms
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 50000}, {0.99, 99000}, {1, 100000}} {
		if got := h.Quantile(c.q); got < c.want*0.98 || got > c.want*1.02 {
			t.Errorf("quantile %v = %.0f µs, want about %.0f", c.q, got, c.want)
		}
	}
	for i := 0; i < histIndex(1<<63)+1; i++ { // the buckets a uint64 can reach
		if i > 0 && histValue(i) <= histValue(i-1) {
			t.Fatalf("bucket %d's bound %d not above %d", i, histValue(i), histValue(i-1))
		}
		if v := histValue(i); v < 1<<62 && histIndex(v) != i {
			t.Fatalf("bucket %d: bound %d maps to %d", i, v, histIndex(v))
		}
	}
}
