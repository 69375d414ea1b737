//go:build linux

package main

import (
	"testing"
	"time"
)

// A short run of each scenario in-process, so that the benchmark cannot
// rot: every receiver gets every group send, once and in order, and on the
// cluster each send is exactly one NATS publish.
func TestClusterSmoke(t *testing.T) {
	for _, sc := range []string{"single", "cluster"} {
		for _, proto := range []string{"binary", "ws"} {
			addrs, stats, stop, err := startServers(sc, 3)
			if err != nil {
				t.Fatal(err)
			}
			per := 4
			if sc == "single" {
				per = 12
			}
			res, err := runClient(clientConfig{Addrs: addrs, Per: per, Inflight: 4, Size: 64, Proto: proto,
				Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond})
			st := stats()
			stop()
			if err != nil {
				t.Fatalf("%s %s: %v", sc, proto, err)
			}
			if res.Deliveries == 0 || res.P99 < res.P50 || res.Receivers != 12 {
				t.Fatalf("%s %s: %+v", sc, proto, res)
			}
			if sc == "cluster" && (st.Published != res.Sent || st.Failed != 0 || st.Received != 2*res.Sent) {
				t.Fatalf("%d sends: %+v", res.Sent, st)
			}
			t.Logf("%s %s: %.0f deliveries/s, p50 %.0f µs, p99 %.0f µs", sc, proto, res.Rate, res.P50, res.P99)
		}
	}
}
