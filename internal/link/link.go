package link

import (
	"io"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/pool"
)

// The loop-side methods below must be called on the connection's event loop
// (from gnet's event handlers), except where noted.

// New creates the link of c, which was just opened. Call it in OnOpen.
func New(c gnet.Conn, id uint64, env *Env) *Link {
	ch := &Link{
		id:      id,
		conn:    c,
		env:     env,
		created: time.Now().UnixNano(),
	}
	ch.setRemote(addrPort(c.RemoteAddr()))
	ch.setLocal(addrPort(c.LocalAddr()))
	return ch
}

// SetCodec sets the codec once it is chosen: the i-th of Env.Codecs, in
// its variant 0 until the decoder picks another (codec.Conn.SetVariant).
func (l *Link) SetCodec(i int) { l.SetDecoder(i, l.env.Codecs[i].NewDecoder()) }

// SetDecoder is SetCodec with a decoder the caller made rather than the
// codec's NewDecoder: a client's, which carries what its connection dials
// (a WebSocket request's host, path and headers).
func (l *Link) SetDecoder(i int, d codec.Decoder) {
	ch := l
	ch.env.Init() // once; an error was reported by the server's Start
	ch.mu.Lock()
	ch.codecIdx = ch.env.base[i] + 1
	ch.mu.Unlock()
	ch.dec = d
}

// Open runs the decoder's opening, if it has one (codec.Opener): the
// first bytes of a client's protocol, queued for the End of the pass. Call
// it on the loop, once the codec is set.
func (l *Link) Open() error {
	if o, ok := l.dec.(codec.Opener); ok {
		return o.Open(l)
	}
	return nil
}

// HasCodec reports whether a codec is set.
func (l *Link) HasCodec() bool { return l.dec != nil }

// Queue returns the channel's queue of tasks for the worker pool,
// allocating it on first use. Call it on the loop.
func (l *Link) Queue() *pool.Queue {
	x := l.ext()
	if x.queue == nil {
		ch := l
		ch.mu.Lock()
		x.queue = new(pool.Queue)
		ch.mu.Unlock()
	}
	return x.queue
}

// Queued returns the channel's queue of tasks for the worker pool, or nil
// if it never had one. Safe from any goroutine.
func (l *Link) Queued() *pool.Queue {
	ch := l
	x := ch.x.Load()
	if x == nil {
		return nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return x.queue
}

// Busy reports whether the channel has packets waiting for or running on
// the worker pool: its next packet must go there too, to keep its order.
// Call it on the loop (which alone sets the queue).
func (l *Link) Busy() bool {
	x := l.x.Load()
	return x != nil && x.queue != nil && x.queue.Busy()
}

// SetPartial records, at the end of a pass, whether a packet has begun to
// arrive and is not yet whole; now is the time (unix ns) or 0 to read the
// clock if it is needed. The packet deadline counts from the pass that
// first found it partial.
func (l *Link) SetPartial(partial bool, now int64) {
	ch := l
	if !partial {
		if ch.partial.Load() != 0 {
			ch.partial.Store(0)
		}
		return
	}
	if ch.partial.Load() != 0 {
		return
	}
	if now == 0 {
		now = time.Now().UnixNano()
	}
	ch.partial.Store(max(1, uint32((now-ch.created)/1e6)))
}

// Begin starts a pass of the event loop over the connection: sends made until
// End are flushed by End rather than by a wake-up. Given the number of bytes
// now buffered, it returns how many arrived since the last pass and, if any
// did, the time (unix ns) it read the clock for them (else 0).
func (l *Link) Begin(buffered int) (fresh int, now int64) {
	ch := l
	ch.mu.Lock()
	ch.bits |= bitInLoop
	ch.mu.Unlock()
	fresh = buffered - int(l.leftover)
	if fresh > 0 {
		now = time.Now().UnixNano()
		ch.cnt.bytesIn.Add(uint64(fresh))
		ch.cnt.reads.Add(1)
		ch.cnt.lastRecv.Store(now)
		for _, t := range [2]*Totals{ch.env.Totals, ch.ipTotals()} {
			if t != nil {
				t.BytesIn.Add(uint64(fresh))
				t.Reads.Add(1)
			}
		}
	}
	return fresh, now
}

// Decode runs the channel's decoder. The caller counts the packets it
// decodes in a pass and gives the count to End.
func (l *Link) Decode(in []byte, p *codec.Packet) (int, bool, error) {
	return l.dec.Decode(l, in, p)
}

// TookReady reports, once, that the handshake completed during this pass.
func (l *Link) TookReady() bool {
	r := l.edges&edgeReady != 0
	l.edges &^= edgeReady
	return r
}

// TookControl reports, once, that the decoder consumed a control message
// since the last call (see Control).
func (l *Link) TookControl() bool {
	r := l.edges&edgeControl != 0
	l.edges &^= edgeControl
	return r
}

// Closing reports whether the channel is closing (checked between packets).
func (l *Link) Closing() bool { return l.flags.Load()&flagClosing != 0 }

// Limit is a token bucket for one connection's inbound packets, kept by its
// event loop.
type Limit struct {
	tokens float64
	last   int64
}

// Allow takes a token for one packet at time now (unix ns), refilling rate
// tokens a second up to burst.
func (b *Limit) Allow(now int64, rate float64, burst int) bool {
	if b.last == 0 {
		b.tokens, b.last = float64(burst), now
	}
	if dt := now - b.last; dt > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(dt)*rate/1e9)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Fail marks the channel closing because of the loop's own finding: a decode
// error (whose farewell the decoder already wrote), a sniffing failure, a
// limit. farewell asks the codec to say goodbye.
func (l *Link) Fail(r Reason, err error, farewell bool) {
	l.mu.Lock()
	l.requestClose(r, err, farewell)
	l.mu.Unlock()
}

// SetIPTotals makes the channel add its traffic to t too (the aggregate of
// its IP address). Call it in OnOpen, before the first pass.
func (l *Link) SetIPTotals(t *Totals) {
	if t != nil {
		l.ext().ipTotals = t
	}
}

// Allow takes a token from the connection's inbound rate limiter (see
// Limit.Allow).
func (l *Link) Allow(now int64, rate float64, burst int) bool {
	return l.ext().rate.Allow(now, rate, burst)
}

// Handled counts n handled packets and the time their handlers took. Safe
// from any goroutine.
func (l *Link) Handled(n int, cost time.Duration) {
	ch := l
	ch.cnt.handled.Add(uint64(n))
	for _, t := range [2]*Totals{ch.env.Totals, ch.ipTotals()} {
		if t != nil {
			t.Handled.Add(uint64(n))
			t.HandleNanos.Add(uint64(cost))
		}
	}
}

// DecodeError counts a connection closed for bad input.
func (l *Link) DecodeError() {
	for _, t := range [2]*Totals{l.env.Totals, l.ipTotals()} {
		if t != nil {
			t.DecodeErrors.Add(1)
		}
	}
}

// count adds a pass's packets and written bytes to the counters; now is the
// time of the write (0: read the clock if needed).
func (l *Link) count(in, sends uint64, written int, now int64) {
	ch := l
	if in > 0 {
		ch.cnt.packetsIn.Add(in)
	}
	if sends > 0 {
		ch.cnt.packetsOut.Add(sends)
	}
	if written > 0 {
		if now == 0 {
			now = time.Now().UnixNano()
		}
		ch.cnt.bytesOut.Add(uint64(written))
		ch.cnt.lastSent.Store(now)
	}
	if in|sends|uint64(written) == 0 {
		return
	}
	for _, t := range [2]*Totals{ch.env.Totals, ch.ipTotals()} {
		if t != nil {
			if in > 0 {
				t.PacketsIn.Add(in)
			}
			if sends > 0 {
				t.PacketsOut.Add(sends)
			}
			if written > 0 {
				t.BytesOut.Add(uint64(written))
			}
		}
	}
}

// Wake makes the loop run a pass over the connection soon (to flush, or to
// check a draining close). Safe from any goroutine.
func (l *Link) Wake() { _ = l.conn.Wake(nil) }

// drains reports whether a close for reason r first waits for queued bytes to
// reach the peer: closes the application asked for, shutdown, and a peer's
// protocol close (its answer goes after the bytes queued before it: an echo
// of a large message, say) do; closes for a fault (a dead peer, a slow one,
// bad input) do not.
func drains(r Reason) bool {
	return r == ReasonClosedByApp || r == ReasonServerShutdown || r == ReasonClosedByPeer
}

// End finishes a pass: it says goodbye if the channel is closing, writes
// everything queued in one write, and tells what comes next. leftover is the
// number of bytes still buffered after the pass, decoded the number of
// packets Decode returned during it; now is the current time if the caller
// has just read the clock (0 otherwise).
//
// A channel closed by the application or by shutdown drains: End reports
// Draining while gnet still holds bytes for the peer (until
// Env.DrainTimeout), and the caller must Wake the link later to check again.
func (l *Link) End(leftover, decoded int, now int64) Next {
	ch := l
	l.leftover = int32(leftover)
	ch.mu.Lock()
	closing := ch.state == stClosing
	farewell := closing && ch.bits&bitFarewell != 0
	ch.bits &^= bitFarewell
	reason := ch.reason
	text := reason.Text()
	if x := ch.x.Load(); x != nil && x.closeText != "" {
		text = x.closeText
	}
	ch.mu.Unlock()
	if farewell && ch.dec != nil {
		if f, ok := ch.dec.(codec.Farewell); ok {
			var why error = reason.Farewell()
			if text != "" {
				why = &codec.FarewellText{Err: why, Text: text}
			}
			sayFarewell(f, ch, why)
			if lg, ok := ch.dec.(codec.Lingerer); ok && lg.Linger() && ch.env.LingerTimeout > 0 {
				ch.ext().lingerEnd = time.Now().UnixNano() + int64(ch.env.LingerTimeout)
			}
		}
	}
	ch.mu.Lock()
	buf, sends, shared := ch.out, uint64(ch.sends), ch.bits&bitShared != 0
	ch.out, ch.sends = nil, 0
	ch.bits &^= bitShared
	var waiters []func(error)
	if x := ch.x.Load(); x != nil {
		waiters, x.waiters = x.waiters, nil
	}
	ch.bits &^= bitInLoop | bitWoken
	// A close requested since the first look at the state (another
	// goroutine's, during this pass) saw the loop inside the pass and did
	// not wake it: wake it now, or the close waits for the peer's next
	// bytes — for good, from a peer waiting for the close.
	late := !closing && ch.state == stClosing
	if late {
		ch.bits |= bitWoken
	}
	ch.mu.Unlock()
	if late {
		_ = ch.conn.Wake(nil)
	}
	var werr error
	written := 0
	t := l.loopTransport()
	if buf != nil || t != nil {
		var p []byte
		if buf != nil {
			p = *buf
		}
		// Through TLS, what went out (the records) is counted, and so are
		// the transport's own bytes (its handshake, its alerts).
		written, werr = l.writeOut(t, p)
		if werr != nil {
			closing = true
		}
		if f := ch.env.OnSent; f != nil && written > 0 {
			f(ch, written)
		}
		if buf != nil {
			l.env.releaseOut(buf, shared)
		}
	}
	l.count(uint64(decoded), sends, written, now)
	for _, done := range waiters {
		done(werr)
	}
	if !closing {
		if written > 0 {
			ch.backlog.Store(int64(ch.conn.OutboundBuffered()))
		}
		return Keep
	}
	if werr != nil {
		return Close
	}
	next := l.closeNext(reason)
	if next == Close && t != nil {
		// The transport's farewell (TLS close_notify) goes last; gnet
		// flushes what it can of it as it closes.
		_ = t.Close()
		if t.Pending() > 0 {
			_, _ = t.WriteTo(l.conn)
		}
	}
	return next
}

// closeNext tells whether a closing link closes now or keeps draining.
func (l *Link) closeNext(reason Reason) Next {
	ch := l
	x := ch.x.Load()
	if drains(reason) && ch.env.DrainTimeout > 0 && ch.conn.OutboundBuffered() > 0 {
		now := time.Now().UnixNano()
		x = ch.ext()
		if x.drainEnd == 0 {
			x.drainEnd = now + int64(ch.env.DrainTimeout)
		}
		if now < x.drainEnd {
			return Draining
		}
	}
	if x != nil && x.lingerEnd != 0 && !x.answered && time.Now().UnixNano() < x.lingerEnd {
		return Draining // waiting for the peer's close, to close TCP after it
	}
	return Close
}

// Lingering reports whether the closing link waits for the peer's answer
// to its farewell. Call it on the loop.
func (l *Link) Lingering() bool {
	x := l.x.Load()
	return x != nil && x.lingerEnd != 0 && !x.answered
}

// AfterFarewell reads, on a closing link, the bytes that ReadClosing left
// in c's inbound buffer for after the farewell, which the End that
// returned next may have just sent: they are walked by ReadAnswer, or
// discarded if the link does not linger. It returns what to do next: next,
// or End's answer again if they held the peer's answer. Call it on the
// loop, after End.
func (l *Link) AfterFarewell(c gnet.Conn, next Next, now int64) Next {
	raw, _ := c.Peek(-1)
	if !l.Lingering() {
		_, _ = c.Discard(len(raw))
		return next
	}
	n := l.ReadAnswer(raw)
	if n > 0 {
		_, _ = c.Discard(n) // not 0: gnet's Discard(0) drops everything
	}
	if l.Lingering() {
		return next
	}
	return l.End(len(raw)-n, 0, now) // answered: closes
}

// maxHeldLingering bounds the bytes a lingering link leaves in its inbound
// buffer between reads (the rest of a TLS record, a frame header): a peer
// that makes it hold more ends the wait.
const maxHeldLingering = 32 << 10

// ReadAnswer reads what the peer sent after the farewell, raw from the
// socket (ciphertext through the transport), and returns how many bytes
// of raw are done with; the rest stays in the inbound buffer for the next
// read. Its plaintext goes to the decoder (codec.Answerer), which skips
// it; the wait is over once the decoder has seen the peer's answer, at the
// first byte for a decoder that cannot tell, when the transport ends, or
// when more than maxHeldLingering bytes would be left. Call it on the
// loop, while Lingering.
func (l *Link) ReadAnswer(raw []byte) int {
	x := l.ext()
	t := x.transport
	if t == nil {
		return l.answer(raw)
	}
	taken := 0
	for !x.answered && taken < len(raw) {
		n, err := t.Input(raw[taken:])
		taken += n
		if plain := t.Plaintext(); len(plain) > 0 {
			t.Discard(l.answer(plain))
		}
		if err != nil || n == 0 {
			if err != nil {
				x.answered = true // close_notify, or a failed session: nothing to wait for
			}
			break
		}
	}
	if x.answered || len(raw)-taken > maxHeldLingering {
		x.answered = true
		return len(raw)
	}
	return taken
}

// ReadClosing returns how many bytes of raw, read from the socket, a
// closing link is done with: while it lingers, ReadAnswer's; while its
// farewell is still to go out (the next End sends it) and its decoder can
// walk what comes after it (codec.Answerer), none: they are for
// ReadAnswer once the farewell is out, so that it starts at a frame's
// beginning and a TLS session sees every record; otherwise all (a closing
// link reads no more). Call it on the loop.
func (l *Link) ReadClosing(raw []byte) int {
	if l.Lingering() {
		return l.ReadAnswer(raw)
	}
	if _, ok := l.dec.(codec.Answerer); ok {
		l.mu.Lock()
		pending := l.bits&bitFarewell != 0
		l.mu.Unlock()
		if pending {
			return 0
		}
	}
	return len(raw)
}

// answer gives plaintext from the lingering peer to the decoder and
// returns how many bytes of b it consumed.
func (l *Link) answer(b []byte) int {
	if a, ok := l.dec.(codec.Answerer); ok {
		n, answered := a.Answer(b)
		if answered {
			l.ext().answered = true
		}
		return n
	}
	l.ext().answered = true
	return len(b)
}

// Next is what End says comes after a pass.
type Next uint8

const (
	// Keep: the connection stays open.
	Keep Next = iota
	// Close: close the connection now.
	Close
	// Draining: the connection is closing but gnet still holds bytes for
	// the peer; Wake the link later so that End can check again.
	Draining
)

// Closed records that the connection is closed. Call it in OnClose; err is
// gnet's error. It returns the final reason.
func (l *Link) OnClosed(err error) Reason {
	ch := l
	ch.flags.And(^uint32(flagReady))
	ch.mu.Lock()
	if ch.state == stOpen {
		ch.reason = ReasonClosedByPeer
		if err != nil && !isEOF(err) {
			ch.reason = ReasonIOError
			ch.extLocked().closeErr = err
		}
	}
	ch.state = stClosed
	ch.flags.Or(flagClosing)
	if x := ch.x.Load(); x != nil && x.transport != nil {
		_ = x.transport.Close() // a handshake under way is abandoned
		_, _ = x.transport.WriteTo(io.Discard)
	}
	if ch.out != nil {
		ch.env.releaseOut(ch.out, ch.bits&bitShared != 0)
		ch.out = nil
		ch.bits &^= bitShared
	}
	var waiters []func(error)
	if x := ch.x.Load(); x != nil {
		waiters, x.waiters = x.waiters, nil
	}
	r := ch.reason
	ch.mu.Unlock()
	for _, done := range waiters {
		done(ErrClosed)
	}
	return r
}

// CloseFor closes the channel for reason r, like Channel.Close, and reports
// whether this call closed it (false: it was closing or closed already).
// Safe from any goroutine.
func (l *Link) CloseFor(r Reason) bool {
	ch := l
	ch.mu.Lock()
	if ch.state != stOpen {
		ch.mu.Unlock()
		return false
	}
	ch.requestClose(r, nil, true)
	ch.unlockAndWake()
	return true
}

// DecoderPartial reports whether the channel's decoder holds a packet that
// has begun and is not yet whole (see codec.Partial). Call it on the loop.
func (l *Link) DecoderPartial() bool {
	p, ok := l.dec.(codec.Partial)
	return ok && p.Partial()
}

// sayFarewell runs the decoder's farewell, which must not take the event
// loop down with it: after a panic in the decoder its state may be broken,
// and a panicking farewell is a close without one.
func sayFarewell(f codec.Farewell, c codec.Conn, why error) {
	defer func() { _ = recover() }()
	f.Farewell(c, why)
}

// ReleaseDecoder tells the decoder that the packets it delivered have been
// handled (codec.Releaser), if it wants to know. Called on the loop.
func (l *Link) ReleaseDecoder() {
	if r, ok := l.dec.(codec.Releaser); ok {
		r.Release()
	}
}
