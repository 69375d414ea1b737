package stats_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/counters"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/stats"
)

func TestCollector(t *testing.T) {
	var s counters.Server
	s.KeepLatency()
	s.Accepted()
	s.Closed(link.ReasonSlowConsumer)
	s.Observe(5, 3*time.Microsecond)
	snap := func() stats.Snapshot {
		sn := s.Snapshot()
		sn.Traffic.BytesIn = 42
		sn.IPs = 3
		return sn
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(stats.NewCollector(snap, prometheus.Labels{"server": "a"}))
	reg.MustRegister(stats.NewCollector(snap, prometheus.Labels{"server": "b"})) // two servers, one registry
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		mf := byName[name]
		if mf == nil {
			t.Fatalf("no %s", name)
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if v := value(stats.MetricReceivedBytes, "server", "b"); v != 42 {
		t.Fatalf("bytes %v", v)
	}
	if v := value(stats.MetricClosed, "server", "a", "reason", "slow_consumer"); v != 1 {
		t.Fatalf("closed %v", v)
	}
	if v := value(stats.MetricClosed, "reason", "io_error"); v != 0 {
		t.Fatalf("io_error %v", v)
	}
	if n := len(byName[stats.MetricClosed].GetMetric()); n != 2*(channel.NumReasons-1) {
		t.Fatalf("%d close series", n)
	}
	if v := value(stats.MetricActive); v != 0 {
		t.Fatalf("active %v", v)
	}
	if v := value(stats.MetricIPs); v != 3 {
		t.Fatalf("ips %v", v)
	}
	if v := value(stats.MetricHandlerLatency, "type", "5"); v != 1 {
		t.Fatalf("latency count %v", v)
	}
	h := byName[stats.MetricHandlerLatency].GetMetric()[0].GetHistogram()
	if h.GetSampleSum() != 3e-6 {
		t.Fatalf("latency sum %v", h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		if b.GetUpperBound() >= 5e-6 {
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Fatalf("bucket le=%v: %d", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

func ExampleIPConfig() {
	cfg := stats.IPConfig{
		Windows: []time.Duration{time.Minute, time.Hour},
		OnWindow: func(w stats.IPWindow) {
			// t-io's slow-attack check: many reads carrying few bytes.
			if w.Traffic.Reads > 1000 && w.Traffic.BytesPerRead() < 4 {
				fmt.Println("suspicious:", w.IP, w.Window)
			}
		},
	}
	_ = cfg // tio.NewServer(addr, mux, tio.WithIPStats(cfg))
	// Output:
}
