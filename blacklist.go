package tio

import "net/netip"

// blacklisted reports whether connections from ip are refused.
func (s *Server) blacklisted(ip netip.Addr) bool { return false }
