package counters

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/stats"
)

func TestLatencyBuckets(t *testing.T) {
	var s Server
	s.Observe(1, time.Millisecond) // off: nothing kept
	if snap := s.Snapshot(); snap.Latency != nil {
		t.Fatalf("latency kept without KeepLatency: %+v", snap.Latency)
	}
	s.KeepLatency()
	bounds := stats.LatencyBounds()
	if len(bounds)+1 != stats.NumLatencyBuckets {
		t.Fatalf("%d bounds, %d buckets", len(bounds), stats.NumLatencyBuckets)
	}
	s.Observe(7, 0)                       // first bucket
	s.Observe(7, bounds[0])               // bounds are inclusive
	s.Observe(7, bounds[0]+1)             // second bucket
	s.Observe(7, bounds[len(bounds)-1]+1) // above the last bound
	s.Observe(3, 2*time.Millisecond)      // 5 ms bucket
	snap := s.Snapshot()
	if len(snap.Latency) != 2 || snap.Latency[0].Type != 3 || snap.Latency[1].Type != 7 {
		t.Fatalf("histograms %+v", snap.Latency)
	}
	h := snap.Latency[1]
	if h.Count != 4 || h.Buckets[0] != 2 || h.Buckets[1] != 1 || h.Buckets[stats.NumLatencyBuckets-1] != 1 {
		t.Fatalf("type 7: %+v", h)
	}
	if want := 2*bounds[0] + 1 + bounds[len(bounds)-1] + 1; h.Sum != want {
		t.Fatalf("sum %v, want %v", h.Sum, want)
	}
	h = snap.Latency[0]
	i := 0
	for bounds[i] < 2*time.Millisecond {
		i++
	}
	if h.Count != 1 || h.Buckets[i] != 1 || bounds[i] != 5*time.Millisecond {
		t.Fatalf("type 3: %+v (bucket %d)", h, i)
	}
}

// The number of histograms is bounded whatever the types peers send, even
// when many goroutines observe new types at once.
func TestLatencyTypesBounded(t *testing.T) {
	var s Server
	s.KeepLatency()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				s.Observe(codec.Type((i*7+g)%300), time.Microsecond)
			}
		})
	}
	wg.Wait()
	snap := s.Snapshot()
	if len(snap.Latency) != stats.LatencyTypes+1 || !snap.Latency[stats.LatencyTypes].Other {
		t.Fatalf("%d histograms, want %d and the overflow", len(snap.Latency), stats.LatencyTypes)
	}
	var total uint64
	seen := map[codec.Type]bool{}
	for _, h := range snap.Latency {
		total += h.Count
		if !h.Other {
			if seen[h.Type] {
				t.Fatalf("type %d twice", h.Type)
			}
			seen[h.Type] = true
		}
	}
	if total != 8000 {
		t.Fatalf("counted %d observations, want 8000", total)
	}
}

func TestCloseCounts(t *testing.T) {
	var s Server
	s.Accepted()
	s.Accepted()
	s.Closed(link.ReasonHeartbeatTimeout)
	snap := s.Snapshot()
	if snap.Accepted != 2 || snap.Active != 1 || snap.Closed[link.ReasonHeartbeatTimeout] != 1 {
		t.Fatalf("%+v", snap)
	}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestIPTableWindows(t *testing.T) {
	if NewIPTable(stats.IPConfig{}, time.Now()) != nil {
		t.Fatal("a table without windows")
	}
	t0 := time.Unix(1000, 0)
	var got []stats.IPWindow
	tab := NewIPTable(stats.IPConfig{
		Windows:  []time.Duration{time.Hour, time.Minute, time.Minute}, // unordered, duplicated
		OnWindow: func(w stats.IPWindow) { got = append(got, w) },
	}, t0)
	if ws := tab.Windows(); len(ws) != 2 || ws[0] != time.Minute || ws[1] != time.Hour {
		t.Fatalf("windows %v", ws)
	}
	a, b := ip("10.0.0.1"), ip("10.0.0.2")
	ta := tab.Acquire(a)
	ta.BytesIn.Add(100)
	ta.Reads.Add(2)
	tb := tab.Acquire(b)
	tb.BytesIn.Add(7)
	tab.Release(b)

	tab.Sweep(t0.Add(59 * time.Second)) // nothing due
	if len(got) != 0 {
		t.Fatalf("early reports %+v", got)
	}
	tab.Sweep(t0.Add(time.Minute))
	if len(got) != 2 {
		t.Fatalf("reports %+v", got)
	}
	for _, w := range got {
		if w.Window != time.Minute || !w.Start.Equal(t0) || !w.End.Equal(t0.Add(time.Minute)) || w.Accepted != 1 {
			t.Fatalf("report %+v", w)
		}
		switch w.IP {
		case a:
			if w.Active != 1 || w.Traffic.BytesIn != 100 || w.Traffic.BytesPerRead() != 50 {
				t.Fatalf("a: %+v", w)
			}
		case b:
			if w.Active != 0 || w.Traffic.BytesIn != 7 {
				t.Fatalf("b: %+v", w)
			}
		}
	}
	// The next minute: a only (b is idle), with the delta of that minute.
	got = nil
	ta.BytesIn.Add(5)
	tab.Sweep(t0.Add(2 * time.Minute))
	if len(got) != 1 || got[0].IP != a || got[0].Traffic.BytesIn != 5 || got[0].Accepted != 0 || !got[0].Start.Equal(t0.Add(time.Minute)) {
		t.Fatalf("second minute %+v", got)
	}
	if s, ok := tab.Get(a); !ok || s.Traffic.BytesIn != 105 || s.Accepted != 1 || s.Active != 1 {
		t.Fatalf("a's totals %+v %v", s, ok)
	}
	// At the hour: the minute and the hour both close; the hour reports the
	// whole hour.
	got = nil
	tab.Sweep(t0.Add(time.Hour))
	var hour []stats.IPWindow
	for _, w := range got {
		if w.Window == time.Hour {
			hour = append(hour, w)
		}
	}
	if len(hour) != 2 {
		t.Fatalf("hour reports %+v", got)
	}
	for _, w := range hour {
		if (w.IP == a && w.Traffic.BytesIn != 105) || (w.IP == b && w.Traffic.BytesIn != 7) {
			t.Fatalf("hour %+v", w)
		}
	}
	if due := tab.Due(); !due.Equal(t0.Add(61 * time.Minute)) {
		t.Fatalf("due %v", due.Sub(t0))
	}
}

// An address expires once it has had no connection and no traffic for longer
// than the longest window; an address with an open connection never does.
func TestIPTableExpires(t *testing.T) {
	t0 := time.Unix(0, 0)
	tab := NewIPTable(stats.IPConfig{Windows: []time.Duration{time.Second, 10 * time.Second}}, t0)
	keep := ip("10.0.0.1")
	tab.Acquire(keep)
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		tab.Acquire(a).BytesIn.Add(1)
		tab.Release(a)
	}
	if n := tab.Len(); n != 1001 {
		t.Fatalf("%d tracked", n)
	}
	for s := 1; s <= 10; s++ {
		tab.Sweep(t0.Add(time.Duration(s) * time.Second))
	}
	if n := tab.Len(); n != 1001 {
		t.Fatalf("expired too early: %d tracked", n)
	}
	for s := 11; s <= 12; s++ {
		tab.Sweep(t0.Add(time.Duration(s) * time.Second))
	}
	if n := tab.Len(); n != 1 {
		t.Fatalf("%d tracked after expiry, want 1", n)
	}
	if _, ok := tab.Get(keep); !ok {
		t.Fatal("the address with an open connection expired")
	}
	// An address that comes back starts afresh.
	a := ip("10.1.0.1")
	tab.Acquire(a)
	if s, _ := tab.Get(a); s.Accepted != 1 || s.Traffic.BytesIn != 0 {
		t.Fatalf("fresh entry %+v", s)
	}
}

func TestIPTableMax(t *testing.T) {
	tab := NewIPTable(stats.IPConfig{Windows: []time.Duration{time.Minute}, MaxIPs: 10}, time.Now())
	for i := range 20 {
		got := tab.Acquire(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		if (got == nil) != (i >= 10) {
			t.Fatalf("address %d: totals %v", i, got)
		}
	}
	if tab.Len() != 10 || tab.Untracked() != 10 {
		t.Fatalf("len %d, untracked %d", tab.Len(), tab.Untracked())
	}
	// A tracked address still takes more connections.
	if tab.Acquire(netip.AddrFrom4([4]byte{10, 0, 0, 0})) == nil {
		t.Fatal("tracked address refused")
	}
}

func TestIPTableRun(t *testing.T) {
	reports := make(chan stats.IPWindow, 16)
	tab := NewIPTable(stats.IPConfig{Windows: []time.Duration{20 * time.Millisecond}, OnWindow: func(w stats.IPWindow) { reports <- w }}, time.Now())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { tab.Run(stop); close(done) }()
	tab.Acquire(ip("10.0.0.1")).PacketsIn.Add(3)
	select {
	case w := <-reports:
		if w.Traffic.PacketsIn != 3 {
			t.Fatalf("%+v", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no window closed")
	}
	close(stop)
	<-done
}

func BenchmarkObserve(b *testing.B) {
	var s Server
	s.KeepLatency()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Observe(codec.Type(i&3), 300*time.Nanosecond)
			i++
		}
	})
}

func TestObserveN(t *testing.T) {
	var s Server
	s.ObserveN(1, time.Microsecond, 3) // off
	s.KeepLatency()
	s.ObserveN(1, 2*time.Microsecond, 3)
	s.ObserveN(1, time.Second, 0)
	snap := s.Snapshot()
	if len(snap.Latency) != 1 || snap.Latency[0].Count != 3 || snap.Latency[0].Sum != 6*time.Microsecond || snap.Latency[0].Buckets[1] != 3 {
		t.Fatalf("%+v", snap.Latency)
	}
}
