package link

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of one channel's counters (t-io's ChannelStat).
type Stats struct {
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	PacketsHandled        uint64
	Reads                 uint64 // socket reads that delivered bytes
	Created               time.Time
	LastReceived          time.Time // zero if nothing was received
	LastSent              time.Time // zero if nothing was sent
}

type counters struct {
	bytesIn, bytesOut     atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
	handled, reads        atomic.Uint64
	lastRecv, lastSent    atomic.Int64 // unix nanoseconds
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
