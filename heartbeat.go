package tio

import (
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/channel"
)

// wheelTick picks the heartbeat wheel's resolution: a tenth of the shortest
// timeout in use, between 5 ms and 1 s.
func wheelTick(cfg config) time.Duration {
	tick := time.Second
	for _, d := range []time.Duration{cfg.heartbeat, cfg.handshake, cfg.keepalive} {
		if d > 0 {
			tick = min(tick, d/10)
		}
	}
	return max(tick, 5*time.Millisecond)
}

// period returns the shortest of the heartbeat timeout and the keepalive
// interval in use, or zero if neither is.
func (s *Server) period() time.Duration {
	var p time.Duration
	for _, d := range []time.Duration{s.cfg.heartbeat, s.cfg.keepalive} {
		if d > 0 && (p == 0 || d < p) {
			p = d
		}
	}
	return p
}

// firstCheck returns when a new connection is first examined: at its
// handshake deadline or after one heartbeat period, whichever comes first.
func (s *Server) firstCheck(ch *channel.Channel) (time.Time, bool) {
	p := s.period()
	if h := s.cfg.handshake; h > 0 && (p == 0 || h < p) {
		p = h
	}
	if p == 0 {
		return time.Time{}, false
	}
	return ch.Created().Add(p), true
}

// check is the heartbeat wheel's check of one connection; it runs on the
// server's ticker goroutine, off the event loops, and uses only the
// channel's concurrency-safe methods. It returns when to look again.
func (s *Server) check(l *channel.Link, now time.Time) time.Time {
	ch := l.Channel()
	if ch.Closed() {
		return time.Time{}
	}
	if !ch.IsReady() {
		// Still handshaking: look again at the handshake deadline, or after
		// one heartbeat period if that is sooner (the handshake may end
		// meanwhile, and the heartbeat clock then runs).
		var next time.Time
		if p := s.period(); p > 0 {
			next = now.Add(p)
		}
		if h := s.cfg.handshake; h > 0 {
			deadline := ch.Created().Add(h)
			if !now.Before(deadline) {
				ch.Close(channel.ReasonHandshakeTimeout)
				return time.Time{}
			}
			if next.IsZero() || deadline.Before(next) {
				next = deadline
			}
		}
		return next
	}
	timeout := s.cfg.heartbeat
	if d := ch.HeartbeatTimeout(); d > 0 {
		timeout = d
	}
	last := ch.LastReceived()
	var next time.Time
	if timeout > 0 {
		deadline := last.Add(timeout)
		if !now.Before(deadline) {
			if f := s.cfg.onHBTimeout; f != nil && f(ch) {
				return now.Add(timeout)
			}
			ch.Close(channel.ReasonHeartbeatTimeout)
			return time.Time{}
		}
		next = deadline
	}
	if k := s.cfg.keepalive; k > 0 {
		due := last.Add(k)
		if pinged := ch.LastHeartbeatSent(); pinged.After(last) {
			due = pinged.Add(k)
		}
		if !now.Before(due) {
			_ = ch.SendHeartbeat()
			due = now.Add(k)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// onTick implements gnet.EventHandler.OnTick. It runs on gnet's ticker goroutine:
// it advances the heartbeat wheel and nudges draining connections.
func (s *Server) onTick() (time.Duration, gnet.Action) {
	now := time.Now()
	s.wheel.Advance(now)
	s.drainMu.Lock()
	for l := range s.draining {
		l.Wake()
	}
	s.drainMu.Unlock()
	return s.wheel.Tick(), gnet.None
}
