package link

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

// TotalsSnapshot is a copy of Totals' values (converted to stats.Traffic
// for users).
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
