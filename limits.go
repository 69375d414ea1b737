package tio

import (
	"net/netip"
	"sync"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/link"
)

// perIP counts open connections by IP address, when a per-IP limit is set.
type perIP struct {
	mu sync.Mutex
	m  map[netip.Addr]int32
}

// admit decides at accept whether a new connection may stay, returning the
// reason to refuse it (ReasonNone to admit). It runs on the event loop.
// The checks by address wait, for a connection from a trusted proxy, for
// its PROXY header (admitIP).
func (s *Server) admit(ch *channel.Channel, byIP bool) link.Reason {
	switch {
	case s.closing.Load():
		return link.ReasonServerShutdown
	case s.cfg.limits.MaxConnections > 0 && s.open.Load() > int64(s.cfg.limits.MaxConnections):
		return link.ReasonTooManyConnections
	}
	if !byIP {
		return link.ReasonNone
	}
	return s.admitIP(ch)
}

// admitIP applies the blacklist and the per-IP limit to ch's address.
func (s *Server) admitIP(ch *channel.Channel) link.Reason {
	ip := ch.RemoteAddr().Addr()
	if s.black.Has(ip) {
		return link.ReasonBlacklisted
	}
	if max := s.cfg.limits.MaxConnectionsPerIP; max > 0 {
		s.ips.mu.Lock()
		defer s.ips.mu.Unlock()
		if s.ips.m[ip] >= int32(max) {
			return link.ReasonTooManyConnections
		}
		s.ips.m[ip]++
		ch.SetValue(countedIP{}, true)
	}
	return link.ReasonNone
}

type countedIP struct{}

// release undoes admit's accounting when a connection closes.
func (s *Server) release(ch *channel.Channel) {
	s.open.Add(-1)
	if s.cfg.limits.MaxConnectionsPerIP > 0 && ch.Value(countedIP{}) != nil {
		ip := ch.RemoteAddr().Addr()
		s.ips.mu.Lock()
		if s.ips.m[ip]--; s.ips.m[ip] <= 0 {
			delete(s.ips.m, ip)
		}
		s.ips.mu.Unlock()
	}
}
