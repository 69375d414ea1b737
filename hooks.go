package tio

import (
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Hooks are optional callbacks at the points of a connection's life, like
// t-io's TioListener. Each runs on the connection's event loop, except
// OnHandled for handlers on the worker pool (it runs on the worker) and
// OnSent (on the loop that wrote). None may block. An unset hook costs a nil
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
