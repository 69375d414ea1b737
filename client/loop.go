package client

// The client's side of gnet: its connections are driven exactly as the
// server drives its own — internal/link's Begin, Decode, End and OnClosed
// from gnet's callbacks, a decoder guarded against panics, handlers inline
// or on the pool in each connection's order — with a client's differences:
// the connection speaks first (codec.Opener), replies are matched to Calls
// before any handler sees them, and the timing wheel sends heartbeats and
// gives up on servers that do not answer.

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/internal/goid"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/pool"
	"github.com/tiogo/tio/internal/tlsconn"
)

// events is the client as gnet sees it (its callbacks stay off the API).
type events struct {
	gnet.BuiltinEventEngine
	c *Client
}

func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action)    { return e.c.onOpen(gc) }
func (e *events) OnClose(gc gnet.Conn, err error) gnet.Action  { return e.c.onClose(gc, err) }
func (e *events) OnTraffic(gc gnet.Conn) gnet.Action           { return e.c.onTraffic(gc) }
func (e *events) OnTick() (delay time.Duration, a gnet.Action) { return e.c.onTick() }

// onOpen runs on the loop that took the connection in, before
// EnrollContext returns: it makes the link and writes the protocol's
// opening.
func (c *Client) onOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s, ok := gc.Context().(*session)
	if !ok {
		return nil, gnet.Close
	}
	c.env.NoteLoop(gc.EventLoop()) // so that blocking calls can tell they are on a loop
	cn := s.cn
	l := link.New(gc, link.MakeID(c.nextID.Add(1), gc.Fd()), &c.env)
	s.l = l
	if cn.dst.codec == codecWebSocket {
		l.SetDecoder(codecWebSocket, c.ws.NewClientDecoder(cn.dst.req))
	} else {
		l.SetCodec(codecBinary)
	}
	c.mu.Lock()
	c.live[l.ID()] = s
	c.mu.Unlock()
	cn.mu.Lock()
	closing := cn.closing
	if !closing {
		cn.cur.Store(s)
	}
	cn.mu.Unlock()
	if closing {
		l.Fail(link.ReasonClosedByApp, nil, false)
		return nil, gnet.Close
	}
	c.wheel.Add(l.ID(), time.Now().Add(min(cn.cfg.handshake, cn.firstCheck())))
	l.Begin(0)
	if cn.dst.tls != nil {
		// TLS first: the protocol's opening goes out once its handshake
		// is done (decryptAndDecode).
		c.startTLS(l, gc, cn)
	} else if err := c.open(l); err != nil {
		l.Fail(link.ReasonHandshakeFailed, err, false)
	}
	if l.End(0, 0, 0) == link.Close {
		return nil, gnet.Close
	}
	return nil, gnet.None
}

// open runs the decoder's opening, turning a panic into an error.
func (c *Client) open(l *link.Link) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{v: v, stack: debug.Stack()}
		}
	}()
	return l.Open()
}

// onClose runs on the loop when a connection closed.
func (c *Client) onClose(gc gnet.Conn, err error) gnet.Action {
	s, ok := gc.Context().(*session)
	if !ok || s.l == nil {
		return gnet.None
	}
	l := s.l
	if t := l.Transport(); t != nil && !l.Closing() && !l.SecuredOnce() {
		c.closedHandshaking(l, t.(*tlsconn.Session), err)
	}
	r := l.OnClosed(err)
	_, cerr := l.Reason()
	c.mu.Lock()
	delete(c.live, l.ID())
	delete(c.draining, l)
	c.mu.Unlock()
	cause := fmt.Errorf("%w (%s)", ErrConnLost, r)
	if cerr != nil {
		cause = fmt.Errorf("%w (%s): %w", ErrConnLost, r, cerr)
	}
	callErr := cause
	if r == link.ReasonClosedByApp {
		callErr = ErrClosed
	}
	s.failCalls(callErr, &c.stats.callsLost)
	s.cn.lost(s, r, cause)
	return gnet.None
}

// onTraffic decodes every whole packet buffered for the connection (its
// TLS records decrypted first), matches replies to Calls, dispatches the
// other packets, and flushes what was queued, in one write.
func (c *Client) onTraffic(gc gnet.Conn) gnet.Action {
	s := gc.Context().(*session)
	l := s.l
	buf, _ := gc.Peek(-1)
	l.Begin(len(buf))
	var consumed, decoded, handled int
	if t := l.Transport(); t != nil {
		consumed, decoded, handled = c.decryptAndDecode(s, t.(*tlsconn.Session), buf)
	} else if len(buf) > 0 {
		consumed, decoded, handled = c.decodeAll(s, buf)
	}
	if handled > 0 {
		l.Handled(handled, 0)
	}
	if decoded > 0 {
		c.releaseDecoder(l) // the packets' bodies are no longer needed
	}
	if l.Closing() {
		// A closing connection reads no more, but what the server sent
		// before it read our close, then its answer, are walked as they
		// come (the decoder holds none of it): Link.ReadClosing.
		consumed += l.ReadClosing(buf[consumed:])
	}
	if consumed > 0 {
		_, _ = gc.Discard(consumed)
	}
	next := l.End(len(buf)-consumed, decoded, 0)
	if consumed < len(buf) && next != link.Close && l.Closing() {
		next = l.AfterFarewell(gc, next, 0)
	}
	switch next {
	case link.Close:
		return gnet.Close
	case link.Draining:
		c.mu.Lock()
		c.draining[l] = struct{}{}
		c.mu.Unlock()
	}
	return gnet.None
}

// decodeAll decodes every whole packet of buf and dispatches each. It
// returns the bytes consumed, the packets decoded and those handled
// inline.
func (c *Client) decodeAll(s *session, buf []byte) (consumed, decoded, handled int) {
	l := s.l
	p := c.packets.Get().(*codec.Packet)
	defer func() { *p = codec.Packet{}; c.packets.Put(p) }()
	for consumed < len(buf) && !l.Closing() {
		n, ok, err := c.decode(l, buf[consumed:], p)
		consumed += n
		if err != nil {
			c.decodeFailed(l, err)
			break
		}
		if l.TookReady() {
			c.ready(s)
		}
		l.TookControl()
		if ok {
			decoded++
			if c.dispatch(s, p) {
				handled++
			}
		} else if n == 0 {
			break
		}
	}
	return consumed, decoded, handled
}

// startTLS gives a new connection its TLS session, whose handshake starts
// on the engine's pool at once. Called on the loop, in onOpen.
func (c *Client) startTLS(l *link.Link, gc gnet.Conn, cn *Conn) {
	deadline := l.Created().Add(cn.cfg.handshake)
	sess, err := c.tls.NewClientSession(cn.dst.tls, deadline, func() { _ = gc.Wake(nil) }, gc.LocalAddr(), gc.RemoteAddr())
	if err != nil {
		c.tlsFailed(l, err)
		return
	}
	l.SetTransport(sess)
}

// closedHandshaking records why a connection closed during its TLS
// handshake: the session's error if it has one — the server hung up after
// an alert of the client's (a certificate it does not trust) before a pass
// saw the failure — or else the close itself (a server that does not speak
// TLS hangs up on a ClientHello).
func (c *Client) closedHandshaking(l *link.Link, sess *tlsconn.Session, err error) {
	if serr := sess.Err(); serr != nil && !errors.Is(serr, io.EOF) {
		c.tlsFailed(l, serr)
		return
	}
	if err == nil || errors.Is(err, io.EOF) {
		l.Fail(link.ReasonClosedByPeer, fmt.Errorf("%w: the server closed the connection during the handshake", ErrTLS), false)
		return
	}
	l.Fail(link.ReasonIOError, fmt.Errorf("%w: during the handshake: %w", ErrTLS, err), false)
}

// maxHeldDuringHandshake bounds the bytes a server may send during the TLS
// handshake beyond what the session takes (tlsconn.Options.MaxHandshakeBytes):
// gnet's buffer would hold the rest.
const maxHeldDuringHandshake = 64 << 10

// decryptAndDecode runs a TLS connection's pass: it feeds the ciphertext
// buffered for it to its session, one batch of records at a time, opens the
// protocol once the handshake is done, and decodes the plaintext. It
// returns the ciphertext bytes taken, the packets decoded and those
// handled inline.
func (c *Client) decryptAndDecode(s *session, sess *tlsconn.Session, raw []byte) (taken, decoded, handled int) {
	l := s.l
	for !l.Closing() {
		n, err := sess.Input(raw[taken:])
		taken += n
		if l.Secured(!l.SecuredOnce() && sess.Established()) {
			// The protocol's opening (the upgrade request, the binary
			// handshake byte) is the first plaintext to go out.
			if oerr := c.open(l); oerr != nil {
				l.Fail(link.ReasonHandshakeFailed, oerr, false)
				break
			}
		}
		if plain := sess.Plaintext(); len(plain) > 0 && l.SecuredOnce() {
			m, d, h := c.decodeAll(s, plain)
			decoded, handled = decoded+d, handled+h
			sess.Discard(m)
		}
		if err != nil {
			c.tlsFailed(l, err)
			break
		}
		if n == 0 || taken == len(raw) {
			break
		}
	}
	if !l.Closing() && !l.SecuredOnce() && len(raw)-taken > maxHeldDuringHandshake {
		l.Fail(link.ReasonTooBig, fmt.Errorf("%w: over %d bytes from the server during the TLS handshake", ErrTLS, maxHeldDuringHandshake), false)
	}
	return taken, decoded, handled
}

// tlsFailed closes a connection whose TLS session returned err, with the
// close reason it stands for; the connection's error wraps ErrTLS and err.
func (c *Client) tlsFailed(l *link.Link, err error) {
	r := link.ReasonProtocolError
	switch {
	case errors.Is(err, io.EOF): // close_notify
		l.Fail(link.ReasonClosedByPeer, nil, false)
		return
	case errors.Is(err, tlsconn.ErrClosed) && l.Closing():
		return // closed by us
	case errors.Is(err, tlsconn.ErrHandshakeTimeout):
		if !l.Closed() {
			c.stats.handshakeTimeouts.Add(1)
		}
		r = link.ReasonHandshakeTimeout
	case errors.Is(err, tlsconn.ErrBusy):
		r = link.ReasonOverloaded
	case errors.Is(err, tlsconn.ErrAlert):
		r = link.ReasonClosedByPeer
	case errors.Is(err, tlsconn.ErrRecordTooLarge), errors.Is(err, tlsconn.ErrHandshakeOverflow):
		r = link.ReasonTooBig
	case !l.SecuredOnce():
		r = link.ReasonHandshakeFailed
	}
	l.Fail(r, fmt.Errorf("%w: %w", ErrTLS, err), false)
}

// ready runs on the loop when the handshake completed: the OnConnected
// hook goes to the pool, in the connection's queue (so that packets that
// arrive meanwhile wait for it), and the queued sends follow it.
func (c *Client) ready(s *session) {
	s.ready = true
	cn := s.cn
	cn.mu.Lock()
	cn.attempts, cn.waits = 0, 0
	reconnect := cn.connected
	cn.mu.Unlock()
	if cn.cfg.onConnected == nil {
		cn.up(s, reconnect)
		return
	}
	err := c.pool.Submit(s.l.Queue(), pool.Task{Run: func() { c.runOnConnected(s, reconnect) }})
	if err != nil {
		s.l.Fail(link.ReasonOverloaded, err, true)
	}
}

// runOnConnected runs the hook on the pool, then finishes the connect.
func (c *Client) runOnConnected(s *session, reconnect bool) {
	s.hookG.Store(goid.ID())
	ok := c.guard(s.l, "OnConnected", func() { s.cn.cfg.onConnected((*channel.Channel)(s.l), reconnect) })
	s.hookG.Store(0)
	if ok {
		s.cn.up(s, reconnect)
	}
}

// dispatch routes one packet: a reply to its Call, anything else to its
// handler, inline on the loop or copied to the pool. It reports whether a
// handler ran inline.
func (c *Client) dispatch(s *session, p *codec.Packet) bool {
	l := s.l
	if p.Reply {
		if !s.reply(p, &c.stats.calls) {
			c.stats.unmatched.Add(1)
		}
		return false
	}
	h, inline := c.handler, c.handler != nil && handler.IsInline(c.handler)
	if c.router != nil {
		h, inline = c.router.Route(p)
	}
	if h == nil {
		c.stats.dropped.Add(1)
		return false
	}
	if inline && !l.Busy() {
		return c.guard(l, "handler", func() { h.ServePacket((*channel.Channel)(l), p) })
	}
	pk := &codec.Packet{Type: p.Type, ID: p.ID, Reply: p.Reply, Body: append([]byte(nil), p.Body...)}
	err := c.pool.Submit(l.Queue(), pool.Task{
		Run: func() {
			begin := time.Now()
			if c.guard(l, "handler", func() { h.ServePacket((*channel.Channel)(l), pk) }) {
				l.Handled(1, time.Since(begin))
			}
		},
		Label: uint32(p.Type),
		Size:  len(pk.Body),
	})
	if err != nil {
		l.Fail(link.ReasonOverloaded, err, true)
	}
	return false
}

// guard runs f, a handler or a hook; a panic in it closes l's connection
// alone (reason handler_panic; with WithReconnect it is dialled again), is
// counted and logged with its stack. It reports whether f returned.
func (c *Client) guard(l *link.Link, what string, f func()) (returned bool) {
	defer func() {
		if v := recover(); v != nil {
			c.stats.panics.Add(1) // before the close is seen
			l.CloseFor(link.ReasonHandlerPanic)
			c.log.Error("client: "+what+" panicked", "channel", l.ID(), "remote", l.RemoteAddr(), "panic", v, "stack", string(debug.Stack()))
		}
	}()
	f()
	return true
}

// panicError is a panic recovered from a decoder.
type panicError struct {
	v     any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("client: codec panicked: %v", e.v) }

// Unwrap makes the panic an internal error for the codec's farewell.
func (e *panicError) Unwrap() error { return codec.ErrInternal }

// decode runs the connection's decoder, turning a panic into a panicError.
func (c *Client) decode(l *link.Link, in []byte, p *codec.Packet) (n int, ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, ok, err = 0, false, &panicError{v: v, stack: debug.Stack()}
		}
	}()
	return l.Decode(in, p)
}

// releaseDecoder tells the decoder its packets were handled
// (codec.Releaser: an inflated or assembled message's buffer goes back),
// guarded like Decode.
func (c *Client) releaseDecoder(l *link.Link) {
	defer func() {
		if v := recover(); v != nil {
			c.decodeFailed(l, &panicError{v: v, stack: debug.Stack()})
		}
	}()
	l.ReleaseDecoder()
}

// decodeFailed closes a connection whose decoder failed (or panicked).
func (c *Client) decodeFailed(l *link.Link, err error) {
	var pe *panicError
	if errors.As(err, &pe) {
		c.stats.panics.Add(1)
		l.CloseFor(link.ReasonHandlerPanic)
		c.log.Error("client: codec panicked", "channel", l.ID(), "remote", l.RemoteAddr(), "panic", pe.v, "stack", string(pe.stack))
		return
	}
	r := link.ReasonOf(err)
	if r != link.ReasonClosedByPeer && r != link.ReasonHandshakeRefused {
		l.DecodeError()
	}
	l.Fail(r, err, false)
}

// firstCheck returns how long after its handshake a connection is first
// checked by the wheel.
func (cn *Conn) firstCheck() time.Duration {
	d := time.Hour
	for _, x := range []time.Duration{cn.cfg.idle, cn.cfg.timeout} {
		if x > 0 {
			d = min(d, x)
		}
	}
	return d
}

// checkID is the timing wheel's check of the connection with the given
// id (the wheel holds ids, so that a closed connection is garbage at once).
func (c *Client) checkID(id uint64, now time.Time) time.Time {
	c.mu.Lock()
	s := c.live[id]
	c.mu.Unlock()
	if s == nil {
		return time.Time{}
	}
	return c.check(s, now)
}

// check runs on the ticker goroutine, off the loops, with the link's
// concurrency-safe methods: the handshake deadline, heartbeats, and dead
// servers. It returns when to look again.
func (c *Client) check(s *session, now time.Time) time.Time {
	l, cfg := s.l, s.cn.cfg
	if l.Closed() {
		return time.Time{}
	}
	if !l.IsReady() {
		// Look again at the handshake deadline, or sooner if the
		// heartbeat is due sooner (the handshake may end meanwhile).
		deadline := l.Created().Add(cfg.handshake)
		if now.Before(deadline) {
			if soon := now.Add(s.cn.firstCheck()); soon.Before(deadline) {
				return soon
			}
			return deadline
		}
		c.stats.handshakeTimeouts.Add(1)
		c.abandon(l, link.ReasonHandshakeTimeout, fmt.Errorf("client: no handshake answer within %v", cfg.handshake))
		return time.Time{}
	}
	last := l.LastReceived()
	var next time.Time
	if t := cfg.timeout; t > 0 {
		deadline := last.Add(t)
		if !now.Before(deadline) {
			c.stats.heartbeatTimeouts.Add(1)
			c.abandon(l, link.ReasonHeartbeatTimeout, fmt.Errorf("client: nothing received for %v", t))
			return time.Time{}
		}
		next = deadline
	}
	if k := cfg.idle; k > 0 {
		due := last.Add(k)
		if pinged := l.LastHeartbeatSent(); pinged.After(last) {
			due = pinged.Add(k)
		}
		if !now.Before(due) {
			_ = l.SendHeartbeat()
			due = now.Add(k)
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// abandon drops a connection to a server that does not answer, without a
// farewell (nobody would read it, and a WebSocket close would wait for an
// answer that cannot come).
func (c *Client) abandon(l *link.Link, r link.Reason, err error) {
	l.Fail(r, err, false)
	l.Wake()
}

// onTick runs on gnet's ticker goroutine: it advances the timing wheel and
// nudges connections that drain before they close.
func (c *Client) onTick() (time.Duration, gnet.Action) {
	c.wheel.Advance(time.Now())
	c.mu.Lock()
	for l := range c.draining {
		l.Wake()
	}
	c.mu.Unlock()
	return c.wheel.Tick(), gnet.None
}
