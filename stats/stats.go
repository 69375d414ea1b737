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
	"github.com/tiogo/tio/internal/link"
)

// Snapshot is a point-in-time copy of a server's counters.
type Snapshot struct {
	Accepted uint64
	Active   int64
	// Closed counts closed connections by reason, indexed by channel.Reason.
	Closed [link.NumReasons]uint64
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
	Traffic Traffic
	// Latency holds the handler latency histograms, one per packet type (see
	// LatencyTypes), ordered by type, the overflow histogram last (nil with
	// statistics off).
	Latency []LatencySnapshot
	// IPs is the number of IP addresses tracked by per-IP statistics, and
	// IPsUntracked counts the connections that per-IP statistics did not
	// track because IPConfig.MaxIPs addresses were tracked already.
	IPs          int
	IPsUntracked uint64
	// Bindings counts the entries of the server's binding indexes. Once
	// every connection has closed, all are zero.
	Bindings Bindings
	// TLS counts TLS handshakes and failures (zero without TLS).
	TLS TLS
}

// Bindings counts the entries of a server's binding indexes.
type Bindings struct {
	Users  int // user ids with at least one channel
	Groups int // groups with at least one channel
	Tokens int // tokens with at least one channel
	BsIDs  int // business ids bound
	IPs    int // IPs with at least one open channel, once a query by IP has built that index
	Bound  int // channels with at least one binding
}

// Traffic is the traffic of many connections — a whole server, or all the
// connections from one IP address — over their lifetime or over a window.
type Traffic struct {
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	// Reads counts socket reads that delivered bytes: BytesIn/Reads and
	// PacketsIn/Reads are t-io's bytes-per-read and packets-per-read, which
	// expose peers that trickle bytes.
	Reads uint64
	// Handled counts packets whose handler returned; HandleNanos sums the
	// time they took.
	Handled, HandleNanos uint64
	// DecodeErrors counts connections closed for undecodable or
	// protocol-breaking input.
	DecodeErrors uint64
}

// Sub returns s − o, counter by counter: the traffic of a window given
// snapshots at its two ends.
func (s Traffic) Sub(o Traffic) Traffic {
	return Traffic{
		BytesIn: s.BytesIn - o.BytesIn, BytesOut: s.BytesOut - o.BytesOut,
		PacketsIn: s.PacketsIn - o.PacketsIn, PacketsOut: s.PacketsOut - o.PacketsOut,
		Reads: s.Reads - o.Reads, Handled: s.Handled - o.Handled, HandleNanos: s.HandleNanos - o.HandleNanos,
		DecodeErrors: s.DecodeErrors - o.DecodeErrors,
	}
}

// BytesPerRead returns BytesIn/Reads (0 without reads).
func (s Traffic) BytesPerRead() float64 {
	if s.Reads == 0 {
		return 0
	}
	return float64(s.BytesIn) / float64(s.Reads)
}

// PacketsPerRead returns PacketsIn/Reads (0 without reads).
func (s Traffic) PacketsPerRead() float64 {
	if s.Reads == 0 {
		return 0
	}
	return float64(s.PacketsIn) / float64(s.Reads)
}
