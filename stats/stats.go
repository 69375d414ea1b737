// Package stats holds tio's statistics, after t-io's GroupStat, ChannelStat
// and IpStat: server counters (connections, closes by reason, panics, drops),
// a handler latency histogram per packet type, per-IP totals reported over
// windows, and a Prometheus collector that reads them all at scrape time.
//
// Everything on the hot path is a plain atomic add (traffic is batched per
// event-loop pass by package channel); nothing calls Prometheus per packet.
// Exporters and the Go API read the counters when asked: tio.Server.Stats
// returns a [Snapshot], and [NewCollector] turns snapshots into metrics.
package stats

import (
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Server holds one server's counters. Its zero value is ready to use.
type Server struct {
	accepted atomic.Uint64
	active   atomic.Int64
	closed   [channel.NumReasons]atomic.Uint64
	panics   atomic.Uint64
	lateP    atomic.Uint64 // panics on a connection already closing
	slow     atomic.Uint64 // handlers that ran past the slow-handler threshold
	dropped  atomic.Uint64 // packets with no handler
	limited  atomic.Uint64 // packets dropped by the rate limit
	latency  *latency      // nil: latency not kept
}

// Snapshot is a point-in-time copy of a server's counters.
type Snapshot struct {
	Accepted uint64
	Active   int64
	// Closed counts closed connections by reason, indexed by channel.Reason.
	Closed [channel.NumReasons]uint64
	// HandlerPanics counts every handler panic. A panic closes its
	// connection as channel.ReasonHandlerPanic unless the connection was
	// already closing for another reason, which then stays its reason (the
	// first reason recorded wins) and the panic is counted in
	// PanicsWhileClosing too. So HandlerPanics equals
	// Closed[ReasonHandlerPanic] + PanicsWhileClosing.
	HandlerPanics      uint64
	PanicsWhileClosing uint64
	// SlowHandlers counts handlers on the worker pool that were still
	// running past the slow-handler threshold (each counted once).
	SlowHandlers   uint64
	DroppedPackets uint64
	// RateLimited counts packets dropped by a rate limit set to drop.
	RateLimited uint64
	// Traffic is the server's aggregate traffic (zero with statistics off).
	Traffic channel.TotalsSnapshot
	// Latency holds the handler latency histograms, one per packet type (see
	// LatencyTypes), ordered by type, the overflow histogram last (nil with
	// statistics off).
	Latency []LatencySnapshot
	// IPs is the number of IP addresses tracked by per-IP statistics, and
	// IPsUntracked counts the connections that per-IP statistics did not
	// track because IPConfig.MaxIPs addresses were tracked already.
	IPs          int
	IPsUntracked uint64
}

// Accepted counts an accepted connection (which is now active).
func (s *Server) Accepted() { s.accepted.Add(1); s.active.Add(1) }

// Closed counts a closed connection by reason.
func (s *Server) Closed(r channel.Reason) {
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
func (s *Server) Snapshot() Snapshot {
	snap := Snapshot{
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
	if s.latency != nil {
		snap.Latency = s.latency.snapshot()
	}
	return snap
}
