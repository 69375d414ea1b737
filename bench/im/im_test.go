//go:build linux

package main

import (
	"context"
	"testing"
	"time"
)

// A short run in-process, so that the benchmark cannot rot: every message
// reaches every other member of its room, and latency is measured.
func TestChatLoadSmoke(t *testing.T) {
	srv, err := serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	res, err := runClient(config{Addr: srv.Addr().String(), Conns: 40, Rooms: 4, Rate: 4, Warmup: 300 * time.Millisecond, Duration: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Deliveries == 0 || res.Acked == 0 || res.P50 <= 0 || res.P99 < res.P50 ||
		res.PerSecond < 0.7*res.Expected || res.PerSecond > 1.3*res.Expected {
		t.Fatalf("%+v", res)
	}
	t.Logf("%.0f deliveries/s (expected %.0f), p50 %.0f µs, p99 %.0f µs", res.PerSecond, res.Expected, res.P50, res.P99)
}
