package stats

import (
	"net/netip"
	"time"
)

// DefaultMaxIPs is IPConfig.MaxIPs' default.
const DefaultMaxIPs = 1 << 16

// IPConfig configures per-IP statistics (t-io's ipStats). With no Windows
// there are none: per-IP accounting costs a few atomic adds per event-loop
// pass, which a server that does not read it should not pay.
type IPConfig struct {
	// Windows are the lengths of the reporting windows, like t-io's
	// ipStats.addDuration: time.Minute and time.Hour, say. Each window
	// closes every Window from the start of the server, and OnWindow is
	// called for it once per IP address that was active in it.
	Windows []time.Duration
	// OnWindow, if set, is called when a window closes, once per IP address
	// that connected, had a connection open or had traffic in it. It runs on
	// the statistics goroutine, one call after the other: it must not block
	// for long (hand the report to a channel or a logger).
	OnWindow func(IPWindow)
	// MaxIPs bounds the number of IP addresses tracked at once (default
	// DefaultMaxIPs). Connections from addresses past it are not tracked and
	// are counted in Snapshot.IPsUntracked.
	MaxIPs int
}

// IPWindow is the report of one IP address over one window.
type IPWindow struct {
	IP netip.Addr
	// Window is the window's length; Start and End its bounds. (Traffic of
	// an address first seen during the window counts from then on.)
	Window     time.Duration
	Start, End time.Time
	// Accepted counts the connections accepted from the address during the
	// window, including those refused at admission (blacklist, limits).
	Accepted uint64
	// Active is the number of connections open from the address at End.
	Active int
	// Traffic is the address's traffic during the window.
	Traffic Traffic
}

// IPStat is the running total of one IP address since it was first seen
// (or since its entry last expired).
type IPStat struct {
	IP        netip.Addr
	FirstSeen time.Time
	// Accepted counts connections accepted from the address, Active those
	// open now.
	Accepted uint64
	Active   int
	Traffic  Traffic
}
