package websocket

import (
	"net/http"
	"strings"
	"testing"
	"unsafe"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// leanRequest is an upgrade request with the headers a browser sends.
const leanRequest = "GET /ws/42?token=abc HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
	"origin: http://example.com\r\nUser-Agent: test\r\nX-App: demo\r\n\r\n"

func upgraded(t *testing.T, cfg Config) (*decoder, *codectest.Conn) {
	t.Helper()
	d := New(cfg).NewDecoder().(*decoder)
	c := &codectest.Conn{}
	if n, _, err := d.Decode(c, []byte(leanRequest), &codec.Packet{}); err != nil || n != len(leanRequest) || d.state != stOpen {
		t.Fatalf("handshake: n %d, err %v, state %d", n, err, d.state)
	}
	return d, c
}

// TestRequestSeen checks what CheckOrigin, OnHandshake and RequestOf see:
// the whole request, headers included.
func TestRequestSeen(t *testing.T) {
	check := func(name string, r *Request) {
		t.Helper()
		if r == nil {
			t.Fatalf("%s: no request", name)
		}
		if r.Origin != "http://example.com" || r.Host != "example.com" || r.Path != "/ws/42" || r.RawQuery != "token=abc" || r.URI != "/ws/42?token=abc" {
			t.Errorf("%s: %+v", name, *r)
		}
		h := r.Header()
		if h.Get("X-App") != "demo" || h.Get("Origin") != r.Origin || r.HeaderValue("x-app") != "demo" || r.HeaderValue("ORIGIN") != r.Origin {
			t.Errorf("%s: headers %v", name, h)
		}
		for _, k := range []string{"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"} {
			if v, ok := h[http.CanonicalHeaderKey(k)]; ok || r.HeaderValue(k) != "" {
				t.Errorf("%s: header %s %v shown", name, k, v)
			}
		}
	}
	var seen *Request
	upgraded(t, Config{CheckOrigin: func(r *Request) bool { seen = r; return true }})
	check("CheckOrigin", seen)
	seen = nil
	upgraded(t, Config{OnHandshake: func(_ codec.Conn, r *Request) error { seen = r; return nil }})
	check("OnHandshake", seen)
	_, c := upgraded(t, Config{KeepRequest: true})
	check("RequestOf", RequestOf(c))
	if _, c := upgraded(t, Config{}); RequestOf(c) != nil {
		t.Error("request kept without KeepRequest")
	}
}

// TestWholeFrameNoAssembly checks that a whole unfragmented message costs no
// allocation and no assembly state, and that a fragmented one does.
func TestWholeFrameNoAssembly(t *testing.T) {
	d, c := upgraded(t, Config{})
	whole := mframe(0x81, [4]byte{1, 2, 3, 4}, []byte("hello"))
	buf := make([]byte, len(whole))
	var p codec.Packet
	if n := testing.AllocsPerRun(100, func() {
		copy(buf, whole)
		if n, ok, err := d.Decode(c, buf, &p); !ok || err != nil || n != len(buf) {
			t.Fatalf("n %d, ok %v, err %v", n, ok, err)
		}
	}); n != 0 {
		t.Errorf("a whole frame allocates %v times", n)
	}
	if d.asm != nil {
		t.Fatal("assembly allocated for whole frames")
	}
	in := append(mframe(0x01, [4]byte{5, 6, 7, 8}, []byte("hel")), mframe(0x80, [4]byte{9, 9, 9, 9}, []byte("lo"))...)
	n, ok, err := d.Decode(c, in, &p)
	if ok || err != nil || d.asm == nil || d.asm.msgLen != 3 {
		t.Fatalf("first fragment: ok %v, err %v, asm %+v", ok, err, d.asm)
	}
	if _, ok, err := d.Decode(c, in[n:], &p); !ok || err != nil || string(p.Body) != "hello" {
		t.Fatalf("last fragment: ok %v, err %v, body %q", ok, err, p.Body)
	}
}

// TestUpgradeGarbage checks that an upgrade allocates only what gobwas/ws
// allocates itself (the accept key), with the default origin rule and with
// an Origins list, and that a CheckOrigin hook costs its Request (the
// Request and one copy of the request's bytes).
func TestUpgradeGarbage(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items: counts are checked without -race")
	}
	cross := strings.Replace(leanRequest, "origin: http://example.com", "origin: https://App.Example", 1)
	for _, tc := range []struct {
		name, req string
		cfg       Config
		max       float64
	}{
		{"same origin", leanRequest, Config{}, 1},
		{"Origins", cross, Config{Origins: []string{"https://other.example", "HTTPS://app.example"}}, 1},
		{"Origins *", cross, Config{Origins: []string{"*"}}, 1},
		{"CheckOrigin", leanRequest, Config{CheckOrigin: func(*Request) bool { return true }}, 3},
	} {
		cd := New(tc.cfg)
		req := []byte(tc.req)
		var p codec.Packet
		c := &codectest.Conn{}
		n := testing.AllocsPerRun(200, func() {
			c.Written = c.Written[:0]
			d := decoder{cd: cd}
			if n, _, err := d.Decode(c, req, &p); err != nil || n != len(req) || d.state != stOpen {
				t.Fatalf("%s: n %d, err %v", tc.name, n, err)
			}
		})
		if n > tc.max {
			t.Errorf("%s: an upgrade allocates %v times, want at most %v", tc.name, n, tc.max)
		}
		t.Logf("%s: %v allocations per upgrade", tc.name, n)
	}
}

// Every idle WebSocket connection holds a decoder: it must stay within the
// 24-byte size class.
func TestDecoderSize(t *testing.T) {
	if n := unsafe.Sizeof(decoder{}); n > 24 {
		t.Fatalf("decoder is %d bytes, want at most 24", n)
	}
}

// A connection with KeepRequest holds a Request and one copy of the
// request's bytes: the package documentation promises at most
// MaxHandshake + 128 bytes.
func TestRequestSize(t *testing.T) {
	if n := unsafe.Sizeof(Request{}); n > 128 {
		t.Fatalf("Request is %d bytes, want at most 128", n)
	}
}
