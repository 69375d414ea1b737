package tio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/registry"
)

// Filter selects the channels of a target that a send, close or query
// takes: it returns true to keep ch. Filters run on the calling goroutine,
// once per channel of the target, and must not block.
type Filter func(ch *channel.Channel) bool

// Exclude is a Filter that leaves out the given channels (the sender, say).
func Exclude(chs ...*channel.Channel) Filter {
	if len(chs) == 1 {
		x := chs[0]
		return func(ch *channel.Channel) bool { return ch != x }
	}
	return func(ch *channel.Channel) bool { return !slices.Contains(chs, ch) }
}

// SendResult reports a send's targets: OK took the packet (for SendWait:
// its bytes were written), Failed did not (the channel was closing or
// closed, over its outbound limit, the packet could not be encoded for it,
// or, for SendWait cut short by its context, its write was not confirmed in
// time). Channels still in their protocol handshake are not targets.
type SendResult struct {
	OK     int
	Failed int
}

// Targets returns OK + Failed.
func (r SendResult) Targets() int { return r.OK + r.Failed }

// Send queues p for every open channel of t that the filters keep (t-io's
// Tio.sendToXxx), from any goroutine, and returns at once: it never waits
// for the network. It encodes p once per codec variant among the targets
// and shares the bytes (a group of WebSocket and binary-protocol members
// costs two encodings, whatever its size; connections whose codec gave them
// an encoder of their own are encoded for alone). The targets are read from
// a snapshot of the server's indexes: no lock is held while delivering, and
// a channel bound during the send may or may not receive it. Each target
// gets p after everything queued for it before. A target with nobody in it
// is not an error; an invalid target is (ErrInvalidTarget), and so is p
// failing to encode (the error wraps the codec's). On a node of a cluster
// (WithRelay) the send also goes to the target's channels on the other
// nodes (the result counts this node's only; a relay failure is an error
// wrapping ErrRelay).
func (s *Server) Send(t Target, p *codec.Packet, filters ...Filter) (SendResult, error) {
	chs, err := s.members(t)
	if err != nil {
		return SendResult{}, err
	}
	res, err := s.fanout(false, nil, chs, p, filters)
	return res, errors.Join(err, s.publish(RelayMessage{Op: RelaySend, Target: t, Packet: p}))
}

// SendWait is Send, then a wait until the event loop of every target has
// written the bytes to its socket (or to gnet's buffer when the kernel's is
// full), a target has closed, or ctx ends (t-io's Tio.bSendToXxx). It
// blocks: called on an event loop — from an inline handler or a hook — it
// fails at once with channel.ErrOnLoop and sends nothing, since the loop
// would wait for itself. On a node of a cluster it waits for this node's
// channels only; the other nodes get the packet as from Send.
func (s *Server) SendWait(ctx context.Context, t Target, p *codec.Packet, filters ...Filter) (SendResult, error) {
	if s.env.OnLoop() {
		return SendResult{}, fmt.Errorf("tio: SendWait: %w", channel.ErrOnLoop)
	}
	chs, err := s.members(t)
	if err != nil {
		return SendResult{}, err
	}
	rerr := s.publish(RelayMessage{Op: RelaySend, Target: t, Packet: p})
	res, err := s.fanout(true, ctx, chs, p, filters)
	return res, errors.Join(err, rerr)
}

// Close closes every open channel of t that the filters keep, for reason r
// (ReasonNone means ReasonClosedByApp; the reason is recorded on each
// channel, passed to Hooks.OnClose and counted in Stats().Closed), and
// returns how many it asked to close. Like Channel.Close it does not wait:
// bytes queued before are written first, then the codec's farewell, with
// the reason's default words or those of a CloseText option (a WebSocket
// close frame's reason, which a browser shows). Options are Filters and at
// most one CloseText. On a node of a cluster it closes the target's
// channels on the other nodes too (the count is this node's).
func (s *Server) Close(t Target, r channel.Reason, opts ...CloseOption) (int, error) {
	var filters []Filter
	var text CloseText
	for _, o := range opts {
		switch o := o.(type) {
		case Filter:
			filters = append(filters, o)
		case CloseText:
			text = o
		}
	}
	n, err := s.closeLocal(t, r, string(text), filters)
	if err != nil {
		return n, err
	}
	return n, s.publish(RelayMessage{Op: RelayClose, Target: t, Reason: r, Text: string(text)})
}

// CloseOption is an option of Server.Close: a Filter, or a CloseText.
type CloseOption interface{ closeOption() }

func (Filter) closeOption() {}

// CloseText gives a Close the words of its farewell: a WebSocket close
// frame's reason (123 bytes at most travel), which a browser shows as the
// CloseEvent's reason ("kicked by an admin").
type CloseText string

func (CloseText) closeOption() {}

// closeLocal closes the channels of t on this server.
func (s *Server) closeLocal(t Target, r channel.Reason, text string, filters []Filter) (int, error) {
	chs, err := s.members(t)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ch := range chs {
		if keep(filters, ch) && !ch.Closed() {
			ch.CloseWith(r, text)
			n++
		}
	}
	return n, nil
}

// Channels returns the open channels of t that the filters keep, in
// ascending id (accept order), as a fresh slice the caller may keep. It is
// a snapshot: the channels may close at any time.
func (s *Server) Channels(t Target, filters ...Filter) []*channel.Channel {
	chs, err := s.members(t)
	if err != nil || len(chs) == 0 {
		return nil
	}
	out := make([]*channel.Channel, 0, len(chs))
	for _, ch := range chs {
		if keep(filters, ch) {
			out = append(out, ch)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return registry.SortByID(out)
}

// Count returns the number of open channels of t that the filters keep.
// Without filters it reads the index's count and builds no list.
func (s *Server) Count(t Target, filters ...Filter) int {
	if len(filters) == 0 {
		switch t.kind {
		case KindAll:
			return s.groups.Len()
		case KindUser, KindGroup, KindToken:
			return s.groups.Count(regKind(t.kind), t.key)
		case KindIP:
			return s.groups.CountIP(t.IP())
		}
	}
	chs, _ := s.members(t)
	n := 0
	for _, ch := range chs {
		if keep(filters, ch) {
			n++
		}
	}
	return n
}

// Page returns page number (from 1) of size channels of t that the filters
// keep, in ascending id (t-io's getPageOfGroup and getPageOfAll). Convert
// its items with MapPage. It sorts a snapshot each call: O(n log n).
func (s *Server) Page(t Target, number, size int, filters ...Filter) Page[*channel.Channel] {
	chs := s.Channels(t, filters...)
	return Paginate(chs, number, size)
}

// members returns the channels of t: a snapshot the caller reads and does
// not modify.
func (s *Server) members(t Target) ([]*channel.Channel, error) {
	switch t.kind {
	case KindAll:
		return s.groups.All(), nil
	case KindID:
		return one(s.groups.Channel(t.id)), nil
	case KindIDs:
		var chs []*channel.Channel
		for i := 0; i+8 <= len(t.key); i += 8 {
			id := uint64(t.key[i])<<56 | uint64(t.key[i+1])<<48 | uint64(t.key[i+2])<<40 | uint64(t.key[i+3])<<32 |
				uint64(t.key[i+4])<<24 | uint64(t.key[i+5])<<16 | uint64(t.key[i+6])<<8 | uint64(t.key[i+7])
			if ch := s.groups.Channel(id); ch != nil && !slices.Contains(chs, ch) {
				chs = append(chs, ch)
			}
		}
		return chs, nil
	case KindUser, KindGroup, KindToken:
		return s.groups.Members(regKind(t.kind), t.key), nil
	case KindBsID:
		return one(s.groups.BsID(t.key)), nil
	case KindIP:
		return s.groups.MembersOfIP(t.IP()), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrInvalidTarget, t)
}

// regKind maps a bindable target kind to the registry's.
func regKind(k TargetKind) registry.Kind {
	switch k {
	case KindUser:
		return registry.KindUser
	case KindGroup:
		return registry.KindGroup
	case KindToken:
		return registry.KindToken
	}
	return registry.KindBsID
}

// targetOf is the inverse of regKind.
func targetOf(k registry.Kind, key string) Target {
	switch k {
	case registry.KindUser:
		return User(key)
	case registry.KindGroup:
		return Group(key)
	case registry.KindToken:
		return Token(key)
	}
	return BsID(key)
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

// fanout delivers p to targets: queued, or, if block, waiting for the writes
// until ctx ends. targets may be a shared snapshot; it is only read.
func (s *Server) fanout(block bool, ctx context.Context, targets []*channel.Channel, p *codec.Packet, filters []Filter) (SendResult, error) {
	var (
		res   SendResult
		enc   encoder
		first error
		w     *waiter
	)
	enc.p, enc.env = p, &s.env
	defer enc.release()
	var wk *wakes // the targets whose loops must run a pass, by loop
	defer func() {
		if wk != nil {
			s.wake(wk)
		}
	}()
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
		l := (*link.Link)(ch)
		if l.HasOwnEncoder() {
			// Its own encoder (context takeover): encoded for it alone.
			if err := s.sendOwn(w, l, p); err == nil {
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
		sh, err := enc.bytes(l)
		if err != nil {
			res.Failed++
			if first == nil {
				first = err
			}
			continue
		}
		if w == nil {
			wake, err := l.SendSharedBatch(sh)
			if err != nil {
				res.Failed++
				continue
			}
			res.OK++
			if wake {
				if wk == nil {
					wk = s.getWakes()
				}
				wk.add(l)
			}
			continue
		}
		w.left.Add(1)
		if l.SendSharedNotify(sh, w.fn) == nil {
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
func (s *Server) sendOwn(w *waiter, l *link.Link, p *codec.Packet) error {
	if w == nil {
		return l.Send(p)
	}
	w.left.Add(1)
	if err := l.SendPacketNotify(p, w.fn); err != nil {
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

// encoder encodes a packet at most once per codec variant: channels are
// told apart by their codec index in the server's list, so no codec is
// compared. Each encoding is a link.Shared, which targets with nothing else
// queued hold by reference.
type encoder struct {
	p     *codec.Packet
	env   *link.Env
	fixed [4]encoding // by codec index, the first four
	more  []encoding  // by codec index − 4, allocated past four codecs
}

type encoding struct {
	sh  *link.Shared // nil until encoded
	err error
}

// bytes returns p encoded for l's codec variant, encoding it on first need.
func (e *encoder) bytes(l *link.Link) (*link.Shared, error) {
	i := l.CodecIndex()
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
	if en.sh == nil {
		en.sh = e.env.NewShared()
		b := en.sh.Buf()
		*b, en.err = e.env.EncodeAt(i, (*b)[:0], e.p)
	}
	return en.sh, en.err
}

// release drops the fan-out's own reference to each encoding.
func (e *encoder) release() {
	for i := range e.fixed {
		if sh := e.fixed[i].sh; sh != nil {
			sh.Release()
		}
	}
	for i := range e.more {
		if sh := e.more[i].sh; sh != nil {
			sh.Release()
		}
	}
}

// wakes collects the channels a fan-out must flush, by event loop, so that
// each loop is handed one task for all of them instead of one wake-up per
// connection (each of which gnet queues, allocating: for a broadcast to
// tens of thousands of connections, garbage that shows as resident memory).
type wakes struct {
	loops []gnet.EventLoop
	links [][]*link.Link
}

func (w *wakes) add(l *link.Link) {
	el := l.EventLoop()
	for i, x := range w.loops {
		if x == el {
			w.links[i] = append(w.links[i], l)
			return
		}
	}
	w.loops = append(w.loops, el)
	if len(w.links) < len(w.loops) {
		w.links = append(w.links, nil)
	}
	i := len(w.loops) - 1
	w.links[i] = append(w.links[i][:0], l)
}

func (s *Server) getWakes() *wakes {
	if w, _ := s.wakePool.Get().(*wakes); w != nil {
		return w
	}
	return new(wakes)
}

// wake hands each loop of w one task that runs a pass over its channels (as
// gnet's own wake-up does: the event handler's OnTraffic, then its
// action), then recycles w once every task has run. A loop that takes no
// task (shutting down) has its channels woken one by one.
func (s *Server) wake(w *wakes) {
	var left atomic.Int32
	left.Store(int32(len(w.loops)))
	done := func() {
		if left.Add(-1) == 0 {
			for i := range w.links {
				clear(w.links[i])
				w.links[i] = w.links[i][:0]
			}
			w.loops = w.loops[:0]
			s.wakePool.Put(w)
		}
	}
	for i, el := range w.loops {
		batch := w.links[i]
		err := el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			for _, l := range batch {
				if l.Gone() {
					continue // closed meanwhile: nothing to flush
				}
				c := l.Conn()
				if s.onTraffic(c) == gnet.Close {
					_ = c.EventLoop().Close(c)
				}
			}
			done()
			return nil
		}))
		if err != nil {
			for _, l := range batch {
				l.Wake()
			}
			done()
		}
	}
}
