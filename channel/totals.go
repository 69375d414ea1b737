package channel

import "sync/atomic"

// Totals aggregates the traffic of many channels: a whole server, or all the
// connections from one IP address. Channels add to it as they count their
// own traffic (a few atomic adds per event-loop pass, not per byte); readers
// load it at any time.
type Totals struct {
	BytesIn, BytesOut     atomic.Uint64
	PacketsIn, PacketsOut atomic.Uint64
	// Reads counts socket reads that delivered bytes: BytesIn/Reads and
	// PacketsIn/Reads are t-io's bytes-per-read and packets-per-read, which
	// expose peers that trickle bytes.
	Reads atomic.Uint64
	// Handled counts packets whose handler returned; HandleNanos sums the
	// time they took.
	Handled     atomic.Uint64
	HandleNanos atomic.Uint64
	// DecodeErrors counts connections closed for undecodable or
	// protocol-breaking input.
	DecodeErrors atomic.Uint64
}

// TotalsSnapshot is a copy of Totals' values.
type TotalsSnapshot struct {
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	Reads                 uint64
	Handled, HandleNanos  uint64
	DecodeErrors          uint64
}

// Snapshot loads every counter.
func (t *Totals) Snapshot() TotalsSnapshot {
	return TotalsSnapshot{
		BytesIn: t.BytesIn.Load(), BytesOut: t.BytesOut.Load(),
		PacketsIn: t.PacketsIn.Load(), PacketsOut: t.PacketsOut.Load(),
		Reads: t.Reads.Load(), Handled: t.Handled.Load(), HandleNanos: t.HandleNanos.Load(),
		DecodeErrors: t.DecodeErrors.Load(),
	}
}

// Sub returns s − o, counter by counter: the traffic of a window given
// snapshots at its two ends.
func (s TotalsSnapshot) Sub(o TotalsSnapshot) TotalsSnapshot {
	return TotalsSnapshot{
		BytesIn: s.BytesIn - o.BytesIn, BytesOut: s.BytesOut - o.BytesOut,
		PacketsIn: s.PacketsIn - o.PacketsIn, PacketsOut: s.PacketsOut - o.PacketsOut,
		Reads: s.Reads - o.Reads, Handled: s.Handled - o.Handled, HandleNanos: s.HandleNanos - o.HandleNanos,
		DecodeErrors: s.DecodeErrors - o.DecodeErrors,
	}
}

// BytesPerRead returns BytesIn/Reads (0 without reads).
func (s TotalsSnapshot) BytesPerRead() float64 {
	if s.Reads == 0 {
		return 0
	}
	return float64(s.BytesIn) / float64(s.Reads)
}

// PacketsPerRead returns PacketsIn/Reads (0 without reads).
func (s TotalsSnapshot) PacketsPerRead() float64 {
	if s.Reads == 0 {
		return 0
	}
	return float64(s.PacketsIn) / float64(s.Reads)
}
