package websocket_test

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/internal/link"
)

const rsv1 byte = 0x40

// deflated compresses b as a permessage-deflate message: a sync flush,
// its last four bytes removed.
func deflated(b []byte) []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, 6)
	_, _ = w.Write(b)
	_ = w.Flush()
	return bytes.TrimSuffix(out.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflated reverses deflated with compress/flate (the stream need not end).
func inflated(b []byte) ([]byte, error) {
	r := stdflate.NewReader(io.MultiReader(bytes.NewReader(b), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return out, err
}

// prose returns n bytes of UTF-8 text made of words in a pseudo-random
// order: it compresses about as well as prose does.
func prose(n int) []byte {
	words := strings.Fields("the quick brown fox jumps over a lazy dog; zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich — 😀 ok")
	var b []byte
	x := uint32(2463534242)
	for len(b) < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b = append(append(b, words[x%uint32(len(words))]...), ' ')
	}
	for len(b) > n { // cut at a character boundary, then pad
		b = b[:len(b)-1]
		for len(b) > 0 && b[len(b)-1]&0xC0 == 0x80 {
			b = b[:len(b)-1]
		}
		if len(b) > 0 && b[len(b)-1] >= 0xC0 {
			b = b[:len(b)-1]
		}
	}
	return append(b, bytes.Repeat([]byte{'.'}, n-len(b))...)
}

// plainFrames inflates the compressed frames among fs (each a whole
// message) so that sameFrames can compare them.
func plainFrames(t testing.TB, fs []sframe) []sframe {
	t.Helper()
	out := make([]sframe, len(fs))
	for i, f := range fs {
		if f.rsv == rsv1 {
			p, err := inflated(f.payload)
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			f.payload, f.rsv = p, 0
		}
		out[i] = f
	}
	return out
}

// upgradeDeflate performs the opening handshake with a permessage-deflate
// offer and requires the given answer.
func (rc *rawConn) upgradeDeflate(offer, answer string) {
	rc.t.Helper()
	rc.write(upgradeRequest("/", "Sec-WebSocket-Extensions: "+offer))
	resp, _ := rc.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rc.t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != answer {
		rc.t.Fatalf("extension answer %q, want %q", got, answer)
	}
}

const sharedAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

func deflateCodec(cfg websocket.Config) *websocket.Codec {
	if cfg.Mapping == nil {
		cfg.Mapping = websocket.Raw{}
	}
	if cfg.Compression.Mode == 0 {
		cfg.Compression.Mode = websocket.CompressionNoContextTakeover
	}
	return websocket.New(cfg)
}

// The examples of RFC 7692 section 7.2.3 (frames with their headers,
// unmasked there, masked here), and compressed messages and frames that
// are valid and invalid.
func deflateCases() []frameCase {
	bye := frame(finBit|opClose, closeBody(1000, "bye"))
	hello := []byte("Hello")
	long := prose(5000)
	longz := deflated(long)
	bin := binaryOf(3000)
	binz := deflated(bin)
	bad := deflated([]byte("ok \xff not UTF-8"))
	split := func(b []byte, cuts ...int) [][]byte { // b cut at the offsets cuts
		var parts [][]byte
		prev := 0
		for _, c := range cuts {
			parts = append(parts, b[prev:c])
			prev = c
		}
		return append(parts, b[prev:])
	}
	fragments := func(op byte, parts [][]byte) []byte {
		var out []byte
		for i, p := range parts {
			b0 := opCont
			if i == 0 {
				b0 = op | rsv1
			}
			if i == len(parts)-1 {
				b0 |= finBit
			}
			out = append(out, frame(b0, p)...)
		}
		return out
	}
	return []frameCase{
		// RFC 7692 section 7.2.3.1: "Hello" in one compressed block,
		// whole and in two fragments.
		{"RFC 7692 7.2.3.1", cat(frame(finBit|rsv1|opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), bye),
			[]sframe{textFrame(hello), closeFrame(1000)}},
		{"RFC 7692 7.2.3.1 fragmented",
			cat(frame(rsv1|opText, []byte{0xf2, 0x48, 0xcd}), frame(finBit|opCont, []byte{0xc9, 0xc9, 0x07, 0x00}), bye),
			[]sframe{textFrame(hello), closeFrame(1000)}},
		// 7.2.3.3: a stored block; 7.2.3.4: a final block; 7.2.3.5: two blocks.
		{"RFC 7692 7.2.3.3", cat(frame(finBit|rsv1|opText, []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}), bye),
			[]sframe{textFrame(hello), closeFrame(1000)}},
		{"RFC 7692 7.2.3.4", cat(frame(finBit|rsv1|opText, []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), bye),
			[]sframe{textFrame(hello), closeFrame(1000)}},
		{"RFC 7692 7.2.3.5", cat(frame(finBit|rsv1|opText, []byte{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}), bye),
			[]sframe{textFrame(hello), closeFrame(1000)}},
		// 7.2.3.2 without context takeover: the second message refers to
		// the first, which the server did not keep.
		{"RFC 7692 7.2.3.2 without context takeover",
			cat(frame(finBit|rsv1|opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), frame(finBit|rsv1|opText, []byte{0xf2, 0x00, 0x11, 0x00, 0x00})),
			[]sframe{textFrame(hello), closeFrame(1002)}},
		{"large text, compressed echo", cat(frame(finBit|rsv1|opText, longz), bye), []sframe{textFrame(long), closeFrame(1000)}},
		{"large binary", cat(frame(finBit|rsv1|opBin, binz), bye), []sframe{binaryFrame(bin), closeFrame(1000)}},
		{"uncompressed message on a compressed connection", cat(frame(finBit|opText, long), frame(finBit|opBin, []byte{1, 2}), bye),
			[]sframe{textFrame(long), binaryFrame([]byte{1, 2}), closeFrame(1000)}},
		{"fragmented, cut anywhere, with a ping and empty fragments",
			cat(frame(rsv1|opText, longz[:1]), frame(opCont, nil), frame(finBit|opPing, []byte("p")),
				frame(opCont, longz[1:7]), frame(opCont, longz[7:100]), frame(finBit|opCont, longz[100:]), bye),
			[]sframe{pongFrame([]byte("p")), textFrame(long), closeFrame(1000)}},
		{"empty compressed payload", cat(frame(finBit|rsv1|opText, nil), frame(finBit|rsv1|opBin, []byte{0x00}), bye),
			[]sframe{textFrame(nil), binaryFrame(nil), closeFrame(1000)}},
		{"compressed fragmented with an uncompressed one after",
			cat(fragments(opBin, split(binz, 10)), frame(finBit|opText, hello), bye),
			[]sframe{binaryFrame(bin), textFrame(hello), closeFrame(1000)}},

		// Protocol errors: 1002.
		{"RSV1 on a continuation frame", cat(frame(rsv1|opText, longz[:10]), frame(finBit|rsv1|opCont, longz[10:])), []sframe{closeFrame(1002)}},
		{"RSV1 on an uncompressed message's continuation", cat(frame(opText, hello), frame(finBit|rsv1|opCont, []byte{0})), []sframe{closeFrame(1002)}},
		{"RSV1 on a ping", frame(finBit|rsv1|opPing, nil), []sframe{closeFrame(1002)}},
		{"RSV1 on a close", frame(finBit|rsv1|opClose, closeBody(1000, "")), []sframe{closeFrame(1002)}},
		{"RSV1 on a ping between fragments", cat(frame(rsv1|opText, longz[:10]), frame(finBit|rsv1|opPing, nil)), []sframe{closeFrame(1002)}},
		{"RSV2", frame(finBit|0x20|opText, hello), []sframe{closeFrame(1002)}},
		{"RSV1 and RSV3", frame(finBit|rsv1|0x10|opText, longz), []sframe{closeFrame(1002)}},
		{"reserved block type", frame(finBit|rsv1|opBin, []byte{0xff, 0xff}), []sframe{closeFrame(1002)}},
		{"bad stored block length", frame(finBit|rsv1|opBin, []byte{0x00, 0x05, 0x00, 0xfb, 0xff, 1, 2, 3, 4, 5}), []sframe{closeFrame(1002)}},
		{"message ends inside a block", cat(frame(finBit|rsv1|opText, longz[:len(longz)/2]), bye), []sframe{closeFrame(1002)}},
		{"distance before the message", frame(finBit|rsv1|opText, []byte{0xf2, 0x00, 0x11, 0x00, 0x00}), []sframe{closeFrame(1002)}},

		// UTF-8 is checked after inflating, failing fast: 1007.
		{"invalid UTF-8 once inflated", frame(finBit|rsv1|opText, bad), []sframe{closeFrame(1007)}},
		{"fail fast: invalid UTF-8 in an unfinished compressed message", frame(rsv1|opText, bad), []sframe{closeFrame(1007)}},
		{"inflated text ends inside a code point", frame(finBit|rsv1|opText, deflated([]byte("ab\xe2\x82"))), []sframe{closeFrame(1007)}},
		{"code point split across compressed fragments",
			cat(fragments(opText, split(deflated([]byte("caf\xc3\xa9!")), 4)), bye), []sframe{textFrame([]byte("café!")), closeFrame(1000)}},
	}
}

// TestDeflateFrames runs the compressed frame table against a real server
// that negotiated permessage-deflate, whole and byte by byte.
func TestDeflateFrames(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{MaxFrame: 1 << 16, MaxMessage: 1 << 17})))
	cases := deflateCases()
	for _, mode := range []string{"whole", "bytewise"} {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					rc := dialRaw(t, addr)
					rc.upgradeDeflate("permessage-deflate; client_max_window_bits", sharedAnswer)
					if mode == "whole" {
						rc.write(tc.in)
					} else {
						rc.writeBytewise(tc.in, 0)
					}
					if err := sameFrames(plainFrames(t, rc.readFrames()), tc.want); err != nil {
						t.Fatal(err)
					}
					rc.expectClosed()
				})
			}
		})
	}
}

// The server compresses what it sends at or over the threshold, in one
// frame with RSV1, and sends smaller messages (and those compression does
// not shrink) as they are.
func TestDeflateThreshold(t *testing.T) {
	for _, tc := range []struct {
		threshold int
		size      int
		random    bool
		want      bool
	}{
		{0, 255, false, false}, {0, 256, false, true}, {0, 100000, false, true},
		{-1, 200, false, true}, {-1, 40, false, true}, {-1, 40, true, false}, {-1, 0, false, false}, {1000, 999, false, false}, {1000, 1000, false, true},
		{0, 3000, true, false}, // incompressible
	} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			_, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{
				Compression: websocket.Compression{Mode: websocket.CompressionNoContextTakeover, Threshold: tc.threshold},
			})))
			rc := dialRaw(t, addr)
			rc.upgradeDeflate("permessage-deflate", sharedAnswer)
			msg := []byte(strings.Repeat("a", tc.size))
			if tc.random {
				msg = binaryOf(tc.size)
			}
			rc.write(frame(finBit|opBin, msg))
			rc.deadline()
			f, err := readFrame(rc.br)
			if err != nil {
				t.Fatal(err)
			}
			if (f.rsv == rsv1) != tc.want || !f.fin || f.op != opBin {
				t.Fatalf("frame %v, want compressed: %v", f, tc.want)
			}
			if got := plainFrames(t, []sframe{f})[0].payload; !bytes.Equal(got, msg) {
				t.Fatalf("echo of %d bytes came back with %d", len(msg), len(got))
			}
		})
	}
}

// gorilla/websocket with compression (it supports no context takeover
// only) against a server that compresses: text and binary of many sizes,
// compressed by gorilla or not.
func TestDeflateGorilla(t *testing.T) {
	for _, mapping := range []websocket.Mapping{websocket.Raw{}, websocket.TypePrefix{}} {
		_, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{Mapping: mapping})))
		for _, level := range []int{1, 9} {
			var rec *readRecorder
			d := &gorilla.Dialer{EnableCompression: true, NetDial: func(network, a string) (net.Conn, error) {
				c, err := net.Dial(network, a)
				rec = &readRecorder{Conn: c}
				return rec, err
			}}
			c := mustDial(t, d, "ws://"+addr+"/", nil)
			if err := c.SetCompressionLevel(level); err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{0, 1, 255, 256, 1000, 65536, 1 << 20} {
				for _, compress := range []bool{true, false} {
					c.EnableWriteCompression(compress)
					// Compressing a MiB at level 9 both ways takes seconds
					// under the race detector on a busy machine.
					deadline := time.Now().Add(ioTimeout + time.Duration(size>>16)*time.Second)
					_ = c.SetReadDeadline(deadline)
					_ = c.SetWriteDeadline(deadline)
					text := textOf(size)
					roundTrip(t, c, gorilla.TextMessage, text, gorilla.TextMessage, text)
					bin := append([]byte{7}, binaryOf(size)...)
					roundTrip(t, c, gorilla.BinaryMessage, bin, gorilla.BinaryMessage, bin)
				}
			}
			if !bytes.Contains(rec.head(), []byte("Sec-Websocket-Extensions: "+sharedAnswer+"\r\n")) &&
				!bytes.Contains(rec.head(), []byte("Sec-WebSocket-Extensions: "+sharedAnswer+"\r\n")) {
				t.Fatalf("response %q", rec.head())
			}
		}
	}
}

// readRecorder records the first bytes a client reads (the handshake's
// response).
type readRecorder struct {
	net.Conn
	mu sync.Mutex
	in []byte
}

func (c *readRecorder) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if len(c.in) < 4096 {
		c.in = append(c.in, b[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *readRecorder) head() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := bytes.Index(c.in, []byte("\r\n\r\n"))
	if i < 0 {
		return c.in
	}
	return c.in[:i+4]
}

// bomb returns a DEFLATE stream of about n/1032 bytes that inflates to n
// bytes of zeros (the most DEFLATE allows): a dynamic block whose codes are
// one or two bits long, so that each byte of zeros stands for four
// 258-byte copies of the byte before.
func bomb(n int) []byte {
	var w bitWriter
	w.bits(1, 1)  // BFINAL
	w.bits(2, 2)  // dynamic codes
	w.bits(29, 5) // HLIT: 286 literal/length codes
	w.bits(0, 5)  // HDIST: 1 distance code
	w.bits(14, 4) // HCLEN: 18 code length codes (symbol 1 is 18th in the order)
	order := []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1}
	clen := map[int]uint32{0: 1, 1: 2, 2: 2} // codes: 0 → "0", 1 → "10", 2 → "11"
	for _, s := range order {
		w.bits(clen[s], 3)
	}
	length := func(l int) { // write a code length with the code length code
		switch l {
		case 0:
			w.code(0, 1)
		case 1:
			w.code(2, 2)
		case 2:
			w.code(3, 2)
		}
	}
	for s := range 286 { // literal 0 and end of block: 2 bits; length 258 (285): 1 bit
		switch s {
		case 0, 256:
			length(2)
		case 285:
			length(1)
		default:
			length(0)
		}
	}
	length(1) // the one distance code: 1 bit
	// Codes: 285 → "0", 0 → "10", 256 → "11"; distance 1 → "0".
	w.code(2, 2) // a literal 0
	copies := (n - 1) / 258
	for copies > 0 && w.n != 0 {
		w.code(0, 1)
		w.code(0, 1)
		copies--
	}
	w.flush()
	w.out = append(w.out, make([]byte, copies/4)...)
	for range copies % 4 {
		w.code(0, 1)
		w.code(0, 1)
	}
	w.code(3, 2) // end of block
	w.flush()
	return w.out
}

type bitWriter struct {
	out []byte
	acc uint32
	n   uint
}

// bits writes the n low bits of v, least significant first.
func (w *bitWriter) bits(v uint32, n uint) {
	for i := range n {
		w.acc |= (v >> i & 1) << w.n
		if w.n++; w.n == 8 {
			w.out = append(w.out, byte(w.acc))
			w.acc, w.n = 0, 0
		}
	}
}

// code writes a Huffman code of n bits, most significant first.
func (w *bitWriter) code(c uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i)&1, 1)
	}
}

func (w *bitWriter) flush() {
	if w.n > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc, w.n = 0, 0
	}
}

func TestBombInflates(t *testing.T) {
	b := bomb(4 << 20)
	out, err := inflated(b)
	if err != nil || len(out) != 1+(4<<20-1)/258*258 || bytes.IndexFunc(out, func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatalf("bomb: %v, %d bytes", err, len(out))
	}
	t.Logf("%d bytes inflate to %d", len(b), len(out))
}

// A deflate bomb closes with 1009 as soon as it inflates past MaxMessage,
// and costs the server about the limit, not what the bomb would inflate to.
func TestDeflateBomb(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		name    string
		size    int // bytes it inflates to
		pieces  bool
		partial bool // only the bomb's first part is sent: the server must not wait for the rest
	}{
		{"4 KB to 4 MB", 4 << 20, false, false},
		{"1 MB to 1 GB", 1 << 30, false, false},
		{"1 MB to 1 GB in pieces", 1 << 30, true, false},
		{"first 100 KB of 1 MB to 1 GB", 1 << 30, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{MaxMessage: limit})))
			rc := dialRaw(t, addr)
			rc.upgradeDeflate("permessage-deflate", sharedAnswer)
			f := frame(finBit|rsv1|opBin, bomb(tc.size))
			if len(f) > limit {
				f = frame(finBit|rsv1|opBin, bomb(tc.size)[:limit-1])
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			switch {
			case tc.partial:
				rc.write(f[:100<<10])
			case tc.pieces:
				// The server may close before it has read everything.
				for len(f) > 0 {
					n := min(len(f), 32<<10)
					if _, err := rc.c.Write(f[:n]); err != nil {
						break
					}
					f = f[n:]
				}
			default:
				rc.write(f)
			}
			if err := sameFrames(rc.readFrames(), []sframe{closeFrame(1009)}); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KB for a limit of %d KB", alloc>>10, limit>>10)
			if alloc > 4*limit {
				t.Fatalf("allocated %d bytes for a limit of %d", alloc, limit)
			}
		})
	}
}

// With context takeover the client's window is kept between messages (the
// second message of RFC 7692 7.2.3.2 refers to the first) and the server
// keeps its own: its messages form one DEFLATE stream that refers back
// across messages and never further than the window it announced.
func TestDeflateContextTakeover(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{
		Compression: websocket.Compression{Mode: websocket.CompressionContextTakeover, Threshold: -1},
	})))
	rc := dialRaw(t, addr)
	rc.upgradeDeflate("permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=12")
	rc.write(cat(frame(finBit|rsv1|opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}),
		frame(finBit|rsv1|opText, []byte{0xf2, 0x00, 0x11, 0x00, 0x00})))
	// The server's compressed messages form one stream; its messages
	// that compression does not shrink ("Hello") are sent as they are.
	var stream, want []byte
	var sizes []int
	read := func(sent []byte) {
		t.Helper()
		rc.deadline()
		f, err := readFrame(rc.br)
		switch {
		case err != nil || f.op != opText:
			t.Fatalf("frame %v, %v", f, err)
		case f.rsv == rsv1:
			stream = append(append(stream, f.payload...), 0, 0, 0xff, 0xff)
			sizes = append(sizes, len(f.payload))
			want = append(want, sent...)
		case !bytes.Equal(f.payload, sent):
			t.Fatalf("frame %v, want %q", f, sent)
		}
	}
	read([]byte("Hello"))
	read([]byte("Hello"))
	// The client compresses with a 4 KiB window, kept across messages.
	var zb bytes.Buffer
	zw, _ := flate.NewWriterWindow(&zb, 4096)
	for _, m := range [][]byte{prose(3000), prose(3000), []byte(strings.Repeat(`{"k":"v"}`, 50)), prose(200)} {
		zb.Reset()
		_, _ = zw.Write(m)
		_ = zw.Flush()
		rc.write(frame(finBit|rsv1|opText, bytes.TrimSuffix(zb.Bytes(), []byte{0, 0, 0xff, 0xff})))
		read(m)
	}
	if len(sizes) != 4 {
		t.Fatalf("%d compressed messages, want 4", len(sizes))
	}
	got, err := inflated(stream[:len(stream)-4])
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the server's stream inflates to %d bytes (%v), want %d", len(got), err, len(want))
	}
	if sizes[1] >= sizes[0]/10 || sizes[3] > 20 { // alone, the last would take about 150
		t.Fatalf("compressed sizes %v: the context was not used", sizes)
	}
	rc.write(frame(finBit|opClose, closeBody(1000, "")))
	if err := sameFrames(rc.readFrames(), []sframe{closeFrame(1000)}); err != nil {
		t.Fatal(err)
	}
}

// A fan-out to connections of every kind (uncompressed, compressed with the
// default window and smaller ones, with context takeover) reaches each of
// them in the form it negotiated, compressed once per variant.
func TestDeflateFanout(t *testing.T) {
	srv, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{
		Compression: websocket.Compression{Mode: websocket.CompressionContextTakeover},
	})))
	type client struct {
		rc     *rawConn
		offer  string
		answer string
	}
	clients := []client{
		{nil, "", ""},
		{nil, "permessage-deflate; server_no_context_takeover", sharedAnswer},
		{nil, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", sharedAnswer},
		{nil, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10", sharedAnswer + "; server_max_window_bits=10"},
		{nil, "permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=12"},
	}
	for i := range clients {
		clients[i].rc = dialRaw(t, addr)
		if clients[i].offer == "" {
			clients[i].rc.upgrade()
		} else {
			clients[i].rc.upgradeDeflate(clients[i].offer, clients[i].answer)
		}
	}
	waitFor(t, "all connected", func() bool { return srv.Count(tio.All()) == len(clients) })
	idx := map[int]int{}
	for _, ch := range srv.Channels(tio.All()) {
		idx[(*link.Link)(ch).CodecIndex()]++
	}
	// Variants 0 (uncompressed, and the connection with an encoder of
	// its own), 1 (a 32 KiB window) and 6 (1 KiB).
	if len(idx) != 3 || idx[0] != 2 || idx[1] != 2 || idx[6] != 1 {
		t.Fatalf("codec indexes %v", idx)
	}
	own := 0
	for _, ch := range srv.Channels(tio.All()) {
		if (*link.Link)(ch).HasOwnEncoder() {
			own++
		}
	}
	if own != 1 {
		t.Fatalf("%d connections with encoders of their own, want 1", own)
	}
	msg := []byte(strings.Repeat("fan-out to everyone ", 100))
	for range 2 {
		if res, err := srv.Send(tio.All(), &codec.Packet{Type: websocket.TypeText, Body: msg}); err != nil || res.OK != len(clients) {
			t.Fatalf("SendToAll: %+v, %v", res, err)
		}
	}
	for i, c := range clients {
		for round := range 2 {
			c.rc.deadline()
			f, err := readFrame(c.rc.br)
			if err != nil {
				t.Fatal(err)
			}
			if (f.rsv == rsv1) != (c.offer != "") {
				t.Fatalf("client %d: frame %v", i, f)
			}
			if round == 1 && i == len(clients)-1 {
				continue // context takeover: the second refers to the first
			}
			if got := plainFrames(t, []sframe{f})[0]; !bytes.Equal(got.payload, msg) {
				t.Fatalf("client %d, round %d: %d bytes", i, round, len(got.payload))
			}
		}
	}
}

// TestDeflateCloseReasons: compressed input's failures are counted under
// their reasons.
func TestDeflateCloseReasons(t *testing.T) {
	srv, addr := startServer(t, echoMux(), tio.WithCodec(deflateCodec(websocket.Config{MaxMessage: 1 << 16})))
	for _, tc := range []struct {
		name   string
		in     []byte
		reason channel.Reason
	}{
		{"corrupt", frame(finBit|rsv1|opBin, []byte{0xff}), channel.ReasonDecodeError},
		{"RSV1 on a continuation", cat(frame(rsv1|opBin, []byte{0}), frame(finBit|rsv1|opCont, nil)), channel.ReasonProtocolError},
		{"inflates too big", frame(finBit|rsv1|opBin, bomb(1<<20)), channel.ReasonTooBig},
		{"invalid UTF-8", frame(finBit|rsv1|opText, deflated([]byte{0xff})), channel.ReasonDecodeError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats().Closed
			rc := dialRaw(t, addr)
			rc.upgradeDeflate("permessage-deflate", sharedAnswer)
			rc.write(tc.in)
			rc.deadline()
			for {
				if _, err := rc.br.ReadByte(); err != nil {
					break
				}
			}
			waitFor(t, "close counted as "+tc.reason.String(), func() bool {
				return srv.Stats().Closed[tc.reason] == before[tc.reason]+1
			})
		})
	}
}

// TestIdleMemory measures what an idle connection costs the server (heap
// after a collection, per connection) for each compression setting, after
// it has received and sent two compressed messages of 1 KiB: the windows
// of context takeover are full, and a pool holds whatever a connection
// returned to it only until the collection. The client's side is the same
// in every setting, so the differences are the server's. It reports; the
// one bound it checks is that a compressed connection without context
// takeover costs at most 128 bytes more than an uncompressed one.
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory: not in -short")
	}
	if websocket.RaceEnabled {
		t.Skip("the race detector changes memory use")
	}
	const n = 200
	msg := []byte(strings.Repeat(`{"id":1234,"name":"item","tags":["a","b"],"price":12.5},`, 18))
	z := deflated(msg)
	kinds := []struct {
		name        string
		mode        websocket.CompressionMode
		windowBits  int
		offer, want string
	}{
		{"uncompressed", websocket.CompressionOff, 0, "", ""},
		{"no context takeover", websocket.CompressionNoContextTakeover, 0, "permessage-deflate; client_max_window_bits", sharedAnswer},
		{"context takeover, 4 KiB windows", websocket.CompressionContextTakeover, 12, "permessage-deflate; client_max_window_bits",
			"permessage-deflate; client_max_window_bits=12"},
		{"context takeover, 32 KiB windows", websocket.CompressionContextTakeover, 15, "permessage-deflate; client_max_window_bits",
			"permessage-deflate; client_max_window_bits=15"},
	}
	per := make([]float64, len(kinds))
	for k, kind := range kinds {
		srv, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
			Mapping: websocket.Raw{}, Compression: websocket.Compression{Mode: kind.mode, WindowBits: kind.windowBits},
		})))
		heap := func() uint64 {
			var m runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		conns := make([]*rawConn, n)
		before := heap()
		for i := range conns {
			rc := dialRaw(t, addr)
			if kind.offer == "" {
				rc.upgrade()
			} else {
				rc.upgradeDeflate(kind.offer, kind.want)
			}
			for range 2 {
				if kind.offer == "" {
					rc.write(frame(finBit|opText, msg))
				} else {
					rc.write(frame(finBit|rsv1|opText, z))
				}
				if f, err := readFrame(rc.br); err != nil || (f.rsv == rsv1) != (kind.offer != "") {
					t.Fatalf("%s: echo %v, %v", kind.name, f, err)
				}
			}
			conns[i] = rc
		}
		waitFor(t, "all connected", func() bool { return srv.Count(tio.All()) == n })
		per[k] = float64(heap()-before) / n
		t.Logf("%-34s %7.0f B per idle connection (client side included), %+7.0f B vs uncompressed", kind.name, per[k], per[k]-per[0])
		for _, rc := range conns {
			_ = rc.c.Close()
		}
		waitFor(t, "all closed", func() bool { return srv.Count(tio.All()) == 0 })
	}
	if per[1]-per[0] > 128 {
		t.Errorf("an idle compressed connection without context takeover costs %.0f B more than an uncompressed one, want at most 128", per[1]-per[0])
	}
}
