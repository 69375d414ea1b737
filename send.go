package tio

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/registry"
)

// Sends (t-io's Tio.sendToXxx and bSendToXxx) and closes by binding.
//
// Every send comes in two forms. SendToX queues the packet for each target
// and returns at once: it never waits for the network. BSendToX (blocking)
// returns once the event loop of every target has handed the bytes to the
// socket (or to gnet's buffer when the kernel's is full), a target has
// closed, or ctx ends. Both report how many targets took the packet and how
// many failed in a SendResult; a fan-out with no targets is not an error.
//
// A fan-out encodes the packet once per codec among its targets and shares
// the bytes: a group of WebSocket and binary-protocol members costs two
// encodings, whatever its size. It reads its targets from a snapshot of the
// index, so it holds no lock while it delivers; a channel bound during the
// send may or may not receive the packet. Channels still in their protocol
// handshake (not yet connected) are not targets.
//
// Filters pick targets: a channel is a target only if every filter given
// returns true for it (Exclude(sender) leaves the sender out).
//
// Never call a blocking send from code running on an event loop (an inline
// handler, a hook other than OnHandled for pooled handlers): the loop would
// wait for itself.

// Filter selects the targets of a send or close: it returns true to keep ch.
type Filter func(ch *channel.Channel) bool

// Exclude is a Filter that leaves out the given channels (the sender, say).
func Exclude(chs ...*channel.Channel) Filter {
	if len(chs) == 1 {
		x := chs[0]
		return func(ch *channel.Channel) bool { return ch != x }
	}
	return func(ch *channel.Channel) bool {
		for _, x := range chs {
			if ch == x {
				return false
			}
		}
		return true
	}
}

// SendResult reports a send's targets: OK took the packet (a blocking send:
// the bytes were written), Failed did not (the channel was closing or
// closed, over its outbound limit, the packet could not be encoded for it,
// or, for a blocking send cut short by its context, its write was not
// confirmed in time).
type SendResult struct {
	OK     int
	Failed int
}

// Targets returns OK + Failed.
func (r SendResult) Targets() int { return r.OK + r.Failed }

// SendToID queues p for the open channel with the given id.
func (s *Server) SendToID(id uint64, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, one(s.Channel(id)), p, filters)
}

// BSendToID sends p to the open channel with the given id and waits.
func (s *Server) BSendToID(ctx context.Context, id uint64, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, one(s.Channel(id)), p, filters)
}

// SendToUser queues p for every channel of the user.
func (s *Server) SendToUser(userID string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, s.groups.Members(registry.KindUser, userID), p, filters)
}

// BSendToUser sends p to every channel of the user and waits.
func (s *Server) BSendToUser(ctx context.Context, userID string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, s.groups.Members(registry.KindUser, userID), p, filters)
}

// SendToGroup queues p for every channel in the group.
func (s *Server) SendToGroup(group string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, s.groups.Members(groupKind, group), p, filters)
}

// BSendToGroup sends p to every channel in the group and waits.
func (s *Server) BSendToGroup(ctx context.Context, group string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, s.groups.Members(groupKind, group), p, filters)
}

// SendToToken queues p for every channel bound to the token.
func (s *Server) SendToToken(token string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, s.groups.Members(registry.KindToken, token), p, filters)
}

// BSendToToken sends p to every channel bound to the token and waits.
func (s *Server) BSendToToken(ctx context.Context, token string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, s.groups.Members(registry.KindToken, token), p, filters)
}

// SendToBsID queues p for the channel bound to the business id.
func (s *Server) SendToBsID(bsID string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, one(s.groups.BsID(bsID)), p, filters)
}

// BSendToBsID sends p to the channel bound to the business id and waits.
func (s *Server) BSendToBsID(ctx context.Context, bsID string, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, one(s.groups.BsID(bsID)), p, filters)
}

// SendToIP queues p for every open channel from the IP.
func (s *Server) SendToIP(ip netip.Addr, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, s.groups.MembersOfIP(ip), p, filters)
}

// BSendToIP sends p to every open channel from the IP and waits.
func (s *Server) BSendToIP(ctx context.Context, ip netip.Addr, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, s.groups.MembersOfIP(ip), p, filters)
}

// SendToSet queues p for each of the channels given (a set the caller
// keeps; duplicates receive the packet twice).
func (s *Server) SendToSet(chs []*channel.Channel, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, chs, p, filters)
}

// BSendToSet sends p to each of the channels given and waits.
func (s *Server) BSendToSet(ctx context.Context, chs []*channel.Channel, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, chs, p, filters)
}

// SendToAll queues p for every open channel of the server.
func (s *Server) SendToAll(p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(false, nil, s.groups.All(), p, filters)
}

// BSendToAll sends p to every open channel of the server and waits.
func (s *Server) BSendToAll(ctx context.Context, p *codec.Packet, filters ...Filter) (SendResult, error) {
	return s.fanout(true, ctx, s.groups.All(), p, filters)
}

// CloseUser closes every channel of the user for reason r (recorded on each
// channel, passed to the close hook and counted in Stats().Closed) and
// returns how many it asked to close. ReasonNone means ReasonClosedByApp.
func (s *Server) CloseUser(userID string, r channel.Reason, filters ...Filter) int {
	return closeAll(s.groups.Members(registry.KindUser, userID), r, filters)
}

// CloseGroup closes every channel in the group for reason r (see CloseUser).
func (s *Server) CloseGroup(group string, r channel.Reason, filters ...Filter) int {
	return closeAll(s.groups.Members(groupKind, group), r, filters)
}

// CloseToken closes every channel bound to the token for reason r (see
// CloseUser).
func (s *Server) CloseToken(token string, r channel.Reason, filters ...Filter) int {
	return closeAll(s.groups.Members(registry.KindToken, token), r, filters)
}

// CloseIP closes every open channel from the IP for reason r (see
// CloseUser).
func (s *Server) CloseIP(ip netip.Addr, r channel.Reason, filters ...Filter) int {
	return closeAll(s.groups.MembersOfIP(ip), r, filters)
}

// CloseSet closes each of the channels given for reason r (see CloseUser).
func (s *Server) CloseSet(chs []*channel.Channel, r channel.Reason, filters ...Filter) int {
	return closeAll(chs, r, filters)
}

func one(ch *channel.Channel) []*channel.Channel {
	if ch == nil {
		return nil
	}
	return []*channel.Channel{ch}
}

func keep(filters []Filter, ch *channel.Channel) bool {
	for _, f := range filters {
		if !f(ch) {
			return false
		}
	}
	return true
}

func closeAll(chs []*channel.Channel, r channel.Reason, filters []Filter) int {
	n := 0
	for _, ch := range chs {
		if keep(filters, ch) && !ch.Closed() {
			ch.Close(r)
			n++
		}
	}
	return n
}

// fanout delivers p to targets: queued, or, if block, waiting for the writes
// until ctx ends. targets may be a shared snapshot; it is only read.
func (s *Server) fanout(block bool, ctx context.Context, targets []*channel.Channel, p *codec.Packet, filters []Filter) (SendResult, error) {
	var (
		res   SendResult
		enc   encoder
		first error
		w     *waiter
	)
	enc.p, enc.env, enc.pool = p, &s.env, &s.encPool
	defer enc.release()
	if block {
		if ctx == nil {
			ctx = context.Background()
		}
		w = newWaiter()
	}
	sent := 0
	for _, ch := range targets {
		if !ch.IsReady() {
			if ch.Closed() {
				res.Failed++ // closed or closing: a target that failed
			}
			continue // still in its handshake: not a target yet
		}
		if len(filters) > 0 && !keep(filters, ch) {
			continue
		}
		if ch.HasOwnEncoder() {
			// Its own encoder (context takeover): encoded for it alone.
			if err := s.sendOwn(w, ch, p); err == nil {
				if w == nil {
					res.OK++
				} else {
					sent++
				}
			} else {
				res.Failed++
			}
			continue
		}
		b, err := enc.bytes(ch)
		if err != nil {
			res.Failed++
			if first == nil {
				first = err
			}
			continue
		}
		if w == nil {
			if ch.SendEncoded(b) == nil {
				res.OK++
			} else {
				res.Failed++
			}
			continue
		}
		w.left.Add(1)
		if ch.SendNotify(b, w.fn) == nil {
			sent++
		} else {
			w.left.Add(-1)
			res.Failed++
		}
	}
	if first != nil {
		first = fmt.Errorf("tio: send: encode: %w", first)
	}
	if w == nil || sent == 0 {
		return res, first
	}
	if w.left.Add(-1) != 0 {
		select {
		case <-w.done:
		case <-ctx.Done():
			ok := int(w.ok.Load())
			res.OK += ok
			res.Failed += sent - ok
			if first == nil {
				first = fmt.Errorf("tio: blocking send: %w", ctx.Err())
			}
			return res, first
		}
	}
	res.OK += int(w.ok.Load())
	res.Failed += int(w.failed.Load())
	return res, first
}

// sendOwn sends p to a channel with an encoder of its own, telling w when
// it was written if w is not nil.
func (s *Server) sendOwn(w *waiter, ch *channel.Channel, p *codec.Packet) error {
	if w == nil {
		return ch.Send(p)
	}
	w.left.Add(1)
	if err := ch.SendPacketNotify(p, w.fn); err != nil {
		w.left.Add(-1)
		return err
	}
	return nil
}

// waiter counts the confirmations of a blocking fan-out. left starts at one
// for the sender itself, so that it cannot reach zero before all the sends
// are made.
type waiter struct {
	ok, failed atomic.Int32
	left       atomic.Int32
	done       chan struct{}
	fn         func(error) // w.finish, made once and shared by the targets
}

func newWaiter() *waiter {
	w := &waiter{done: make(chan struct{})}
	w.left.Store(1)
	w.fn = w.finish
	return w
}

func (w *waiter) finish(err error) {
	if err == nil {
		w.ok.Add(1)
	} else {
		w.failed.Add(1)
	}
	if w.left.Add(-1) == 0 {
		close(w.done)
	}
}

// encoder encodes a packet at most once per codec: channels are told apart
// by their codec's index in the server's list, so no codec is compared.
type encoder struct {
	p     *codec.Packet
	env   *channel.Env
	pool  *sync.Pool  // the server's buffers for encodings
	fixed [4]encoding // by codec index, the first four
	more  []encoding  // by codec index − 4, allocated past four codecs
}

type encoding struct {
	buf *[]byte // nil until encoded
	err error
}

const maxPooledEncoding = 64 << 10

// bytes returns p encoded for ch's codec, encoding it on first need.
func (e *encoder) bytes(ch *channel.Channel) ([]byte, error) {
	i := ch.CodecIndex()
	if i < 0 {
		return nil, channel.ErrNotReady
	}
	var en *encoding
	if i < len(e.fixed) {
		en = &e.fixed[i]
	} else {
		if n := i - len(e.fixed) + 1; len(e.more) < n {
			e.more = append(e.more, make([]encoding, n-len(e.more))...)
		}
		en = &e.more[i-len(e.fixed)]
	}
	if en.buf == nil {
		buf, _ := e.pool.Get().(*[]byte)
		if buf == nil {
			buf = new([]byte)
			*buf = make([]byte, 0, 256)
		}
		*buf, en.err = e.env.EncodeAt(i, (*buf)[:0], e.p)
		en.buf = buf
	}
	return *en.buf, en.err
}

func (e *encoder) release() {
	for i := range e.fixed {
		e.put(e.fixed[i].buf)
	}
	for i := range e.more {
		e.put(e.more[i].buf)
	}
}

func (e *encoder) put(b *[]byte) {
	if b != nil && cap(*b) <= maxPooledEncoding {
		*b = (*b)[:0]
		e.pool.Put(b)
	}
}
