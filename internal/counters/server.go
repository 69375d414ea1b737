// Package counters holds the statistics a server keeps as it runs: its
// counters, the handler latency histograms and the per-IP table. Everything
// on the hot path is a plain atomic add; package stats has the snapshots
// they produce and the Prometheus collector that reads them.
package counters

import (
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/stats"
)

// Server holds one server's counters. Its zero value is ready to use.
type Server struct {
	accepted atomic.Uint64
	active   atomic.Int64
	closed   [link.NumReasons]atomic.Uint64
	panics   atomic.Uint64
	lateP    atomic.Uint64 // panics on a connection already closing
	slow     atomic.Uint64 // handlers that ran past the slow-handler threshold
	dropped  atomic.Uint64 // packets with no handler
	limited  atomic.Uint64 // packets dropped by the rate limit
	latency  *latency      // nil: latency not kept
	tlsOK    atomic.Uint64
	tlsBad   [stats.NumTLSFailures]atomic.Uint64
}

// TLSHandshake counts a TLS handshake that succeeded.
func (s *Server) TLSHandshake() { s.tlsOK.Add(1) }

// TLSFailed counts a connection that its TLS layer ended.
func (s *Server) TLSFailed(f stats.TLSFailure) {
	if f < stats.NumTLSFailures {
		s.tlsBad[f].Add(1)
	}
}

// Accepted counts an accepted connection (which is now active).
func (s *Server) Accepted() { s.accepted.Add(1); s.active.Add(1) }

// Closed counts a closed connection by reason.
func (s *Server) Closed(r link.Reason) {
	s.active.Add(-1)
	if int(r) < len(s.closed) {
		s.closed[r].Add(1)
	}
}

// Panicked counts a handler panic; closed tells whether the panic closed
// its connection (false: it was closing already).
func (s *Server) Panicked(closed bool) {
	s.panics.Add(1)
	if !closed {
		s.lateP.Add(1)
	}
}

// SlowHandler counts a handler that ran past the slow-handler threshold.
func (s *Server) SlowHandler() { s.slow.Add(1) }

// Dropped counts a packet that no handler took.
func (s *Server) Dropped() { s.dropped.Add(1) }

// RateLimited counts a packet dropped by the rate limit.
func (s *Server) RateLimited() { s.limited.Add(1) }

// KeepLatency makes Observe keep a latency histogram per packet type. Call
// it before the server starts; without it Observe does nothing.
func (s *Server) KeepLatency() {
	if s.latency == nil {
		s.latency = new(latency)
	}
}

// Observe records that a handler for packets of type t took d: two atomic
// adds, no lock, no allocation (but for the first packet of each of the
// first LatencyTypes types).
func (s *Server) Observe(t codec.Type, d time.Duration) {
	if l := s.latency; l != nil {
		l.observe(t, d)
	}
}

// ObserveN records n packets of type t whose handlers took each on average
// (packets handled in one event-loop pass, timed together): two atomic adds
// in all.
func (s *Server) ObserveN(t codec.Type, each time.Duration, n int) {
	if l := s.latency; l != nil && n > 0 {
		l.find(t).observeN(each, uint64(n))
	}
}

// Snapshot returns the current values.
func (s *Server) Snapshot() stats.Snapshot {
	snap := stats.Snapshot{
		Accepted:           s.accepted.Load(),
		Active:             s.active.Load(),
		HandlerPanics:      s.panics.Load(),
		PanicsWhileClosing: s.lateP.Load(),
		SlowHandlers:       s.slow.Load(),
		DroppedPackets:     s.dropped.Load(),
		RateLimited:        s.limited.Load(),
	}
	for i := range s.closed {
		snap.Closed[i] = s.closed[i].Load()
	}
	snap.TLS.Handshakes = s.tlsOK.Load()
	for i := range s.tlsBad {
		snap.TLS.Failed[i] = s.tlsBad[i].Load()
	}
	if s.latency != nil {
		snap.Latency = s.latency.snapshot()
	}
	return snap
}

// Traffic returns a snapshot of t.
func Traffic(t *link.Totals) stats.Traffic { return stats.Traffic(t.Snapshot()) }
