package tio

import (
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Hooks are optional callbacks at the points of a connection's life, like
// t-io's TioListener and GroupListener. Each runs on the connection's event
// loop, except OnHandled for handlers on the worker pool (it runs on the
// worker), OnSent (on the loop that wrote), and OnBind and OnUnbind (on the
// goroutine that bound or unbound; on the event loop for the unbinds of a
// channel that closed). None may block: a hook on a loop holds up every
// connection of that loop, and a blocking send from one fails with
// channel.ErrOnLoop. A hook that panics closes its connection as
// channel.ReasonHandlerPanic and is logged, like a handler. An unset hook
// costs a nil check on the hot path, nothing more.
type Hooks struct {
	// OnConnected runs once the protocol handshake has completed.
	OnConnected func(ch *channel.Channel)
	// OnReceived runs after bytes arrive, with their number.
	OnReceived func(ch *channel.Channel, n int)
	// OnDecoded runs after a packet is decoded, before it is handled. The
	// packet is valid only during the call.
	OnDecoded func(ch *channel.Channel, p *codec.Packet)
	// OnHandled runs after a handler returns, with the time it took.
	OnHandled func(ch *channel.Channel, p *codec.Packet, cost time.Duration)
	// OnSent runs after the loop wrote queued bytes, with their number.
	OnSent func(ch *channel.Channel, n int)
	// OnClose runs when a connection has closed, before the channel leaves
	// the server's indexes, with the reason and the error behind it.
	OnClose func(ch *channel.Channel, r channel.Reason, err error)
	// OnBind runs after ch was bound to t (a User, Group, Token or BsID
	// target). It may call the server's Bind and Send.
	OnBind func(ch *channel.Channel, t Target)
	// OnUnbind runs after ch was unbound from t: by Unbind, by a Bind that
	// replaced the binding (a new user id for ch; a business id that moved
	// to another channel), or, after OnClose, because ch closed.
	OnUnbind func(ch *channel.Channel, t Target)
}

// WithHooks adds the hooks set in h. Hooks combine: when several options
// set the same hook (WithHooks more than once, WithOnConnect, WithOnClose),
// each runs, in the order the options were given.
func WithHooks(h Hooks) Option {
	return func(o *config) { o.hooks = o.hooks.add(h) }
}

// WithOnConnect adds a Hooks.OnConnected.
func WithOnConnect(f func(ch *channel.Channel)) Option {
	return WithHooks(Hooks{OnConnected: f})
}

// WithOnClose adds a Hooks.OnClose.
func WithOnClose(f func(ch *channel.Channel, r channel.Reason, err error)) Option {
	return WithHooks(Hooks{OnClose: f})
}

// add returns h with the hooks of more chained after its own.
func (h Hooks) add(more Hooks) Hooks {
	h.OnConnected = chain1(h.OnConnected, more.OnConnected)
	h.OnReceived = chain2(h.OnReceived, more.OnReceived)
	h.OnDecoded = chain2(h.OnDecoded, more.OnDecoded)
	h.OnHandled = chain3(h.OnHandled, more.OnHandled)
	h.OnSent = chain2(h.OnSent, more.OnSent)
	h.OnClose = chain3(h.OnClose, more.OnClose)
	h.OnBind = chain2(h.OnBind, more.OnBind)
	h.OnUnbind = chain2(h.OnUnbind, more.OnUnbind)
	return h
}

func chain1[A any](f, g func(A)) func(A) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A) { f(a); g(a) }
}

func chain2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

func chain3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A, b B, c C) { f(a, b, c); g(a, b, c) }
}
