package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// clientAnswered opens a client decoder of cfg and feeds it the server's
// answer with the given extension lines.
func clientAnswered(t *testing.T, cfg Config, ext ...string) (*clientDecoder, *codectest.Conn, error) {
	t.Helper()
	d, c, accept := opened(t, cfg, "h", "/", nil, nil)
	lines := make([]string, len(ext))
	for i, e := range ext {
		lines[i] = "Sec-WebSocket-Extensions: " + e
	}
	ans := answer(accept, lines...)
	n, _, err := d.Decode(c, []byte(ans), &codec.Packet{})
	if err == nil && n != len(ans) {
		t.Fatalf("consumed %d of %d", n, len(ans))
	}
	return d, c, err
}

func TestClientOffer(t *testing.T) {
	for _, tc := range []struct {
		z    Compression
		want string
	}{
		{Compression{}, ""},
		{Compression{Mode: CompressionNoContextTakeover}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"},
		{Compression{Mode: CompressionContextTakeover}, "permessage-deflate; server_max_window_bits=12; client_max_window_bits, permessage-deflate; client_max_window_bits"},
		{Compression{Mode: CompressionContextTakeover, WindowBits: 9}, "permessage-deflate; server_max_window_bits=9; client_max_window_bits, permessage-deflate; client_max_window_bits"},
		{Compression{Mode: CompressionContextTakeover, WindowBits: 15}, "permessage-deflate; client_max_window_bits"},
	} {
		_, c, _ := opened(t, Config{Compression: tc.z}, "h", "/", nil, nil)
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.Written)))
		if err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Values("Sec-WebSocket-Extensions"); tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
			t.Errorf("mode %d, window %d: offered %q, want %q", tc.z.Mode, tc.z.WindowBits, got, tc.want)
		}
	}
	// A server codec's requests (NewClientRequest is the client's) offer
	// nothing.
	r, _ := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover}}).NewClientRequest("h", "/", nil, nil)
	if r.deflate || strings.Contains(string(r.tail), "Extensions") {
		t.Errorf("a server codec's request offers %q", r.tail)
	}
}

// TestClientDeflateAnswers: how the client takes each answer (RFC 7692
// section 5.1 and 7.1): every valid answer is honoured — the server's
// window and context takeover size what the decoder keeps, the client's
// window and takeover choose the encoder — and an invalid one fails the
// handshake with an error that names the fault.
func TestClientDeflateAnswers(t *testing.T) {
	shared := Compression{Mode: CompressionNoContextTakeover}
	own := Compression{Mode: CompressionContextTakeover}
	type want struct {
		serverHist uint8 // 0: the decoder keeps no window
		clientBits uint8 // the encoder's window
		clientKept int   // the context the encoder keeps (0: none)
	}
	for _, tc := range []struct {
		name string
		z    Compression
		ext  []string
		want want
	}{
		{"gorilla, tio", shared, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, want{0, 15, 0}},
		{"server keeps its context although asked not to", shared, []string{"permessage-deflate; client_no_context_takeover"}, want{15, 15, 0}},
		{"bare", shared, []string{"permessage-deflate"}, want{15, 15, 0}},
		{"server window not offered", shared, []string{"permessage-deflate; server_max_window_bits=10"}, want{10, 15, 0}},
		{"client window, quoted", shared, []string{`permessage-deflate; server_no_context_takeover; client_max_window_bits="9"`}, want{0, 9, 0}},
		{"every parameter", shared, []string{"permessage-deflate; client_max_window_bits=8; server_max_window_bits=8; client_no_context_takeover; server_no_context_takeover"}, want{0, 8, 0}},
		{"an empty field, then the answer", shared, []string{"", "permessage-deflate"}, want{15, 15, 0}},
		{"takeover: both keep", own, []string{"permessage-deflate"}, want{15, 15, 1 << 12}},
		{"takeover: window 12 honoured", own, []string{"permessage-deflate; server_max_window_bits=12"}, want{12, 15, 1 << 12}},
		{"takeover: client window 8", own, []string{"permessage-deflate; client_max_window_bits=8"}, want{15, 8, 1 << 8}},
		{"takeover: the server forbids the client's", own, []string{"permessage-deflate; client_no_context_takeover; server_max_window_bits=9"}, want{9, 15, 0}},
		{"takeover: none either way", own, []string{"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}, want{0, 15, 0}},
		{"takeover 15: full window", Compression{Mode: CompressionContextTakeover, WindowBits: 15}, []string{"permessage-deflate"}, want{15, 15, 1 << 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, c, err := clientAnswered(t, Config{Compression: tc.z}, tc.ext...)
			if err != nil {
				t.Fatal(err)
			}
			if d.flags&flagDeflate == 0 || c.Readies != 1 {
				t.Fatalf("flags %#x, readies %d", d.flags, c.Readies)
			}
			var hist uint8
			if d.flags&flagTakeover != 0 {
				hist = d.asm.histBits
			}
			var got want
			switch e := c.Encoder.(type) {
			case *deflateEncoder:
				got = want{hist, e.bits, 0}
				if e != &d.cd.deflaters[e.bits-8] {
					t.Error("a stateless encoder of the connection's own")
				}
			case *takeoverEncoder:
				got = want{hist, e.bits, e.size}
			default:
				t.Fatalf("encoder %T", c.Encoder)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		z    Compression
		ext  []string
		why  string
	}{
		{"not offered", Compression{}, []string{"permessage-deflate"}, `extension "permessage-deflate" was not offered`},
		{"another extension", shared, []string{"x-webkit-deflate-frame"}, `extension "x-webkit-deflate-frame" was not offered`},
		{"answered twice", shared, []string{"permessage-deflate, permessage-deflate"}, "answered twice"},
		{"answered twice on two lines", shared, []string{"permessage-deflate", "permessage-deflate; server_no_context_takeover"}, "answered twice"},
		{"unknown parameter", shared, []string{"permessage-deflate; foo"}, `unknown parameter "foo"`},
		{"repeated parameter", shared, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, "server_no_context_takeover given twice"},
		{"client window without a value", shared, []string{"permessage-deflate; client_max_window_bits"}, "client_max_window_bits without a value"},
		{"client window 16", shared, []string{"permessage-deflate; client_max_window_bits=16"}, `client_max_window_bits: window bits "16"`},
		{"server window 7", own, []string{"permessage-deflate; server_max_window_bits=7"}, `server_max_window_bits: window bits "7"`},
		{"server window with a leading zero", shared, []string{"permessage-deflate; server_max_window_bits=09"}, `window bits "09"`},
		{"server window without a value", shared, []string{"permessage-deflate; server_max_window_bits"}, "server_max_window_bits needs a value"},
		{"a flag with a value", shared, []string{"permessage-deflate; client_no_context_takeover=1"}, "client_no_context_takeover takes no value"},
		{"malformed", shared, []string{"permessage-deflate; ;"}, "malformed Sec-WebSocket-Extensions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, err := clientAnswered(t, Config{Compression: tc.z}, tc.ext...)
			if !errors.Is(err, codec.ErrHandshake) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Decode: %v, want an ErrHandshake saying %q", err, tc.why)
			}
			if c.Readies != 0 {
				t.Fatal("ready after a bad answer")
			}
		})
	}
}

// pair is a client decoder and a server decoder of this package that
// completed the opening handshake with each other.
type pair struct {
	cd, sd *Codec
	cli    *clientDecoder
	srv    *decoder
	cc, sc *codectest.Conn
}

func newPair(t *testing.T, client, server Config) *pair {
	t.Helper()
	client.Client, client.Mapping, server.Mapping = true, Raw{}, Raw{}
	p := &pair{cd: New(client), sd: New(server), cc: &codectest.Conn{}, sc: &codectest.Conn{}}
	req, err := p.cd.NewClientRequest("h", "/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.cli = p.cd.NewClientDecoder(req).(*clientDecoder)
	p.srv = p.sd.NewDecoder().(*decoder)
	if err := p.cli.Open(p.cc); err != nil {
		t.Fatal(err)
	}
	if n, _, err := p.srv.Decode(p.sc, p.cc.Written, &codec.Packet{}); err != nil || n != len(p.cc.Written) {
		t.Fatalf("the server took the request: %d %v: %q", n, err, p.sc.Written)
	}
	if n, _, err := p.cli.Decode(p.cc, p.sc.Written, &codec.Packet{}); err != nil || n != len(p.sc.Written) {
		t.Fatalf("the client took the answer: %d %v: %q", n, err, p.sc.Written)
	}
	p.cc.Written, p.sc.Written = nil, nil
	return p
}

// toServer sends body from the client and returns its frame and what the
// server decoded.
func (p *pair) toServer(t *testing.T, body []byte) ([]byte, []byte) {
	t.Helper()
	b, err := p.cc.Encoder.Encode(nil, &codec.Packet{Type: TypeBinary, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if b[1]&0x80 == 0 {
		t.Fatalf("the client's frame %x is not masked", b[:2])
	}
	frame := append([]byte(nil), b...)
	return frame, decodeAll(t, p.srv, p.sc, b)
}

// toClient sends body from the server, encoded as the server encodes for
// this connection, and returns its frame and what the client decoded.
func (p *pair) toClient(t *testing.T, body []byte) ([]byte, []byte) {
	t.Helper()
	pk := &codec.Packet{Type: TypeBinary, Body: body}
	var b []byte
	var err error
	if p.sc.Encoder != nil {
		b, err = p.sc.Encoder.Encode(nil, pk)
	} else {
		b, err = p.sd.EncodeVariant(nil, pk, p.sc.Variant)
	}
	if err != nil {
		t.Fatal(err)
	}
	frame := append([]byte(nil), b...)
	return frame, decodeAll(t, &p.cli.decoder, p.cc, b)
}

// decodeAll decodes one message from b, fed to d in pieces of 1, 2, 3...
// bytes to exercise the streamed inflation, and returns its body.
func decodeAll(t *testing.T, d codec.Decoder, c *codectest.Conn, b []byte) []byte {
	t.Helper()
	var p codec.Packet
	var buf []byte
	step := 1
	for len(b) > 0 || len(buf) > 0 {
		k := min(step, len(b))
		step = step%7 + 1
		buf = append(buf, b[:k]...)
		b = b[k:]
		n, ok, err := d.Decode(c, buf, &p)
		if err != nil {
			t.Fatalf("decode: %v (wrote %q)", err, c.Written)
		}
		buf = buf[n:]
		if ok {
			if len(b) > 0 || len(buf) > 0 {
				t.Fatalf("a message before the frame's end")
			}
			out := append([]byte(nil), p.Body...)
			if r, ok := d.(codec.Releaser); ok {
				r.Release()
			}
			return out
		}
		if n == 0 && len(b) == 0 {
			t.Fatal("the frame ended without a message")
		}
	}
	t.Fatal("no message")
	return nil
}

// TestClientDeflatePeers: the client role against this package's server
// role, every mode against every mode. Messages both ways come through
// whole; each side compresses when compression was negotiated (RSV1) and
// is understood by the other; with context takeover in a direction the
// messages that repeat earlier ones shrink, and the receiver follows.
func TestClientDeflatePeers(t *testing.T) {
	modes := []struct {
		name string
		z    Compression
	}{
		{"off", Compression{}},
		{"shared", Compression{Mode: CompressionNoContextTakeover}},
		{"takeover", Compression{Mode: CompressionContextTakeover}},
		{"takeover window 9", Compression{Mode: CompressionContextTakeover, WindowBits: 9}},
		{"takeover window 15", Compression{Mode: CompressionContextTakeover, WindowBits: 15}},
	}
	msg := bytes.Repeat(randomBytes(200, 3), 3) // 600 bytes that compress within themselves
	for _, cm := range modes {
		for _, sm := range modes {
			t.Run(cm.name+"/"+sm.name, func(t *testing.T) {
				p := newPair(t, Config{Compression: cm.z}, Config{Compression: sm.z})
				on := cm.z.Mode != CompressionOff && sm.z.Mode != CompressionOff
				both := cm.z.Mode == CompressionContextTakeover && sm.z.Mode == CompressionContextTakeover
				for dir, send := range map[string]func(*testing.T, []byte) ([]byte, []byte){"to the server": p.toServer, "to the client": p.toClient} {
					var sizes []int
					for i := range 4 {
						frame, got := send(t, msg)
						if !bytes.Equal(got, msg) {
							t.Fatalf("%s, message %d: got %d bytes", dir, i, len(got))
						}
						if rsv := frame[0]&0x40 != 0; rsv != on {
							t.Fatalf("%s, message %d: RSV1 %v, compression negotiated %v", dir, i, rsv, on)
						}
						sizes = append(sizes, len(frame))
					}
					// Context takeover is negotiated when both keep it, and
					// then a repeated message costs a few bytes.
					if shrank := sizes[1] < sizes[0]/4; shrank != both {
						t.Fatalf("%s: frames of %v bytes; both keep context: %v", dir, sizes, both)
					}
				}
			})
		}
	}
}

// TestClientDeflateWindow: the client's compressor honours the window the
// server sets (client_max_window_bits), and a window the client asked of
// the server (server_max_window_bits) is what its decoder keeps.
func TestClientDeflateWindow(t *testing.T) {
	r := randomBytes(3000, 7)
	var block []byte
	for i := 0; len(block) < 3000; i++ {
		block = append(block, "alpha bravo charl delta echoo foxtr golfi hotel india julie "[r[i]%10*6:][:6]...)
		block = append(block, 'a'+r[i+1]%26)
	}
	text := bytes.Repeat(block[:3000], 5) // matches at every distance
	for _, bits := range []int{8, 9, 12, 15} {
		for _, z := range []Compression{{Mode: CompressionNoContextTakeover, Level: 9}, {Mode: CompressionContextTakeover, WindowBits: 15}} {
			_, c, err := clientAnswered(t, Config{Mapping: Raw{}, Compression: z}, fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits))
			if err != nil {
				t.Fatal(err)
			}
			var stream, want []byte
			for i := range 3 {
				m := text[i*1000 : i*1000+9000]
				b, _ := c.Encoder.Encode(nil, &codec.Packet{Type: TypeBinary, Body: m})
				h, err := ws.ReadHeader(bytes.NewReader(b))
				if err != nil || !h.Masked || h.Rsv != 4 {
					t.Fatalf("header %+v: %v", h, err)
				}
				payload := b[len(b)-int(h.Length):]
				ws.Cipher(payload, h.Mask, 0)
				stream = append(append(stream, payload...), syncTail...)
				want = append(want, m...)
			}
			f := new(inflater)
			f.reset()
			f.window = 1 << bits
			var out []byte
			if err := f.inflate(stream, &out, nil, 1<<20); err != nil || !bytes.Equal(out, want) {
				t.Fatalf("mode %d, window %d: %v, %d bytes of %d", z.Mode, bits, err, len(out), len(want))
			}
		}
	}
}

// TestClientDeflateBomb: a compressed message from the server that would
// inflate past MaxMessage closes with 1009 (masked, from the client) as
// soon as it does, and the error wraps codec.ErrTooBig.
func TestClientDeflateBomb(t *testing.T) {
	d, c, err := clientAnswered(t, Config{MaxMessage: 64 << 10, Compression: Compression{Mode: CompressionNoContextTakeover}},
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	if err != nil {
		t.Fatal(err)
	}
	c.Written = nil
	sd := New(Config{Mapping: Raw{}, MaxMessage: -1, Compression: Compression{Mode: CompressionNoContextTakeover, Threshold: -1}})
	frame, _ := sd.EncodeVariant(nil, &codec.Packet{Type: TypeBinary, Body: make([]byte, 10<<20)}, 1)
	if len(frame) > 20<<10 || frame[0]&0x40 == 0 {
		t.Fatalf("the bomb is %d bytes, header %x", len(frame), frame[0])
	}
	var p codec.Packet
	_, _, err = d.Decode(c, frame, &p)
	if !errors.Is(err, codec.ErrTooBig) {
		t.Fatalf("Decode: %v", err)
	}
	op, payload, _ := unmaskFrame(t, c.Written)
	if op != ws.OpClose || ws.StatusCode(uint16(payload[0])<<8|uint16(payload[1])) != ws.StatusMessageTooBig {
		t.Fatalf("answer %v %q", op, payload)
	}
	if cap(d.asm.msg) > 64<<10+64<<10 {
		t.Fatalf("the message buffer grew to %d bytes", cap(d.asm.msg))
	}
}
