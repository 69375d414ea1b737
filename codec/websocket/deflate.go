package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"

	"github.com/tiogo/tio/codec"
)

// permessage-deflate (RFC 7692): see the package documentation.

// CompressionMode says whether the codec negotiates permessage-deflate
// (RFC 7692), and how.
type CompressionMode uint8

const (
	// CompressionOff never negotiates compression (a client offers none);
	// a frame with RSV1 set is a protocol error (1002). The default.
	CompressionOff CompressionMode = iota
	// CompressionNoContextTakeover negotiates permessage-deflate when the
	// client offers it and always answers server_no_context_takeover and
	// client_no_context_takeover: every message is compressed on its own
	// in both directions, so a connection keeps no compression state
	// between messages (an idle connection costs what an uncompressed one
	// does), and a fan-out compresses a packet once per window size among
	// its receivers and shares the bytes. A client (Config.Client) offers
	// it with server_no_context_takeover and client_no_context_takeover.
	CompressionNoContextTakeover
	// CompressionContextTakeover negotiates permessage-deflate and lets
	// each direction keep its LZ77 window between messages, unless the
	// client asks otherwise: smaller messages when they repeat one
	// another, at the cost of a window per connection and direction
	// (Compression.WindowBits) and of compressing for each receiver apart
	// (the encoding depends on what the connection was sent before). A
	// client keeps its context unless the server answers
	// client_no_context_takeover.
	CompressionContextTakeover
)

// Compression configures permessage-deflate. The zero value is off.
type Compression struct {
	// Mode turns compression on (see CompressionMode).
	Mode CompressionMode
	// Level is the compression level from 1 (fastest, the default) to 9
	// (smallest), for the 32 KiB window. At level 1 a message of up to
	// 4 KiB compressed on its own (no server context takeover) goes to
	// the codec's own encoder, whatever the window: one block, greedy LZ77
	// matches, and Huffman codes built for the message at a fraction of
	// klauspost's cost (a 1 KiB JSON message: about 0.7× the CPU, as
	// small or 2% smaller). Everything else is klauspost/compress's: a
	// client that asks for a smaller window (server_max_window_bits)
	// gets its custom-window compressor, which has one level of its own;
	// at levels 1 to 6 (its fast encoders) a message under 128 bytes is
	// sent with Huffman codes alone or stored, without LZ77 matches, so
	// context takeover helps only longer messages; levels 7 to 9 match
	// any message, but clear a 640 KB table for each one they compress.
	Level int
	// Threshold: a message whose payload is shorter than this is sent
	// uncompressed (RSV1 clear), even on a compressed connection; so is a
	// message that compression does not make smaller. The default is
	// DefaultThreshold; a negative value compresses every message.
	Threshold int
	// WindowBits applies to CompressionContextTakeover: the window kept per
	// connection and direction is at most 2^WindowBits bytes, 8 to 15
	// (default 12: 4 KiB each way). The server answers a client's
	// client_max_window_bits with it; a client that offers no
	// client_max_window_bits cannot be told a smaller window, so when
	// WindowBits is under 15 it is answered client_no_context_takeover.
	// A client bounds the context it keeps of its own messages with it and
	// asks the server for it (server_max_window_bits); a server that
	// declines that and keeps a larger window is followed (up to 32 KiB).
	WindowBits int
}

// Compression defaults.
const (
	DefaultThreshold  = 256
	DefaultLevel      = 1
	DefaultWindowBits = 12
)

// numWindows is the number of window sizes (2^8 to 2^15) a client may
// impose on what the server sends.
const numWindows = 8

// variantOf returns the variant (see Codec.NumVariants) that compresses
// with a window of 2^bits bytes.
func variantOf(bits uint8) int { return 16 - int(bits) }

// NumVariants implements codec.Variants. Without compression there is one
// variant. With it there are 9: variant 0 is uncompressed, and variant v
// (1 to 8) compresses each message on its own with a window of 2^(16−v)
// bytes (variant 1: the default 32 KiB; the others for clients that offer
// server_max_window_bits). A connection's variant is chosen during its
// handshake; connections with context takeover have encoders of their own.
func (c *Codec) NumVariants() int {
	if c.cfg.Compression.Mode == CompressionOff || c.client {
		// A client's frames are masked, each with a key of its own: no
		// two connections share an encoding (see Config.Client).
		return 1
	}
	return 1 + numWindows
}

// EncodeVariant implements codec.Variants: it appends p as variant v (see
// NumVariants). It is safe for concurrent use, from any goroutine that
// sends; compressing borrows a compressor from the codec's pool and
// allocates nothing but what dst needs to grow.
func (c *Codec) EncodeVariant(dst []byte, p *codec.Packet, v int) ([]byte, error) {
	if v <= 0 || v > numWindows || c.cfg.Compression.Mode == CompressionOff {
		return c.Encode(dst, p)
	}
	text, head, err := c.cfg.Mapping.Encode(p)
	if err != nil {
		return dst, err
	}
	dst, _ = c.appendMessage(dst, text, head.Bytes(), p.Body, uint8(16-v), nil)
	return dst, nil
}

// compressor is a pooled klauspost writer with the slice it writes to.
type compressor struct {
	w    *flate.Writer
	sink sliceWriter
}

type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// syncTail ends a sync flush: RFC 7692 removes it from a message's end.
var syncTail = []byte{0, 0, 0xff, 0xff}

// headerLen is the length of a frame header for a payload of n, unmasked
// (a server's) or masked (a client's).
func headerLen(n int, masked bool) int {
	h := 10
	switch {
	case n < 126:
		h = 2
	case n <= 0xFFFF:
		h = 4
	}
	if masked {
		h += 4
	}
	return h
}

// appendPlain appends an uncompressed message frame holding head and body:
// unmasked, or in the client role masked with a fresh key.
func (c *Codec) appendPlain(dst []byte, op ws.OpCode, head, body []byte) []byte {
	n := len(head) + len(body)
	if !c.client {
		return append(append(appendHeader(dst, op, n), head...), body...)
	}
	mask := c.newMask()
	dst = appendMaskedHeader(dst, op, n, mask)
	start := len(dst)
	dst = append(append(dst, head...), body...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// appendMessage appends a message frame holding head and body, compressed
// with a window of 2^bits bytes after dict (context takeover; nil without),
// unless it is under the threshold or compression does not make it smaller.
// In the client role the frame is masked with a fresh key, after
// compression (RFC 7692 section 6: the extension works on the unmasked
// payload). It reports whether it compressed.
func (c *Codec) appendMessage(dst []byte, text bool, head, body []byte, bits uint8, dict []byte) ([]byte, bool) {
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	n := len(head) + len(body)
	if n < c.threshold {
		return c.appendPlain(dst, op, head, body), false
	}
	start, reserve := len(dst), headerLen(n, c.client)
	if dict == nil && n <= c.msgMax {
		e := c.msgEncoders.Get().(*msgEncoder)
		out := e.encode(append(dst, make([]byte, reserve)...), head, body, 1<<bits)
		c.msgEncoders.Put(e)
		return c.frameCompressed(out, start, reserve, op, head, body)
	}
	cp := c.compressors[bits-8].Get().(*compressor)
	cp.sink.b = append(dst, make([]byte, reserve)...) // the header's room; no allocation when dst has the capacity
	if dict == nil {
		cp.w.Reset(&cp.sink)
	} else {
		cp.w.ResetDict(&cp.sink, dict)
	}
	_, _ = cp.w.Write(head) // a sliceWriter never fails
	_, _ = cp.w.Write(body)
	_ = cp.w.Flush()
	out := cp.sink.b
	cp.sink.b = nil
	if dict != nil {
		cp.w.ResetDict(nil, nil) // forget dict: it is the connection's
	}
	c.compressors[bits-8].Put(cp)
	if !bytes.HasSuffix(out, syncTail) {
		return c.appendPlain(out[:start], op, head, body), false
	}
	return c.frameCompressed(out[:len(out)-len(syncTail)], start, reserve, op, head, body)
}

// frameCompressed completes the frame of a message compressed to
// out[start+reserve:], or replaces it with the message uncompressed when
// compression did not make it smaller.
func (c *Codec) frameCompressed(out []byte, start, reserve int, op ws.OpCode, head, body []byte) ([]byte, bool) {
	n := len(head) + len(body)
	clen := len(out) - start - reserve
	if clen >= n {
		// No gain: send it as it is.
		return c.appendPlain(out[:start], op, head, body), false
	}
	var h []byte // in place: len(h) <= reserve
	var mask [4]byte
	if c.client {
		mask = c.newMask()
		h = appendMaskedHeader(out[start:start], op, clen, mask)
	} else {
		h = appendHeader(out[start:start], op, clen)
	}
	h[0] |= 0x40 // RSV1: compressed
	if len(h) < reserve {
		copy(out[start+len(h):], out[start+reserve:start+reserve+clen])
	}
	out = out[:start+len(h)+clen]
	if c.client {
		ws.Cipher(out[start+len(h):], mask, 0)
	}
	return out, true
}

// takeoverEncoder is a connection's own encoder when the server keeps its
// context (codec.Conn.SetEncoder): the window it keeps is the last bytes it
// compressed, with which it primes a pooled compressor for each message.
// It is called under its connection's lock.
type takeoverEncoder struct {
	cd     *Codec
	bits   uint8  // the compressor's window: 2^bits bytes
	size   int    // the most bytes of context kept
	window []byte // allocated on the first compressed message
}

// Encode implements codec.Encoder.
func (e *takeoverEncoder) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	text, head, err := e.cd.cfg.Mapping.Encode(p)
	if err != nil {
		return dst, err
	}
	dst, compressed := e.cd.appendMessage(dst, text, head.Bytes(), p.Body, e.bits, e.window)
	if compressed {
		if e.window == nil {
			e.window = make([]byte, 0, e.size)
		}
		e.window = slide(slide(e.window, head.Bytes(), e.size), p.Body, e.size)
	}
	return dst, nil
}

// slide appends b to the window w, keeping its last size bytes.
func slide(w, b []byte, size int) []byte {
	if len(b) >= size {
		return append(w[:0], b[len(b)-size:]...)
	}
	if keep := size - len(b); len(w) > keep {
		copy(w, w[len(w)-keep:])
		w = w[:keep]
	}
	return append(w, b...)
}

// initCompression completes New for the compression settings.
func (c *Codec) initCompression() {
	z := &c.cfg.Compression
	if z.Level < 1 || z.Level > 9 {
		z.Level = DefaultLevel
	}
	if z.WindowBits < 8 || z.WindowBits > 15 {
		z.WindowBits = DefaultWindowBits
	}
	switch {
	case z.Threshold == 0:
		c.threshold = DefaultThreshold
	case z.Threshold < 0:
		c.threshold = 0
	default:
		c.threshold = z.Threshold
	}
	level := z.Level
	for i := range c.compressors {
		bits := i + 8
		c.compressors[i].New = func() any {
			var w *flate.Writer
			if bits == 15 {
				w, _ = flate.NewWriter(nil, level)
			} else {
				w, _ = flate.NewWriterWindow(nil, 1<<bits)
			}
			return &compressor{w: w}
		}
	}
	if level == 1 {
		c.msgMax = msgEncoderMax
	}
	c.msgEncoders.New = func() any { return new(msgEncoder) }
	c.inflaters.New = func() any { return new(inflater) }
	c.assemblies.New = func() any { return new(assembly) }
}

// Decoder flags besides flagReset.
const (
	flagDeflate    uint8 = 1 << (iota + 1) // permessage-deflate was negotiated: RSV1 may start a message
	flagCompressed                         // the message being received is compressed
	flagTakeover                           // the peer keeps its context: asm.hist is the window
)

// offer is a client's permessage-deflate offer.
type offer struct {
	serverNoTakeover, clientNoTakeover bool
	serverBits                         uint8 // 0: not offered
	clientBits                         uint8 // 0: not offered; 1: offered without a value
}

// parseOffer reads an offer's parameters. It reports false for an offer
// RFC 7692 says to decline: an unknown parameter, one given twice, or a
// bad value (window bits other than 8 to 15 written without leading zeros,
// a value where none is allowed, server_max_window_bits without one).
func parseOffer(opt httphead.Option) (offer, bool) {
	o, err := parseParams(opt)
	return o, err == nil
}

// parseParams reads the parameters of a permessage-deflate offer or answer
// (the two have the same syntax) and says what is wrong with them, if
// anything: an unknown parameter, one given twice, a value where none is
// allowed, a window size other than 8 to 15 written without leading zeros,
// server_max_window_bits without a value. (client_max_window_bits without
// a value is the client's way of offering it; an answer must give one.)
func parseParams(opt httphead.Option) (o offer, err error) {
	var seen uint8
	once := func(k []byte, bit uint8) bool {
		if seen&bit != 0 {
			err = fmt.Errorf("parameter %s given twice", k)
			return false
		}
		seen |= bit
		return true
	}
	flag := func(k, v []byte) bool {
		if v != nil {
			err = fmt.Errorf("parameter %s takes no value (got %q)", k, clip(v))
			return false
		}
		return true
	}
	bits := func(k, v []byte) uint8 {
		b := windowBits(v)
		if v == nil {
			err = fmt.Errorf("parameter %s needs a value", k)
		} else if b == 0 {
			err = fmt.Errorf("parameter %s: window bits %q, not 8 to 15", k, clip(v))
		}
		return b
	}
	opt.Parameters.ForEach(func(k, v []byte) bool {
		switch string(k) {
		case "server_no_context_takeover":
			o.serverNoTakeover = true
			return once(k, 1) && flag(k, v)
		case "client_no_context_takeover":
			o.clientNoTakeover = true
			return once(k, 2) && flag(k, v)
		case "server_max_window_bits":
			if !once(k, 4) {
				return false
			}
			o.serverBits = bits(k, v)
			return o.serverBits != 0
		case "client_max_window_bits":
			if !once(k, 8) {
				return false
			}
			o.clientBits = 1
			if v != nil {
				o.clientBits = bits(k, v)
			}
			return o.clientBits != 0
		}
		err = fmt.Errorf("unknown parameter %q", clip(k))
		return false
	})
	return o, err
}

// windowBits parses a window size parameter's value: 8 to 15, no leading
// zeros. It returns 0 for anything else.
func windowBits(v []byte) uint8 {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return v[0] - '0'
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + v[1] - '0'
	}
	return 0
}

// deflateParams is the answer to the one offer a handshake accepted.
type deflateParams struct {
	ok             bool
	serverBits     uint8 // the window of what the server sends: 2^serverBits bytes
	clientBits     uint8 // the window the client is told to keep (answered), 0: none answered
	serverTakeover bool  // the server keeps its context: the connection gets its own encoder
	clientTakeover bool  // the client keeps its context: the decoder keeps a window
	serverAnswer   bool  // answer server_max_window_bits (it was offered)
	next           ws.HandshakeHeader
}

// accept answers o under the codec's configuration.
func (z *Compression) accept(o offer) deflateParams {
	p := deflateParams{ok: true, serverBits: 15, serverAnswer: o.serverBits != 0}
	if o.serverBits != 0 {
		p.serverBits = o.serverBits
	}
	if z.Mode != CompressionContextTakeover {
		return p
	}
	p.serverTakeover = !o.serverNoTakeover
	switch {
	case o.clientNoTakeover:
	case o.clientBits == 1:
		p.clientBits, p.clientTakeover = uint8(z.WindowBits), true
	case o.clientBits != 0:
		p.clientBits, p.clientTakeover = min(o.clientBits, uint8(z.WindowBits)), true
	case z.WindowBits == 15:
		p.clientTakeover = true // the client's window is 32 KiB: nothing to answer
	}
	return p
}

// negotiate is the upgrader's Negotiate hook: it answers the first
// permessage-deflate offer it can accept and declines the others. It
// records the answer and returns no option: the answer is written by
// extensionHeader, so that a handshake allocates nothing for it.
func (u *upgrader) negotiate(opt httphead.Option) (httphead.Option, error) {
	if u.pmd.ok || string(opt.Name) != "permessage-deflate" {
		return httphead.Option{}, nil
	}
	if o, ok := parseOffer(opt); ok {
		u.pmd = u.cfg.Compression.accept(o)
	}
	return httphead.Option{}, nil
}

// beforeUpgradeDeflate runs the handshake's checks and, when they pass and
// an offer was accepted, adds the answer to the response.
func (u *upgrader) beforeUpgradeDeflate() (ws.HandshakeHeader, error) {
	h, err := u.onBeforeUpgrade()
	if err != nil || !u.pmd.ok {
		return h, err
	}
	u.pmd.next = h
	return (*extensionHeader)(u), nil
}

// extensionHeader writes the accepted offer's answer.
type extensionHeader upgrader

var windowValue = [...]string{8: "8", "9", "10", "11", "12", "13", "14", "15"}

// WriteTo implements ws.HandshakeHeader.
func (x *extensionHeader) WriteTo(w io.Writer) (int64, error) {
	u := (*upgrader)(x)
	var n int64
	if next := u.pmd.next; next != nil {
		m, err := next.WriteTo(w)
		if n += m; err != nil {
			return n, err
		}
	}
	p := &u.pmd
	b := append(u.ext[:0], "Sec-WebSocket-Extensions: permessage-deflate"...)
	if !p.serverTakeover {
		b = append(b, "; server_no_context_takeover"...)
	}
	if !p.clientTakeover {
		b = append(b, "; client_no_context_takeover"...)
	}
	if p.serverAnswer {
		b = append(append(b, "; server_max_window_bits="...), windowValue[p.serverBits]...)
	}
	if p.clientBits != 0 {
		b = append(append(b, "; client_max_window_bits="...), windowValue[p.clientBits]...)
	}
	b = append(b, "\r\n"...)
	u.ext = b
	m, err := w.Write(b)
	return n + int64(m), err
}

// negotiated sets a connection up for the compression its handshake
// accepted.
func (d *decoder) negotiated(c codec.Conn, p *deflateParams) {
	d.flags |= flagDeflate
	if p.serverTakeover {
		bits := min(p.serverBits, uint8(d.cd.cfg.Compression.WindowBits))
		c.SetEncoder(&takeoverEncoder{cd: d.cd, bits: p.serverBits, size: 1 << bits})
	} else {
		c.SetVariant(variantOf(p.serverBits))
	}
	if p.clientTakeover {
		bits := p.clientBits
		if bits == 0 {
			bits = 15
		}
		d.flags |= flagTakeover
		d.asm = &assembly{histBits: bits}
	}
}

// inflate adds a piece of a compressed message to the message buffer and
// delivers the message when its last piece has come.
func (d *decoder) inflate(c codec.Conn, a *assembly, chunk []byte, last bool, p *codec.Packet, n int) (int, bool, error) {
	if last && a.msgLen == 0 {
		// An empty payload with RSV1: an empty message (zlib-based
		// peers accept it too; a compressor sends one 0x00 byte).
		d.flags |= flagReset
		return d.deliver(c, a.msg[:0], p, n)
	}
	if a.inf == nil {
		a.inf = d.cd.inflaters.Get().(*inflater)
		a.inf.reset()
	}
	limit := int(min(d.cd.cfg.MaxMessage, int64(maxInt)))
	from := len(a.msg)
	err := a.inf.inflate(chunk, &a.msg, a.hist, limit)
	if code, msg, sentinel := d.inflated(a.msg[from:], err, limit); code != 0 {
		return d.fail(c, code, sentinel, msg)
	}
	if !last {
		return n, false, nil
	}
	// The end: the tail the sender removed, after which the stream must
	// be between blocks; a sound tail adds no bytes (after a final block
	// it is ignored). A stream cut short turns the tail into garbage:
	// whatever fails then is corrupt data, whatever the bytes it made.
	from = len(a.msg)
	if err = a.inf.inflate(syncTail, &a.msg, a.hist, limit); err != nil || !a.inf.boundary() || len(a.msg) != from {
		return d.fail(c, ws.StatusProtocolError, codec.ErrMalformed, "compressed message ends inside a DEFLATE block")
	}
	if d.msgOp == ws.OpText && d.utf8 != utf8Accept {
		return d.fail(c, ws.StatusInvalidFramePayloadData, codec.ErrInvalidData, "text message ends inside a UTF-8 sequence")
	}
	if d.flags&flagTakeover != 0 {
		if a.hist == nil {
			a.hist = make([]byte, 0, 1<<a.histBits)
		}
		a.hist = slide(a.hist, a.msg, 1<<a.histBits)
	}
	d.cd.inflaters.Put(a.inf) // the message needs only its buffer now
	a.inf = nil
	d.flags |= flagReset
	return d.deliver(c, a.msg, p, n)
}

const maxInt = int(^uint(0) >> 1)

// inflated checks what inflating produced: the UTF-8 of a text message's
// new bytes out (first: they came before any error), then the inflater's
// error. It returns the close code (0: all is well), the reason and the
// sentinel error.
func (d *decoder) inflated(out []byte, err error, limit int) (ws.StatusCode, string, error) {
	if d.msgOp == ws.OpText {
		if d.utf8 = d.utf8.validate(out); d.utf8 == utf8Reject {
			return ws.StatusInvalidFramePayloadData, "text message is not valid UTF-8", codec.ErrInvalidData
		}
	}
	switch err {
	case nil:
		return 0, "", nil
	case errInflated:
		return ws.StatusMessageTooBig, fmt.Sprintf("message inflates past %d bytes", limit), codec.ErrTooBig
	}
	return ws.StatusProtocolError, "compressed message: " + err.Error(), codec.ErrMalformed
}

// releaseDeflate empties the assembly of a compressed connection after a
// delivered message; without context takeover the assembly goes back to
// the codec's pool, so that an idle compressed connection holds nothing an
// uncompressed one does not.
func (d *decoder) releaseDeflate() {
	a := d.asm
	if cap(a.msg) > retainMsg {
		a.msg = nil
	} else {
		a.msg = a.msg[:0]
	}
	if d.flags&flagTakeover == 0 {
		d.asm = nil
		d.cd.assemblies.Put(a)
	}
}

// The client role (Config.Client): the offer, the check of the server's
// answer, and the connection's encoder. The parameters are parsed by
// parseParams, as the server parses offers; compressing and inflating are
// the server's own code.

// The offers a client makes, by mode.
const (
	offerShared   = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"
	offerTakeover = "permessage-deflate; client_max_window_bits"
)

// clientOffer returns the Sec-WebSocket-Extensions value of a client's
// offer, or "" without compression. Without context takeover the client
// asks the server to keep no context either (server_no_context_takeover),
// so that a connection holds no window either way. With it, a WindowBits
// under 15 asks the server for that window first (server_max_window_bits),
// then, for servers that cannot honour it, for any.
func (z *Compression) clientOffer() string {
	switch z.Mode {
	case CompressionNoContextTakeover:
		return offerShared
	case CompressionContextTakeover:
		if z.WindowBits < 15 {
			return "permessage-deflate; server_max_window_bits=" + windowValue[z.WindowBits] + "; client_max_window_bits, " + offerTakeover
		}
		return offerTakeover
	}
	return ""
}

// answerExtensions checks one Sec-WebSocket-Extensions field of the
// server's answer (RFC 7692 section 5.1: the client fails the connection
// on an extension it did not offer, an unknown or repeated parameter, a bad
// value) and records an accepted permessage-deflate in p. offered tells
// whether the request offered permessage-deflate.
func (z *Compression) answerExtensions(value []byte, offered bool, p *deflateParams) error {
	var scratch [2]httphead.Option
	opts, ok := httphead.ParseOptions(value, scratch[:0])
	if !ok {
		return fmt.Errorf("malformed Sec-WebSocket-Extensions %q", clip(value))
	}
	for _, opt := range opts {
		switch {
		case !offered || string(opt.Name) != "permessage-deflate":
			return fmt.Errorf("extension %q was not offered", clip(opt.Name))
		case p.ok:
			return errors.New("permessage-deflate answered twice")
		}
		o, err := parseParams(opt)
		if err != nil {
			return fmt.Errorf("permessage-deflate: %w", err)
		}
		if o.clientBits == 1 {
			return errors.New("permessage-deflate: client_max_window_bits without a value (an answer must give one)")
		}
		*p = z.answered(o)
	}
	return nil
}

// answered turns a server's valid answer into what the client does. Every
// valid answer can be honoured: a server_max_window_bits the client did not
// ask for (RFC 7692 section 7.1.2.1 allows it) sizes the window the client
// keeps of what the server sends; an answer without server_no_context_takeover
// — even one the client asked for — means the server keeps its context,
// and the client keeps the window of the server's messages to follow it
// (the server's answer is what it does); client_max_window_bits sizes the
// client's compressor; client_no_context_takeover, or a mode without
// context takeover, makes the client compress each message on its own
// (which every server can inflate).
func (z *Compression) answered(o offer) deflateParams {
	p := deflateParams{ok: true, serverBits: 15, clientBits: 15, serverTakeover: !o.serverNoTakeover}
	if o.serverBits != 0 {
		p.serverBits = o.serverBits
	}
	if o.clientBits != 0 {
		p.clientBits = o.clientBits
	}
	p.clientTakeover = z.Mode == CompressionContextTakeover && !o.clientNoTakeover
	return p
}

// clientNegotiated sets a client connection up for the compression its
// server accepted: the encoder of what it sends, the window of what it
// receives.
func (d *decoder) clientNegotiated(c codec.Conn, p *deflateParams) {
	d.flags |= flagDeflate
	if p.clientTakeover {
		bits := min(p.clientBits, uint8(d.cd.cfg.Compression.WindowBits))
		c.SetEncoder(&takeoverEncoder{cd: d.cd, bits: p.clientBits, size: 1 << bits})
	} else {
		c.SetEncoder(&d.cd.deflaters[p.clientBits-8])
	}
	if p.serverTakeover {
		d.flags |= flagTakeover
		d.asm = &assembly{histBits: p.serverBits}
	}
}

// deflateEncoder is the encoder of a client connection that compresses
// each message on its own with a window of 2^bits bytes. It holds no state
// (masks and compressors come from the codec's pools), so one per window
// size serves every connection.
type deflateEncoder struct {
	cd   *Codec
	bits uint8
}

// Encode implements codec.Encoder.
func (e *deflateEncoder) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	text, head, err := e.cd.cfg.Mapping.Encode(p)
	if err != nil {
		return dst, err
	}
	dst, _ = e.cd.appendMessage(dst, text, head.Bytes(), p.Body, e.bits, nil)
	return dst, nil
}
