//go:build linux

package bench

import (
	"testing"
	"time"
)

// TestActiveSmoke runs the active-connection scenario (benchrun's (e))
// briefly, in this process, against each server that ImplsEnv selects:
// 200 connections, a 256-byte broadcast every 100 ms, and in the last
// phase a 64-byte message from every connection every 500 ms. It checks
// that the scenario runs and that what arrives is right (no connection
// lost, no broadcast missing in a connection's sequence, echoes received);
// it does not judge the numbers, which in one process mean little.
func TestActiveSmoke(t *testing.T) {
	for _, impl := range ActiveImpls {
		t.Run(impl, func(t *testing.T) {
			if !Selected(impl) {
				t.Skipf("%s: not selected by %s", impl, ImplsEnv)
			}
			srv, err := StartActive(impl, "127.0.0.1:0", nil, BroadcastConfig{Interval: 100 * time.Millisecond, Size: 256})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cli := NewActiveClient(ActiveClientConfig{
				Addr: srv.Addr(), Conns: 200, BroadcastSize: 256, EchoSize: 64, EchoEvery: 500 * time.Millisecond,
			})
			res, err := RunActive(ActivePlan{
				Idle: 300 * time.Millisecond, Phase: 1500 * time.Millisecond,
				Sample: 100 * time.Millisecond, Tail: 500 * time.Millisecond, Drain: 300 * time.Millisecond,
			}, srv, cli)
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors > 0 || res.Dead > 0 {
				t.Fatalf("%d errors, %d connections lost; first: %s", res.Errors, res.Dead, res.FirstError)
			}
			if len(res.Phases) != 3 {
				t.Fatalf("%d phases, want 3", len(res.Phases))
			}
			idle, bc, echo := res.Phases[0], res.Phases[1], res.Phases[2]
			if idle.Deliveries != 0 || idle.EchoesSent != 0 {
				t.Errorf("idle phase: %+v", idle)
			}
			for _, p := range []ActivePhaseResult{bc, echo} {
				if p.Deliveries == 0 || p.Lost != 0 || p.BP99 < p.BP50 || p.BP50 <= 0 {
					t.Errorf("phase %s: %d broadcasts received, %d lost, p50 %.0f µs, p99 %.0f µs", p.Name, p.Deliveries, p.Lost, p.BP50, p.BP99)
				}
			}
			if bc.EchoesSent != 0 || echo.EchoesSent == 0 || echo.Echoes == 0 || echo.Echoes > echo.EchoesSent {
				t.Errorf("echoes: broadcast phase sent %d; echo phase sent %d, received %d", bc.EchoesSent, echo.EchoesSent, echo.Echoes)
			}
			for _, p := range res.Phases {
				t.Logf("%s %-14s %6.0f broadcasts/s p99 %6.0f µs, %5.0f echoes/s p99 %6.0f µs, RSS %d kB (%+.0f B/conn)",
					impl, p.Name, float64(p.Deliveries)/p.Seconds, p.BP99, float64(p.Echoes)/p.Seconds, p.EP99, p.RSS>>10, p.BytesPerConn)
			}
			t.Logf("%s: %d broadcasts, %d behind and %d messages unanswered at the end", impl, echo.Server.Broadcasts, res.Behind, res.Unanswered)
		})
	}
}
