//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tiogo/tio/bench"
)

// A short run against each server in-process, so that the benchmark cannot
// rot: every receiver gets every broadcast, in order, and latency is
// measured. TIO_BENCH_IMPLS (bench.ImplsEnv) limits it to some servers;
// scripts/test.sh runs tio's alone.
//
// The gorilla server is gorilla's chat hub, which closes a receiver that
// falls 256 messages behind; on a loaded machine that happens, above all
// with the sender paced on its own copies. That is the hub's policy, not a
// fault of the benchmark: a peer's run that ended in close frames is tried
// again, and after three such runs the case is skipped. tio's run is never
// retried.
func TestBroadcastSmoke(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) {
			if !bench.Selected(impl) {
				t.Skipf("%s: not selected by %s", impl, bench.ImplsEnv)
			}
			for _, pace := range []string{"all", "sender"} {
				t.Run("pace="+pace, func(t *testing.T) {
					run := func() result {
						addr, err := serve(impl, "127.0.0.1:0")
						if err != nil {
							t.Fatalf("%s: %v", impl, err)
						}
						res, err := runClient(config{
							Addr: addr, Receivers: 20, Inflight: 4, Size: 64,
							Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond, PaceOnSender: pace == "sender",
						})
						if err != nil {
							t.Fatalf("%s: %v", impl, err)
						}
						return res
					}
					res := run()
					dropped := func() bool {
						return impl != implTio && res.Errors != 0 && strings.Contains(res.FirstError, "first byte 0x88")
					}
					for try := 1; dropped(); try++ {
						if try == 3 {
							t.Skipf("%s (pace %s): the server dropped receivers in %d runs (%s); the machine is too loaded for its hub", impl, pace, try, res.FirstError)
						}
						t.Logf("%s (pace %s): dropped receivers (%s); trying again", impl, pace, res.FirstError)
						res = run()
					}
					if res.Deliveries == 0 || res.Lost != 0 || res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 {
						t.Fatalf("%s (pace %s): %+v", impl, pace, res)
					}
					t.Logf("%s (pace %s): %.0f deliveries/s, p50 %.0f µs, p99 %.0f µs", impl, pace, res.Rate, res.P50, res.P99)
				})
			}
		})
	}
}
