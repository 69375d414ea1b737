package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// Limits of the fuzzed decoder: small, so that the fuzzer reaches them.
const (
	fuzzMaxHandshake = 512
	fuzzMaxFrame     = 300
	fuzzMaxMessage   = 1000
	fuzzMaxHeaders   = 12
	// maxPending is the most bytes the decoder may leave unconsumed when it
	// asks for more after the handshake: a whole control frame (a data
	// frame's payload is consumed as it arrives).
	maxPending = 2 + 4 + 125
)

// checkBounds checks, after every call, that the decoder's buffers stay
// within the limits, that text fails fast, and what it leaves buffered when
// it waits for more.
func checkBounds(t testing.TB, dec codec.Decoder, buffered []byte, n int, ok bool) {
	d, pending, waiting := dec.(*decoder), len(buffered), n == 0 && !ok
	var msg []byte
	var msgLen, remain int64
	if d.asm != nil {
		msg, msgLen, remain = d.asm.msg, d.asm.msgLen, d.asm.remain
	}
	if len(msg) > fuzzMaxMessage || cap(msg) > 3*fuzzMaxMessage+4096 {
		t.Fatalf("message buffer of len %d, cap %d over the limit %d", len(msg), cap(msg), fuzzMaxMessage)
	}
	if remain < 0 || remain > fuzzMaxFrame || msgLen < 0 || msgLen > fuzzMaxMessage {
		t.Fatalf("remain %d, msgLen %d", remain, msgLen)
	}
	// Fail fast: the text of a message in progress is always the start of
	// valid UTF-8, and the validator's state is the state at its end.
	if d.state == stOpen && d.msgOp == ws.OpText {
		if s := utf8Accept.validate(msg); s == utf8Reject || s != d.utf8 {
			t.Fatalf("text so far %q (state %d) not rejected (decoder state %d)", msg, s, d.utf8)
		}
	}
	if !waiting {
		return
	}
	switch d.state {
	case stHandshake:
		if pending >= fuzzMaxHandshake {
			t.Fatalf("waiting for more with %d bytes of handshake buffered", pending)
		}
	case stOpen:
		if pending > maxPending {
			t.Fatalf("waiting for more with %d bytes buffered", pending)
		}
	}
}

// checkOutcome checks what the decoder wrote and delivered.
func checkOutcome(t *testing.T, o codectest.Result, text codec.Type) {
	t.Helper()
	for _, p := range o.Packets {
		if len(p.Body) > fuzzMaxMessage {
			t.Fatalf("packet of %d bytes over the limit", len(p.Body))
		}
		if p.Type == text && !utf8.ValidString(p.Body) {
			t.Fatalf("text packet %q is not UTF-8", p.Body)
		}
	}
	out := o.Written
	if o.Readies == 0 {
		if len(o.Packets) > 0 {
			t.Fatal("packets before the handshake")
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.1 4")) && !bytes.HasPrefix(out, []byte("HTTP/1.1 5")) {
			t.Fatalf("refused handshake answered %.40q", out)
		}
		if (len(out) > 0) != (o.Err != nil) {
			t.Fatalf("handshake answer %.40q with error %v", out, o.Err)
		}
		switch o.Err {
		case nil, codec.ErrHandshake, codec.ErrTooBig, codec.ErrRefused:
		default:
			t.Fatalf("handshake failed with %v", o.Err)
		}
		return
	}
	if !bytes.HasPrefix(out, []byte("HTTP/1.1 101 ")) {
		t.Fatalf("upgrade answered %.40q", out)
	}
	out = out[bytes.Index(out, []byte("\r\n\r\n"))+4:]
	// What follows are unmasked, final server frames; a close frame, if
	// any, comes last and only after an error.
	var last ws.OpCode
	closed := false
	for len(out) > 0 {
		if closed {
			t.Fatal("frames after a close frame")
		}
		if len(out) < 2 || out[0]&0x70 != 0 || out[0]&0x80 == 0 || out[1]&0x80 != 0 || out[1]&0x7F > 125 {
			t.Fatalf("bad server frame %x", out[:min(len(out), 8)])
		}
		op, n := ws.OpCode(out[0]&0x0F), int(out[1])
		if op != ws.OpPong && op != ws.OpClose || len(out) < 2+n {
			t.Fatalf("unexpected server frame %x", out[:min(len(out), 8)])
		}
		if op == ws.OpClose {
			closed = true
			if n == 1 {
				t.Fatalf("close frame with %d bytes", n)
			}
			if n > 2 && !utf8.Valid(out[4:2+n]) {
				t.Fatalf("close reason %q is not UTF-8", out[4:2+n])
			}
			if n >= 2 {
				checkCloseCode(t, ws.StatusCode(binary.BigEndian.Uint16(out[2:4])), o.Err)
			} else if o.Err != codec.ErrPeerClosed {
				t.Fatalf("empty close frame for %v", o.Err)
			}
		}
		last = op
		out = out[2+n:]
	}
	if (o.Err != nil) != (last == ws.OpClose) {
		t.Fatalf("error %v, last frame %v", o.Err, last)
	}
}

func checkCloseCode(t *testing.T, code ws.StatusCode, err error) {
	t.Helper()
	want := map[error]ws.StatusCode{
		codec.ErrProtocol:    ws.StatusProtocolError,
		codec.ErrMalformed:   ws.StatusProtocolError,
		codec.ErrInvalidData: ws.StatusInvalidFramePayloadData,
		codec.ErrTooBig:      ws.StatusMessageTooBig,
		codec.ErrUnsupported: ws.StatusUnsupportedData,
	}[err]
	switch {
	case err == codec.ErrPeerClosed:
		if !validCloseCode(code) {
			t.Fatalf("echoed invalid close code %d", code)
		}
	case want == 0 || code != want:
		t.Fatalf("close code %d for %v", code, err)
	}
}

var fuzzRequest = []byte("GET /fuzz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

// fuzzDeflateRequest offers permessage-deflate as browsers do.
var fuzzDeflateRequest = bytes.Replace(fuzzRequest, []byte("\r\n\r\n"),
	[]byte("\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"), 1)

// mframe builds a masked client frame with the given key.
func mframe(b0 byte, key [4]byte, payload []byte) []byte {
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// Fuzz modes.
const (
	modeRaw        = 1 << iota // no handshake prefix: the fuzzer writes the request too
	modeTypePrefix             // TypePrefix instead of Raw
	modeFrames                 // data describes frames that the harness masks (see framesFrom)
	modeHeaders                // data is header lines of the upgrade request (see requestWith)
	modeDeflate                // permessage-deflate negotiated, without context takeover
	modeTakeover               // with context takeover (with modeDeflate: both modes' codecs)
	modeCompress               // with modeFrames: the harness compresses messages that start with RSV1
)

// codecModes are the mode bits that choose the codec.
const codecModes = modeRaw | modeTypePrefix | modeDeflate | modeTakeover

// fuzzZ compresses for framesFrom (fuzz inputs run one at a time).
var fuzzZ, _ = flate.NewWriter(nil, 1)

// requestWith returns an upgrade request with the valid upgrade headers
// and then data, as header lines, and the blank line. Data may end the
// request early with a blank line of its own: what follows is frames.
func requestWith(data []byte) []byte {
	head := fuzzRequest[:len(fuzzRequest)-2]
	return append(append(append([]byte(nil), head...), data...), "\r\n\r\n"...)
}

// checkRequestSeen checks what a hook sees of an upgrade request that passed
// the codec's checks: its header fields as Header and HeaderValue show
// them, within the limits.
func checkRequestSeen(r *Request) error {
	h := r.Header()
	n := 0
	for k, vs := range h {
		n += len(vs)
		if hidden(k) {
			return fmt.Errorf("header %s shown", k)
		}
		if v := r.HeaderValue(k); v != vs[0] {
			return fmt.Errorf("HeaderValue(%q) = %q, Header has %q", k, v, vs)
		}
	}
	if n > fuzzMaxHeaders {
		return fmt.Errorf("%d header fields over the limit %d", n, fuzzMaxHeaders)
	}
	if r.HeaderValue("Origin") != r.Origin || !strings.HasPrefix(r.Path, "/") || !strings.Contains(r.URI, r.RawQuery) {
		return fmt.Errorf("request %+v, headers %v", *r, h)
	}
	return nil
}

// checkAccepted checks an upgrade request that the codec accepted against
// net/http's reading of it: a GET request of HTTP/1.1 without a body, for
// the same host.
func checkAccepted(t *testing.T, input []byte, seen *Request) {
	t.Helper()
	end := bytes.Index(input, crlfcrlf)
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(input[:end+4])))
	switch {
	case err != nil:
		t.Fatalf("accepted %q, which net/http refuses: %v", input[:end+4], err)
	case req.Method != http.MethodGet || req.Proto != "HTTP/1.1" || req.ContentLength != 0 || len(req.TransferEncoding) != 0:
		t.Fatalf("accepted %q: net/http reads %s %s, body of %d bytes, transfer encoding %v",
			input[:end+4], req.Method, req.Proto, req.ContentLength, req.TransferEncoding)
	case seen != nil && seen.Host != req.Host:
		t.Fatalf("accepted %q for host %q, net/http reads host %q", input[:end+4], seen.Host, req.Host)
	}
}

// framesFrom turns arbitrary bytes into masked client frames, so that the
// fuzzer reaches the states behind the masking rule: each frame is a first
// byte (FIN, RSV, opcode), a length byte and that many payload bytes. A
// length byte over 200 stands for (l-200)*20 bytes, past the limits; missing
// payload bytes are zeros. With compress, the payloads of a message whose
// first frame has RSV1 are compressed as a client would, each frame's part
// flushed and the message's last four bytes (the sync flush's) removed, so
// that the fuzzer reaches the states behind valid compressed data.
func framesFrom(data []byte, compress bool) []byte {
	key := [4]byte{0xa5, 0x5a, 0x0f, 0xf0}
	var out []byte
	var zb bytes.Buffer
	compressing := false
	for len(data) >= 2 {
		b0, n := data[0], int(data[1])
		data = data[2:]
		if n > 200 {
			n = (n - 200) * 20
		}
		payload := make([]byte, n)
		copy(payload, data)
		data = data[min(n, len(data)):]
		if op := ws.OpCode(b0 & 0x0F); compress && op.IsData() {
			if op != ws.OpContinuation {
				compressing = b0&0x40 != 0
				if compressing {
					fuzzZ.Reset(&zb)
				}
			}
			if compressing {
				zb.Reset()
				_, _ = fuzzZ.Write(payload)
				_ = fuzzZ.Flush()
				payload = append([]byte(nil), zb.Bytes()...)
				if b0&0x80 != 0 {
					payload = payload[:len(payload)-4]
					compressing = false
				}
			}
		}
		out = append(out, mframe(b0, key, payload)...)
	}
	return out
}

// FuzzDecode feeds arbitrary bytes to the WebSocket decoder, after a valid
// upgrade request or raw, whole, byte by byte and in chunks of sizes the
// fuzzer picks. Every way of splitting must give the same packets, the same
// bytes written and the same error, within the limits.
func FuzzDecode(f *testing.F) {
	var zero [4]byte
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	seeds := [][]byte{
		mframe(0x81, zero, []byte("hello")),
		mframe(0x82, key, []byte{7, 1, 2, 3}),
		append(append(mframe(0x01, zero, []byte("hel")), mframe(0x89, zero, []byte("p"))...), mframe(0x80, zero, []byte("lo"))...),
		append(mframe(0x01, zero, []byte("caf\xc3")), mframe(0x80, zero, []byte("\xa9"))...),
		mframe(0x81, zero, bytes.Repeat([]byte("é"), 100)),
		mframe(0x82, zero, bytes.Repeat([]byte{0xAB}, 280)),
		mframe(0x82, zero, bytes.Repeat([]byte{0xAB}, fuzzMaxFrame+1)),
		append(mframe(0x01, zero, []byte("ok")), mframe(0x00, zero, []byte("\xe2\x82("))...),
		append(mframe(0x02, zero, bytes.Repeat([]byte{1}, 250)), mframe(0x80, zero, bytes.Repeat([]byte{2}, 250))...),
		mframe(0x88, zero, []byte{0x03, 0xE8, 'b', 'y', 'e'}),
		mframe(0x88, zero, []byte{0x03, 0xEE}),
		mframe(0x8A, zero, []byte("pong")),
		mframe(0x81, zero, []byte("bad \xff utf8")),
		{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
		mframe(0x89, zero, bytes.Repeat([]byte{'x'}, 126)),
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
	}
	for i, s := range seeds {
		f.Add(s, []byte{byte(i), 3, 1}, uint8(0))
		f.Add(s, []byte{}, uint8(modeTypePrefix))
	}
	f.Add(append(append([]byte(nil), fuzzRequest...), mframe(0x81, zero, []byte("x"))...), []byte{20, 1, 5}, uint8(modeRaw))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte{7}, uint8(modeRaw))
	f.Add(bytes.Repeat([]byte("GET "), 200), []byte{100}, uint8(modeRaw))
	// Frames mode: a text message in three fragments with a ping between,
	// a message over the limit, a close.
	f.Add([]byte("\x01\x02h\xc3\x89\x01p\x00\x01\xa9\x80\x01!\x88\x02\x03\xe8"), []byte{2, 9}, uint8(modeFrames))
	f.Add([]byte("\x02\xe0\x00\xe0\x80\xe0"), []byte{}, uint8(modeFrames|modeTypePrefix))
	// Upgrade requests: header lines that the codec refuses or accepts.
	for _, h := range []string{
		"Origin: http://x",
		"Origin: http://evil.example\r\nX-A: 1",
		"Origin:",
		"Origin: http://\xe2\x84\xaa",
		"Origin: http://ok.example",
		"Content-Length: 0",
		"Content-Length: 5\r\n\r\nhello",
		"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"Host: y",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
		"X A: b",
		"X-A : b",
		"X-A: \x01",
		"X-A: a\r\n folded",
		"X-A: caf\xc3\xa9\tok",
		"Sec-WebSocket-Protocol: chat",
		"a:\r\nb:\r\nc:\r\nd:\r\ne:\r\nf:\r\ng:\r\nh:",
	} {
		f.Add([]byte(h), []byte{5}, uint8(modeHeaders))
	}
	for _, r := range []string{
		"GET / HTTP/1.9\r\nHost: x\r\n\r\n",
		"GET http://x/p?q HTTP/1.1\r\nHost: y\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n\r\n",
	} {
		f.Add([]byte(r), []byte{9}, uint8(modeRaw))
	}

	// The hook of every codec checks what it sees of the request.
	var seen *Request
	var seenErr error
	// Compressed input: valid and broken messages, whole, fragmented, with
	// pings between fragments, over the inflated limit; with context
	// takeover, messages that refer to the ones before.
	z := func(b []byte) []byte {
		var out bytes.Buffer
		w, _ := flate.NewWriter(&out, 5)
		_, _ = w.Write(b)
		_ = w.Flush()
		return bytes.TrimSuffix(out.Bytes(), syncTail)
	}
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	for _, s := range [][]byte{
		mframe(0xc1, key, hello),
		append(mframe(0xc1, key, hello), mframe(0xc1, key, []byte{0xf2, 0x00, 0x11, 0x00, 0x00})...),
		append(append(mframe(0x41, zero, hello[:3]), mframe(0x89, zero, nil)...), mframe(0x80, zero, hello[3:])...),
		mframe(0xc2, key, z(bytes.Repeat([]byte{1, 2, 3}, 500))),
		mframe(0xc1, key, z([]byte("caf\xc3\xa9 \xff"))),
		mframe(0xc1, key, z(bytes.Repeat([]byte("é"), 200))),
		mframe(0xc2, key, []byte{0xff}),
		mframe(0xc1, key, nil),
		append(mframe(0x41, key, hello), mframe(0xc0, key, nil)...),
	} {
		f.Add(s, []byte{5, 1}, uint8(modeDeflate))
		f.Add(s, []byte{}, uint8(modeTakeover|modeTypePrefix))
	}
	f.Add([]byte("\x41\x05hello\x89\x01p\x80\x06 world\xc2\x03abc"), []byte{2, 9}, uint8(modeFrames|modeCompress|modeDeflate))
	f.Add([]byte("\xc1\x40"+strings.Repeat("ab", 32)+"\xc1\x40"+strings.Repeat("ab", 32)), []byte{7}, uint8(modeFrames|modeCompress|modeTakeover))

	codecs := [codecModes + 1]*Codec{}
	for m := range codecs {
		if m&^codecModes != 0 {
			continue // a mode bit that does not choose the codec
		}
		cfg := Config{
			MaxHandshake: fuzzMaxHandshake, MaxHeaders: fuzzMaxHeaders,
			MaxFrame: fuzzMaxFrame, MaxMessage: fuzzMaxMessage, Mapping: Raw{},
			Origins: []string{"http://ok.example"}, Subprotocols: []string{"chat"},
			OnHandshake: func(_ codec.Conn, r *Request) error {
				seen = r
				if err := checkRequestSeen(r); err != nil && seenErr == nil {
					seenErr = err
				}
				return nil
			},
		}
		if m&modeTypePrefix != 0 {
			cfg.Mapping = TypePrefix{}
		}
		switch {
		case m&modeTakeover != 0:
			cfg.Compression.Mode = CompressionContextTakeover
		case m&modeDeflate != 0:
			cfg.Compression.Mode = CompressionNoContextTakeover
		}
		codecs[m] = New(cfg)
		codecs[m].cfg.Logger = slogDiscard
	}
	f.Fuzz(func(t *testing.T, data, splits []byte, mode uint8) {
		mode &= codecModes | modeFrames | modeCompress | modeHeaders
		input := data
		switch {
		case mode&modeHeaders != 0:
			input = requestWith(data)
		case mode&modeFrames != 0:
			input = framesFrom(data, mode&modeCompress != 0)
		}
		if mode&(modeRaw|modeHeaders) == 0 {
			req := fuzzRequest
			if mode&(modeDeflate|modeTakeover) != 0 {
				req = fuzzDeflateRequest
			}
			input = append(append([]byte(nil), req...), input...)
		}
		seen, seenErr = nil, nil
		whole := codectest.Splits(t, codecs[mode&codecModes].NewDecoder, input, splits, checkBounds)
		if seenErr != nil {
			t.Fatal(seenErr)
		}
		checkOutcome(t, whole, TypeText)
		if whole.Readies == 1 {
			checkAccepted(t, input, seen)
		} else if whole.Err == codec.ErrRefused && !bytes.HasPrefix(whole.Written, []byte("HTTP/1.1 403 ")) &&
			!bytes.HasPrefix(whole.Written, []byte("HTTP/1.1 426 ")) && !bytes.HasPrefix(whole.Written, []byte("HTTP/1.1 405 ")) && !bytes.HasPrefix(whole.Written, []byte("HTTP/1.1 411 ")) {
			// The policies here: the origin rule, and plain HTTP with no handler.
			t.Fatalf("refused with %.40q", whole.Written)
		}
	})
}

var slogDiscard = slog.New(slog.DiscardHandler)
