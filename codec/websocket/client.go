package websocket

// The client role of RFC 6455 (Config.Client): the opening handshake as a
// codec.Opener that writes the upgrade request and a decoder state that
// checks the server's answer, then the server decoder's frame parser in
// its client role (server frames unmasked, masked ones a protocol error),
// and masking of every frame the client sends.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio/codec"
)

func (c *Codec) initClient() {
	c.client = true
	c.enc = &clientEncoder{cd: c}
	c.masks.New = func() any {
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // never fails (crypto/rand panics rather)
		return mrand.NewChaCha8(seed)
	}
	for i := range c.deflaters {
		c.deflaters[i] = deflateEncoder{cd: c, bits: uint8(8 + i)}
	}
	c.defReq, _ = c.NewClientRequest("localhost", "/", nil, nil)
}

// unmask XORs b with mask from offset pos of the key. A server's frames
// are not masked (the key is all zero): nothing to do.
func unmask(b []byte, mask [4]byte, pos int) {
	if mask != ([4]byte{}) {
		ws.Cipher(b, mask, pos)
	}
}

// newMask returns a fresh masking key. RFC 6455 section 5.3 asks for keys
// a script cannot predict: they come from ChaCha8 generators seeded from
// crypto/rand, pooled so that no connection holds one.
func (c *Codec) newMask() [4]byte {
	r := c.masks.Get().(*mrand.ChaCha8)
	v := r.Uint64()
	c.masks.Put(r)
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// appendMaskedHeader appends a final frame header with the mask bit and
// key.
func appendMaskedHeader(dst []byte, op ws.OpCode, n int, mask [4]byte) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n < 126:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		dst = append(dst, b0, 0x80|127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
			byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return append(dst, mask[:]...)
}

// appendMaskedFrame appends a final frame masked with a fresh key.
func (c *Codec) appendMaskedFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	mask := c.newMask()
	dst = appendMaskedHeader(dst, op, len(payload), mask)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// encodeMasked is Encode in the client role: the frame is masked with a
// fresh key, in place in dst.
func (c *Codec) encodeMasked(dst []byte, p *codec.Packet) ([]byte, error) {
	text, head, err := c.cfg.Mapping.Encode(p)
	if err != nil {
		return dst, err
	}
	op := ws.OpBinary
	if text {
		op = ws.OpText
	}
	mask := c.newMask()
	dst = appendMaskedHeader(dst, op, head.Len()+len(p.Body), mask)
	start := len(dst)
	dst = append(dst, head.Bytes()...)
	dst = append(dst, p.Body...)
	ws.Cipher(dst[start:], mask, 0)
	return dst, nil
}

// clientEncoder is the encoder every client connection is given
// (codec.Conn.SetEncoder): a masked frame's bytes are its own, never shared
// with another connection's, so each frame of each connection has a key of
// its own. It holds no state (the keys' generators are pooled by the
// codec), so one serves every connection.
type clientEncoder struct{ cd *Codec }

// Encode implements codec.Encoder.
func (e *clientEncoder) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	return e.cd.encodeMasked(dst, p)
}

// ClientRequest is what a client's upgrade request asks for, checked and
// laid out once (NewClientRequest) for every connection — and reconnection
// — that makes it; each connection adds a key of its own.
type ClientRequest struct {
	head      []byte   // "GET target HTTP/1.1\r\nHost: …\r\n…": up to the key
	tail      []byte   // the version, protocols, extensions, extra fields and the blank line
	protocols []string // offered, for checking the answer
	deflate   bool     // permessage-deflate is offered
}

// reservedHeader reports whether a header field belongs to the handshake
// itself, which the application may not set.
func reservedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "upgrade", "connection", "content-length", "transfer-encoding",
		"sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
		"sec-websocket-extensions", "sec-websocket-accept":
		return true
	}
	return false
}

// NewClientRequest checks and lays out an upgrade request: host is the
// Host header (a URL's host[:port]), target the request target (a path and
// query, "/chat?room=1"; "" means "/"), header extra fields (Origin,
// Authorization…: not the handshake's own, which are an error), protocols
// the subprotocols offered in order of preference (nil: the codec's
// Config.Subprotocols). Errors wrap codec.ErrHandshake.
func (c *Codec) NewClientRequest(host, target string, header http.Header, protocols []string) (*ClientRequest, error) {
	if protocols == nil {
		protocols = c.cfg.Subprotocols
	}
	bad := func(what string) (*ClientRequest, error) {
		return nil, fmt.Errorf("websocket: client request: %s: %w", what, codec.ErrHandshake)
	}
	if target == "" {
		target = "/"
	}
	switch {
	case host == "" || !printable(host, false):
		return bad(fmt.Sprintf("host %q", host))
	case target[0] != '/' || !printable(target, false):
		return bad(fmt.Sprintf("target %q is not a path", target))
	}
	for _, p := range protocols {
		if !isToken([]byte(p)) {
			return bad(fmt.Sprintf("subprotocol %q is not a token", p))
		}
	}
	var b bytes.Buffer
	b.WriteString("GET ")
	b.WriteString(target)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(host)
	b.WriteString("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ")
	r := &ClientRequest{head: bytes.Clone(b.Bytes()), protocols: protocols}
	b.Reset()
	b.WriteString("\r\nSec-WebSocket-Version: 13\r\n")
	if len(protocols) > 0 {
		b.WriteString("Sec-WebSocket-Protocol: ")
		b.WriteString(strings.Join(protocols, ", "))
		b.WriteString("\r\n")
	}
	if offer := c.cfg.Compression.clientOffer(); offer != "" && c.client {
		b.WriteString("Sec-WebSocket-Extensions: ")
		b.WriteString(offer)
		b.WriteString("\r\n")
		r.deflate = true
	}
	for name, values := range header {
		if !isToken([]byte(name)) {
			return bad(fmt.Sprintf("header name %q is not a token", name))
		}
		if reservedHeader(name) {
			return bad(fmt.Sprintf("header %s is the handshake's own", name))
		}
		for _, v := range values {
			if !printable(v, true) {
				return bad(fmt.Sprintf("header %s has a control byte", name))
			}
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	r.tail = bytes.Clone(b.Bytes())
	return r, nil
}

// printable reports whether s has no control bytes (and, unless space, no
// spaces): nothing that could end a line or a request early.
func printable(s string, space bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && !(space && c == '\t') || c == 0x7F || c == ' ' && !space {
			return false
		}
	}
	return true
}

// Protocols returns the subprotocols r offers.
func (r *ClientRequest) Protocols() []string { return r.protocols }

// NewClientDecoder returns the decoder of one client connection that makes
// request r, on a codec in the client role (Config.Client). Its Open
// (codec.Opener) writes the request with a fresh key and gives the
// connection its encoder (codec.Conn.SetEncoder: every frame masked with a
// key of its own); Decode then reads the server's answer — at most
// MaxHandshake bytes and MaxHeaders header fields, exactly up to the blank
// line that ends it, so that frames the server sends right after it are
// decoded next — and checks it: status 101, Upgrade: websocket,
// Connection: upgrade, the Sec-WebSocket-Accept that the key calls for, a
// subprotocol among those offered (or none), no extension but the
// permessage-deflate the request offered (see Config.Compression), whose
// parameters are checked and set the connection's compression up. Once
// the answer passes, the decoder calls Ready and reads frames. An answer with
// another status fails with an error wrapping codec.ErrRefused, any other
// fault with one wrapping codec.ErrHandshake (or codec.ErrTooBig for an
// answer over the limits); nothing is written back.
func (c *Codec) NewClientDecoder(r *ClientRequest) codec.Decoder {
	if r == nil {
		r = c.defReq
	}
	return &clientDecoder{decoder: decoder{cd: c}, req: r}
}

// clientDecoder is the decoder of a client connection: the server
// decoder's state and frame parser (which reads the codec's role), the
// request it makes, and the key it sent.
type clientDecoder struct {
	decoder
	req *ClientRequest
	key [24]byte // Sec-WebSocket-Key, base64 of 16 random bytes
}

// Open implements codec.Opener: it writes the upgrade request.
func (d *clientDecoder) Open(c codec.Conn) error {
	if d.state != stHandshake {
		return nil
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	base64.StdEncoding.Encode(d.key[:], nonce[:])
	c.SetEncoder(d.cd.enc)
	// Three writes into the connection's one outbound buffer: no copy of
	// the request of its own (every connection of a load generator makes
	// one).
	if err := c.Write(d.req.head); err != nil {
		return err
	}
	if err := c.Write(d.key[:]); err != nil {
		return err
	}
	return c.Write(d.req.tail)
}

// Decode implements codec.Decoder: the server's answer, then frames.
func (d *clientDecoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	if d.state == stHandshake {
		return d.answer(c, in)
	}
	return d.decoder.Decode(c, in, p)
}

// Farewell implements codec.Farewell: before the server has answered there
// is no session to close (a client writes no HTTP error); after, a masked
// close frame.
func (d *clientDecoder) Farewell(c codec.Conn, why error) {
	if d.state == stHandshake {
		d.state = stClosed
		return
	}
	d.decoder.Farewell(c, why)
}

type protocolKey struct{}

// ProtocolOf returns the subprotocol a client connection's server selected
// ("" for none). c is its *channel.Channel.
func ProtocolOf(c interface{ Value(key any) any }) string {
	s, _ := c.Value(protocolKey{}).(string)
	return s
}

// answer waits for the whole handshake answer, checks it, and consumes
// exactly its bytes.
func (d *clientDecoder) answer(c codec.Conn, in []byte) (int, bool, error) {
	limit := d.cd.cfg.MaxHandshake
	from := max(0, int(d.scanned)-3)
	end := bytes.Index(in[from:min(len(in), limit)], crlfcrlf)
	if end < 0 {
		if len(in) >= limit {
			d.state = stClosed
			return 0, false, fmt.Errorf("websocket: the server's handshake answer is over %d bytes: %w", limit, codec.ErrTooBig)
		}
		d.scanned = int32(len(in))
		return 0, false, nil
	}
	n := from + end + len(crlfcrlf)
	var pmd deflateParams
	proto, err := d.check(in[:n], &pmd)
	if err != nil {
		d.state = stClosed
		return n, false, err
	}
	d.state, d.scanned = stOpen, 0
	if proto != "" {
		c.SetValue(protocolKey{}, proto)
	}
	if pmd.ok {
		d.clientNegotiated(c, &pmd)
	}
	c.Ready()
	return n, false, nil
}

// websocketGUID is RFC 6455's magic string.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// check checks the server's answer (raw ends with the blank line) and
// returns the subprotocol it selected; the permessage-deflate it accepted,
// if any, goes to pmd.
func (d *clientDecoder) check(raw []byte, pmd *deflateParams) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("websocket: the server's handshake answer: "+format+": %w", append(args, codec.ErrHandshake)...)
	}
	rest := raw[:len(raw)-len(crlfcrlf)+2] // every line ends with CRLF
	line := func() []byte {
		i := bytes.Index(rest, []byte("\r\n"))
		l := rest[:i]
		rest = rest[i+2:]
		return l
	}
	status := line()
	const version = "HTTP/1.1 "
	if len(status) < len(version)+3 || string(status[:len(version)]) != version ||
		len(status) > len(version)+3 && status[len(version)+3] != ' ' {
		return bad("status line %q", clip(status))
	}
	code, err := strconv.Atoi(string(status[len(version) : len(version)+3]))
	if err != nil || code < 100 {
		return bad("status line %q", clip(status))
	}
	if code != http.StatusSwitchingProtocols {
		return "", fmt.Errorf("websocket: the server answered %q: %w", clip(status), codec.ErrRefused)
	}
	var upgrade, connection, accepted bool
	var accept, proto []byte
	seenProto := false
	for fields := 0; len(rest) > 0; fields++ {
		if fields == d.cd.cfg.MaxHeaders {
			return "", fmt.Errorf("websocket: the server's handshake answer has over %d header fields: %w", d.cd.cfg.MaxHeaders, codec.ErrTooBig)
		}
		line := line()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return bad("header line %q", clip(line))
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		for _, b := range value {
			if b < 0x20 && b != '\t' || b == 0x7F {
				return bad("a control byte in header %s", name)
			}
		}
		switch {
		case equalFoldASCII(name, "Upgrade"):
			upgrade = upgrade || hasToken(value, "websocket")
		case equalFoldASCII(name, "Connection"):
			connection = connection || hasToken(value, "upgrade")
		case equalFoldASCII(name, "Sec-WebSocket-Accept"):
			if accepted {
				return bad("two Sec-WebSocket-Accept fields")
			}
			accepted, accept = true, value
		case equalFoldASCII(name, "Sec-WebSocket-Protocol"):
			if seenProto {
				return bad("two Sec-WebSocket-Protocol fields")
			}
			seenProto, proto = true, value
		case equalFoldASCII(name, "Sec-WebSocket-Extensions"):
			if len(value) == 0 {
				break
			}
			if err := d.cd.cfg.Compression.answerExtensions(value, d.req.deflate, pmd); err != nil {
				return bad("%s", err.Error())
			}
		}
	}
	switch {
	case !upgrade:
		return bad("no Upgrade: websocket")
	case !connection:
		return bad("no Connection: upgrade")
	case !accepted:
		return bad("no Sec-WebSocket-Accept")
	}
	var keyed [len(d.key) + len(websocketGUID)]byte
	copy(keyed[copy(keyed[:], d.key[:]):], websocketGUID)
	sum := sha1.Sum(keyed[:])
	var want [28]byte
	base64.StdEncoding.Encode(want[:], sum[:])
	if string(accept) != string(want[:]) {
		return bad("Sec-WebSocket-Accept %q does not answer the key", clip(accept))
	}
	if !seenProto {
		return "", nil
	}
	for _, p := range d.req.protocols {
		if string(proto) == p {
			return p, nil
		}
	}
	return bad("subprotocol %q was not offered", clip(proto))
}
