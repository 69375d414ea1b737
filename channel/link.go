package channel

import (
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
)

// Link is the event-loop side of a channel. Its methods must be called on the
// connection's event loop (from gnet's event handlers), except where noted.
type Link struct {
	ch       *Channel
	leftover int // bytes left buffered after the last pass
}

// NewLink creates a channel for c, which was just opened. Call it in OnOpen.
func NewLink(c gnet.Conn, id uint64, env *Env) *Link {
	ch := &Channel{
		id:      id,
		conn:    c,
		env:     env,
		remote:  addrPort(c.RemoteAddr()),
		local:   addrPort(c.LocalAddr()),
		created: time.Now().UnixNano(),
	}
	return &Link{ch: ch}
}

// Channel returns the channel. Safe from any goroutine.
func (l *Link) Channel() *Channel { return l.ch }

// SetCodec sets the codec once it is chosen.
func (l *Link) SetCodec(cd codec.Codec) {
	l.ch.mu.Lock()
	l.ch.codec = cd
	l.ch.mu.Unlock()
	l.ch.dec = cd.NewDecoder()
}

// HasCodec reports whether a codec is set.
func (l *Link) HasCodec() bool { return l.ch.dec != nil }

// Pending counts the channel's packets handed to a worker pool and not yet
// handled. Safe from any goroutine.
func (l *Link) Pending() *atomic.Int32 { return &l.ch.pending }

// Begin starts a pass of the event loop over the connection: sends made until
// End are flushed by End rather than by a wake-up. It returns the bytes that
// arrived since the last pass, given the number now buffered.
func (l *Link) Begin(buffered int) (fresh int) {
	ch := l.ch
	ch.mu.Lock()
	ch.inLoop = true
	ch.mu.Unlock()
	fresh = buffered - l.leftover
	if fresh > 0 {
		ch.cnt.bytesIn.Add(uint64(fresh))
		ch.cnt.reads.Add(1)
		ch.cnt.lastRecv.Store(time.Now().UnixNano())
	}
	return fresh
}

// Decode runs the channel's decoder. A decoded packet is counted.
func (l *Link) Decode(in []byte, p *codec.Packet) (int, bool, error) {
	n, ok, err := l.ch.dec.Decode(l.ch, in, p)
	if ok {
		l.ch.cnt.packetsIn.Add(1)
	}
	return n, ok, err
}

// TookReady reports, once, that the handshake completed during this pass.
func (l *Link) TookReady() bool {
	r := l.ch.readyEdge
	l.ch.readyEdge = false
	return r
}

// Closing reports whether the channel is closing (checked between packets).
func (l *Link) Closing() bool { return l.ch.closing.Load() }

// Fail marks the channel closing because of the loop's own finding: a decode
// error (whose farewell the decoder already wrote), a sniffing failure, a
// limit. farewell asks the codec to say goodbye.
func (l *Link) Fail(r Reason, err error, farewell bool) {
	l.ch.mu.Lock()
	l.ch.requestClose(r, err, farewell)
	l.ch.mu.Unlock()
}

// Handled counts a handled packet.
func (l *Link) Handled() { l.ch.cnt.handled.Add(1) }

// End finishes a pass: it says goodbye if the channel is closing, writes
// everything queued in one write, and reports whether the connection must now
// be closed. leftover is the number of bytes still buffered after the pass.
func (l *Link) End(leftover int) (closeNow bool) {
	ch := l.ch
	l.leftover = leftover
	ch.mu.Lock()
	closing := ch.state == stClosing
	farewell := closing && ch.farewell
	ch.farewell = false
	ch.mu.Unlock()
	if farewell && ch.dec != nil {
		if f, ok := ch.dec.(codec.Farewell); ok {
			f.Farewell(ch, ch.reason.Farewell())
		}
	}
	ch.mu.Lock()
	buf, waiters := ch.out, ch.waiters
	ch.out, ch.waiters = nil, nil
	ch.inLoop, ch.woken = false, false
	ch.mu.Unlock()
	var werr error
	if buf != nil {
		if n := len(*buf); n > 0 {
			if _, werr = ch.conn.Write(*buf); werr == nil {
				ch.cnt.bytesOut.Add(uint64(n))
				ch.cnt.lastSent.Store(time.Now().UnixNano())
				if f := ch.env.OnSent; f != nil {
					f(ch, n)
				}
				if !closing {
					ch.backlog.Store(int64(ch.conn.OutboundBuffered()))
				}
			} else {
				closing = true
			}
		}
		if cap(*buf) <= maxPooledBuffer {
			*buf = (*buf)[:0]
			bufPool.Put(buf)
		}
	}
	for _, done := range waiters {
		done(werr)
	}
	return closing
}

// Closed records that the connection is closed. Call it in OnClose; err is
// gnet's error. It returns the final reason.
func (l *Link) Closed(err error) Reason {
	ch := l.ch
	ch.ready.Store(false)
	ch.mu.Lock()
	if ch.state == stOpen {
		ch.reason = ReasonClosedByPeer
		if err != nil && !isEOF(err) {
			ch.reason, ch.closeErr = ReasonIOError, err
		}
	}
	ch.state = stClosed
	ch.closing.Store(true)
	if ch.out != nil {
		*ch.out = (*ch.out)[:0]
		bufPool.Put(ch.out)
		ch.out = nil
	}
	waiters, r := ch.waiters, ch.reason
	ch.waiters = nil
	ch.mu.Unlock()
	for _, done := range waiters {
		done(ErrClosed)
	}
	return r
}
