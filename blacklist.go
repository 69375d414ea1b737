package tio

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tiogo/tio/channel"
)

// blacklist is a server's set of refused IPs (t-io's IpBlacklist). Its zero
// value is empty and ready; while it is empty, checking an IP at accept costs
// one atomic load.
type blacklist struct {
	n  atomic.Int32 // len(m), read without the lock
	mu sync.RWMutex
	m  map[netip.Addr]struct{}
}

// blacklisted reports whether connections from ip are refused.
func (s *Server) blacklisted(ip netip.Addr) bool {
	b := &s.black
	if b.n.Load() == 0 {
		return false
	}
	b.mu.RLock()
	_, ok := b.m[ip.Unmap()]
	b.mu.RUnlock()
	return ok
}

// Blacklist refuses connections from ip from now on: its open connections
// are closed (channel.ReasonBlacklisted) and new ones are closed at accept,
// both counted in Stats().Closed[channel.ReasonBlacklisted]. It returns the
// number of open connections it closed. An IPv4-mapped IPv6 address is the
// same as its IPv4 address.
func (s *Server) Blacklist(ip netip.Addr) int {
	ip = ip.Unmap()
	b := &s.black
	b.mu.Lock()
	if b.m == nil {
		b.m = make(map[netip.Addr]struct{})
	}
	b.m[ip] = struct{}{}
	b.n.Store(int32(len(b.m)))
	b.mu.Unlock()
	// A connection accepted from now on is refused by admit; one accepted
	// before is already indexed by IP (the server indexes before it admits),
	// so it is among the members closed here.
	return s.CloseIP(ip, channel.ReasonBlacklisted)
}

// Unblacklist accepts connections from ip again and reports whether it was
// blacklisted.
func (s *Server) Unblacklist(ip netip.Addr) bool {
	ip = ip.Unmap()
	b := &s.black
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[ip]; !ok {
		return false
	}
	delete(b.m, ip)
	b.n.Store(int32(len(b.m)))
	return true
}

// Blacklisted returns the blacklisted IPs, sorted.
func (s *Server) Blacklisted() []netip.Addr {
	b := &s.black
	b.mu.RLock()
	ips := make([]netip.Addr, 0, len(b.m))
	for ip := range b.m {
		ips = append(ips, ip)
	}
	b.mu.RUnlock()
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips
}

// IsBlacklisted reports whether ip is blacklisted.
func (s *Server) IsBlacklisted(ip netip.Addr) bool { return s.blacklisted(ip) }
