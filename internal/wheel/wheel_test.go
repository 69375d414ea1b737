package wheel

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
	w := New[int](10*time.Millisecond, 16, func(item int, now time.Time) time.Time {
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
	w := New[int](time.Millisecond, 8, func(int, time.Time) time.Time { count++; return time.Time{} })
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
			w := New[int](tick, 512, func(i int, now time.Time) time.Time {
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

// Many items, most sharing slots with items of later rounds, are each
// examined once, in the tick of their time, and never before it.
func TestWheelManyItems(t *testing.T) {
	base := time.Unix(4000, 0)
	const tick = 10 * time.Millisecond
	const n = 3000
	var examined [n]time.Duration
	w := New[int](tick, 8, func(i int, now time.Time) time.Time {
		if examined[i] != 0 {
			t.Fatalf("item %d examined twice", i)
		}
		examined[i] = now.Sub(base)
		return time.Time{}
	})
	w.next = base.UnixNano() / w.tick
	want := make([]time.Duration, n)
	for i := range n {
		want[i] = time.Duration(1+(i*7919)%997) * time.Millisecond // up to 12 rounds of 80 ms
		w.Add(i, base.Add(want[i]))
	}
	for now := tick; now <= 2*time.Second; now += tick {
		w.Advance(base.Add(now))
	}
	for i := range n {
		if got, at := examined[i], want[i]; got < at || got >= at+tick {
			t.Fatalf("item %d due at %v examined at %v", i, at, got)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("%d items left", w.Len())
	}
}

// A wheel whose items are examined and rescheduled period after period, as
// live connections are, allocates nothing once it has its blocks.
func TestWheelSteadyStateDoesNotAllocate(t *testing.T) {
	base := time.Unix(5000, 0)
	const tick, period = 10 * time.Millisecond, 500 * time.Millisecond
	w := New[int](tick, 64, func(_ int, now time.Time) time.Time { return now.Add(period) })
	w.next = base.UnixNano() / w.tick
	for i := range 5000 {
		w.Add(i, base.Add(time.Duration(i%50)*tick))
	}
	now := base
	advance := func() {
		for range int(period / tick) {
			now = now.Add(tick)
			w.Advance(now)
		}
	}
	advance() // warm up: blocks and the ready buffer
	if n := testing.AllocsPerRun(5, advance); n != 0 {
		t.Fatalf("one period allocates %v times", n)
	}
	if w.Len() != 5000 {
		t.Fatalf("%d items, want 5000", w.Len())
	}
}
