package tio

import "github.com/tiogo/tio/channel"

// admit decides at accept whether a new connection may stay, returning the
// reason to refuse it (ReasonNone to admit).
func (s *Server) admit(ch *channel.Channel) channel.Reason {
	switch {
	case s.closing.Load():
		return channel.ReasonServerShutdown
	case s.blacklisted(ch.RemoteAddr().Addr()):
		return channel.ReasonBlacklisted
	}
	return channel.ReasonNone
}
