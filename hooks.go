package tio

import (
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/registry"
)

// Hooks are optional callbacks at the points of a connection's life, like
// t-io's TioListener and GroupListener. Each runs on the connection's event
// loop, except OnHandled for handlers on the worker pool (it runs on the
// worker), OnSent (on the loop that wrote), and OnBind and OnUnbind (on the
// goroutine that bound or unbound; on the event loop for the unbinds of a
// channel that closed). None may block. An unset hook costs a nil
// check on the hot path, nothing more.
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
	// OnBind runs after ch was bound to a user id, group, token or business
	// id (kind says which, key is the id). It may call the server's bind
	// and send methods.
	OnBind func(ch *channel.Channel, kind registry.Kind, key string)
	// OnUnbind runs after ch was unbound from key: by an Unbind call, by a
	// bind that replaced the binding (a new user id for ch; a business id
	// that moved to another channel), or, after OnClose, because ch closed.
	OnUnbind func(ch *channel.Channel, kind registry.Kind, key string)
}

// WithHooks sets the hooks (replacing any set before).
func WithHooks(h Hooks) Option {
	return func(o *config) { o.hooks = h }
}

// WithOnConnect sets Hooks.OnConnected.
func WithOnConnect(f func(ch *channel.Channel)) Option {
	return func(o *config) { o.hooks.OnConnected = f }
}

// WithOnClose sets Hooks.OnClose.
func WithOnClose(f func(ch *channel.Channel, r channel.Reason, err error)) Option {
	return func(o *config) { o.hooks.OnClose = f }
}
