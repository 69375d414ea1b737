package websocket

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// handshakeWith upgrades a decoder of cd with the given extension header
// lines and returns the response's Sec-WebSocket-Extensions header (""
// when there is none), the decoder and its connection.
func handshakeWith(t testing.TB, cd *Codec, ext ...string) (string, *decoder, *codectest.Conn) {
	t.Helper()
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, e := range ext {
		b.WriteString("Sec-WebSocket-Extensions: " + e + "\r\n")
	}
	b.WriteString("\r\n")
	req := []byte(b.String())
	d := cd.NewDecoder().(*decoder)
	c := &codectest.Conn{}
	n, _, err := d.Decode(c, req, &codec.Packet{})
	if err != nil || n != len(req) {
		t.Fatalf("handshake %q: n %d, err %v, answer %q", ext, n, err, c.Written)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(c.Written)), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake %q: %v, answer %q", ext, err, c.Written)
	}
	if v := resp.Header.Values("Sec-WebSocket-Extensions"); len(v) > 1 {
		t.Fatalf("handshake %q: %d extension headers", ext, len(v))
	}
	return resp.Header.Get("Sec-WebSocket-Extensions"), d, c
}

// The negotiation table: offers (one header line each, possibly several
// offers per line) and the answer of each mode. "" is no compression.
func TestNegotiation(t *testing.T) {
	const (
		both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	)
	for _, tc := range []struct {
		name   string
		offers []string
		shared string // CompressionNoContextTakeover's answer
		own    string // CompressionContextTakeover's (WindowBits 12)
	}{
		{"none", nil, "", ""},
		{"another extension", []string{"x-webkit-deflate-frame"}, "", ""},
		{"bare (Firefox, Safari)", []string{"permessage-deflate"}, both,
			"permessage-deflate; client_no_context_takeover"},
		{"browser, Node ws", []string{"permessage-deflate; client_max_window_bits"}, both,
			"permessage-deflate; client_max_window_bits=12"},
		{"gorilla", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, both, both},
		{"autobahn default", []string{"permessage-deflate; client_no_context_takeover; client_max_window_bits"}, both,
			"permessage-deflate; client_no_context_takeover"},
		{"server window 9", []string{"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=9"},
			both + "; server_max_window_bits=9", "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"},
		{"server window 15, quoted", []string{`permessage-deflate; server_max_window_bits="15"`},
			both + "; server_max_window_bits=15", "permessage-deflate; client_no_context_takeover; server_max_window_bits=15"},
		{"server window 8", []string{"permessage-deflate; server_no_context_takeover; server_max_window_bits=8"},
			both + "; server_max_window_bits=8", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"},
		{"client window 10", []string{"permessage-deflate; client_max_window_bits=10"}, both,
			"permessage-deflate; client_max_window_bits=10"},
		{"client window 15", []string{"permessage-deflate; client_max_window_bits=15"}, both,
			"permessage-deflate; client_max_window_bits=12"},
		// Invalid offers are declined: the next one is tried.
		{"unknown parameter", []string{"permessage-deflate; foo, permessage-deflate; server_no_context_takeover"}, both,
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"duplicate parameter", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, "", ""},
		{"duplicate client_max_window_bits without a value", []string{"permessage-deflate; client_max_window_bits; client_max_window_bits"}, "", ""},
		{"duplicate client_max_window_bits", []string{"permessage-deflate; client_max_window_bits=10; client_max_window_bits"}, "", ""},
		{"server_max_window_bits without a value", []string{"permessage-deflate; server_max_window_bits"}, "", ""},
		{"window 7", []string{"permessage-deflate; server_max_window_bits=7"}, "", ""},
		{"window 16", []string{"permessage-deflate; client_max_window_bits=16"}, "", ""},
		{"leading zero", []string{"permessage-deflate; server_max_window_bits=09"}, "", ""},
		{"not a number", []string{"permessage-deflate; server_max_window_bits=x"}, "", ""},
		{"flag with a value", []string{"permessage-deflate; client_no_context_takeover=1"}, "", ""},
		{"flag with an empty quoted value", []string{`permessage-deflate; server_no_context_takeover=""`}, "", ""},
		{"a parameter of another case", []string{"permessage-deflate; Server_No_Context_Takeover"}, "", ""},
		// At most one offer is answered: the first acceptable one.
		{"two offers", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"},
			both + "; server_max_window_bits=10", "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"},
		{"two header lines", []string{"permessage-deflate; server_max_window_bits=x", "permessage-deflate; server_max_window_bits=11", "permessage-deflate"},
			both + "; server_max_window_bits=11", "permessage-deflate; client_no_context_takeover; server_max_window_bits=11"},
		{"after another extension", []string{"foo; bar=1, permessage-deflate; client_max_window_bits"}, both,
			"permessage-deflate; client_max_window_bits=12"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _, _ := handshakeWith(t, New(Config{}), tc.offers...); got != "" {
				t.Errorf("compression off: answered %q", got)
			}
			for _, m := range []struct {
				mode CompressionMode
				want string
			}{{CompressionNoContextTakeover, tc.shared}, {CompressionContextTakeover, tc.own}} {
				got, d, c := handshakeWith(t, New(Config{Compression: Compression{Mode: m.mode}}), tc.offers...)
				if got != m.want {
					t.Errorf("mode %d: answered %q, want %q", m.mode, got, m.want)
				}
				if (d.flags&flagDeflate != 0) != (m.want != "") {
					t.Errorf("mode %d: decoder flags %#x", m.mode, d.flags)
				}
				takeover := m.want != "" && !strings.Contains(m.want, "server_no_context_takeover")
				if (c.Encoder != nil) != takeover {
					t.Errorf("mode %d: encoder %v, want one: %v", m.mode, c.Encoder, takeover)
				}
				if want := 0; m.want != "" && !takeover {
					want = 1
					if i := strings.Index(m.want, "server_max_window_bits="); i >= 0 {
						var bits int
						for _, ch := range m.want[i+len("server_max_window_bits="):] {
							if ch < '0' || ch > '9' {
								break
							}
							bits = bits*10 + int(ch-'0')
						}
						want = 16 - bits
					}
					if c.Variant != want {
						t.Errorf("mode %d: variant %d, want %d", m.mode, c.Variant, want)
					}
				} else if c.Variant != 0 {
					t.Errorf("mode %d: variant %d, want 0", m.mode, c.Variant)
				}
			}
		})
	}
}

// A refused upgrade carries no extension answer.
func TestNegotiationRefused(t *testing.T) {
	cd := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover},
		OnHandshake: func(codec.Conn, *Request) error { return Reject(http.StatusForbidden, "no") }})
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
	d := cd.NewDecoder().(*decoder)
	c := &codectest.Conn{}
	if _, _, err := d.Decode(c, []byte(req), &codec.Packet{}); err == nil {
		t.Fatal("upgrade not refused")
	}
	if bytes.Contains(c.Written, []byte("Extensions")) || !bytes.HasPrefix(c.Written, []byte("HTTP/1.1 403")) {
		t.Fatalf("answer %q", c.Written)
	}
	if d.flags&flagDeflate != 0 || c.Variant != 0 || c.Encoder != nil {
		t.Fatalf("compression set up for a refused upgrade")
	}
}

// An upgrade that negotiates compression allocates nothing more than one
// that does not.
func TestUpgradeGarbageDeflate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: counts are checked without -race")
	}
	req := []byte(strings.Replace(leanRequest, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n", 1))
	cd := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover}})
	var p codec.Packet
	c := &codectest.Conn{}
	n := testing.AllocsPerRun(200, func() {
		c.Written = c.Written[:0]
		d := decoder{cd: cd}
		if n, _, err := d.Decode(c, req, &p); err != nil || n != len(req) || d.flags&flagDeflate == 0 {
			t.Fatalf("n %d, err %v", n, err)
		}
	})
	if n > 1 {
		t.Errorf("a compressed upgrade allocates %v times, want at most 1 (the accept key)", n)
	}
}

// Once a compressed message is handled (Release), a connection without
// context takeover holds nothing for compression: no assembly, no
// inflater, only its decoder's flags. With context takeover it keeps the
// client's window and nothing else.
func TestCompressedIdleHoldsNothing(t *testing.T) {
	msg := bytes.Repeat([]byte("compressed idle connection "), 100)
	var zb bytes.Buffer
	zw, _ := flate.NewWriter(&zb, 5)
	_, _ = zw.Write(msg)
	_ = zw.Flush()
	z := bytes.TrimSuffix(zb.Bytes(), syncTail)
	for _, mode := range []CompressionMode{CompressionNoContextTakeover, CompressionContextTakeover} {
		_, d, c := handshakeWith(t, New(Config{Compression: Compression{Mode: mode}}), "permessage-deflate; client_max_window_bits")
		for k, split := range []int{len(z), 10} { // whole, then streamed
			in := mframe(0xc1, [4]byte{1, 2, 3, 4}, z)
			var p codec.Packet
			n, ok, err := d.Decode(c, in[:6+split], &p)
			if split < len(z) {
				if err != nil || ok {
					t.Fatalf("mode %d: first piece: %v %v", mode, ok, err)
				}
				_, ok, err = d.Decode(c, in[n:], &p)
			}
			if err != nil || !ok || !bytes.Equal(p.Body, msg) {
				t.Fatalf("mode %d: ok %v, err %v, %d bytes", mode, ok, err, len(p.Body))
			}
			d.Release()
			switch mode {
			case CompressionNoContextTakeover:
				if d.asm != nil {
					t.Fatalf("an idle connection holds an assembly")
				}
			default:
				if a := d.asm; a == nil || a.inf != nil || len(a.hist) != min((k+1)*len(msg), 4096) {
					t.Fatalf("context takeover: no assembly, or an inflater, or a window of the wrong size")
				}
			}
		}
	}
}

// The Mapping sees compressed messages inflated: under TypePrefix a
// compressed binary message's first inflated byte is its type, and one that
// inflates to nothing has none (1003).
func TestCompressedMapping(t *testing.T) {
	z := func(b []byte) []byte {
		var zb bytes.Buffer
		zw, _ := flate.NewWriter(&zb, 5)
		_, _ = zw.Write(b)
		_ = zw.Flush()
		return bytes.TrimSuffix(zb.Bytes(), syncTail)
	}
	in := append(mframe(0xc2, [4]byte{9, 8, 7, 6}, z(append([]byte{7}, bytes.Repeat([]byte("seven"), 100)...))),
		mframe(0xc2, [4]byte{9, 8, 7, 6}, z(nil))...)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
	cd := New(Config{Compression: Compression{Mode: CompressionNoContextTakeover}})
	r := codectest.Splits(t, cd.NewDecoder, append(req, in...), []byte{3, 50}, nil)
	if len(r.Packets) != 1 || r.Packets[0].Type != 7 || r.Packets[0].Body != strings.Repeat("seven", 100) || r.Err != codec.ErrUnsupported {
		t.Fatalf("%v", r)
	}
	if !bytes.HasSuffix(r.Written, []byte{0x88, 2, 0x03, 0xeb}) {
		t.Fatalf("closed with %x, want 1003", r.Written[len(r.Written)-4:])
	}
}

// What the server sends never reaches further back than the window the
// client imposed (server_max_window_bits): each variant's messages alone,
// and a context takeover encoder's messages as one stream.
func TestEncodeWindows(t *testing.T) {
	// Words in a pseudo-random order, the block repeated every 3000 bytes:
	// matches at every distance, most of them beyond the small windows.
	r := randomBytes(3000, 7)
	var block []byte
	for i := 0; len(block) < 3000; i++ {
		block = append(block, "alpha bravo charl delta echoo foxtr golfi hotel india julie "[r[i]%10*6:][:6]...)
		block = append(block, 'a'+r[i+1]%26)
	}
	text := bytes.Repeat(block[:3000], 7)
	frames := func(b []byte) (payloads [][]byte) {
		for len(b) > 0 {
			n, h := int(b[1]&0x7F), 2
			switch n {
			case 126:
				n, h = int(b[2])<<8|int(b[3]), 4
			case 127:
				n, h = int(b[6])<<24|int(b[7])<<16|int(b[8])<<8|int(b[9]), 10
			}
			if b[0] != 0xC2 {
				t.Fatalf("frame header %x: want a final compressed binary frame", b[0])
			}
			payloads = append(payloads, b[h:h+n])
			b = b[h+n:]
		}
		return payloads
	}
	cd := New(Config{Mapping: Raw{}, Compression: Compression{Mode: CompressionNoContextTakeover, Level: 9}})
	p := &codec.Packet{Type: TypeBinary, Body: text}
	for v := 1; v < cd.NumVariants(); v++ {
		b, _ := cd.EncodeVariant(nil, p, v)
		f := new(inflater)
		f.reset()
		f.window = 1 << (16 - v)
		var out []byte
		if err := f.inflate(append(frames(b)[0], syncTail...), &out, nil, 1<<20); err != nil || !bytes.Equal(out, text) {
			t.Fatalf("variant %d: %v, %d bytes", v, err, len(out))
		}
	}
	for _, offer := range []string{"permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=12"} {
		_, _, c := handshakeWith(t, New(Config{Mapping: Raw{}, Compression: Compression{Mode: CompressionContextTakeover, WindowBits: 15}}), offer)
		bits := 9
		if strings.HasSuffix(offer, "12") {
			bits = 12
		}
		var stream, want []byte
		for i := range 6 {
			m := text[i*1000 : i*1000+3000]
			b, _ := c.Encoder.Encode(nil, &codec.Packet{Type: TypeBinary, Body: m})
			stream = append(append(stream, frames(b)[0]...), syncTail...)
			want = append(want, m...)
		}
		f := new(inflater)
		f.reset()
		f.window = 1 << bits
		var out []byte
		if err := f.inflate(stream, &out, nil, 1<<20); err != nil || !bytes.Equal(out, want) {
			t.Fatalf("%s: %v, %d bytes of %d", offer, err, len(out), len(want))
		}
	}
}
