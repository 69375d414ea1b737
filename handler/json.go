package handler

import (
	"github.com/tidwall/gjson"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// JSONMux routes packets whose body is a JSON object by the value of one of
// its top-level fields — {"cmd":"login", …} — to the handler registered for
// that value: the way to route a WebSocket app's JSON commands without a
// switch. Register it in a Mux for the packet type that carries JSON
// (websocket.TypeText under the default mapping):
//
//	cmds := handler.NewJSONMux("cmd")
//	cmds.HandleFunc("login", login)                     // on the worker pool
//	cmds.Handle("say", handler.InlineFunc(say))          // on the event loop
//	cmds.NotFound(handler.InlineFunc(unknownCommand))
//	mux.Handle(websocket.TypeText, cmds)
//
// Each handler gets the whole packet and runs inline or on the pool as it
// was declared (the server asks the JSONMux per packet, see Router). The
// field is read without decoding the rest of the body (github.com/tidwall/
// gjson), after the body is checked to be valid JSON. Register handlers
// before the server starts; a JSONMux is safe for concurrent use once
// serving.
type JSONMux struct {
	field     string
	routes    map[string]route
	notFound  route
	malformed route
	mw        []Middleware
}

// NewJSONMux returns a JSONMux that routes by the string value of field.
// Packets with no handler (an unknown value, a missing or non-string field,
// a body that is not JSON) are dropped unless NotFound and Malformed set
// fallbacks.
func NewJSONMux(field string) *JSONMux {
	return &JSONMux{field: field, routes: make(map[string]route)}
}

// Use adds middleware applied to the handlers registered after it.
func (m *JSONMux) Use(mw ...Middleware) { m.mw = append(m.mw, mw...) }

func (m *JSONMux) route(h Handler) route {
	in := IsInline(h)
	if x, ok := h.(inline); ok {
		h = x.Handler
	}
	return route{h: Chain(h, m.mw...), inline: in}
}

// Handle registers h for bodies whose field has the value v.
func (m *JSONMux) Handle(v string, h Handler) { m.routes[v] = m.route(h) }

// HandleFunc registers f for bodies whose field has the value v (on the
// worker pool; wrap with Inline through Handle for the event loop).
func (m *JSONMux) HandleFunc(v string, f func(ch *channel.Channel, p *codec.Packet)) {
	m.Handle(v, HandlerFunc(f))
}

// NotFound sets the handler for valid JSON whose field is missing, not a
// string, or has a value with no handler.
func (m *JSONMux) NotFound(h Handler) { m.notFound = m.route(h) }

// Malformed sets the handler for bodies that are not valid JSON.
func (m *JSONMux) Malformed(h Handler) { m.malformed = m.route(h) }

// Route implements Router.
func (m *JSONMux) Route(p *codec.Packet) (Handler, bool) {
	if !gjson.ValidBytes(p.Body) {
		return m.malformed.h, m.malformed.inline
	}
	v := gjson.GetBytes(p.Body, gjson.Escape(m.field))
	if v.Type != gjson.String {
		return m.notFound.h, m.notFound.inline
	}
	r, ok := m.routes[v.Str]
	if !ok {
		r = m.notFound
	}
	return r.h, r.inline
}

// ServePacket implements Handler, for a JSONMux used as a plain handler.
func (m *JSONMux) ServePacket(ch *channel.Channel, p *codec.Packet) {
	if h, _ := m.Route(p); h != nil {
		h.ServePacket(ch, p)
	}
}
