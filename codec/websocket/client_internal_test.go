package websocket

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// opened returns a client decoder that has written its request, the
// connection it wrote to, and the answer's Sec-WebSocket-Accept.
func opened(t *testing.T, cfg Config, host, target string, h http.Header, protocols []string) (*clientDecoder, *codectest.Conn, string) {
	t.Helper()
	cfg.Client = true
	cd := New(cfg)
	req, err := cd.NewClientRequest(host, target, h, protocols)
	if err != nil {
		t.Fatal(err)
	}
	d := cd.NewClientDecoder(req).(*clientDecoder)
	c := &codectest.Conn{}
	if err := d.Open(c); err != nil {
		t.Fatal(err)
	}
	return d, c, acceptOf(string(d.key[:]))
}

func acceptOf(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func answer(accept string, extra ...string) string {
	s := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
	for _, e := range extra {
		s += e + "\r\n"
	}
	return s + "\r\n"
}

// serverFrame is an unmasked frame, as a server sends it.
func serverFrame(op ws.OpCode, payload []byte) []byte { return AppendFrame(nil, op, payload) }

// unmaskFrame checks that b holds one masked frame and returns its opcode
// and payload.
func unmaskFrame(t *testing.T, b []byte) (ws.OpCode, []byte, []byte) {
	t.Helper()
	h, err := ws.ReadHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("read header of %x: %v", b, err)
	}
	if !h.Masked {
		t.Fatalf("the client's frame %x is not masked", b)
	}
	payload := append([]byte(nil), b[len(b)-int(h.Length):]...)
	ws.Cipher(payload, h.Mask, 0)
	return h.OpCode, payload, h.Mask[:]
}

func TestClientRequest(t *testing.T) {
	h := http.Header{"Origin": {"http://app.example"}, "Authorization": {"Bearer x"}}
	d, c, _ := opened(t, Config{}, "example.com:8080", "/chat?room=1", h, []string{"chat.v2", "chat.v1"})
	req := string(c.Written)
	for _, want := range []string{
		"GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\n",
		"\r\nUpgrade: websocket\r\n", "\r\nConnection: Upgrade\r\n", "\r\nSec-WebSocket-Version: 13\r\n",
		"\r\nSec-WebSocket-Key: " + string(d.key[:]) + "\r\n",
		"\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n",
		"\r\nOrigin: http://app.example\r\n", "\r\nAuthorization: Bearer x\r\n",
	} {
		if !strings.Contains(req, want) {
			t.Errorf("the request lacks %q:\n%s", want, req)
		}
	}
	if !strings.HasSuffix(req, "\r\n\r\n") || strings.Count(req, "\r\n\r\n") != 1 {
		t.Errorf("the request does not end once with a blank line:\n%q", req)
	}
	if k, err := base64.StdEncoding.DecodeString(string(d.key[:])); err != nil || len(k) != 16 {
		t.Errorf("key %q: %v", d.key, err)
	}
	if c.Encoder == nil {
		t.Error("Open gave the connection no encoder")
	}
	d2, _, _ := opened(t, Config{}, "example.com:8080", "/", nil, nil)
	if d2.key == d.key {
		t.Error("two connections sent the same key")
	}
	cd := New(Config{Client: true})
	for _, bad := range []struct {
		host, target string
		h            http.Header
		protocols    []string
	}{
		{"", "/", nil, nil},
		{"a b", "/", nil, nil},
		{"h", "/x y", nil, nil},
		{"h", "x", nil, nil},
		{"h", "/", http.Header{"Sec-WebSocket-Key": {"x"}}, nil},
		{"h", "/", http.Header{"Host": {"x"}}, nil},
		{"h", "/", http.Header{"X": {"a\r\nInjected: 1"}}, nil},
		{"h", "/", http.Header{"Bad Name": {"x"}}, nil},
		{"h", "/", nil, []string{"a,b"}},
	} {
		if _, err := cd.NewClientRequest(bad.host, bad.target, bad.h, bad.protocols); !errors.Is(err, codec.ErrHandshake) {
			t.Errorf("NewClientRequest(%q, %q, %v, %v): %v", bad.host, bad.target, bad.h, bad.protocols, err)
		}
	}
}

// TestClientAnswer: a good answer is consumed exactly, frames that came
// with it are decoded next, the subprotocol is recorded.
func TestClientAnswer(t *testing.T) {
	d, c, accept := opened(t, Config{}, "h", "/", nil, []string{"a", "b"})
	ans := answer(accept, "Sec-WebSocket-Protocol: b")
	in := append([]byte(ans), serverFrame(ws.OpText, []byte("hi"))...)
	in = append(in, serverFrame(ws.OpBinary, []byte{7, 'x'})...)
	var p codec.Packet
	n, ok, err := d.Decode(c, in, &p)
	if err != nil || ok || n != len(ans) || c.Readies != 1 {
		t.Fatalf("Decode of the answer = %d %v %v, readies %d", n, ok, err, c.Readies)
	}
	if ProtocolOf(c) != "b" {
		t.Fatalf("ProtocolOf = %q", ProtocolOf(c))
	}
	in = in[n:]
	n, ok, err = d.Decode(c, in, &p)
	if err != nil || !ok || p.Type != TypeText || string(p.Body) != "hi" {
		t.Fatalf("first frame: %d %v %v %+v", n, ok, err, p)
	}
	in = in[n:]
	if _, ok, err = d.Decode(c, in, &p); err != nil || !ok || p.Type != 7 || string(p.Body) != "x" {
		t.Fatalf("second frame: %v %v %+v", ok, err, p)
	}
	// However the bytes are split, the result is the same.
	all := append([]byte(answer(accept)), serverFrame(ws.OpText, []byte("hello"))...)
	all = append(all, serverFrame(ws.OpPong, []byte("p"))...) // (a ping's answer has a random mask)
	newDec := func() codec.Decoder {
		nd := New(Config{Client: true}).NewClientDecoder(d.req).(*clientDecoder)
		nd.key = d.key
		return nd
	}
	r := codectest.Splits(t, newDec, all, []byte{1, 3, 2, 7}, nil)
	if len(r.Packets) != 1 || r.Packets[0].Body != "hello" || r.Err != nil || r.Readies != 1 {
		t.Fatalf("split decoding: %v", r)
	}
}

func TestClientAnswerRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   func(accept string) string
		sentinel error
	}{
		{"forbidden", func(string) string { return "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n" }, codec.ErrRefused},
		{"wrong accept", func(string) string { return answer(acceptOf("other")) }, codec.ErrHandshake},
		{"no accept", func(string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		}, codec.ErrHandshake},
		{"two accepts", func(a string) string { return answer(a, "Sec-WebSocket-Accept: "+a) }, codec.ErrHandshake},
		{"no upgrade", func(a string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + a + "\r\n\r\n"
		}, codec.ErrHandshake},
		{"no connection", func(a string) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + a + "\r\n\r\n"
		}, codec.ErrHandshake},
		{"extension not offered", func(a string) string { return answer(a, "Sec-WebSocket-Extensions: permessage-deflate") }, codec.ErrHandshake},
		{"subprotocol not offered", func(a string) string { return answer(a, "Sec-WebSocket-Protocol: c") }, codec.ErrHandshake},
		{"HTTP/1.0", func(a string) string { return strings.Replace(answer(a), "HTTP/1.1", "HTTP/1.0", 1) }, codec.ErrHandshake},
		{"bad status line", func(a string) string { return strings.Replace(answer(a), "101 ", "1x1 ", 1) }, codec.ErrHandshake},
		{"bad header line", func(a string) string { return answer(a, "No colon here") }, codec.ErrHandshake},
		{"control byte", func(a string) string { return answer(a, "X: a\x00b") }, codec.ErrHandshake},
		{"too many fields", func(a string) string { return answer(a, strings.Repeat("X: y\r\n", 64)+"Z: z") }, codec.ErrTooBig},
		{"too long", func(a string) string { return "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("y", 9000) }, codec.ErrTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, c, accept := opened(t, Config{}, "h", "/", nil, []string{"a"})
			c.Written = nil
			var p codec.Packet
			_, _, err := d.Decode(c, []byte(tc.answer(accept)), &p)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("Decode: %v, want %v", err, tc.sentinel)
			}
			if c.Readies != 0 || len(c.Written) != 0 {
				t.Fatalf("readies %d, wrote %q", c.Readies, c.Written)
			}
			d.Farewell(c, codec.ErrGoingAway)
			if len(c.Written) != 0 {
				t.Fatalf("a farewell before the session wrote %q", c.Written)
			}
		})
	}
}

// TestClientFrames: the client role's frame rules and what it writes.
func TestClientFrames(t *testing.T) {
	up := func(t *testing.T) (*clientDecoder, *codectest.Conn) {
		d, c, accept := opened(t, Config{}, "h", "/", nil, nil)
		var p codec.Packet
		if _, _, err := d.Decode(c, []byte(answer(accept)), &p); err != nil {
			t.Fatal(err)
		}
		c.Written = nil
		return d, c
	}
	t.Run("masked server frame", func(t *testing.T) {
		d, c := up(t)
		var p codec.Packet
		masked := appendMaskedHeader(nil, ws.OpText, 2, [4]byte{1, 2, 3, 4})
		masked = append(masked, 'h'^1, 'i'^2)
		if _, _, err := d.Decode(c, masked, &p); !errors.Is(err, codec.ErrProtocol) {
			t.Fatalf("Decode: %v", err)
		}
		op, payload, _ := unmaskFrame(t, c.Written)
		if op != ws.OpClose || ws.StatusCode(uint16(payload[0])<<8|uint16(payload[1])) != ws.StatusProtocolError {
			t.Fatalf("answer %v %x", op, payload)
		}
	})
	t.Run("ping", func(t *testing.T) {
		d, c := up(t)
		var p codec.Packet
		if _, ok, err := d.Decode(c, serverFrame(ws.OpPing, []byte("are you there")), &p); ok || err != nil {
			t.Fatalf("Decode: %v %v", ok, err)
		}
		if op, payload, _ := unmaskFrame(t, c.Written); op != ws.OpPong || string(payload) != "are you there" {
			t.Fatalf("pong %v %q", op, payload)
		}
	})
	t.Run("server close", func(t *testing.T) {
		d, c := up(t)
		var p codec.Packet
		if _, _, err := d.Decode(c, serverFrame(ws.OpClose, []byte{0x03, 0xE9}), &p); !errors.Is(err, codec.ErrPeerClosed) {
			t.Fatalf("Decode: %v", err)
		}
		if op, payload, _ := unmaskFrame(t, c.Written); op != ws.OpClose || string(payload) != "\x03\xe9" {
			t.Fatalf("close answer %v %x", op, payload)
		}
	})
	t.Run("farewell", func(t *testing.T) {
		d, c := up(t)
		d.Farewell(c, nil)
		if op, payload, _ := unmaskFrame(t, c.Written); op != ws.OpClose || string(payload[:2]) != "\x03\xe8" {
			t.Fatalf("farewell %v %x", op, payload)
		}
		if !d.Linger() {
			t.Fatal("the client does not wait for the server's close")
		}
	})
	t.Run("encoder masks each frame afresh", func(t *testing.T) {
		_, c := up(t)
		seen := map[string]bool{}
		for i := range 50 {
			b, err := c.Encoder.Encode(nil, &codec.Packet{Type: 9, Body: []byte("payload")})
			if err != nil {
				t.Fatal(err)
			}
			op, payload, mask := unmaskFrame(t, b)
			if op != ws.OpBinary || string(payload) != "\x09payload" {
				t.Fatalf("frame %d: %v %q", i, op, payload)
			}
			seen[string(mask)] = true
		}
		if len(seen) < 45 {
			t.Fatalf("50 frames, %d masks", len(seen))
		}
		hb := New(Config{Client: true}).AppendHeartbeat(nil)
		if op, payload, _ := unmaskFrame(t, hb); op != ws.OpPing || len(payload) != 0 {
			t.Fatalf("heartbeat %v %x", op, payload)
		}
	})
}
