package main

import (
	"context"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/internal/counters"
	"github.com/tiogo/tio/internal/link"
)

var modes = []string{"off", "on", "on+ip"}

func startMode(tb testing.TB, mode string) *tio.Server {
	tb.Helper()
	srv, err := NewServer("127.0.0.1:0", mode)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// The workload runs against every mode, and the modes differ as they should.
func TestModes(t *testing.T) {
	for _, mode := range modes {
		srv := startMode(t, mode)
		l, err := Dial(srv.Addr().String(), Config{Conns: 4, Inflight: 4, Size: 64, Duration: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n, _, err := l.Run()
		l.Close()
		if err != nil || n == 0 {
			t.Fatalf("%s: %d messages, %v", mode, n, err)
		}
		s := srv.Stats()
		for end := time.Now().Add(3 * time.Second); mode != "off" && s.Traffic.PacketsOut < n && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond) // the server counts just after it writes
			s = srv.Stats()
		}
		if (s.Traffic.PacketsIn == n) != (mode != "off") || (s.IPs == 1) != (mode == "on+ip") {
			t.Fatalf("%s: %d echoed, stats %+v", mode, n, s)
		}
	}
	if cpu := processCPU(1); cpu < 0 {
		t.Fatal(cpu)
	}
}

// BenchmarkEcho runs the workload in process (client and server share it,
// so this measures throughput, not the server's CPU alone): an op is one
// echoed packet. It is for profiling one mode
// (-bench 'Echo/stats=on$' -cpuprofile …); to compare the modes use the
// command, which interleaves them (go test -count repeats each sub-benchmark
// back to back, so machine drift reads as a difference).
func BenchmarkEcho(b *testing.B) {
	for _, mode := range modes {
		b.Run("stats="+mode, func(b *testing.B) {
			srv := startMode(b, mode)
			cfg := Config{Conns: 100, Inflight: 16, Size: 64}
			l, err := Dial(srv.Addr().String(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.SetBytes(int64(cfg.Size))
			b.ResetTimer()
			if err := l.RunN(b.N); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPassStats isolates what statistics add to one event-loop pass of
// the echo workload (one read of 16 packets, one write of their echoes): the
// atomic adds of link.Link's Begin, count and Handled on the server's
// totals (and the IP's, for on+ip), and the latency histogram's ObserveN, on
// parallel goroutines sharing the totals as the event loops do. Compare its
// ns/op with the server's CPU time per pass (16 × ns/msg of the command).
func BenchmarkPassStats(b *testing.B) {
	const packets, bytes = 16, 16 * (7 + 64)
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) {
			var server, ip link.Totals
			var st counters.Server
			var totals []*link.Totals
			switch mode {
			case "on":
				totals = []*link.Totals{&server}
			case "on+ip":
				totals = []*link.Totals{&server, &ip}
			}
			if mode != "off" {
				st.KeepLatency()
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					for _, t := range totals { // Begin
						t.BytesIn.Add(bytes)
						t.Reads.Add(1)
					}
					for _, t := range totals { // Handled
						t.Handled.Add(packets)
						t.HandleNanos.Add(4000)
					}
					st.ObserveN(1, 250*time.Nanosecond, packets)
					for _, t := range totals { // count
						t.PacketsIn.Add(packets)
						t.PacketsOut.Add(packets)
						t.BytesOut.Add(bytes)
					}
				}
			})
		})
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{4, 1, 3, 2}
	if m, q1, top := median(xs), quantile(xs, 0.25), quantile(xs, 1); m != 2.5 || q1 != 1.75 || top != 4 {
		t.Fatalf("median %v, p25 %v, max %v", m, q1, top)
	}
	if median([]float64{7}) != 7 || median(nil) != 0 {
		t.Fatal("one or none")
	}
}
