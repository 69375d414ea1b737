package client_test

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/klauspost/compress/flate"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// text returns n bytes of text that compress about as prose does.
func text(n int, seed uint32) []byte {
	words := strings.Fields("the quick brown fox jumps over a lazy dog while zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich")
	var b []byte
	x := seed | 1
	for len(b) < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b = append(append(b, words[x%uint32(len(words))]...), ' ')
	}
	return b[:n]
}

// shared is the usual compression: each message on its own.
var shared = websocket.Compression{Mode: websocket.CompressionNoContextTakeover}

// echoAll is a Raw echo: every message goes back with its type.
func echoAll() handler.Handler {
	return handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) })
}

// TestDeflateTioServer: the client against tio servers in each
// compression mode, in each of its own: messages echo back whole, and the
// bytes on the wire show compression both ways exactly when both ends
// have it on (the default is off on both).
func TestDeflateTioServer(t *testing.T) {
	modes := []struct {
		name string
		z    websocket.Compression
	}{
		{"off", websocket.Compression{}},
		{"shared", websocket.Compression{Mode: websocket.CompressionNoContextTakeover}},
		{"takeover", websocket.Compression{Mode: websocket.CompressionContextTakeover}},
	}
	for _, sm := range modes {
		srv := tiotest.NewServer(t, echoAll(), tio.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}, Compression: sm.z}))
		for _, cm := range []struct {
			name string
			z    *websocket.Compression // nil: the default
		}{{"default", nil}, {"off", &modes[0].z}, {"shared", &modes[1].z}, {"takeover", &modes[2].z}} {
			t.Run("server "+sm.name+"/client "+cm.name, func(t *testing.T) {
				rec := newRecorder()
				opts := []client.Option{client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}})}
				on := false
				if cm.z != nil {
					opts = append(opts, client.WithCompression(*cm.z))
					on = sm.z.Mode != websocket.CompressionOff && cm.z.Mode != websocket.CompressionOff
				}
				c := newClient(t, handler.Inline(rec), opts...)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				cn, err := c.Dial(ctx, "ws://"+srv.Addr().String()+"/")
				if err != nil {
					t.Fatal(err)
				}
				before := c.Stats().Traffic
				const n = 20
				var sent [][]byte
				for i := range n {
					body := text(2000+i*500, uint32(i+1))
					if i%3 == 0 {
						body = text(10, uint32(i)) // under the threshold: sent as it is
					}
					typ := websocket.TypeBinary
					if i%2 == 0 {
						typ = websocket.TypeText
					}
					sent = append(sent, body)
					if err := cn.Send(&codec.Packet{Type: typ, Body: body}); err != nil {
						t.Fatal(err)
					}
				}
				got := rec.wait(t, n)
				total := 0
				for i, p := range got {
					if !bytes.Equal(p.Body, sent[i]) {
						t.Fatalf("echo %d: %d bytes, want %d", i, len(p.Body), len(sent[i]))
					}
					total += len(sent[i])
				}
				tr := c.Stats().Traffic.Sub(before)
				for dir, b := range map[string]uint64{"out": tr.BytesOut, "in": tr.BytesIn} {
					if compressed := b < uint64(total)*2/3; compressed != on {
						t.Errorf("%s: %d bytes on the wire for %d of messages; compression negotiated: %v", dir, b, total, on)
					}
				}
				if err := cn.Close(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestDeflateGorillaServer: gorilla's server with EnableCompression (it
// answers "server_no_context_takeover; client_no_context_takeover" and
// inflates with compress/flate): messages of every size echo, compressed
// both ways.
func TestDeflateGorillaServer(t *testing.T) {
	var mu sync.Mutex
	var offered string
	up := gorilla.Upgrader{EnableCompression: true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		offered = r.Header.Get("Sec-WebSocket-Extensions")
		mu.Unlock()
		gorillaEcho(up, w, r)
	}))
	t.Cleanup(srv.Close)
	rec := newRecorder()
	c := newClient(t, handler.Inline(rec), client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}), client.WithCompression(shared))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !strings.HasPrefix(offered, "permessage-deflate") {
		t.Errorf("offered %q", offered)
	}
	mu.Unlock()
	before := c.Stats().Traffic
	sizes := []int{0, 1, 255, 256, 1000, 65536, 1 << 20}
	total := 0
	for i, n := range sizes {
		if err := cn.Send(&codec.Packet{Type: websocket.TypeText, Body: text(n, uint32(i+9))}); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	got := rec.wait(t, len(sizes))
	for i, n := range sizes {
		if !bytes.Equal(got[i].Body, text(n, uint32(i+9))) || got[i].Type != websocket.TypeText {
			t.Fatalf("echo %d: type %#x, %d bytes of %d", i, got[i].Type, len(got[i].Body), n)
		}
	}
	tr := c.Stats().Traffic.Sub(before)
	if tr.BytesOut > uint64(total)/2 || tr.BytesIn > uint64(total)/2 {
		t.Fatalf("%d bytes out, %d in, for %d of text: not compressed", tr.BytesOut, tr.BytesIn, total)
	}
	_ = cn.Close()
}

// rawWS is a WebSocket server of the test's own: it answers the upgrade
// with the extension line given (none if empty), records the offer, and
// hands the connection to serve.
func rawWS(t *testing.T, ext string, serve func(c net.Conn, br *bufio.Reader)) (addr string, offer func() string) {
	var mu sync.Mutex
	var offered string
	raw := newRawServer(t, func(r *rawServer, c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		mu.Lock()
		offered = req.Header.Get("Sec-WebSocket-Extensions")
		mu.Unlock()
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(h[:]) + "\r\n"
		if ext != "" {
			resp += "Sec-WebSocket-Extensions: " + ext + "\r\n"
		}
		if _, err := c.Write([]byte(resp + "\r\n")); err != nil {
			return
		}
		serve(c, br)
	})
	return raw.ln.Addr().String(), func() string {
		mu.Lock()
		defer mu.Unlock()
		return offered
	}
}

// readClientFrame reads one whole client frame, unmasked.
func readClientFrame(br *bufio.Reader) (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(br)
	if err != nil {
		return h, nil, err
	}
	if !h.Masked {
		return h, nil, errors.New("an unmasked client frame")
	}
	b := make([]byte, h.Length)
	if _, err := io.ReadFull(br, b); err != nil {
		return h, nil, err
	}
	ws.Cipher(b, h.Mask, 0)
	return h, b, nil
}

// writeFrame writes a final server frame.
func writeFrame(w io.Writer, op ws.OpCode, compressed bool, payload []byte) error {
	if err := ws.WriteHeader(w, ws.Header{Fin: true, Rsv: ws.Rsv(compressed, false, false), OpCode: op, Length: int64(len(payload))}); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// takeoverInflater inflates a peer's messages whatever its context
// takeover: each with the end of the earlier ones as its dictionary.
type takeoverInflater struct{ dict []byte }

func (f *takeoverInflater) inflate(payload []byte) ([]byte, error) {
	r := stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff})), f.dict)
	out, err := io.ReadAll(r)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	f.dict = append(f.dict, out...)
	if len(f.dict) > 32<<10 {
		f.dict = f.dict[len(f.dict)-32<<10:]
	}
	return out, err
}

// takeoverDeflater compresses messages as one stream (context takeover)
// with a window of the given size.
type takeoverDeflater struct {
	buf bytes.Buffer
	w   *flate.Writer
}

func newTakeoverDeflater(window int) *takeoverDeflater {
	d := &takeoverDeflater{}
	d.w, _ = flate.NewWriterWindow(&d.buf, window)
	return d
}

func (d *takeoverDeflater) deflate(b []byte) []byte {
	d.buf.Reset()
	_, _ = d.w.Write(b)
	_ = d.w.Flush()
	return bytes.Clone(bytes.TrimSuffix(d.buf.Bytes(), []byte{0, 0, 0xff, 0xff}))
}

// TestDeflateOddAnswers: a server that answers odd but valid parameters —
// a window it was not asked for (server_max_window_bits), small windows,
// quoted values, and context takeover both ways although a client without
// context takeover asked for none — and compresses its messages as one stream: the
// client follows the server's context (the repeated messages are a few
// bytes each), its own frames are compressed (RSV1, masked) and inflate
// on the server, and in context-takeover mode the client keeps its own
// context too.
func TestDeflateOddAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		z        websocket.Compression
		answer   string
		window   int  // the server compresses with this window
		takeover bool // the client is expected to keep its context
	}{
		{"shared client, server keeps context, window not asked for", shared, `permessage-deflate; client_max_window_bits=9; server_max_window_bits="10"`, 1 << 10, false},
		{"shared client, windows 8", shared, "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8", 1 << 8, false},
		{"takeover client, client window 10", websocket.Compression{Mode: websocket.CompressionContextTakeover}, "permessage-deflate; client_max_window_bits=10", 1 << 15, true},
		{"takeover client, server forbids the client's", websocket.Compression{Mode: websocket.CompressionContextTakeover, WindowBits: 15}, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12", 1 << 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := text(900, 77) // repeats fit in every window but 2^8, where the stream still shrinks
			if tc.window == 1<<8 {
				msg = bytes.Repeat(text(100, 77), 3)
			}
			const n = 6
			type result struct {
				sizes []int // the client's frames
				err   error
			}
			done := make(chan result, 1)
			addr, offer := rawWS(t, tc.answer, func(c net.Conn, br *bufio.Reader) {
				def := newTakeoverDeflater(tc.window)
				var res result
				defer func() { done <- res }()
				var serverSizes []int
				for range n {
					p := def.deflate(msg)
					serverSizes = append(serverSizes, len(p))
					if res.err = writeFrame(c, ws.OpText, true, p); res.err != nil {
						return
					}
				}
				if serverSizes[n-1] >= serverSizes[0]*2/3 {
					res.err = errors.New("the test's server does not keep its context")
					return
				}
				var inf takeoverInflater
				for i := range n {
					h, b, err := readClientFrame(br)
					if err != nil {
						res.err = err
						return
					}
					if !h.Rsv1() || h.OpCode != ws.OpText {
						res.err = errors.New("the client's frame is not a compressed text frame")
						return
					}
					out, err := inf.inflate(b)
					if err != nil || !bytes.Equal(out, msg) {
						res.err = errors.New("the client's message does not inflate to what was sent")
						return
					}
					_ = i
					res.sizes = append(res.sizes, len(b))
				}
			})
			opts := []client.Option{client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}), client.WithCloseTimeout(50 * time.Millisecond)}
			c := newClient(t, echoAll(), append(opts, client.WithCompression(tc.z))...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cn, err := c.Dial(ctx, "ws://"+addr+"/")
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			var res result
			select {
			case res = <-done:
			case <-ctx.Done():
				t.Fatal("the server did not get its echoes")
			}
			if res.err != nil {
				t.Fatalf("server: %v (the client: %v)", res.err, cn.Err())
			}
			if kept := res.sizes[n-1] < res.sizes[0]/2; kept != tc.takeover {
				t.Fatalf("the client's frames: %v bytes; context takeover expected: %v", res.sizes, tc.takeover)
			}
			if !strings.HasPrefix(offer(), "permessage-deflate") {
				t.Fatalf("offer %q", offer())
			}
		})
	}
}

// TestDeflateFragmented: a server that sends compressed messages in many
// frames (RSV1 on the first alone, a ping between two of them, frames of
// a few bytes to thousands) with context takeover, as one stream: the
// client inflates each message across its frames, answers the ping in the
// middle, and echoes every message whole, compressed and masked.
func TestDeflateFragmented(t *testing.T) {
	msgs := [][]byte{text(200<<10, 5), text(3000, 6), text(200<<10, 5), []byte("short: compressed by the server")}
	type result struct {
		pong bool
		err  error
	}
	done := make(chan result, 1)
	addr, _ := rawWS(t, "permessage-deflate; client_no_context_takeover", func(c net.Conn, br *bufio.Reader) {
		var res result
		defer func() { done <- res }()
		def := newTakeoverDeflater(1 << 15)
		for i, m := range msgs {
			p := def.deflate(m)
			size := 1 + i*997 // 1 byte per frame for the first message, then more
			for off := 0; off < len(p); off += size {
				end := min(off+size, len(p))
				op := ws.OpContinuation
				if off == 0 {
					op = ws.OpText
				}
				h := ws.Header{Fin: end == len(p), Rsv: ws.Rsv(off == 0, false, false), OpCode: op, Length: int64(end - off)}
				if res.err = ws.WriteHeader(c, h); res.err == nil {
					_, res.err = c.Write(p[off:end])
				}
				if res.err == nil && i == 1 && off == 0 {
					res.err = writeFrame(c, ws.OpPing, false, []byte("mid-message"))
				}
				if res.err != nil {
					return
				}
			}
		}
		for i := 0; i < len(msgs); {
			h, b, err := readClientFrame(br)
			if err != nil {
				res.err = err
				return
			}
			switch {
			case h.OpCode == ws.OpPong:
				res.pong = string(b) == "mid-message"
				continue
			case !h.Fin || h.OpCode != ws.OpText || h.Rsv1() != (len(msgs[i]) > 1000):
				// (The short one does not shrink: it goes as it is.)
				res.err = fmt.Errorf("echo %d: header %+v, want one text frame, compressed if long", i, h)
				return
			}
			var inf takeoverInflater // the client keeps no context: each inflates alone
			out, err := b, error(nil)
			if h.Rsv1() {
				out, err = inf.inflate(b)
			}
			if err != nil || !bytes.Equal(out, msgs[i]) {
				res.err = fmt.Errorf("echo %d: %v, %d bytes of %d", i, err, len(out), len(msgs[i]))
				return
			}
			i++
		}
	})
	c := newClient(t, echoAll(), client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}),
		client.WithCompression(websocket.Compression{Mode: websocket.CompressionContextTakeover, Threshold: -1}), client.WithCloseTimeout(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("server: %v (the client: %v)", res.err, cn.Err())
		}
		if !res.pong {
			t.Fatal("the ping between two fragments was not answered")
		}
	case <-ctx.Done():
		t.Fatalf("the server did not get its echoes (the client: %v)", cn.Err())
	}
}

// TestDeflateBadAnswer: an answer the client cannot honour fails the
// handshake with an error that says why.
func TestDeflateBadAnswer(t *testing.T) {
	for ext, why := range map[string]string{
		"permessage-deflate; server_max_window_bits=16":                              `server_max_window_bits: window bits "16"`,
		"permessage-deflate; client_max_window_bits":                                 "client_max_window_bits without a value",
		"permessage-deflate; x=1":                                                    `unknown parameter "x"`,
		"permessage-deflate; client_no_context_takeover, permessage-deflate":         "answered twice",
		"x-webkit-deflate-frame":                                                     `"x-webkit-deflate-frame" was not offered`,
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover": "given twice",
	} {
		addr, _ := rawWS(t, ext, func(c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
		c := newClient(t, nil, client.WithCompression(shared))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Dial(ctx, "ws://"+addr+"/")
		cancel()
		if !errors.Is(err, codec.ErrHandshake) || !errors.Is(err, client.ErrConnLost) || !strings.Contains(err.Error(), why) {
			t.Errorf("answer %q: %v, want an error saying %q", ext, err, why)
		}
	}
	// Compression off (the default): a server that answers
	// permessage-deflate anyway.
	addr, offer := rawWS(t, "permessage-deflate", func(c net.Conn, br *bufio.Reader) { _, _ = io.Copy(io.Discard, br) })
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Dial(ctx, "ws://"+addr+"/"); !errors.Is(err, codec.ErrHandshake) || !strings.Contains(err.Error(), "not offered") {
		t.Errorf("compression off: %v", err)
	}
	if offer() != "" {
		t.Errorf("compression off: offered %q", offer())
	}
}

// TestDeflateBomb: a server that sends a message inflating far past
// MaxMessage gets a 1009 close (masked) as soon as the client has
// inflated MaxMessage bytes, and the connection's error says so.
func TestDeflateBomb(t *testing.T) {
	// 64 MiB of zeros, made before the clock runs: 64 KiB compressed.
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range 64 {
		_, _ = w.Write(zeros)
	}
	_ = w.Flush()
	bomb := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	closed := make(chan []byte, 1)
	addr, _ := rawWS(t, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", func(c net.Conn, br *bufio.Reader) {
		if err := writeFrame(c, ws.OpBinary, true, bomb); err != nil {
			return
		}
		for {
			h, p, err := readClientFrame(br)
			if err != nil {
				closed <- nil
				return
			}
			if h.OpCode == ws.OpClose {
				closed <- p
				return
			}
		}
	})
	rec := newRecorder()
	c := newClient(t, rec, client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}, MaxMessage: 1 << 20}), client.WithCompression(shared))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cn, err := c.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-closed:
		if len(p) < 2 || ws.StatusCode(uint16(p[0])<<8|uint16(p[1])) != ws.StatusMessageTooBig {
			t.Fatalf("the client's close: %q", p)
		}
	case <-ctx.Done():
		t.Fatal("no close from the client")
	}
	select {
	case <-cn.Done():
	case <-ctx.Done():
		t.Fatal("the connection did not close")
	}
	if err := cn.Err(); !errors.Is(err, codec.ErrTooBig) || !errors.Is(err, client.ErrConnLost) || !strings.Contains(err.Error(), "inflates past 1048576 bytes") {
		t.Fatalf("Err: %v", err)
	}
	if len(rec.packets()) != 0 {
		t.Fatal("a packet was delivered")
	}
	// What the whole process allocated meanwhile: the client inflated
	// 1 MiB (its message buffer growing to it), never the 64 MiB.
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Fatalf("%d bytes allocated while the client took the bomb", n)
	}
}
