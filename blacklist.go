package tio

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tiogo/tio/channel"
)

// Blacklist is a server's set of refused IP addresses (t-io's
// IpBlacklist); get it with Server.Blacklist. Its methods are safe for
// concurrent use. While it is empty, checking an address at accept costs one
// atomic load. An IPv4-mapped IPv6 address is the same as its IPv4 address.
type Blacklist struct {
	s  *Server
	n  atomic.Int32 // len(m), read without the lock
	mu sync.RWMutex
	m  map[netip.Addr]struct{}
}

// Blacklist returns the server's blacklist.
func (s *Server) Blacklist() *Blacklist { return &s.black }

// Add refuses connections from ip from now on: its open connections are
// closed (channel.ReasonBlacklisted) and new ones are closed at accept, all
// counted in Stats().Closed[channel.ReasonBlacklisted]. It returns the
// number of open connections it closed.
func (b *Blacklist) Add(ip netip.Addr) int {
	ip = ip.Unmap()
	b.mu.Lock()
	if b.m == nil {
		b.m = make(map[netip.Addr]struct{})
	}
	b.m[ip] = struct{}{}
	b.n.Store(int32(len(b.m)))
	b.mu.Unlock()
	// A connection accepted from now on is refused by admit; one accepted
	// before is already indexed by IP (the server indexes before it admits),
	// so it is among the channels closed here.
	n, _ := b.s.Close(IP(ip), channel.ReasonBlacklisted)
	return n
}

// Remove accepts connections from ip again and reports whether it was
// blacklisted.
func (b *Blacklist) Remove(ip netip.Addr) bool {
	ip = ip.Unmap()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[ip]; !ok {
		return false
	}
	delete(b.m, ip)
	b.n.Store(int32(len(b.m)))
	return true
}

// Has reports whether connections from ip are refused.
func (b *Blacklist) Has(ip netip.Addr) bool {
	if b.n.Load() == 0 {
		return false
	}
	b.mu.RLock()
	_, ok := b.m[ip.Unmap()]
	b.mu.RUnlock()
	return ok
}

// List returns the blacklisted addresses, sorted: a snapshot.
func (b *Blacklist) List() []netip.Addr {
	b.mu.RLock()
	ips := make([]netip.Addr, 0, len(b.m))
	for ip := range b.m {
		ips = append(ips, ip)
	}
	b.mu.RUnlock()
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips
}
