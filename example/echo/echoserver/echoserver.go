// Package echoserver builds the server of example/echo, so that the
// benchmarks measure exactly what the example runs: one port for WebSocket
// (any path; every message comes back with its opcode and payload, and
// permessage-deflate is negotiated when a client offers it) and tio's
// binary protocol (every packet comes back unchanged). A WebSocket text
// message, or a binary-protocol packet of type websocket.TypeText, whose
// payload starts with BroadcastPrefix goes to every client instead.
package echoserver

import (
	"bytes"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// BroadcastPrefix marks the text messages sent to every client.
var BroadcastPrefix = []byte("B:")

// Config configures the echo server beyond tio's options.
type Config struct {
	// NoDeflate turns permessage-deflate off. By default it is negotiated
	// when a client offers it, without context takeover.
	NoDeflate bool
	// ContextTakeover negotiates permessage-deflate with context takeover
	// (websocket.CompressionContextTakeover, its default window) instead;
	// NoDeflate wins over it.
	ContextTakeover bool
}

// New returns the echo server for addr with the default Config, configured
// further by opts (a logger, hooks). Start it with Start or Serve.
func New(addr string, opts ...tio.Option) *tio.Server {
	return NewWith(addr, Config{}, opts...)
}

// NewWith is New with a Config.
func NewWith(addr string, cfg Config, opts ...tio.Option) *tio.Server {
	compression := websocket.Compression{Mode: websocket.CompressionNoContextTakeover}
	switch {
	case cfg.NoDeflate:
		compression.Mode = websocket.CompressionOff
	case cfg.ContextTakeover:
		compression.Mode = websocket.CompressionContextTakeover
	}
	var srv *tio.Server
	mux := handler.NewMux()
	// Every packet, whatever its type, is sent back as it came. Sending only
	// queues bytes, so the handler runs inline on the event loop.
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(p)
	}))
	// SendToAll only queues too (one encoding per codec, shared by all the
	// connections).
	mux.Handle(websocket.TypeText, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		if bytes.HasPrefix(p.Body, BroadcastPrefix) {
			_, _ = srv.Send(tio.All(), p)
			return
		}
		_ = ch.Send(p)
	}))
	srv = tio.NewServer(addr, mux, append([]tio.Option{
		tio.WithCodecs(
			// Raw: a text message is a TypeText packet, a binary message a
			// TypeBinary packet, each with the whole payload as its body,
			// so echoing the packet echoes the message and its opcode.
			websocket.New(websocket.Config{
				Mapping:     websocket.Raw{},
				Origins:     []string{"*"},
				Compression: compression,
			}),
			binary.New(binary.Config{}),
		),
	}, opts...)...)
	return srv
}
