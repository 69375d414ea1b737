// Package channel is one connection as applications see it: its identity and
// addresses, user values, counters, sends that are queued, bounded and
// coalesced, and a close with a reason.
//
// A [Channel] is what handlers, hooks and the server's queries hand you. Its
// methods are safe for concurrent use: Send and Close may be called from any
// goroutine, handlers and hooks included. A send never waits for the
// network: it encodes the packet with the connection's codec and queues the
// bytes, and the connection's event loop writes everything queued in one
// write per pass, so that a burst of sends (a group fan-out, a pipelined
// echo) costs one system call per connection, not one per frame. SendWait is
// the one blocking send.
//
// A channel lives as long as its connection. Once closed it refuses sends
// (ErrClosed) and keeps its reason ([Channel.Reason]); the server's indexes
// drop it at once, and it is garbage as soon as the application lets go of
// it.
package channel

import (
	"context"
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/link"
)

// Errors returned by sends.
var (
	// ErrClosed: the channel is closed or closing.
	ErrClosed = link.ErrClosed
	// ErrNotReady: the connection's protocol handshake has not completed.
	ErrNotReady = link.ErrNotReady
	// ErrSlowConsumer: the bytes waiting for the peer are over the
	// server's outbound limit; the channel is being closed.
	ErrSlowConsumer = link.ErrSlowConsumer
	// ErrOnLoop: a blocking send (SendWait) was called on an event loop —
	// from an inline handler or a hook — where it would wait for the very
	// loop it blocks. Nothing was sent.
	ErrOnLoop = link.ErrOnLoop
)

// Channel is one connection. The zero value is not usable: channels come
// from the server (or client) that accepted (or dialled) their connection.
//
// Every idle connection holds one; its layout is tio's own business (the
// server's event loop drives the same object).
type Channel link.Link

func (ch *Channel) l() *link.Link { return (*link.Link)(ch) }

// Of returns the channel of a codec.Conn that a server or client passed to a
// decoder or a codec hook (a WebSocket handshake hook, say), or nil if c is
// not one.
func Of(c codec.Conn) *Channel {
	if l, ok := c.(*link.Link); ok {
		return (*Channel)(l)
	}
	return nil
}

// ID returns the channel's id, unique within its server (or client) for the
// server's lifetime, growing with the order in which connections were
// accepted.
func (ch *Channel) ID() uint64 { return ch.l().ID() }

// RemoteAddr returns the peer's address.
func (ch *Channel) RemoteAddr() netip.AddrPort { return ch.l().RemoteAddr() }

// LocalAddr returns the local address the peer connected to.
func (ch *Channel) LocalAddr() netip.AddrPort { return ch.l().LocalAddr() }

// Codec returns the channel's codec, or nil while it is not yet chosen (the
// first bytes have not arrived).
func (ch *Channel) Codec() codec.Codec { return ch.l().Codec() }

// IsReady reports whether the protocol handshake has completed, so that
// packets can be sent.
func (ch *Channel) IsReady() bool { return ch.l().IsReady() }

// Created returns when the connection was accepted.
func (ch *Channel) Created() time.Time { return ch.l().Created() }

// String returns a short description for logs: "channel#42(10.0.0.1:5555)".
func (ch *Channel) String() string { return ch.l().String() }

// Stats is a snapshot of one channel's counters (t-io's ChannelStat).
type Stats struct {
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	PacketsHandled        uint64
	Reads                 uint64 // socket reads that delivered bytes
	Created               time.Time
	LastReceived          time.Time // zero if nothing was received
	LastSent              time.Time // zero if nothing was sent
}

// Stats returns a snapshot of the channel's counters. Each counter is read
// atomically; the snapshot as a whole is not (a pass of the event loop may
// be half counted).
func (ch *Channel) Stats() Stats { return Stats(ch.l().Stats()) }

// SetValue stores a user value under key (any comparable key, as with
// context.WithValue). A nil value deletes the key. Safe from any goroutine.
func (ch *Channel) SetValue(key, value any) { ch.l().SetValue(key, value) }

// Value returns the value stored under key, or nil.
func (ch *Channel) Value(key any) any { return ch.l().Value(key) }

// Closed reports whether the channel is closed or closing.
func (ch *Channel) Closed() bool { return ch.l().Closed() }

// Reason returns why the channel was closed (ReasonNone while open) and the
// error behind it, if any. The first reason recorded wins: a connection
// closing for one reason keeps it whatever happens next.
func (ch *Channel) Reason() (Reason, error) {
	r, err := ch.l().Reason()
	return Reason(r), err
}

// Send encodes p with the channel's codec and queues it, from any
// goroutine. It returns once the bytes are queued; the event loop writes
// them, after everything queued before. It never blocks on the network.
// Send fails with ErrClosed on a closed channel, ErrNotReady before the
// handshake, and ErrSlowConsumer (closing the channel) when the bytes
// already waiting for the peer are over the server's outbound limit — a
// packet is never refused for its own size. p may be reused when Send
// returns.
func (ch *Channel) Send(p *codec.Packet) error { return ch.l().Send(p) }

// SendWait is Send, then a wait until the event loop has written the bytes
// to the connection (to the kernel, or to gnet's buffer when the kernel's is
// full), the channel closes, or ctx ends. It blocks: called on an event loop
// (from an inline handler or a hook) it fails at once with ErrOnLoop, since
// it would wait for the loop it blocks.
func (ch *Channel) SendWait(ctx context.Context, p *codec.Packet) error {
	return ch.l().SendWait(ctx, p)
}

// SendHeartbeat queues the codec's keepalive (a WebSocket ping, the binary
// protocol's heartbeat byte). It returns an error wrapping
// codec.ErrUnsupported if the codec has none.
func (ch *Channel) SendHeartbeat() error { return ch.l().SendHeartbeat() }

// SetHeartbeatTimeout sets this connection's heartbeat timeout, overriding
// the server's (zero restores the server's). It takes effect at the next
// check of the connection.
func (ch *Channel) SetHeartbeatTimeout(d time.Duration) { ch.l().SetHeartbeatTimeout(d) }

// HeartbeatTimeout returns the timeout set by SetHeartbeatTimeout, or zero.
func (ch *Channel) HeartbeatTimeout() time.Duration { return ch.l().HeartbeatTimeout() }

// LastReceived returns when bytes last arrived (the accept time if none has).
func (ch *Channel) LastReceived() time.Time { return ch.l().LastReceived() }

// LastHeartbeatSent returns when SendHeartbeat last queued a keepalive, or
// the zero time.
func (ch *Channel) LastHeartbeatSent() time.Time { return ch.l().LastHeartbeatSent() }

// Close closes the channel for reason r (ReasonNone means
// ReasonClosedByApp), from any goroutine, without waiting. Bytes already
// queued are written first, then the codec says goodbye (a WebSocket close
// frame with r's code and text, for example), then the connection is
// closed. Closing a closed channel does nothing.
func (ch *Channel) Close(r Reason) {
	if r == ReasonNone {
		r = ReasonClosedByApp
	}
	ch.l().Close(link.Reason(r))
}

// CloseWith is Close with the words of the farewell instead of the
// reason's default ones: a WebSocket close frame's reason (123 bytes at
// most travel), which a browser shows as the CloseEvent's reason.
func (ch *Channel) CloseWith(r Reason, text string) {
	if r == ReasonNone {
		r = ReasonClosedByApp
	}
	ch.l().CloseWith(link.Reason(r), text)
}

// Reply sends resp as the reply to the request req (t-io's synSend, seen
// from the side that answers): resp goes out with req's ID and Reply set,
// so that the peer's Call matches it. resp is not modified. Replying to a
// packet that is not a request (ID 0) sends resp as a plain packet.
func (ch *Channel) Reply(req, resp *codec.Packet) error {
	r := *resp
	r.ID, r.Reply = req.ID, req.ID != 0
	return ch.Send(&r)
}

// TLS returns the state of the connection's TLS session — version, cipher
// suite, server name, ALPN protocol, the client's certificates — and false
// if the connection does not use TLS or its TLS handshake has not
// completed. A snapshot, safe from any goroutine.
func (ch *Channel) TLS() (tls.ConnectionState, bool) { return ch.l().TLS() }
