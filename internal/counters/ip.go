package counters

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/stats"
)

// IPTable keeps per-IP statistics: each tracked address has a
// link.Totals that its connections add to as they count their traffic,
// and windows are reported by comparing snapshots of these totals at window
// boundaries (nothing per window on the hot path). An address's entry
// expires when it has had no open connection and no traffic for longer than
// the longest window, so memory follows the addresses recently active, not
// all those ever seen, and never exceeds MaxIPs entries.
type IPTable struct {
	windows  []time.Duration
	longest  time.Duration
	onWindow func(stats.IPWindow)
	max      int

	mu        sync.Mutex
	m         map[netip.Addr]*ipEntry
	untracked atomic.Uint64

	sweepMu sync.Mutex  // held by Sweep: one sweep at a time
	next    []time.Time // when each window closes next
	opened  []time.Time // when each window's current period opened
	due     atomic.Int64
}

type ipEntry struct {
	totals link.Totals
	first  time.Time

	// under IPTable.mu
	conns    int
	accepted uint64

	// sweep only
	marks    []mark // per window: the values at its start
	last     stats.Traffic
	lastAcc  uint64
	idleFrom time.Time
}

type mark struct {
	traffic  stats.Traffic
	accepted uint64
}

// NewIPTable returns a table for c, or nil if c has no windows. Windows
// start at now.
func NewIPTable(c stats.IPConfig, now time.Time) *IPTable {
	var ws []time.Duration
	for _, w := range c.Windows {
		if w > 0 && !slices.Contains(ws, w) {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	slices.Sort(ws)
	t := &IPTable{
		windows:  ws,
		longest:  ws[len(ws)-1],
		onWindow: c.OnWindow,
		max:      c.MaxIPs,
		m:        make(map[netip.Addr]*ipEntry),
		next:     make([]time.Time, len(ws)),
		opened:   make([]time.Time, len(ws)),
	}
	if t.max <= 0 {
		t.max = stats.DefaultMaxIPs
	}
	for i, w := range ws {
		t.next[i], t.opened[i] = now.Add(w), now
	}
	t.due.Store(t.next[0].UnixNano())
	return t
}

// Windows returns the window lengths, ascending.
func (t *IPTable) Windows() []time.Duration { return slices.Clone(t.windows) }

// Acquire counts a connection accepted from ip and returns the totals it
// must add its traffic to (link.Link.SetIPTotals), or nil if the table
// is full. Every Acquire that returned totals must be matched by a Release
// when the connection closes. One map lookup under a lock.
func (t *IPTable) Acquire(ip netip.Addr) *link.Totals {
	t.mu.Lock()
	e := t.m[ip]
	if e == nil {
		if len(t.m) >= t.max {
			t.mu.Unlock()
			t.untracked.Add(1)
			return nil
		}
		e = &ipEntry{first: time.Now(), marks: make([]mark, len(t.windows))}
		t.m[ip] = e
	}
	e.conns++
	e.accepted++
	t.mu.Unlock()
	return &e.totals
}

// Release counts the close of a connection whose Acquire returned totals.
func (t *IPTable) Release(ip netip.Addr) {
	t.mu.Lock()
	if e := t.m[ip]; e != nil && e.conns > 0 {
		e.conns--
	}
	t.mu.Unlock()
}

// Len returns the number of IP addresses tracked.
func (t *IPTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// Untracked counts the connections not tracked because the table was full.
func (t *IPTable) Untracked() uint64 { return t.untracked.Load() }

// Get returns the running totals of ip, if it is tracked.
func (t *IPTable) Get(ip netip.Addr) (stats.IPStat, bool) {
	t.mu.Lock()
	e := t.m[ip]
	var s stats.IPStat
	if e != nil {
		s = stats.IPStat{IP: ip, FirstSeen: e.first, Accepted: e.accepted, Active: e.conns}
	}
	t.mu.Unlock()
	if e == nil {
		return stats.IPStat{}, false
	}
	s.Traffic = Traffic(&e.totals)
	return s, true
}

// Due returns when Sweep next has something to do.
func (t *IPTable) Due() time.Time { return time.Unix(0, t.due.Load()) }

// Sweep closes the windows that ended by now, reporting them to OnWindow,
// and expires the entries idle for longer than the longest window. Run
// calls it; it is exported for tests and for callers that drive their own
// clock. It is cheap when nothing is due.
func (t *IPTable) Sweep(now time.Time) {
	if now.UnixNano() < t.due.Load() {
		return
	}
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	type item struct {
		ip       netip.Addr
		e        *ipEntry
		conns    int
		accepted uint64
	}
	t.mu.Lock()
	items := make([]item, 0, len(t.m))
	for ip, e := range t.m {
		items = append(items, item{ip, e, e.conns, e.accepted})
	}
	t.mu.Unlock()

	var closing []int // the windows that close now
	for i := range t.windows {
		if !now.Before(t.next[i]) {
			closing = append(closing, i)
		}
	}
	var expired []item
	for _, it := range items {
		e := it.e
		snap := Traffic(&e.totals)
		for _, i := range closing {
			m := &e.marks[i]
			acc := it.accepted - m.accepted
			delta := snap.Sub(m.traffic)
			if t.onWindow != nil && (acc > 0 || it.conns > 0 || delta != (stats.Traffic{})) {
				t.onWindow(stats.IPWindow{
					IP: it.ip, Window: t.windows[i],
					Start: t.opened[i], End: now,
					Accepted: acc, Active: it.conns, Traffic: delta,
				})
			}
			*m = mark{traffic: snap, accepted: it.accepted}
		}
		if it.conns > 0 || snap != e.last || it.accepted != e.lastAcc || e.idleFrom.IsZero() {
			e.last, e.lastAcc, e.idleFrom = snap, it.accepted, now
		} else if now.Sub(e.idleFrom) > t.longest {
			expired = append(expired, it)
		}
	}
	if len(expired) > 0 {
		t.mu.Lock()
		for _, it := range expired {
			// Gone only if nothing happened since the copy above.
			if t.m[it.ip] == it.e && it.e.conns == 0 && it.e.accepted == it.accepted {
				delete(t.m, it.ip)
			}
		}
		t.mu.Unlock()
	}
	for _, i := range closing {
		t.opened[i] = now
		for !now.Before(t.next[i]) { // (several periods if the sweep was late)
			t.next[i] = t.next[i].Add(t.windows[i])
		}
	}
	t.due.Store(slices.MinFunc(t.next, time.Time.Compare).UnixNano())
}

// Run sweeps at every window boundary until stop is closed.
func (t *IPTable) Run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Until(t.Due()))
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-timer.C:
			t.Sweep(now)
			timer.Reset(time.Until(t.Due()))
		}
	}
}
