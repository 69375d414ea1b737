// Package websocket is the server side of RFC 6455 as a tio codec, built on
// github.com/gobwas/ws.
//
// The opening handshake is parsed from exactly the bytes up to the blank line
// that ends the request, and only those bytes are consumed: frames that arrive
// in the same read as the request are decoded next, never lost. Frames are
// parsed from the event loop's buffer without copying: a whole unfragmented
// message is unmasked in place and handed to its handler as is. A frame that
// has not arrived whole is consumed as it arrives into a per-connection
// message buffer, so a large frame costs one copy, never a quadratic re-read.
// The buffer is kept for the next message up to 64 KiB; one that a larger
// message grew is dropped as soon as that message is delivered.
//
// Every rule of RFC 6455 section 5 is enforced as soon as the bytes that break
// it arrive, and the connection is closed with the status code the RFC names:
// 1002 for a protocol error, 1007 for a text message that is not UTF-8
// (validated incrementally, across fragments), 1009 for a frame or message
// over the limits, 1003 for a message the [Mapping] cannot turn into a packet.
// Pings are answered with pongs, control frames between fragments are handled
// without breaking the message, and a close frame is answered by a close frame
// with the same code, after which nothing more is delivered.
//
// How messages become packets is a [Mapping]; the default, [TypePrefix], takes
// a binary message's first byte as the packet type and gives text messages
// the type [TypeText].
//
// # The upgrade request
//
// The request is held to HTTP/1.1's syntax more strictly than gobwas/ws
// holds it, so that the codec and any proxy in front of it read the same
// request: a malformed request line, header line or Host, an HTTP version
// other than 1.1 (505), a second Host, Origin or Sec-WebSocket-Key, a key
// that is not 16 bytes in base64, and a request with a body (Content-Length
// other than 0, any Transfer-Encoding) are refused with 400, and more than
// [Config.MaxHeaders] header fields with 431. Such errors wrap
// [codec.ErrHandshake]. A request that is well formed but that a policy
// refuses (its host, its origin, the application's hook) wraps
// [codec.ErrRefused]; see [Config.Hosts] and [Config.Origins].
//
// What a connection keeps of its request is bounded: nothing by default,
// and with [Config.KeepRequest] one copy of the request's bytes and a
// [Request] of fixed size, at most MaxHandshake + 128 bytes (plus the
// allocator's rounding of MaxHandshake up to its size class, at most an
// eighth more), however many header fields it has: the headers are parsed
// only when the application asks for them.
//
// # Compression
//
// permessage-deflate (RFC 7692) is off unless [Config].Compression turns it
// on. [CompressionNoContextTakeover], the cheap mode, answers every offer
// with server_no_context_takeover and client_no_context_takeover, which
// RFC 7692 lets a server do whatever the client offered: each message is
// compressed on its own both ways, a connection keeps nothing between
// messages (an idle compressed connection costs what an uncompressed one
// does: its codec variant is its compression), and a fan-out compresses a
// packet once per variant (see [Codec.NumVariants]) and shares the bytes.
// [CompressionContextTakeover] keeps a window per connection and
// direction instead. Offers are answered as RFC 7692 says: the first valid
// one is accepted, invalid ones (an unknown or repeated parameter, a bad
// value) are declined, and every window size a client may ask for is
// honoured.
//
// Compressed messages are inflated as their frames arrive, into a buffer
// that never grows past MaxMessage: a message that would inflate further
// is closed with 1009 as soon as it does, text is checked for UTF-8 as it
// inflates (1007), and compressed data that cannot be decoded closes with
// 1002, as does RSV1 on a control or continuation frame, or without
// compression negotiated.
//
// In the client role ([Config].Client) the same modes choose what the
// client offers and keeps. [CompressionNoContextTakeover] offers
// "permessage-deflate; server_no_context_takeover;
// client_no_context_takeover; client_max_window_bits", so that neither end
// keeps a window; [CompressionContextTakeover] offers
// "permessage-deflate; client_max_window_bits" (after an offer of
// server_max_window_bits=WindowBits when WindowBits is under 15). The
// server's answer is checked parameter by parameter (RFC 7692 section 5.1):
// an extension not offered, a second permessage-deflate, an unknown or
// repeated parameter, a bad window size or a value where none belongs
// fails the handshake with an error wrapping [codec.ErrHandshake] that
// names the fault. Every valid answer is honoured: the client compresses
// with the window the server allows (client_max_window_bits), keeps its
// own context only in CompressionContextTakeover and unless the server
// says client_no_context_takeover, and keeps a window of what the server
// sends, of the size the server names (server_max_window_bits, asked for or
// not), whenever the server does not say server_no_context_takeover. Its
// frames are compressed, then masked; inflating is the server's, bounded by
// MaxMessage in the same way.
//
// On the libraries: gobwas/ws parses the offers and hands them to the
// codec's negotiation; its wsflate.Extension does not serve, because it
// declines every offer with server_max_window_bits (it cannot honour a
// window under 32 KiB), fails the whole handshake on an invalid offer where
// RFC 7692 says to decline that offer and try the next, misses a repeated
// client_max_window_bits without a value, and its reader and writer assume
// a blocking connection. A message of up to 4 KiB compressed on its own at
// level 1 goes to the codec's own encoder (encode.go): klauspost's level 1
// builds its Huffman codes with a length-limited package-merge that costs
// most of a small message's time. Other compression uses
// klauspost/compress, whose flate.NewWriterWindow honours a server_max_window_bits under 15 (which
// compress/flate cannot) and whose Writer.ResetDict primes a pooled
// compressor with a connection's window. Inflating is the codec's own: the
// decoders of compress/flate and klauspost pull from an io.Reader and keep
// its errors for good, so they cannot stop in the middle of a symbol when
// a frame has arrived only in part, as an event loop must.
package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio/codec"
)

// Default limits.
const (
	DefaultMaxHandshake = 8 << 10  // bytes of the upgrade request
	DefaultMaxHeaders   = 64       // header fields of the upgrade request (browsers send about 15)
	DefaultMaxMessage   = 16 << 20 // bytes of a whole (reassembled) message
)

// Config configures the codec. The zero value is usable. In the limits,
// zero keeps the default and a negative value removes the limit (as in
// tio.Limits), except MaxHandshake and MaxHeaders, which always bound an
// upgrade request (a value of zero or less is the default).
type Config struct {
	// MaxHandshake bounds the upgrade request, in bytes (default 8 KiB).
	// A longer request is answered with 431 and closed.
	MaxHandshake int
	// MaxHeaders bounds the number of header fields of the upgrade request
	// (default DefaultMaxHeaders, 64). A request with more is answered
	// with 431 and closed.
	MaxHeaders int
	// MaxFrame bounds one frame's payload (default: MaxMessage).
	MaxFrame int64
	// MaxMessage bounds a whole message after reassembly (default 16 MiB).
	// Past either limit the connection is closed with 1009.
	MaxMessage int64
	// HTTP hands plain HTTP requests (not upgrades) to the server whole, as
	// packets of type TypeHTTP, for its http.Handler (tio.WithHTTP sets it
	// on the default codec). Without it a plain request is answered 426
	// (GET, HEAD) or 405 with "Allow: GET" and the connection closed.
	HTTP bool
	// MaxHTTPBody bounds a plain HTTP request's body (default 1 MiB; past
	// it, 413). A chunked request body is refused with 411.
	MaxHTTPBody int
	// Mapping turns messages into packets and back (default TypePrefix{}).
	Mapping Mapping
	// Subprotocols lists the subprotocols the server speaks. The first one the
	// client offers that is in this list is selected; none is selected when
	// the client offers none of them.
	Subprotocols []string
	// Origins lists the origins allowed besides the server's own, as a
	// browser sends them ("https://app.example.com", compared without
	// regard to ASCII case, and only ASCII); "*" allows any.
	//
	// A request without an Origin header (a client that is not a browser)
	// is allowed. One whose Origin names the server is the same origin and
	// allowed: by default that is an Origin naming the request's own host
	// (its Host header, or an absolute request target's authority), and
	// when Hosts is set, an Origin naming one of Hosts. Any other is refused with 403, and so is an Origin header
	// with no value, even under "*" (no browser sends one). Checking
	// against this list allocates nothing.
	//
	// A refused origin is logged once at INFO through Logger, with the
	// setting that would allow it (the log is rate-limited and remembers
	// a bounded number of origins), and the error that closes the
	// connection wraps codec.ErrRefused, which the server counts.
	Origins []string
	// Hosts, if set, lists the host names the server answers to, as
	// clients send them in the Host header: a name, with its port when it
	// is not the scheme's default ("app.example.com", "localhost:8080",
	// "[::1]:8080"), compared without regard to ASCII case. A request for
	// any other host (its Host header, or the authority of an absolute
	// request target) is refused with 421 Misdirected Request whatever its
	// Origin, and the same origin then means an Origin naming one of
	// Hosts. Set it when the request's own Host cannot be trusted to name
	// the server:
	//
	//   - behind a reverse proxy that rewrites Host, a browser's Origin
	//     never names the Host the server sees, so the default rule
	//     refuses every browser. Rather than allowing "*", list the
	//     public origins in Origins, or list here both the public names
	//     and the name the proxy sends as Host;
	//   - a server on localhost or a private network is open to DNS
	//     rebinding: a page on the attacker's name, which the attacker's
	//     DNS then resolves to the server's address, reaches the server
	//     with the attacker's name in both Host and Origin, which the
	//     default rule takes for the same origin. Listing the names the
	//     server really has ("localhost:8080", "127.0.0.1:8080") refuses
	//     such requests.
	Hosts []string
	// CheckOrigin, if set, decides instead of Origins whether a request's
	// Origin is allowed (an Origin header with no value is refused before
	// it is asked). It sees the whole request, headers included. It costs
	// a Request per upgrade: prefer Origins when a list will do.
	CheckOrigin func(r *Request) bool
	// OnHandshake runs once the request is parsed and checked, before the
	// server answers. It may read the request, store values on the
	// connection (c.SetValue), or refuse the upgrade by returning an error:
	// a *RejectError picks the HTTP status, any other error gives 403; the
	// error that closes the connection wraps codec.ErrRefused. It runs on
	// the event loop and must not block.
	OnHandshake func(c codec.Conn, r *Request) error
	// KeepRequest stores the parsed request on the connection after the
	// handshake, for RequestOf. Off by default. The connection then keeps
	// one copy of the request's bytes and a Request of fixed size: at
	// most MaxHandshake + 128 bytes, rounded up to the allocator's size
	// class, however many header fields the request has (Request.Header
	// parses them on demand).
	KeepRequest bool
	// Logger receives the codec's INFO lines about refused upgrades
	// (default slog.Default(), looked up when a line is logged).
	Logger *slog.Logger
	// Client makes the codec the client side of RFC 6455 (package client
	// sets it): its decoders open the session with an upgrade request
	// (codec.Opener; see NewClientDecoder), check the server's 101 answer,
	// and then read frames that must not be masked, while every frame the
	// client sends is masked with a fresh random key. In this role
	// MaxHandshake and MaxHeaders bound the server's answer, Subprotocols
	// is what a request offers unless it names its own, and the server's
	// policies (Origins, Hosts, CheckOrigin, OnHandshake, KeepRequest) do
	// not apply; Compression is what the client offers.
	Client bool
	// Compression configures permessage-deflate (RFC 7692): see
	// [Compression] and, for the client role, the package documentation.
	// The zero value is off.
	Compression Compression
}

// RejectError refuses an upgrade with an HTTP status.
type RejectError struct {
	// Status is the HTTP status of the answer: a client error (4xx) or a
	// server error (5xx). Any other value is answered with 500 Internal
	// Server Error: a hook that asks for 101 or 200 has a bug, and an
	// answer with such a status would not be a refusal.
	Status int
	// Reason is the body of the answer.
	Reason string
}

// Error implements error.
func (e *RejectError) Error() string {
	return fmt.Sprintf("websocket: upgrade rejected: %d %s", e.Status, e.Reason)
}

// Reject returns an error that makes OnHandshake refuse the upgrade with
// the given HTTP status and reason. The status must be in 400–599; any
// other is answered with 500 (see RejectError).
func Reject(status int, reason string) error { return &RejectError{Status: status, Reason: reason} }

type requestKey struct{}

// RequestOf returns the upgrade request of a connection whose codec was
// configured with KeepRequest, or nil. c is its *channel.Channel (or the
// codec.Conn a hook was given).
func RequestOf(c interface{ Value(key any) any }) *Request {
	r, _ := c.Value(requestKey{}).(*Request)
	return r
}

// Codec is the WebSocket codec. Create it with New.
type Codec struct {
	cfg       Config
	upgraders sync.Pool // of *upgrader
	refusals  refusals

	// the client role (client.go)
	client    bool
	masks     sync.Pool                  // of *rand.ChaCha8, seeded from crypto/rand
	enc       *clientEncoder             // every client connection's encoder
	deflaters [numWindows]deflateEncoder // compressing client connections' encoders, by window bits − 8
	defReq    *ClientRequest             // what NewDecoder's requests ask for

	// permessage-deflate (deflate.go)
	threshold   int
	compressors [numWindows]sync.Pool // of *compressor, by window bits − 8
	msgEncoders sync.Pool             // of *msgEncoder
	msgMax      int                   // the longest message a msgEncoder compresses (0: none, above level 1)
	inflaters   sync.Pool             // of *inflater
	assemblies  sync.Pool             // of *assembly, for compressed connections without context takeover
}

// New returns a WebSocket codec configured by cfg.
func New(cfg Config) *Codec {
	if cfg.MaxHandshake <= 0 {
		cfg.MaxHandshake = DefaultMaxHandshake
	}
	if cfg.MaxHeaders <= 0 {
		cfg.MaxHeaders = DefaultMaxHeaders
	}
	switch { // zero: the default; negative: no limit (as in tio.Limits)
	case cfg.MaxMessage == 0:
		cfg.MaxMessage = DefaultMaxMessage
	case cfg.MaxMessage < 0:
		cfg.MaxMessage = math.MaxInt64
	}
	if cfg.MaxFrame == 0 || cfg.MaxFrame > cfg.MaxMessage {
		cfg.MaxFrame = cfg.MaxMessage
	} else if cfg.MaxFrame < 0 {
		cfg.MaxFrame = cfg.MaxMessage
	}
	if cfg.Mapping == nil {
		cfg.Mapping = TypePrefix{}
	}
	if cfg.MaxHTTPBody <= 0 {
		cfg.MaxHTTPBody = DefaultMaxHTTPBody
	}
	c := &Codec{cfg: cfg}
	c.initCompression()
	if cfg.Client {
		c.initClient()
	}
	c.upgraders.New = func() any { return newUpgrader(c) }
	return c
}

// Name implements codec.Codec.
func (*Codec) Name() string { return "websocket" }

// Sniff implements codec.Sniffer: a connection whose first bytes are an HTTP
// GET speaks WebSocket.
func (*Codec) Sniff(first []byte) codec.Match { return sniffHTTP(first) }

// NewDecoder implements codec.Codec. In the client role the decoder's
// request asks for "/" on host "localhost" (see NewClientDecoder).
func (c *Codec) NewDecoder() codec.Decoder {
	if c.client {
		return c.NewClientDecoder(c.defReq)
	}
	return &decoder{cd: c}
}

// Encode implements codec.Codec: it appends one unfragmented frame,
// unmasked, or in the client role masked with a fresh random key.
func (c *Codec) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	if c.client {
		return c.encodeMasked(dst, p)
	}
	text, head, err := c.cfg.Mapping.Encode(p)
	if err != nil {
		return dst, err
	}
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	dst = appendHeader(dst, op, head.Len()+len(p.Body))
	dst = append(dst, head.Bytes()...)
	return append(dst, p.Body...), nil
}

// appendHeader appends a final, unmasked frame header.
func appendHeader(dst []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		return append(dst, b0, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
			byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}

// AppendHeartbeat implements codec.Heartbeater: an empty ping frame (masked
// in the client role). The peer's pong (or any other traffic) shows it is
// alive.
func (c *Codec) AppendHeartbeat(dst []byte) []byte {
	if c.client {
		return c.appendMaskedFrame(dst, ws.OpPing, nil)
	}
	return appendHeader(dst, ws.OpPing, 0)
}

// appendFrame appends a final frame the decoder writes itself (a pong, a
// close): unmasked, or masked in the client role.
func (d *decoder) appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	if d.cd.client {
		return d.cd.appendMaskedFrame(dst, op, payload)
	}
	return AppendFrame(dst, op, payload)
}

// AppendFrame appends a final, unmasked frame with the given opcode and
// payload: the way to send control frames or messages outside the Mapping.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return append(appendHeader(dst, op, len(payload)), payload...)
}

// decoder states.
const (
	stHandshake uint8 = iota
	stOpen
	stClosed  // a close frame was sent; nothing more is delivered
	stSaidBye // the server's own close frame was sent: its answer is awaited (Linger)
	stHTTP    // plain HTTP: each request goes to the server whole (Config.HTTP)
)

// decoder is one connection's decoding state. It stays small (the 24-byte
// size class; see TestDecoderSize) because every idle connection holds one:
// what only a fragmented or streamed message needs lives in asm, allocated
// on first need.
type decoder struct {
	cd      *Codec
	asm     *assembly // nil until a message is fragmented or a frame streamed (or compressed)
	scanned int32     // handshake bytes already searched for the blank line; after the close frame (stSaidBye), payload bytes Answer skips (-1: all)
	state   uint8
	msgOp   ws.OpCode // opcode of the message being assembled, 0 if none
	utf8    utf8State
	flags   uint8 // flagReset, flagHTTPWait, and permessage-deflate's (deflate.go)
}

// flagReset: asm.msg holds a delivered message: reset before reuse.
const flagReset uint8 = 1

// flagHTTPWait: a plain HTTP request's body is on its way.
const flagHTTPWait uint8 = 1 << 7

// assembly is the state of a message that does not arrive as one whole
// frame, and of a frame whose payload is streamed as it arrives. It is kept
// for the connection's next such message.
type assembly struct {
	msg     []byte
	msgLen  int64 // bytes of the current message so far, set from its first frame on
	remain  int64 // payload bytes of the streamed frame still to come
	mask    [4]byte
	maskPos uint8
	fin     bool // the streamed frame is the message's last

	// permessage-deflate (deflate.go)
	histBits uint8     // context takeover: the peer's window is 2^histBits bytes
	inf      *inflater // while a compressed message arrives; from the codec's pool
	hist     []byte    // context takeover: the end of the peer's earlier compressed messages
}

// assembly returns d.asm, allocating it on first use (from the codec's
// pool on a compressed connection, to which it returns once the message is
// delivered).
func (d *decoder) assembly() *assembly {
	if d.asm == nil {
		if d.flags&flagDeflate != 0 {
			d.asm = d.cd.assemblies.Get().(*assembly)
		} else {
			d.asm = new(assembly)
		}
	}
	return d.asm
}

// Decode implements codec.Decoder.
func (d *decoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	d.Release()
	switch d.state {
	case stHandshake, stHTTP:
		return d.handshake(c, in, p)
	case stClosed, stSaidBye:
		return len(in), false, codec.ErrPeerClosed
	}
	if a := d.asm; a != nil && a.remain > 0 {
		return d.stream(c, a, in, p)
	}
	if len(in) < 2 {
		return 0, false, nil
	}
	b0, b1 := in[0], in[1]
	fin, rsv, op := b0&0x80 != 0, b0&0x70, ws.OpCode(b0&0x0F)
	masked, plen, hlen := b1&0x80 != 0, int64(b1&0x7F), 2
	switch plen {
	case 126:
		hlen = 4
	case 127:
		hlen = 10
	}
	if masked {
		hlen += 4
	}
	// Rules that the first two bytes already break fail before more arrive.
	switch {
	case rsv != 0 && (rsv != 0x40 || d.flags&flagDeflate == 0):
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "reserved bits set without an extension")
	case op.IsReserved():
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "reserved opcode")
	case rsv != 0 && op.IsControl():
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "compressed control frame")
	case rsv != 0 && op == ws.OpContinuation:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "RSV1 set on a continuation frame")
	case op.IsControl() && !fin:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "fragmented control frame")
	case op.IsControl() && plen > 125:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "control frame payload over 125 bytes")
	case !masked && !d.cd.client:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "client frame not masked")
	case masked && d.cd.client:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "server frame masked")
	case op == ws.OpContinuation && d.msgOp == 0:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "continuation frame without a message to continue")
	case op.IsData() && op != ws.OpContinuation && d.msgOp != 0:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "new data frame inside a fragmented message")
	}
	if len(in) < hlen {
		return 0, false, nil
	}
	switch plen {
	case 126:
		plen = int64(in[2])<<8 | int64(in[3])
	case 127:
		if in[2]&0x80 != 0 {
			return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "64-bit payload length with the top bit set")
		}
		plen = int64(in[2])<<56 | int64(in[3])<<48 | int64(in[4])<<40 | int64(in[5])<<32 |
			int64(in[6])<<24 | int64(in[7])<<16 | int64(in[8])<<8 | int64(in[9])
	}
	var mask [4]byte // all zero for a server's frames, which are not masked
	if masked {
		copy(mask[:], in[hlen-4:hlen])
	}
	if op.IsControl() {
		total := hlen + int(plen)
		if len(in) < total {
			return 0, false, nil
		}
		payload := in[hlen:total]
		unmask(payload, mask, 0)
		return d.control(c, op, payload, total)
	}
	if plen > d.cd.cfg.MaxFrame {
		return d.fail(c, ws.StatusMessageTooBig, codec.ErrTooBig, "frame over the size limit")
	}
	// A continuation frame has an assembly: the message's first frame was
	// not final, so it went through the assembly below.
	cont, sofar := op == ws.OpContinuation, int64(0)
	if cont {
		sofar = d.asm.msgLen
	}
	if sofar+plen > d.cd.cfg.MaxMessage {
		return d.fail(c, ws.StatusMessageTooBig, codec.ErrTooBig, "message over the size limit")
	}
	if !cont {
		d.msgOp, d.utf8 = op, utf8Accept
		d.flags &^= flagCompressed
		if rsv != 0 { // RSV1, allowed above: a compressed message
			d.flags |= flagCompressed
		}
	}
	compressed := d.flags&flagCompressed != 0
	total := int64(hlen) + plen
	whole := int64(len(in)) >= total
	if cont || !whole || !fin || compressed {
		// Not a whole message in one frame (or a compressed one, which
		// is inflated into the message buffer): count its length.
		a := d.assembly()
		if !cont {
			a.msgLen = 0
		}
		a.msgLen += plen
	}
	if !whole {
		// Not all here: consume the header and stream the payload.
		a := d.asm // allocated above
		a.remain, a.mask, a.maskPos, a.fin = plen, mask, 0, fin
		return hlen, false, nil
	}
	payload := in[hlen:total]
	unmask(payload, mask, 0)
	if fin && !compressed && (!cont || len(d.asm.msg) == 0) {
		// A whole message in one frame: deliver it in place.
		if d.msgOp == ws.OpText {
			// The same reasons as a message that arrives in pieces.
			switch d.utf8.validate(payload) {
			case utf8Accept:
			case utf8Reject:
				return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "text message is not valid UTF-8")
			default:
				return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "text message ends inside a UTF-8 sequence")
			}
		}
		return d.deliver(c, payload, p, int(total))
	}
	return d.fragment(c, payload, fin, p, int(total))
}

// Release implements codec.Releaser: the message buffer of a delivered
// message is emptied for the next one (or dropped, past 64 KiB), and on a
// compressed connection given back to the codec's pool. Decode calls it
// too, for servers that do not.
func (d *decoder) Release() {
	if d.flags&flagReset == 0 {
		return
	}
	d.flags &^= flagReset
	if a := d.asm; d.flags&flagDeflate != 0 {
		d.releaseDeflate()
	} else if cap(a.msg) > retainMsg {
		a.msg = nil
	} else {
		a.msg = a.msg[:0]
	}
}

// Partial implements codec.Partial: a fragmented message is being
// assembled, or a frame's payload is arriving.
func (d *decoder) Partial() bool {
	return d.flags&flagHTTPWait != 0 || d.state == stOpen && (d.msgOp != 0 || (d.asm != nil && d.asm.remain > 0))
}

// stream consumes part of a frame whose payload has not arrived whole.
func (d *decoder) stream(c codec.Conn, a *assembly, in []byte, p *codec.Packet) (int, bool, error) {
	take := int(min(int64(len(in)), a.remain))
	if take == 0 {
		return 0, false, nil
	}
	chunk := in[:take]
	unmask(chunk, a.mask, int(a.maskPos))
	a.maskPos = uint8((int(a.maskPos) + take) & 3)
	a.remain -= int64(take)
	return d.fragment(c, chunk, a.fin && a.remain == 0, p, take)
}

// fragment adds a piece of a message to the message buffer and delivers the
// message when its last piece has come.
func (d *decoder) fragment(c codec.Conn, chunk []byte, last bool, p *codec.Packet, n int) (int, bool, error) {
	if d.flags&flagCompressed != 0 {
		return d.inflate(c, d.asm, chunk, last, p, n)
	}
	if d.msgOp == ws.OpText {
		if d.utf8 = d.utf8.validate(chunk); d.utf8 == utf8Reject {
			return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "text message is not valid UTF-8")
		}
	}
	a := d.asm // set when the frame's header was decoded
	if a.msg == nil {
		a.msg = make([]byte, 0, min(a.msgLen, 4096))
	}
	a.msg = append(a.msg, chunk...)
	if !last {
		return n, false, nil
	}
	if d.msgOp == ws.OpText && d.utf8 != utf8Accept {
		return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "text message ends inside a UTF-8 sequence")
	}
	d.flags |= flagReset
	return d.deliver(c, a.msg, p, n)
}

// retainMsg is the largest message buffer a connection keeps between
// messages: Release drops a larger one, so that it is garbage as soon as
// the server is done with the packet, not when the peer next speaks.
const retainMsg = 64 << 10

func (d *decoder) deliver(c codec.Conn, payload []byte, p *codec.Packet, n int) (int, bool, error) {
	text := d.msgOp == ws.OpText
	d.msgOp = 0
	p.ID, p.Reply = 0, false // a mapping that carries ids sets them
	if err := d.cd.cfg.Mapping.Decode(text, payload, p); err != nil {
		code := ws.StatusUnsupportedData
		if errors.Is(err, codec.ErrInvalidData) {
			code = ws.StatusInvalidFramePayloadData
		}
		d.closeWith(c, code)
		return n, false, err
	}
	return n, true, nil
}

// control handles a whole, unmasked control frame.
func (d *decoder) control(c codec.Conn, op ws.OpCode, payload []byte, n int) (int, bool, error) {
	switch op {
	case ws.OpPing:
		c.Control()
		var buf [2 + 4 + 125]byte
		_ = c.Write(d.appendFrame(buf[:0], ws.OpPong, payload))
		return n, false, nil
	case ws.OpPong:
		c.Control()
		return n, false, nil
	}
	// A close frame: validate it, answer it, and stop.
	switch {
	case len(payload) == 0:
		d.closeWith(c, 0)
		return n, false, codec.ErrPeerClosed
	case len(payload) == 1:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "close frame with a one-byte body")
	}
	code := ws.StatusCode(uint16(payload[0])<<8 | uint16(payload[1]))
	if !validCloseCode(code) {
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "invalid close code "+strconv.Itoa(int(code)))
	}
	if utf8Accept.validate(payload[2:]) != utf8Accept {
		return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "close reason is not valid UTF-8")
	}
	d.closeWith(c, code)
	return n, false, codec.ErrPeerClosed
}

// validCloseCode reports whether a peer may send code in a close frame.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closeWith sends a close frame (an empty one for code 0) unless one was
// sent already, and stops delivering.
func (d *decoder) closeWith(c codec.Conn, code ws.StatusCode) { d.closeText(c, code, "") }

// closeText sends a close frame with code (none for 0) and, after it, as
// much of text as the frame holds (123 bytes, cut at a UTF-8 boundary),
// unless a close frame was sent already; then nothing more is delivered.
func (d *decoder) closeText(c codec.Conn, code ws.StatusCode, text string) {
	if d.state == stClosed || d.state == stSaidBye {
		return
	}
	d.state = stClosed
	var buf [2 + 4 + 125]byte
	if code == 0 {
		_ = c.WriteLast(d.appendFrame(buf[:0], ws.OpClose, nil))
		return
	}
	var body [125]byte
	body[0], body[1] = byte(code>>8), byte(code)
	n := 2 + copy(body[2:], text)
	for n > 2 && !utf8.Valid(body[2:n]) { // cut inside a rune: back off
		n--
	}
	_ = c.WriteLast(d.appendFrame(buf[:0], ws.OpClose, body[:n]))
}

// fail closes with code and returns an error wrapping sentinel.
func (d *decoder) fail(c codec.Conn, code ws.StatusCode, sentinel error, msg string) (int, bool, error) {
	d.closeText(c, code, msg)
	return 0, false, fmt.Errorf("websocket: %s: %w", msg, sentinel)
}

// Farewell implements codec.Farewell: it sends a close frame whose code
// matches why, or, before the upgrade, an HTTP 503 for a server going away
// and 408 for a request that took too long. A plain HTTP connection
// (Config.HTTP) gets nothing: between requests an HTTP server just closes,
// and a request on its way is answered before the farewell.
func (d *decoder) Farewell(c codec.Conn, why error) {
	if d.state == stHTTP {
		d.state = stClosed
		return
	}
	if d.state == stHandshake {
		d.state = stClosed
		switch {
		case errors.Is(why, codec.ErrGoingAway):
			writeStatus(c, http.StatusServiceUnavailable, nil)
		case errors.Is(why, codec.ErrPolicy): // the handshake deadline, a limit
			writeStatus(c, http.StatusRequestTimeout, nil)
		case errors.Is(why, codec.ErrInternal): // a hook or the codec panicked
			writeStatus(c, http.StatusInternalServerError, nil)
		}
		return
	}
	var text string
	var ft *codec.FarewellText
	if errors.As(why, &ft) {
		text = ft.Text
	}
	before := d.state
	d.closeText(c, closeCode(why), text)
	if before == stOpen {
		d.state = stSaidBye // the peer's answer is awaited
		// scanned (the handshake's) now counts the payload bytes that
		// Answer skips: those of a frame being streamed go first.
		d.scanned = 0
		if a := d.asm; a != nil && a.remain > 0 {
			d.scanned = int32(min(a.remain, math.MaxInt32))
			if a.remain > math.MaxInt32 {
				d.scanned = -1
			}
		}
	}
}

// Answer implements codec.Answerer: after the server's close frame, the
// frames the peer sent before it read it are skipped as they arrive (their
// payloads are not held, whatever their size), and the peer's close frame
// is the answer. A frame longer than 2 GiB is skipped until the linger
// timeout.
func (d *decoder) Answer(in []byte) (int, bool) {
	if d.state != stSaidBye {
		return len(in), true
	}
	n := 0
	for n < len(in) {
		if d.scanned < 0 {
			return len(in), false
		}
		if d.scanned > 0 {
			k := min(int(d.scanned), len(in)-n)
			n += k
			d.scanned -= int32(k)
			continue
		}
		b := in[n:]
		if len(b) < 2 {
			return n, false
		}
		plen, hlen := int64(b[1]&0x7F), 2
		switch plen {
		case 126:
			hlen = 4
		case 127:
			hlen = 10
		}
		if b[1]&0x80 != 0 {
			hlen += 4
		}
		if len(b) < hlen {
			return n, false
		}
		if ws.OpCode(b[0]&0x0F) == ws.OpClose {
			return len(in), true
		}
		switch plen {
		case 126:
			plen = int64(binary.BigEndian.Uint16(b[2:]))
		case 127:
			plen = int64(binary.BigEndian.Uint64(b[2:]) &^ (1 << 63))
		}
		n += hlen
		d.scanned = int32(min(plen, math.MaxInt32))
		if plen > math.MaxInt32 {
			d.scanned = -1
		}
	}
	return n, false
}

// Linger implements codec.Lingerer: after the server's own close frame,
// the connection waits for the peer's before it closes TCP (RFC 6455
// section 7.1.1), so that a browser reports a clean close.
func (d *decoder) Linger() bool { return d.state == stSaidBye }

func closeCode(why error) ws.StatusCode {
	switch {
	case why == nil:
		return ws.StatusNormalClosure
	case errors.Is(why, codec.ErrGoingAway):
		return ws.StatusGoingAway
	case errors.Is(why, codec.ErrTooBig):
		return ws.StatusMessageTooBig
	case errors.Is(why, codec.ErrInvalidData):
		return ws.StatusInvalidFramePayloadData
	case errors.Is(why, codec.ErrUnsupported):
		return ws.StatusUnsupportedData
	case errors.Is(why, codec.ErrProtocol), errors.Is(why, codec.ErrMalformed):
		return ws.StatusProtocolError
	case errors.Is(why, codec.ErrPolicy):
		return ws.StatusPolicyViolation
	case errors.Is(why, codec.ErrInternal):
		return ws.StatusInternalServerError
	}
	return ws.StatusNormalClosure
}

var crlfcrlf = []byte("\r\n\r\n")

// handshake waits for the whole upgrade request, answers it, and consumes
// exactly its bytes.
func (d *decoder) handshake(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	from := max(0, int(d.scanned)-3)
	end := bytes.Index(in[from:min(len(in), d.cd.cfg.MaxHandshake)], crlfcrlf)
	if end < 0 {
		if len(in) >= d.cd.cfg.MaxHandshake {
			d.state = stClosed
			writeStatus(c, http.StatusRequestHeaderFieldsTooLarge, nil)
			return 0, false, fmt.Errorf("websocket: upgrade request over %d bytes: %w", d.cd.cfg.MaxHandshake, codec.ErrTooBig)
		}
		d.scanned = int32(len(in)) // only a hint: a wrapped value rescans more
		return 0, false, nil
	}
	n := from + end + len(crlfcrlf)
	if d.state == stHTTP || !isUpgrade(in[:n]) {
		return d.plainHTTP(c, in, n, p)
	}
	if !bytes.HasPrefix(in, []byte("GET ")) {
		d.state = stClosed
		writeStatus(c, http.StatusMethodNotAllowed, []string{"Allow: GET"})
		return n, false, fmt.Errorf("websocket: an upgrade request with another method than GET: %w", codec.ErrHandshake)
	}
	if err := d.upgrade(c, in[:n]); err != nil {
		d.state = stClosed
		return n, false, err
	}
	d.state, d.scanned = stOpen, 0
	c.Ready()
	return n, false, nil
}

// upgrade answers the request in raw; on failure it has written an HTTP error.
func (d *decoder) upgrade(c codec.Conn, raw []byte) error {
	u := d.cd.upgraders.Get().(*upgrader)
	defer u.release(&d.cd.upgraders)
	u.pmd = deflateParams{}
	err := u.upgrade(c, raw)
	if err == nil && u.pmd.ok {
		d.negotiated(c, &u.pmd)
	}
	u.pmd = deflateParams{}
	return err
}

// upgrader is the scratch space of one opening handshake: gobwas's Upgrader
// with its callbacks bound to it once, the request as a reader and the
// response's buffer. Handshakes borrow one from their codec's pool, so an
// upgrade allocates nothing but what a hook asks for: every idle connection
// was once a handshake, and a handshake's garbage is resident memory until
// the collector runs.
type upgrader struct {
	u   ws.Upgrader
	cd  *Codec
	cfg *Config
	c   codec.Conn
	req *Request // built only for a hook or RequestOf to see

	raw     []byte  // the request: read by gobwas
	off     int     // how much of raw gobwas has read
	info    reqInfo // where the request's parts are in raw
	proto   string  // the subprotocol selected, one of cfg.Subprotocols
	refused bool    // a policy refused the request (not its syntax)
	out     []byte  // the response: written by gobwas

	pmd deflateParams // the permessage-deflate offer accepted (deflate.go)
	ext []byte        // its answer's header line
}

func newUpgrader(cd *Codec) *upgrader {
	u := &upgrader{cd: cd, cfg: &cd.cfg}
	u.u = ws.Upgrader{
		ReadBufferSize:  max(4096, cd.cfg.MaxHandshake),
		OnBeforeUpgrade: u.onBeforeUpgrade,
	}
	if len(cd.cfg.Subprotocols) > 0 {
		u.u.Protocol = u.protocol
	}
	if cd.cfg.Compression.Mode != CompressionOff {
		u.u.Negotiate, u.u.OnBeforeUpgrade = u.negotiate, u.beforeUpgradeDeflate
	}
	return u
}

// Read implements io.Reader over the request's bytes.
func (u *upgrader) Read(p []byte) (int, error) {
	if u.off >= len(u.raw) {
		return 0, io.EOF
	}
	n := copy(p, u.raw[u.off:])
	u.off += n
	return n, nil
}

// Write implements io.Writer into the response's buffer.
func (u *upgrader) Write(p []byte) (int, error) {
	u.out = append(u.out, p...)
	return len(p), nil
}

// release returns u to pool, keeping its buffer unless it grew large.
func (u *upgrader) release(pool *sync.Pool) {
	u.c, u.req, u.raw, u.off, u.proto = nil, nil, nil, 0, ""
	if cap(u.out) > 4<<10 {
		return
	}
	u.out = u.out[:0]
	pool.Put(u)
}

func (u *upgrader) upgrade(c codec.Conn, raw []byte) error {
	cfg := u.cfg
	u.c, u.raw, u.off, u.proto, u.refused = c, raw, 0, "", false
	u.out = u.out[:0]
	if status, why := checkRequest(raw, cfg.MaxHeaders, &u.info); status != 0 {
		writeStatus(c, status, nil)
		sentinel := codec.ErrHandshake
		if status == http.StatusRequestHeaderFieldsTooLarge {
			sentinel = codec.ErrTooBig
		}
		return fmt.Errorf("websocket: %s: %w", why, sentinel)
	}
	_, err := u.u.Upgrade(u)
	if err != nil {
		if len(u.out) == 0 {
			// gobwas writes nothing for a request line it cannot parse.
			writeStatus(c, http.StatusBadRequest, nil)
		} else {
			_ = c.WriteLast(u.out)
		}
		sentinel := codec.ErrHandshake
		if u.refused {
			sentinel = codec.ErrRefused
		}
		return fmt.Errorf("websocket: %v: %w", err, sentinel)
	}
	if cfg.KeepRequest {
		c.SetValue(requestKey{}, u.req)
	}
	return c.Write(u.out)
}

func (u *upgrader) protocol(p []byte) bool {
	for _, s := range u.cfg.Subprotocols {
		if string(p) == s {
			u.proto = s
			return true
		}
	}
	return false
}

// onBeforeUpgrade runs once gobwas has checked the request: it applies the
// policies (Hosts, the origin rules, OnHandshake) and builds the Request
// that a hook or RequestOf sees.
func (u *upgrader) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	cfg := u.cfg
	if cfg.CheckOrigin != nil || cfg.OnHandshake != nil || cfg.KeepRequest {
		u.req = newRequest(u.raw, &u.info)
		u.req.Protocol = u.proto
	}
	host, origin := u.info.host.of(u.raw), u.info.origin.of(u.raw)
	if len(cfg.Hosts) > 0 && !hostListed(host, cfg.Hosts) {
		u.cd.refusals.report(cfg.Logger, refusedHost, host, host)
		return u.refuse(http.StatusMisdirectedRequest, "host not served")
	}
	switch {
	case !u.info.hasOrigin && cfg.CheckOrigin == nil:
		// Not a browser: no origin to check.
	case u.info.hasOrigin && len(origin) == 0:
		u.cd.refusals.report(cfg.Logger, refusedEmptyOrigin, origin, host)
		return u.refuse(http.StatusForbidden, "empty origin")
	case cfg.CheckOrigin != nil:
		if !cfg.CheckOrigin(u.req) {
			u.cd.refusals.report(cfg.Logger, refusedByHook, origin, host)
			return u.refuse(http.StatusForbidden, "origin not allowed")
		}
	case !sameOrigin(origin, host, cfg.Hosts) && !listed(origin, cfg.Origins):
		u.cd.refusals.report(cfg.Logger, refusedOrigin, origin, host)
		return u.refuse(http.StatusForbidden, "cross-origin request")
	}
	if cfg.OnHandshake != nil {
		if err := cfg.OnHandshake(u.c, u.req); err != nil {
			var rej *RejectError
			if errors.As(err, &rej) {
				status := rej.Status
				if status < 400 || status > 599 {
					status = http.StatusInternalServerError
				}
				return u.refuse(status, rej.Reason)
			}
			// The error's text stays on the server: it may say more than a
			// stranger should read.
			return u.refuse(http.StatusForbidden, "upgrade refused")
		}
	}
	return nil, nil
}

// refuse makes gobwas answer with status and reason, and marks the
// refusal as one of policy.
func (u *upgrader) refuse(status int, reason string) (ws.HandshakeHeader, error) {
	u.refused = true
	return nil, ws.RejectConnectionError(ws.RejectionStatus(status), ws.RejectionReason(reason))
}

// writeStatus writes a minimal HTTP error response.
func writeStatus(c codec.Conn, status int, extra []string) {
	text := http.StatusText(status)
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n", status, text, len(text)+1)
	for _, h := range extra {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(text)
	b.WriteString("\n")
	_ = c.WriteLast([]byte(b.String()))
}
