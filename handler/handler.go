// Package handler routes decoded packets to application code, in the shape of
// net/http: a one-method [Handler] interface, the [HandlerFunc] adapter, a
// [Mux] that routes by packet type, and middleware that wraps a Handler.
//
// # Where handlers run
//
// A handler runs either inline on the connection's event loop or on a bounded
// worker pool. Inline is the fastest path (no copy, no hand-off) but the
// handler must never block: it may compute, look things up in memory and
// send (sends only queue bytes). Declare such handlers with [Inline]. Every
// other handler runs on the pool, which keeps each connection's packets in
// order: each connection has its own queue, served by whichever worker is
// free, so a blocking handler delays only its own connection (and holds one
// worker), never an event loop or another connection. Once a connection has
// packets waiting on the pool, its inline packets wait their turn on the
// pool too, so that one connection's packets are always handled in the
// order they arrived.
//
// The packet a handler receives is valid only for the duration of the call:
// an inline handler's body points into the event loop's read buffer. Copy
// what you keep.
package handler

import (
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Handler handles one decoded packet from a channel.
type Handler interface {
	ServePacket(ch *channel.Channel, p *codec.Packet)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ch *channel.Channel, p *codec.Packet)

// ServePacket calls f(ch, p).
func (f HandlerFunc) ServePacket(ch *channel.Channel, p *codec.Packet) { f(ch, p) }

// Middleware wraps a Handler in another.
type Middleware func(Handler) Handler

// Chain applies middleware to h so that the first one is the outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// inline marks a handler that may run on the event loop.
type inline struct{ Handler }

// Inline declares that h never blocks, so that it runs on the event loop
// with no copy and no hand-off.
func Inline(h Handler) Handler { return inline{h} }

// InlineFunc is Inline(HandlerFunc(f)).
func InlineFunc(f func(ch *channel.Channel, p *codec.Packet)) Handler { return inline{HandlerFunc(f)} }

// IsInline reports whether h was declared with Inline.
func IsInline(h Handler) bool {
	_, ok := h.(inline)
	return ok
}

// Router is implemented by handlers that route packets to other handlers,
// so that the server can tell per packet which handler takes it and whether
// that one runs inline. [Mux] routes by type, [JSONMux] by a field of a JSON
// body; a Router registered in a Mux is asked in turn. Route runs on the
// event loop: it must not block, and p is valid only during the call.
type Router interface {
	Handler
	// Route returns the handler for p (nil: none) and whether it runs
	// inline.
	Route(p *codec.Packet) (h Handler, inline bool)
}

// Mux routes packets by type. Register handlers before the server starts;
// a Mux is safe for concurrent use once serving.
type Mux struct {
	low      [256]route // types 0..255, the common case, without a map
	high     map[codec.Type]route
	notFound route
	mw       []Middleware
}

type route struct {
	h      Handler
	inline bool
	sub    Router // h is a Router: it routes further
}

// NewMux returns an empty Mux. Packets of an unregistered type are dropped
// unless NotFound sets a fallback.
func NewMux() *Mux { return &Mux{} }

// Use adds middleware applied to the handlers registered after it (not to
// the handlers of a Router registered in the Mux, which has its own).
func (m *Mux) Use(mw ...Middleware) { m.mw = append(m.mw, mw...) }

func (m *Mux) route(h Handler) route {
	if r, ok := h.(Router); ok {
		// A nested router chooses per packet; its handlers carry its own
		// middleware (the Mux's does not wrap them).
		return route{h: h, sub: r}
	}
	in := IsInline(h)
	if x, ok := h.(inline); ok {
		h = x.Handler
	}
	return route{h: Chain(h, m.mw...), inline: in}
}

// Handle registers h for packets of type t, replacing any earlier one.
func (m *Mux) Handle(t codec.Type, h Handler) {
	if t < 256 {
		m.low[t] = m.route(h)
		return
	}
	if m.high == nil {
		m.high = make(map[codec.Type]route)
	}
	m.high[t] = m.route(h)
}

// HandleFunc registers f for packets of type t (on the worker pool; wrap
// with Inline through Handle for the event loop).
func (m *Mux) HandleFunc(t codec.Type, f func(ch *channel.Channel, p *codec.Packet)) {
	m.Handle(t, HandlerFunc(f))
}

// NotFound sets the handler for packets of types with no handler.
func (m *Mux) NotFound(h Handler) { m.notFound = m.route(h) }

// Route implements Router: the handler registered for p's type (or the
// NotFound one); if that handler is a Router itself, its choice.
func (m *Mux) Route(p *codec.Packet) (Handler, bool) {
	var r route
	if t := p.Type; t < 256 {
		r = m.low[t]
	} else {
		r = m.high[t]
	}
	if r.h == nil {
		r = m.notFound
	}
	if r.sub != nil {
		return r.sub.Route(p)
	}
	return r.h, r.inline
}

// ServePacket implements Handler, for muxes nested in other handlers.
func (m *Mux) ServePacket(ch *channel.Channel, p *codec.Packet) {
	if h, _ := m.Route(p); h != nil {
		h.ServePacket(ch, p)
	}
}
