// Package codec defines how tio turns a connection's bytes into packets and
// packets back into bytes.
//
// A [Codec] is one wire protocol. It is shared by every connection that speaks
// it, and it encodes packets statelessly, so that a fan-out send can encode a
// packet once per codec and share the bytes between all of its targets. Each
// connection gets its own [Decoder] from [Codec.NewDecoder]: the decoder holds
// that connection's protocol state (handshake done, a fragmented message being
// assembled, and so on).
//
// # The decoding contract
//
// The server calls [Decoder.Decode] on the event loop with every byte buffered
// for the connection, in a loop, until the decoder asks for more bytes or fails:
//
//	(n, true, nil)   a whole packet was decoded into *p; n bytes were consumed.
//	(n, false, nil)  with n > 0: n bytes of protocol data (a ping, a handshake,
//	                 a fragment) were consumed and no packet is ready yet;
//	                 the server calls Decode again on what remains.
//	(0, false, nil)  more bytes are needed; the server waits for the next read.
//	(n, _, err)      the input is bad; the server closes the connection with a
//	                 reason derived from err (see the sentinel errors below).
//	                 Before returning an error a decoder writes its own farewell
//	                 (an HTTP error status, a close frame) through [Conn.Write].
//
// The input slice points into the event loop's read buffer: a packet's Body may
// alias it (no copy on the fast path) and is valid only until the server
// discards the consumed bytes, which happens after the packet's inline handler
// returns. The server copies a packet before it leaves the loop. A decoder may
// modify the bytes of in that it consumes (for example, to unmask in place).
//
// Decoders must bound everything they buffer: a packet larger than the
// protocol's limit fails with [ErrTooBig], never with an allocation of the
// size the peer announced.
package codec

import "errors"

// Type is a packet's routing key: the handler router dispatches on it.
type Type uint16

// Packet is one decoded message: a type, which routes it, and a body.
//
// A packet may be one half of a request/response exchange (t-io's
// synSend): a request carries a non-zero ID, and its reply the same ID
// with Reply set. Protocols carry these on the wire (docs/binary-protocol.md;
// the WebSocket TypePrefix mapping's 0xFE and 0xFF prefixes); a codec that
// cannot fails to encode them with ErrUnsupported.
type Packet struct {
	Type  Type
	ID    uint32 // correlation id: non-zero for a request and its reply
	Reply bool   // the packet answers the request with the same ID
	Body  []byte
}

// Conn is a connection as its decoder sees it. *channel.Channel implements it.
// Its methods are called on the connection's event loop.
type Conn interface {
	// Write queues b to be sent to the peer, after everything queued before.
	// The bytes are copied; b may be reused when Write returns.
	Write(b []byte) error
	// WriteLast queues the protocol's last bytes for the peer, after
	// everything queued before (a close frame, an HTTP error response).
	// Unlike Write it is not refused when the bytes waiting for the peer
	// are over the outbound limit: it is bounded and comes once, after
	// which the connection closes. The bytes are copied.
	WriteLast(b []byte) error
	// SetValue stores a per-connection value under key (a handshake request,
	// for example) and Value reads it back.
	SetValue(key, value any)
	// Value returns the value stored under key, or nil.
	Value(key any) any
	// Ready reports that the protocol's opening handshake has completed:
	// the server stops the handshake deadline and runs its connected hook.
	Ready()
	// SetVariant picks which of its codec's variants (see [Variants])
	// encodes the packets sent to this connection: a WebSocket connection
	// that negotiated compression, say. Call it during the handshake,
	// before Ready; the default is variant 0, the codec's Encode.
	SetVariant(v int)
	// Control reports that the decoder consumed a control message that is
	// not a packet (a ping, a pong, a heartbeat): the server counts it
	// toward the connection's rate limit, so that a flood of them is
	// bounded like a flood of packets.
	Control()
	// SetEncoder gives the connection an encoder of its own, used instead
	// of its codec's shared encoding for every packet sent to it (a
	// compressor with context takeover, whose output depends on what was
	// sent before). Call it during the handshake, before Ready. Fan-outs
	// encode separately for such connections.
	SetEncoder(e Encoder)
}

// Variants is implemented by codecs whose connections differ in how a
// packet is encoded, in a few ways known in advance: WebSocket connections
// with and without permessage-deflate, say. A decoder picks its
// connection's variant with [Conn.SetVariant]. A fan-out encodes a packet
// once per codec and variant among its targets and shares the bytes, so a
// variant's encoding must not depend on any connection's state.
type Variants interface {
	// NumVariants returns how many variants there are (at least 1);
	// variant 0 is what Encode produces.
	NumVariants() int
	// EncodeVariant appends p encoded as variant v to dst.
	EncodeVariant(dst []byte, p *Packet, v int) ([]byte, error)
}

// Encoder encodes the packets of one connection, in the order they are
// sent, with state of its own (see [Conn.SetEncoder]). The server calls it
// under the connection's lock, from whichever goroutine sends; it must not
// block.
type Encoder interface {
	Encode(dst []byte, p *Packet) ([]byte, error)
}

// Decoder decodes the bytes of one connection. See the package documentation
// for the contract. A Decoder is used by one event loop at a time and need not
// be safe for concurrent use.
type Decoder interface {
	Decode(c Conn, in []byte, p *Packet) (n int, ok bool, err error)
}

// Codec is one wire protocol. Its methods must be safe for concurrent use.
type Codec interface {
	// Name identifies the codec in logs and statistics ("websocket", "binary").
	Name() string
	// NewDecoder returns the decoding state for one new connection.
	NewDecoder() Decoder
	// Encode appends the wire form of p to dst and returns the extended slice.
	// It must not depend on any connection's state: its output is shared
	// between all the connections that speak this codec. A panic in Encode
	// (or in EncodeVariant, or an Encoder's Encode) fails that send with an
	// error wrapping ErrInternal that carries the panic's value and stack.
	Encode(dst []byte, p *Packet) ([]byte, error)
}

// Match is the answer of a [Sniffer] about a connection's first bytes.
type Match uint8

const (
	// NoMatch: these bytes are not this protocol.
	NoMatch Match = iota
	// Matched: these bytes begin this protocol.
	Matched
	// NeedMore: too few bytes to tell.
	NeedMore
)

// Sniffer is implemented by codecs that can recognise their protocol from a
// connection's first bytes, so that several protocols can share one port.
type Sniffer interface {
	Sniff(first []byte) Match
}

// Opener is implemented by the decoders of a protocol's client side, which
// speaks first: Open writes the protocol's opening (the binary handshake
// byte, a WebSocket upgrade request) through c when the connection is
// established, before the first Decode. The decoder calls Ready once the
// server has answered.
type Opener interface {
	Open(c Conn) error
}

// Farewell is implemented by decoders whose protocol says goodbye before the
// connection is closed by the server (a WebSocket close frame, for example).
// The server calls Farewell on the event loop, at most once, when it closes the
// connection for a reason of its own; why is one of the sentinel errors below
// (nil for a normal close). Farewell writes through c and must not block.
type Farewell interface {
	Farewell(c Conn, why error)
}

// FarewellText is what a server hands Farewell when the close has words
// to go with it (a WebSocket close frame's reason, which a browser shows as
// CloseEvent.reason): the sentinel that says why, and the text.
// errors.Is(f, sentinel) holds.
type FarewellText struct {
	Err  error  // the sentinel (nil for a normal close)
	Text string // at most 123 bytes travel in a WebSocket close frame
}

// Error implements error.
func (f *FarewellText) Error() string {
	if f.Err == nil {
		return f.Text
	}
	return f.Err.Error() + ": " + f.Text
}

// Unwrap returns the sentinel.
func (f *FarewellText) Unwrap() error { return f.Err }

// Lingerer is implemented by decoders whose protocol closes with a
// handshake (WebSocket: a close frame answered by a close frame). After
// the server's own farewell, Linger reports whether to keep the connection
// open, a bounded time, for the peer's answer before closing TCP — which is
// what lets a browser report a clean close.
type Lingerer interface {
	Linger() bool
}

// Answerer is implemented by a Lingerer whose protocol marks the peer's
// answer (WebSocket: its close frame). While the connection lingers, what
// the peer sends goes to Answer instead of ending the wait at its first
// byte: a peer that was still sending when the farewell left keeps sending
// until it reads it, and closing TCP on those bytes would answer them with
// a reset that can destroy the farewell before the peer reads it. Answer
// returns how many bytes of in it consumed (the rest, a few bytes of a
// header at most, comes again with what follows) and whether they held
// the answer; it keeps nothing of in. The wait still ends at the linger
// timeout. Called on the connection's loop.
type Answerer interface {
	Answer(in []byte) (n int, answered bool)
}

// Heartbeater is implemented by codecs whose protocol has a keepalive the
// server can send to an idle peer (a WebSocket ping, the binary protocol's
// heartbeat byte). AppendHeartbeat appends it to dst.
type Heartbeater interface {
	AppendHeartbeat(dst []byte) []byte
}

// Partial is implemented by decoders that consume a packet's bytes before
// the packet is whole (a large body collected as it arrives, a message
// assembled from fragments). Partial reports whether such a packet has begun
// and is not yet delivered; the server's packet deadline applies to it, so
// that a peer cannot hold a connection by sending one byte at a time.
// Decoders that leave an incomplete packet's bytes unconsumed need not
// implement it: the server sees those bytes itself.
type Partial interface {
	Partial() bool
}

// Releaser is implemented by decoders that deliver packets from buffers of
// their own (a message inflated, or assembled from fragments). The server
// calls Release on the event loop at the end of each pass that delivered a
// packet, once the packets' handlers have returned (it copies a packet that
// leaves the loop): the decoder may then reuse or give back what their
// bodies pointed to, so that an idle connection holds none of it.
type Releaser interface {
	Release()
}

// Sentinel errors. Decoders wrap them with %w so that the server can record a
// precise close reason; Farewell receives them to choose a close code.
var (
	// ErrProtocol: the peer broke the protocol's rules.
	ErrProtocol = errors.New("codec: protocol error")
	// ErrMalformed: the bytes cannot be decoded (bad length, bad encoding).
	ErrMalformed = errors.New("codec: malformed input")
	// ErrInvalidData: the message is well framed but its content is invalid
	// (for example, a WebSocket text message that is not UTF-8).
	ErrInvalidData = errors.New("codec: invalid data")
	// ErrTooBig: a frame, message or handshake exceeds the configured limit.
	ErrTooBig = errors.New("codec: too big")
	// ErrHandshake: the opening handshake is malformed or unsupported (a
	// bad request line or header, a missing key, a wrong first byte).
	// A well-formed handshake that a policy refuses is [ErrRefused].
	ErrHandshake = errors.New("codec: bad handshake")
	// ErrRefused: the handshake was refused by policy: origin, host, or
	// the application's hook. The request itself was well formed.
	ErrRefused = errors.New("codec: handshake refused by policy")
	// ErrPeerClosed: the peer closed the protocol session (for example, it
	// sent a WebSocket close frame, which the decoder has answered).
	ErrPeerClosed = errors.New("codec: closed by peer")
	// ErrGoingAway: the server is shutting down.
	ErrGoingAway = errors.New("codec: going away")
	// ErrPolicy: the connection broke a server policy (a timeout, a limit).
	ErrPolicy = errors.New("codec: policy violation")
	// ErrInternal: the server failed while handling the connection.
	ErrInternal = errors.New("codec: internal error")
	// ErrUnsupported: the packet cannot be expressed in this codec.
	ErrUnsupported = errors.New("codec: unsupported packet")
)
