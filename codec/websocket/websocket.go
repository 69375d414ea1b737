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
// On the libraries: gobwas/ws parses the offers and hands them to the
// codec's negotiation; its wsflate.Extension does not serve, because it
// declines every offer with server_max_window_bits (it cannot honour a
// window under 32 KiB), fails the whole handshake on an invalid offer where
// RFC 7692 says to decline that offer and try the next, misses a repeated
// client_max_window_bits without a value, and its reader and writer assume
// a blocking connection. Compression uses klauspost/compress, whose
// flate.NewWriterWindow honours a server_max_window_bits under 15 (which
// compress/flate cannot) and whose Writer.ResetDict primes a pooled
// compressor with a connection's window. Inflating is the codec's own: the
// decoders of compress/flate and klauspost pull from an io.Reader and keep
// its errors for good, so they cannot stop in the middle of a symbol when
// a frame has arrived only in part, as an event loop must.
package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio/codec"
)

// Default limits.
const (
	DefaultMaxHandshake = 8 << 10  // bytes of the upgrade request
	DefaultMaxMessage   = 16 << 20 // bytes of a whole (reassembled) message
)

// Config configures the codec. The zero value is usable.
type Config struct {
	// MaxHandshake bounds the upgrade request, in bytes (default 8 KiB).
	// A longer request is answered with 431 and closed.
	MaxHandshake int
	// MaxFrame bounds one frame's payload (default: MaxMessage).
	MaxFrame int64
	// MaxMessage bounds a whole message after reassembly (default 16 MiB).
	// Past either limit the connection is closed with 1009.
	MaxMessage int64
	// Mapping turns messages into packets and back (default TypePrefix{}).
	Mapping Mapping
	// Subprotocols lists the subprotocols the server speaks. The first one the
	// client offers that is in this list is selected; none is selected when
	// the client offers none of them.
	Subprotocols []string
	// Origins lists the origins allowed besides the server's own, as a
	// browser sends them ("https://app.example.com", compared without
	// regard to case); "*" allows any. A request without an Origin header
	// (a client that is not a browser) is always allowed; one whose Origin
	// names its Host header is the same origin and allowed; any other is
	// refused with 403. Checking against this list allocates nothing.
	Origins []string
	// CheckOrigin, if set, decides instead of Origins whether a request's
	// Origin is allowed. It may use r.Origin, r.Host, r.Path and
	// r.RawQuery; r.Header is nil unless OnHandshake or KeepRequest is set.
	// It costs a Request per upgrade: prefer Origins when a list will do.
	CheckOrigin func(r *Request) bool
	// OnHandshake runs once the request is parsed and checked, before the
	// server answers. It may read the request, store values on the
	// connection (c.SetValue), or refuse the upgrade by returning an error:
	// a *RejectError picks the HTTP status, any other error gives 403.
	// It runs on the event loop and must not block.
	OnHandshake func(c codec.Conn, r *Request) error
	// KeepRequest stores the parsed request on the connection after the
	// handshake, for RequestOf. Off by default: the headers of a browser's
	// request cost more memory than an idle connection otherwise needs.
	KeepRequest bool
	// Compression configures permessage-deflate (RFC 7692): see
	// [Compression]. The zero value is off.
	Compression Compression
}

// Request is a parsed upgrade request.
type Request struct {
	// URI is the request target as sent ("/ws/42?token=abc").
	URI string
	// Path and RawQuery split URI.
	Path, RawQuery string
	// Host is the Host header.
	Host string
	// Origin is the Origin header, or "" when there is none.
	Origin string
	// Header holds the request's headers other than the WebSocket ones that
	// the codec handles itself (Upgrade, Connection, Sec-WebSocket-*). It is
	// filled only when Config.OnHandshake or Config.KeepRequest is set, and
	// nil otherwise (CheckOrigin alone sees no headers): copying every header
	// of every upgrade is garbage most servers never read.
	Header http.Header
	// Protocol is the subprotocol selected, or "".
	Protocol string
}

// Query parses RawQuery.
func (r *Request) Query() url.Values {
	v, _ := url.ParseQuery(r.RawQuery)
	return v
}

// RejectError refuses an upgrade with an HTTP status.
type RejectError struct {
	Status int
	Reason string
}

// Error implements error.
func (e *RejectError) Error() string {
	return fmt.Sprintf("websocket: upgrade rejected: %d %s", e.Status, e.Reason)
}

// Reject returns an error that makes OnHandshake refuse the upgrade with
// the given HTTP status and reason.
func Reject(status int, reason string) error { return &RejectError{Status: status, Reason: reason} }

type requestKey struct{}

// RequestOf returns the upgrade request of a connection whose codec was
// configured with KeepRequest, or nil.
func RequestOf(c codec.Conn) *Request {
	r, _ := c.Value(requestKey{}).(*Request)
	return r
}

// Codec is the WebSocket codec. Create it with New.
type Codec struct {
	cfg       Config
	upgraders sync.Pool // of *upgrader

	// permessage-deflate (deflate.go)
	threshold   int
	compressors [numWindows]sync.Pool // of *compressor, by window bits − 8
	inflaters   sync.Pool             // of *inflater
	assemblies  sync.Pool             // of *assembly, for compressed connections without context takeover
}

// New returns a WebSocket codec configured by cfg.
func New(cfg Config) *Codec {
	if cfg.MaxHandshake <= 0 {
		cfg.MaxHandshake = DefaultMaxHandshake
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxFrame <= 0 || cfg.MaxFrame > cfg.MaxMessage {
		cfg.MaxFrame = cfg.MaxMessage
	}
	if cfg.Mapping == nil {
		cfg.Mapping = TypePrefix{}
	}
	c := &Codec{cfg: cfg}
	c.initCompression()
	c.upgraders.New = func() any { return newUpgrader(&c.cfg) }
	return c
}

// Name implements codec.Codec.
func (*Codec) Name() string { return "websocket" }

// Sniff implements codec.Sniffer: a connection whose first bytes are an HTTP
// GET speaks WebSocket.
func (*Codec) Sniff(first []byte) codec.Match {
	const get = "GET "
	n := min(len(first), len(get))
	if string(first[:n]) != get[:n] {
		return codec.NoMatch
	}
	if n < len(get) {
		return codec.NeedMore
	}
	return codec.Matched
}

// NewDecoder implements codec.Codec.
func (c *Codec) NewDecoder() codec.Decoder { return &decoder{cd: c} }

// Encode implements codec.Codec: it appends one unmasked, unfragmented frame.
func (c *Codec) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	text, head, err := c.cfg.Mapping.Encode(p)
	if err != nil {
		return dst, err
	}
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	dst = appendHeader(dst, op, len(head)+len(p.Body))
	dst = append(dst, head...)
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

// AppendHeartbeat implements codec.Heartbeater: an empty ping frame. The
// client's pong (or any other traffic) shows it is alive.
func (*Codec) AppendHeartbeat(dst []byte) []byte { return appendHeader(dst, ws.OpPing, 0) }

// AppendFrame appends a final, unmasked frame with the given opcode and
// payload: the way to send control frames or messages outside the Mapping.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return append(appendHeader(dst, op, len(payload)), payload...)
}

// decoder states.
const (
	stHandshake uint8 = iota
	stOpen
	stClosed // a close frame was sent; nothing more is delivered
)

// decoder is one connection's decoding state. It stays small (the 24-byte
// size class; see TestDecoderSize) because every idle connection holds one:
// what only a fragmented or streamed message needs lives in asm, allocated
// on first need.
type decoder struct {
	cd      *Codec
	asm     *assembly // nil until a message is fragmented or a frame streamed (or compressed)
	scanned int32     // handshake bytes already searched for the blank line
	state   uint8
	msgOp   ws.OpCode // opcode of the message being assembled, 0 if none
	utf8    utf8State
	flags   uint8 // flagReset, and permessage-deflate's (deflate.go)
}

// flagReset: asm.msg holds a delivered message: reset before reuse.
const flagReset uint8 = 1

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
	histBits uint8     // context takeover: the client's window is 2^histBits bytes
	inf      *inflater // while a compressed message arrives; from the codec's pool
	hist     []byte    // context takeover: the end of the client's earlier compressed messages
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
	case stHandshake:
		return d.handshake(c, in)
	case stClosed:
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
	case !masked:
		return d.fail(c, ws.StatusProtocolError, codec.ErrProtocol, "client frame not masked")
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
	var mask [4]byte
	copy(mask[:], in[hlen-4:hlen])
	if op.IsControl() {
		total := hlen + int(plen)
		if len(in) < total {
			return 0, false, nil
		}
		payload := in[hlen:total]
		ws.Cipher(payload, mask, 0)
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
	ws.Cipher(payload, mask, 0)
	if fin && !compressed && (!cont || len(d.asm.msg) == 0) {
		// A whole message in one frame: deliver it in place.
		if d.msgOp == ws.OpText && d.utf8.validate(payload) != utf8Accept {
			return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "text message is not valid UTF-8")
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
	} else if cap(a.msg) > 64<<10 {
		a.msg = nil
	} else {
		a.msg = a.msg[:0]
	}
}

// Partial implements codec.Partial: a fragmented message is being
// assembled, or a frame's payload is arriving.
func (d *decoder) Partial() bool {
	return d.state == stOpen && (d.msgOp != 0 || (d.asm != nil && d.asm.remain > 0))
}

// stream consumes part of a frame whose payload has not arrived whole.
func (d *decoder) stream(c codec.Conn, a *assembly, in []byte, p *codec.Packet) (int, bool, error) {
	take := int(min(int64(len(in)), a.remain))
	if take == 0 {
		return 0, false, nil
	}
	chunk := in[:take]
	ws.Cipher(chunk, a.mask, int(a.maskPos))
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

func (d *decoder) deliver(c codec.Conn, payload []byte, p *codec.Packet, n int) (int, bool, error) {
	text := d.msgOp == ws.OpText
	d.msgOp = 0
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
		var buf [2 + 125]byte
		_ = c.Write(AppendFrame(buf[:0], ws.OpPong, payload))
		return n, false, nil
	case ws.OpPong:
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
func (d *decoder) closeWith(c codec.Conn, code ws.StatusCode) {
	if d.state == stClosed {
		return
	}
	d.state = stClosed
	var buf [4]byte
	if code == 0 {
		_ = c.WriteLast(AppendFrame(buf[:0], ws.OpClose, nil))
		return
	}
	body := [2]byte{byte(code >> 8), byte(code)}
	_ = c.WriteLast(AppendFrame(buf[:0], ws.OpClose, body[:]))
}

// fail closes with code and returns an error wrapping sentinel.
func (d *decoder) fail(c codec.Conn, code ws.StatusCode, sentinel error, msg string) (int, bool, error) {
	d.closeWith(c, code)
	return 0, false, fmt.Errorf("websocket: %s: %w", msg, sentinel)
}

// Farewell implements codec.Farewell: it sends a close frame whose code
// matches why, or, before the upgrade, an HTTP 503 for a server going away
// and 408 for a request that took too long.
func (d *decoder) Farewell(c codec.Conn, why error) {
	if d.state == stHandshake {
		d.state = stClosed
		switch {
		case errors.Is(why, codec.ErrGoingAway):
			writeStatus(c, http.StatusServiceUnavailable, nil)
		case errors.Is(why, codec.ErrPolicy): // the handshake deadline, a limit
			writeStatus(c, http.StatusRequestTimeout, nil)
		}
		return
	}
	d.closeWith(c, closeCode(why))
}

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

var (
	crlfcrlf  = []byte("\r\n\r\n")
	originKey = []byte("Origin")
)

// handshake waits for the whole upgrade request, answers it, and consumes
// exactly its bytes.
func (d *decoder) handshake(c codec.Conn, in []byte) (int, bool, error) {
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
	cfg *Config
	c   codec.Conn
	req *Request // built only for a hook or RequestOf to see

	raw          []byte // the request: read by gobwas
	off          int
	out          []byte // the response: written by gobwas
	host, origin []byte // the Host and Origin headers

	pmd deflateParams // the permessage-deflate offer accepted (deflate.go)
	ext []byte        // its answer's header line
}

func newUpgrader(cfg *Config) *upgrader {
	u := &upgrader{cfg: cfg}
	u.u = ws.Upgrader{
		ReadBufferSize:  max(4096, cfg.MaxHandshake),
		OnRequest:       u.onRequest,
		OnHost:          u.onHost,
		OnHeader:        u.onHeader,
		OnBeforeUpgrade: u.onBeforeUpgrade,
	}
	if len(cfg.Subprotocols) > 0 {
		u.u.Protocol = u.protocol
	}
	if cfg.Compression.Mode != CompressionOff {
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

// release returns u to pool, keeping its buffers unless one grew large.
func (u *upgrader) release(pool *sync.Pool) {
	u.c, u.req, u.raw, u.off = nil, nil, nil, 0
	if cap(u.out)+cap(u.host)+cap(u.origin) > 4<<10 {
		return
	}
	u.out, u.host, u.origin = u.out[:0], u.host[:0], u.origin[:0]
	pool.Put(u)
}

func (u *upgrader) upgrade(c codec.Conn, raw []byte) error {
	cfg := u.cfg
	u.c, u.raw, u.off = c, raw, 0
	u.out, u.host, u.origin = u.out[:0], u.host[:0], u.origin[:0]
	if cfg.CheckOrigin != nil || cfg.OnHandshake != nil || cfg.KeepRequest {
		u.req = new(Request)
		if cfg.OnHandshake != nil || cfg.KeepRequest {
			u.req.Header = make(http.Header)
		}
	}
	hs, err := u.u.Upgrade(u)
	if err != nil {
		if len(u.out) == 0 {
			// gobwas writes nothing for a request line it cannot parse.
			writeStatus(c, http.StatusBadRequest, nil)
		} else {
			_ = c.WriteLast(u.out)
		}
		return fmt.Errorf("websocket: %v: %w", err, codec.ErrHandshake)
	}
	if cfg.KeepRequest {
		u.req.Protocol = hs.Protocol
		c.SetValue(requestKey{}, u.req)
	}
	return c.Write(u.out)
}

func (u *upgrader) onRequest(uri []byte) error {
	if r := u.req; r != nil {
		r.URI = string(uri)
		r.Path, r.RawQuery, _ = strings.Cut(r.URI, "?")
	}
	return nil
}

func (u *upgrader) onHost(host []byte) error {
	u.host = append(u.host[:0], host...)
	return nil
}

func (u *upgrader) onHeader(k, v []byte) error {
	if bytes.EqualFold(k, originKey) {
		u.origin = append(u.origin[:0], v...)
	}
	if r := u.req; r != nil && r.Header != nil {
		r.Header.Add(string(k), string(v))
	}
	return nil
}

func (u *upgrader) protocol(p []byte) bool {
	for _, s := range u.cfg.Subprotocols {
		if string(p) == s {
			return true
		}
	}
	return false
}

func (u *upgrader) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	cfg, req := u.cfg, u.req
	if req != nil {
		req.Host, req.Origin = string(u.host), string(u.origin)
	}
	if cfg.CheckOrigin != nil {
		if !cfg.CheckOrigin(req) {
			return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("origin not allowed"))
		}
	} else if !sameOrigin(u.origin, u.host) && !listed(u.origin, cfg.Origins) {
		return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("cross-origin request"))
	}
	if cfg.OnHandshake != nil {
		if err := cfg.OnHandshake(u.c, req); err != nil {
			var rej *RejectError
			if errors.As(err, &rej) {
				return nil, ws.RejectConnectionError(ws.RejectionStatus(rej.Status), ws.RejectionReason(rej.Reason))
			}
			// The error's text stays on the server: it may say more than a
			// stranger should read.
			return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("upgrade refused"))
		}
	}
	return nil, nil
}

// sameOrigin reports whether origin (empty when absent) names host. A
// browser sends an origin serialized as scheme "://" host [":" port]
// (RFC 6454, section 6.2), with no path; anything else names no host.
func sameOrigin(origin, host []byte) bool {
	if len(origin) == 0 {
		return true
	}
	i := bytes.Index(origin, schemeSep)
	if i <= 0 {
		return false
	}
	h := origin[i+len(schemeSep):]
	if len(h) == 0 || bytes.ContainsAny(h, "/?#@") {
		return false
	}
	return bytes.EqualFold(h, host)
}

var schemeSep = []byte("://")

// equalFoldASCII reports whether b and s are equal, ASCII letters compared
// without regard to case. Serialized origins are ASCII (RFC 6454: hosts in
// their punycode form).
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if x != y && (x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z') {
			return false
		}
	}
	return true
}

// listed reports whether origin is in the allowed list.
func listed(origin []byte, allowed []string) bool {
	for _, a := range allowed {
		if a == "*" || equalFoldASCII(origin, a) {
			return true
		}
	}
	return false
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
