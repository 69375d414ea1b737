package tio

import (
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/link"
)

// wheelTick picks the heartbeat wheel's resolution: a tenth of the shortest
// timeout in use, between 5 ms and 1 s.
func wheelTick(cfg config) time.Duration {
	tick := time.Second
	for _, d := range []time.Duration{cfg.heartbeat, cfg.handshake, cfg.keepalive, cfg.packetTimeout} {
		if d > 0 {
			tick = min(tick, d/10)
		}
	}
	return max(tick, 5*time.Millisecond)
}

// period returns the shortest of the heartbeat timeout, the keepalive
// interval and half the packet timeout in use, or zero if none is.
func (s *Server) period() time.Duration {
	var p time.Duration
	for _, d := range []time.Duration{s.cfg.heartbeat, s.cfg.keepalive, s.cfg.packetTimeout / 2} {
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

// checkID is the heartbeat wheel's check of the channel with the given id.
// The wheel holds ids, not channels, so that a closed channel is garbage at
// once: its id finds nothing and drops out of the wheel.
func (s *Server) checkID(id uint64, now time.Time) time.Time {
	ch := s.groups.Channel(id)
	if ch == nil {
		return time.Time{}
	}
	return s.check(ch, now)
}

// check is the heartbeat wheel's check of one connection; it runs on the
// server's ticker goroutine, off the event loops, and uses only the
// channel's concurrency-safe methods. It returns when to look again.
func (s *Server) check(ch *channel.Channel, now time.Time) time.Time {
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
			if f := s.cfg.onHBTimeout; f != nil && s.keepOnTimeout(f, ch) {
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
	if pt := s.cfg.packetTimeout; pt > 0 {
		// A packet under way must complete within pt; one that begins
		// after this check is seen at the next, within pt/2.
		due := now.Add(pt / 2)
		if d, ok := (*link.Link)(ch).PartialFor(now); ok {
			if d >= pt {
				ch.Close(channel.ReasonPacketTimeout)
				return time.Time{}
			}
			due = now.Add(pt - d)
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
	if s.cfg.slowHandler > 0 {
		s.pool.Scan(now, s.cfg.slowHandler, s.slowHandler)
	}
	return s.wheel.Tick(), gnet.None
}

// slowHandler counts a handler on the pool that has run past the threshold
// and logs it, at most once every slowLogEvery.
func (s *Server) slowHandler(label uint32, running time.Duration) {
	s.stats.SlowHandler()
	now := time.Now().UnixNano()
	last := s.slowLog.Load()
	if now-last < int64(slowLogEvery) || !s.slowLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("tio: a handler is running long: it holds a worker and its connection's packets",
		"type", label, "running", running.Round(time.Millisecond), "threshold", s.cfg.slowHandler,
		"slow_handlers_total", s.stats.Snapshot().SlowHandlers)
}

// slowLogEvery rate-limits the slow-handler warning.
const slowLogEvery = 10 * time.Second

// keepOnTimeout runs the heartbeat-timeout hook on the ticker goroutine; a
// panic in it closes the connection like any hook's.
func (s *Server) keepOnTimeout(f func(*channel.Channel) bool, ch *channel.Channel) (keep bool) {
	defer s.recoverHook((*link.Link)(ch), "WithHeartbeat's onTimeout")
	return f(ch)
}
