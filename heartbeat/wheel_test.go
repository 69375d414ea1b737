package heartbeat

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Items are examined at their time, not before, and rescheduled as asked.
func TestWheelExaminesAtTheRightTime(t *testing.T) {
	base := time.Unix(1000, 0)
	var mu sync.Mutex
	seen := map[int][]time.Duration{}
	w := NewWheel[int](10*time.Millisecond, 16, func(item int, now time.Time) time.Time {
		mu.Lock()
		seen[item] = append(seen[item], now.Sub(base))
		mu.Unlock()
		if item == 2 && len(seen[item]) < 3 {
			return now.Add(500 * time.Millisecond) // beyond one round of 160 ms
		}
		return time.Time{}
	})
	w.next = base.UnixNano() / w.tick
	w.Add(1, base.Add(25*time.Millisecond))
	w.Add(2, base.Add(40*time.Millisecond))
	for ms := 0; ms <= 2000; ms += 10 {
		w.Advance(base.Add(time.Duration(ms) * time.Millisecond))
	}
	if got := seen[1]; len(got) != 1 || got[0] != 30*time.Millisecond {
		t.Fatalf("item 1 examined at %v, want [30ms]", got)
	}
	want := []time.Duration{40 * time.Millisecond, 540 * time.Millisecond, 1040 * time.Millisecond}
	if got := seen[2]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("item 2 examined at %v, want %v", got, want)
	}
	if w.Len() != 0 {
		t.Fatalf("%d items left", w.Len())
	}
}

// A wheel advanced after a long pause catches up on every slot.
func TestWheelCatchesUp(t *testing.T) {
	base := time.Unix(2000, 0)
	count := 0
	w := NewWheel[int](time.Millisecond, 8, func(int, time.Time) time.Time { count++; return time.Time{} })
	w.next = base.UnixNano() / w.tick
	for i := range 100 {
		w.Add(i, base.Add(time.Duration(i)*time.Millisecond))
	}
	w.Advance(base.Add(time.Second))
	if count != 100 || w.Len() != 0 {
		t.Fatalf("examined %d of 100, %d left", count, w.Len())
	}
}

// BenchmarkWheel measures the cost per item of one timeout period: every
// item is examined once and rescheduled one period later, as an active
// connection is. The cost per item should stay flat from 1k to 100k items.
func BenchmarkWheel(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			const period = time.Second
			tick := 10 * time.Millisecond
			base := time.Unix(3000, 0)
			last := make([]int64, n) // stands in for each connection's last read
			w := NewWheel[int](tick, 512, func(i int, now time.Time) time.Time {
				last[i] = now.UnixNano()
				return now.Add(period)
			})
			w.next = base.UnixNano() / w.tick
			for i := range n {
				w.Add(i, base.Add(time.Duration(i%100)*tick))
			}
			now := base
			b.ResetTimer()
			for range b.N {
				// one period: 100 ticks, each item examined once
				for range int(period / tick) {
					now = now.Add(tick)
					w.Advance(now)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/item/period")
		})
	}
}
