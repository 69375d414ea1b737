package websocket_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// dialGorilla connects a gorilla/websocket client. A non-nil error is
// returned with the handshake response so that refusals can be checked.
func dialGorilla(t testing.TB, d *gorilla.Dialer, url string, h http.Header) (*gorilla.Conn, *http.Response, error) {
	t.Helper()
	if d == nil {
		d = &gorilla.Dialer{}
	}
	d.HandshakeTimeout = ioTimeout
	c, resp, err := d.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
	}
	return c, resp, err
}

func mustDial(t testing.TB, d *gorilla.Dialer, url string, h http.Header) *gorilla.Conn {
	t.Helper()
	c, resp, err := dialGorilla(t, d, url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	return c
}

// roundTrip writes a message and requires that the next message read is want.
func roundTrip(t testing.TB, c *gorilla.Conn, typ int, msg []byte, wantType int, want []byte) {
	t.Helper()
	if err := c.WriteMessage(typ, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if gotType != wantType || !bytes.Equal(got, want) {
		t.Fatalf("got type %d, %d bytes %.40q; want type %d, %d bytes %.40q", gotType, len(got), got, wantType, len(want), want)
	}
}

var echoSizes = []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20}

// TestGorillaEchoRaw echoes text and binary messages of every length
// encoding under the Raw mapping, each sent as a single frame (a large
// write buffer) and fragmented by gorilla (a small one), and by a client
// that offers permessage-deflate, which the server must decline.
func TestGorillaEchoRaw(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodecs(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))
	for _, d := range []struct {
		name     string
		buf      int
		compress bool
	}{{"single frame", 2 << 20, false}, {"fragmented by gorilla", 1000, false}, {"compression offered and declined", 0, true}} {
		t.Run(d.name, func(t *testing.T) {
			c, resp, err := dialGorilla(t, &gorilla.Dialer{WriteBufferSize: d.buf, EnableCompression: d.compress}, "ws://"+addr+"/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			if ext := resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) != 0 {
				t.Fatalf("server accepted extensions %v it does not implement", ext)
			}
			for _, n := range echoSizes {
				roundTrip(t, c, gorilla.TextMessage, textOf(n), gorilla.TextMessage, textOf(n))
				roundTrip(t, c, gorilla.BinaryMessage, binaryOf(n), gorilla.BinaryMessage, binaryOf(n))
			}
		})
	}
}

// TestGorillaTypePrefix checks the default mapping: a binary message's first
// byte is the packet type, a text message is a packet of type TypeText, and
// replies are encoded the same way.
func TestGorillaTypePrefix(t *testing.T) {
	type seen struct {
		typ  codec.Type
		body string
	}
	var mu sync.Mutex
	var got []seen
	record := func(p *codec.Packet) {
		mu.Lock()
		got = append(got, seen{p.Type, string(p.Body)})
		mu.Unlock()
	}
	mux := handler.NewMux()
	mux.Handle(7, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		record(p)
		_ = ch.Send(&codec.Packet{Type: 9, Body: bytes.ToUpper(p.Body)})
	}))
	mux.Handle(websocket.TypeText, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		record(p)
		_ = ch.Send(&codec.Packet{Type: websocket.TypeText, Body: append([]byte("text:"), p.Body...)})
	}))
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		record(p)
		_ = ch.Send(p)
	}))
	_, addr := startServer(t, mux) // default codecs: TypePrefix
	c := mustDial(t, nil, "ws://"+addr+"/", nil)

	roundTrip(t, c, gorilla.BinaryMessage, []byte("\x07hi"), gorilla.BinaryMessage, []byte("\x09HI"))
	roundTrip(t, c, gorilla.TextMessage, []byte("hello"), gorilla.TextMessage, []byte("text:hello"))
	roundTrip(t, c, gorilla.BinaryMessage, []byte{200}, gorilla.BinaryMessage, []byte{200})
	big := append([]byte{0xFD}, binaryOf(70000)...) // 0xFE and 0xFF are requests and replies
	roundTrip(t, c, gorilla.BinaryMessage, big, gorilla.BinaryMessage, big)

	mu.Lock()
	want := []seen{{7, "hi"}, {websocket.TypeText, "hello"}, {200, ""}, {0xFD, string(big[1:])}}
	if !slices.Equal(got, want) {
		t.Errorf("handlers saw %.80v, want %.80v", got, want)
	}
	mu.Unlock()

	// An empty binary message carries no type: 1003.
	if err := c.WriteMessage(gorilla.BinaryMessage, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	if !gorilla.IsCloseError(err, gorilla.CloseUnsupportedData) {
		t.Fatalf("empty binary message: got %v, want close 1003", err)
	}
}

// recordingConn records what a client writes, so that a test can check the
// frames gorilla really sent.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out []byte
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, b...)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// clientFrames parses the masked frames a client wrote after its request.
func clientFrames(t testing.TB, out []byte) []sframe {
	t.Helper()
	i := bytes.Index(out, []byte("\r\n\r\n"))
	if i < 0 {
		t.Fatal("no request in the client's bytes")
	}
	r := bytes.NewReader(out[i+4:])
	var fs []sframe
	for r.Len() > 0 {
		var h [2]byte
		_, _ = r.Read(h[:])
		f := sframe{fin: h[0]&0x80 != 0, op: h[0] & 0x0F}
		n := int(h[1] & 0x7F)
		switch n {
		case 126:
			var e [2]byte
			_, _ = r.Read(e[:])
			n = int(e[0])<<8 | int(e[1])
		case 127:
			var e [8]byte
			_, _ = r.Read(e[:])
			n = int(e[4])<<24 | int(e[5])<<16 | int(e[6])<<8 | int(e[7])
		}
		var mask [4]byte
		_, _ = r.Read(mask[:])
		f.payload = make([]byte, n)
		_, _ = r.Read(f.payload)
		for j := range f.payload {
			f.payload[j] ^= mask[j&3]
		}
		fs = append(fs, f)
	}
	return fs
}

// TestGorillaFragmentedWithPing writes a text message in fragments with a
// ping between two of them: the pong comes back with the ping's payload and
// the message arrives whole.
func TestGorillaFragmentedWithPing(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodecs(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))
	var rec *recordingConn
	d := &gorilla.Dialer{
		WriteBufferSize: 256,
		NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			rec = &recordingConn{Conn: c}
			return rec, nil
		},
	}
	c := mustDial(t, d, "ws://"+addr+"/", nil)
	pongs := make(chan string, 4)
	c.SetPongHandler(func(s string) error { pongs <- s; return nil })

	msg := textOf(3000) // split by gorilla into fragments, code points cut
	w, err := c.NextWriter(gorilla.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(msg[:1500]); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteControl(gorilla.PingMessage, []byte("between"), time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(msg[1500:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	typ, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if typ != gorilla.TextMessage || !bytes.Equal(got, msg) {
		t.Fatalf("got type %d with %d bytes, want the %d-byte text", typ, len(got), len(msg))
	}
	select {
	case p := <-pongs:
		if p != "between" {
			t.Fatalf("pong payload %q", p)
		}
	default:
		t.Fatal("no pong before the echo")
	}

	// Check that the ping really went out between fragments.
	rec.mu.Lock()
	fs := clientFrames(t, rec.out)
	rec.mu.Unlock()
	var ops []string
	pingAt, data := -1, 0
	for i, f := range fs {
		switch f.op {
		case opPing:
			pingAt = i
			ops = append(ops, "ping")
		default:
			data++
			ops = append(ops, strings.Repeat("+", len(f.payload)/100))
		}
	}
	if data < 3 || pingAt <= 0 || pingAt >= len(fs)-1 || fs[0].fin {
		t.Fatalf("gorilla did not interleave the ping between fragments: %v", ops)
	}
}

// TestGorillaPingPong checks that pings are answered with their payload.
func TestGorillaPingPong(t *testing.T) {
	_, addr := startServer(t, echoMux())
	c := mustDial(t, nil, "ws://"+addr+"/", nil)
	pongs := make(chan string, 4)
	c.SetPongHandler(func(s string) error { pongs <- s; return nil })
	for _, payload := range []string{"", "ping-1", strings.Repeat("z", 125)} {
		if err := c.WriteControl(gorilla.PingMessage, []byte(payload), time.Now().Add(ioTimeout)); err != nil {
			t.Fatal(err)
		}
		// The pong is handled while reading the next message.
		roundTrip(t, c, gorilla.TextMessage, []byte("after"), gorilla.TextMessage, []byte("after"))
		select {
		case p := <-pongs:
			if p != payload {
				t.Fatalf("pong %q, want %q", p, payload)
			}
		default:
			t.Fatalf("no pong for ping %q", payload)
		}
	}
}

// TestGorillaClose checks the close handshake: the server echoes the
// client's close code and closes the TCP connection.
func TestGorillaClose(t *testing.T) {
	_, addr := startServer(t, echoMux())
	for _, code := range []int{gorilla.CloseNormalClosure, gorilla.CloseGoingAway, 4321} {
		c := mustDial(t, nil, "ws://"+addr+"/", nil)
		if err := c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(code, "bye"), time.Now().Add(ioTimeout)); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.ReadMessage()
		var ce *gorilla.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("got %v, want close %d echoed", err, code)
		}
		nc := c.UnderlyingConn()
		_ = nc.SetReadDeadline(time.Now().Add(ioTimeout))
		if n, err := nc.Read(make([]byte, 16)); n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("after the close handshake: read %d bytes, %v; want EOF", n, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSubprotocols checks that the server selects the first subprotocol the
// client offers that it speaks, and none when none match.
func TestSubprotocols(t *testing.T) {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(&codec.Packet{Type: websocket.TypeText, Body: []byte("proto=" + websocket.RequestOf(ch).Protocol)})
	}))
	_, addr := startServer(t, mux, tio.WithCodecs(websocket.New(websocket.Config{
		Subprotocols: []string{"v2.tio", "v1.tio"},
		KeepRequest:  true,
	})))
	cases := []struct {
		offer []string
		want  string
	}{
		{[]string{"v1.tio", "v2.tio"}, "v1.tio"},
		{[]string{"mqtt", "v2.tio"}, "v2.tio"},
		{[]string{"mqtt", "stomp"}, ""},
		{nil, ""},
	}
	for _, tc := range cases {
		d := &gorilla.Dialer{Subprotocols: tc.offer}
		c, resp, err := dialGorilla(t, d, "ws://"+addr+"/", nil)
		if err != nil {
			t.Fatalf("offer %v: %v", tc.offer, err)
		}
		if got := c.Subprotocol(); got != tc.want {
			t.Errorf("offer %v: selected %q, want %q", tc.offer, got, tc.want)
		}
		if h := resp.Header.Values("Sec-WebSocket-Protocol"); tc.want == "" && len(h) != 0 {
			t.Errorf("offer %v: Sec-WebSocket-Protocol %v sent though none matched", tc.offer, h)
		}
		roundTrip(t, c, gorilla.TextMessage, []byte("?"), gorilla.TextMessage, []byte("proto="+tc.want))
	}
}

type userKey struct{}

// TestHandshakeHook checks Config.OnHandshake: it sees the request's path,
// query and headers, can store values on the connection, and can refuse
// the upgrade with a status of its choice (403 for a plain error).
func TestHandshakeHook(t *testing.T) {
	seen := make(chan websocket.Request, 8)
	cfg := websocket.Config{
		OnHandshake: func(c codec.Conn, r *websocket.Request) error {
			seen <- *r
			switch r.Query().Get("token") {
			case "abc":
				c.SetValue(userKey{}, "user-"+strings.TrimPrefix(r.Path, "/room/"))
				return nil
			case "":
				return websocket.Reject(http.StatusUnauthorized, "no token")
			case "slow":
				return websocket.Reject(http.StatusTooManyRequests, "slow down")
			}
			return errors.New("bad token")
		},
	}
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		u, _ := ch.Value(userKey{}).(string)
		_ = ch.Send(&codec.Packet{Type: websocket.TypeText, Body: []byte(u)})
	}))
	_, addr := startServer(t, mux, tio.WithCodecs(websocket.New(cfg)))

	h := http.Header{"X-Token": {"secret"}}
	c := mustDial(t, nil, "ws://"+addr+"/room/42?token=abc&x=1", h)
	r := <-seen
	if r.Path != "/room/42" || r.RawQuery != "token=abc&x=1" || r.URI != "/room/42?token=abc&x=1" {
		t.Errorf("request URI %q, path %q, query %q", r.URI, r.Path, r.RawQuery)
	}
	if r.Header().Get("X-Token") != "secret" || r.Host != addr {
		t.Errorf("request host %q, headers %v", r.Host, r.Header())
	}
	for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version"} {
		if v := r.Header().Values(k); len(v) != 0 {
			t.Errorf("header %s %v passed to the hook", k, v)
		}
	}
	roundTrip(t, c, gorilla.TextMessage, []byte("who"), gorilla.TextMessage, []byte("user-42"))

	for _, tc := range []struct {
		query  string
		status int
	}{{"", 401}, {"?token=slow", 429}, {"?token=wrong", 403}} {
		_, resp, err := dialGorilla(t, nil, "ws://"+addr+"/room/1"+tc.query, nil)
		select {
		case <-seen:
		case <-time.After(ioTimeout):
			t.Fatalf("query %q: hook not called", tc.query)
		}
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			st := 0
			if resp != nil {
				st = resp.StatusCode
			}
			t.Errorf("query %q: err %v, status %d; want %d", tc.query, err, st, tc.status)
		}
	}
}

// TestOrigin checks the default same-origin rule, an Origins list and a
// CheckOrigin override.
func TestOrigin(t *testing.T) {
	_, addr := startServer(t, echoMux())
	dial := func(addr, origin string) int {
		var h http.Header
		if origin != "" {
			h = http.Header{"Origin": {origin}}
		}
		_, resp, err := dialGorilla(t, nil, "ws://"+addr+"/", h)
		if err == nil {
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("origin %q: %v", origin, err)
		}
		return resp.StatusCode
	}
	type origin struct {
		origin string
		want   int
	}
	check := func(rule, addr string, cases []origin) {
		t.Helper()
		for _, tc := range cases {
			if got := dial(addr, tc.origin); got != tc.want {
				t.Errorf("%s, origin %q: status %d, want %d", rule, tc.origin, got, tc.want)
			}
		}
	}
	check("default rule", addr, []origin{
		{"", 101},
		{"http://" + addr, 101},
		{"http://localhost:1", 403},
		{"http://evil.example", 403},
		{"null", 403},
	})

	_, addr3 := startServer(t, echoMux(), tio.WithCodecs(websocket.New(websocket.Config{
		Origins: []string{"https://app.example", "http://localhost:1"},
	})))
	check("Origins", addr3, []origin{
		{"", 101},
		{"http://" + addr3, 101},
		{"https://APP.example", 101},
		{"http://localhost:1", 101},
		{"https://app.example.evil", 403},
		{"http://app.example", 403},
		{"null", 403},
	})
	_, addr4 := startServer(t, echoMux(), tio.WithCodecs(websocket.New(websocket.Config{Origins: []string{"*"}})))
	check("Origins *", addr4, []origin{{"http://evil.example", 101}, {"", 101}})

	_, addr2 := startServer(t, echoMux(), tio.WithCodecs(websocket.New(websocket.Config{
		CheckOrigin: func(r *websocket.Request) bool { return r.Origin == "https://app.example" },
	})))
	check("CheckOrigin", addr2, []origin{
		{"https://app.example", 101},
		{"http://evil.example", 403},
		{"http://" + addr2, 403},
		{"", 403},
	})
}

// TestKeepRequest checks that RequestOf returns the upgrade request only when
// the codec keeps it.
func TestKeepRequest(t *testing.T) {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		r := websocket.RequestOf(ch)
		s := "nil"
		if r != nil {
			s = r.Path + "|" + r.Query().Get("q") + "|" + r.HeaderValue("X-App") + "|" + r.Host
		}
		_ = ch.Send(&codec.Packet{Type: websocket.TypeText, Body: []byte(s)})
	}))
	_, keep := startServer(t, mux, tio.WithCodecs(websocket.New(websocket.Config{KeepRequest: true})))
	_, drop := startServer(t, mux)
	h := http.Header{"X-App": {"demo"}}

	c := mustDial(t, nil, "ws://"+keep+"/kept?q=1", h)
	roundTrip(t, c, gorilla.TextMessage, []byte("?"), gorilla.TextMessage, []byte("/kept|1|demo|"+keep))
	c = mustDial(t, nil, "ws://"+drop+"/kept?q=1", h)
	roundTrip(t, c, gorilla.TextMessage, []byte("?"), gorilla.TextMessage, []byte("nil"))
}
