// Package stats holds tio's counters. They are plain atomics updated on the
// hot path; exporters read them when asked.
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
	dropped  atomic.Uint64 // packets with no handler
	limited  atomic.Uint64 // packets dropped by the rate limit
}

// Snapshot is a point-in-time copy of a server's counters.
type Snapshot struct {
	Accepted uint64
	Active   int64
	// Closed counts closed connections by reason, indexed by channel.Reason.
	Closed         [channel.NumReasons]uint64
	HandlerPanics  uint64
	DroppedPackets uint64
	// RateLimited counts packets dropped by a rate limit set to drop.
	RateLimited uint64
	// Traffic is the server's aggregate traffic.
	Traffic channel.TotalsSnapshot
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

// Panicked counts a handler panic.
func (s *Server) Panicked() { s.panics.Add(1) }

// Dropped counts a packet that no handler took.
func (s *Server) Dropped() { s.dropped.Add(1) }

// RateLimited counts a packet dropped by the rate limit.
func (s *Server) RateLimited() { s.limited.Add(1) }

// Observe records that a handler for packets of type t took d. (The
// latency histogram is kept by the metrics exporter; this is its hook.)
func (s *Server) Observe(t codec.Type, d time.Duration) {}

// Snapshot returns the current values.
func (s *Server) Snapshot() Snapshot {
	snap := Snapshot{
		Accepted:       s.accepted.Load(),
		Active:         s.active.Load(),
		HandlerPanics:  s.panics.Load(),
		DroppedPackets: s.dropped.Load(),
		RateLimited:    s.limited.Load(),
	}
	for i := range s.closed {
		snap.Closed[i] = s.closed[i].Load()
	}
	return snap
}
