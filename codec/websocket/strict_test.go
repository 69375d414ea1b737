package websocket_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
)

// Status lines of the answers, exactly as the server must write them.
const (
	st101 = "HTTP/1.1 101 Switching Protocols"
	st400 = "HTTP/1.1 400 Bad Request"
	st403 = "HTTP/1.1 403 Forbidden"
	st421 = "HTTP/1.1 421 Misdirected Request"
	st431 = "HTTP/1.1 431 Request Header Fields Too Large"
	st500 = "HTTP/1.1 500 Internal Server Error"
	st505 = "HTTP/1.1 505 HTTP Version Not Supported"
)

// request builds an upgrade request from a request line and header lines;
// the valid headers of an upgrade (Host, Upgrade, Connection, key,
// version) come first unless the lines replace them (see without).
func request(line string, headers ...string) string {
	return line + "\r\n" + strings.Join(append(upgradeHeaders(), headers...), "") + "\r\n"
}

func upgradeHeaders() []string {
	return []string{"Host: 127.0.0.1\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
		"Sec-WebSocket-Key: " + testKey + "\r\n", "Sec-WebSocket-Version: 13\r\n"}
}

// without builds a request whose upgrade headers leave out the one that
// starts with drop, followed by the given header lines.
func without(drop string, headers ...string) string {
	var hs []string
	for _, h := range upgradeHeaders() {
		if !strings.HasPrefix(h, drop) {
			hs = append(hs, h)
		}
	}
	return "GET / HTTP/1.1\r\n" + strings.Join(append(hs, headers...), "") + "\r\n"
}

// manyHeaders returns n header lines with distinct names.
func manyHeaders(n int) []string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("X-H%d: v\r\n", i)
	}
	return hs
}

type strictCase struct {
	name   string
	req    string // the request, and whatever the client sends right after it
	status string // the exact status line of the answer
}

// strictCases are requests that a strict reading of HTTP/1.1 and RFC 6455
// refuses, and some near them that it accepts, for a server with the
// default configuration.
func strictCases() []strictCase {
	const get = "GET / HTTP/1.1"
	return []strictCase{
		{"valid", request(get), st101},
		{"Content-Length: 0", request(get, "Content-Length: 0\r\n"), st101},
		{"HTAB and obs-text in a value", request(get, "X-A: a\tb caf\xc3\xa9\r\n"), st101},
		{"Host with a port", without("Host:", "Host: 127.0.0.1:8080\r\n"), st101},
		{"Host as an IPv6 literal", without("Host:", "Host: [::1]:8080\r\n"), st101},
		{"empty Host", without("Host:", "Host:\r\n"), st101},
		{"absolute-form target", request("GET http://127.0.0.1/ws?x=1 HTTP/1.1"), st101},
		{"64 header fields", request(get, manyHeaders(64-5)...), st101},
		{"Chrome's request", "GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: Upgrade\r\nPragma: no-cache\r\n" +
			"Cache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
			"Upgrade: websocket\r\nOrigin: http://127.0.0.1:8080\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
			"Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\nCookie: session=abc%3D; theme=dark\r\nSec-WebSocket-Key: " + testKey + "\r\n" +
			"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n", st101},
		{"Firefox's request", "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n" +
			"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nSec-WebSocket-Version: 13\r\n" +
			"Origin: http://127.0.0.1:8080\r\nSec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Key: " + testKey + "\r\n" +
			"DNT: 1\r\nSec-GPC: 1\r\nConnection: keep-alive, Upgrade\r\nSec-Fetch-Dest: empty\r\nSec-Fetch-Mode: websocket\r\n" +
			"Sec-Fetch-Site: same-origin\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\n\r\n", st101},

		// A body: a proxy reads these bytes as the request's, not as frames.
		{"Content-Length: 5 with a body", request(get, "Content-Length: 5\r\n") + "hello", st400},
		{"Content-Length not a number", request(get, "Content-Length: x\r\n"), st400},
		{"empty Content-Length", request(get, "Content-Length:\r\n"), st400},
		{"Transfer-Encoding: chunked", request(get, "Transfer-Encoding: chunked\r\n") + "0\r\n\r\n", st400},
		{"Transfer-Encoding: identity", request(get, "Transfer-Encoding: identity\r\n"), st400},

		// Headers that must come once.
		{"two Host headers", request(get, "Host: evil.example\r\n"), st400},
		{"two Host headers, other case", request(get, "hOST: 127.0.0.1\r\n"), st400},
		{"two Sec-WebSocket-Key headers", request(get, "Sec-WebSocket-Key: "+testKey+"\r\n"), st400},
		{"two Origin headers", request(get, "Origin: http://127.0.0.1\r\n", "Origin: http://127.0.0.1\r\n"), st400},

		// The key: 16 bytes in base64.
		{"key of 24 characters, not base64", without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n"), st400},
		{"key decoding to 18 bytes", without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n"), st400},
		{"key of 28 characters (decoding past 18 bytes; found by FuzzDecode)", without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAsion\r\n"), st400},
		{"key of 2,000 characters", without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: "+strings.Repeat("A", 2000)+"\r\n"), st400},
		{"key with non-zero padding bits", without("Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n"), st400},

		// Header lines.
		{"space in a header name", request(get, "X Foo: bar\r\n"), st400},
		{"space before the colon", without("Host:", "Host : 127.0.0.1\r\n"), st400},
		{"NUL in a header name", request(get, "X-\x00: v\r\n"), st400},
		{"non-token header name", request(get, "X(a): v\r\n"), st400},
		{"non-ASCII header name", request(get, "X-\xc3\xa9: v\r\n"), st400},
		{"empty header name", request(get, ": v\r\n"), st400},
		{"folded header line", request(get, "X-A: a\r\n b\r\n"), st400},
		{"NUL in a value", request(get, "X-A: a\x00b\r\n"), st400},
		{"control byte in a value", request(get, "X-A: a\x01b\r\n"), st400},
		{"DEL in a value", request(get, "X-A: a\x7fb\r\n"), st400},
		{"bare CR in a value", request(get, "X-A: a\rb\r\n"), st400},
		{"bare LF in a value", request(get, "X-A: a\nHost: evil.example\r\n"), st400},
		{"Host with a path", without("Host:", "Host: 127.0.0.1/x\r\n"), st400},
		{"Host with user information", without("Host:", "Host: user@127.0.0.1\r\n"), st400},
		{"Host with a space", without("Host:", "Host: 127.0.0.1 evil.example\r\n"), st400},
		{"Host with a bad port", without("Host:", "Host: 127.0.0.1:http\r\n"), st400},
		{"Host, non-ASCII", without("Host:", "Host: \xe2\x84\xaa.example\r\n"), st400},
		{"Host with bad percent-encoding", without("Host:", "Host: x%2\r\n"), st400},
		{"65 header fields", request(get, manyHeaders(65-5)...), st431},

		// The request line.
		{"HTTP/1.9", request("GET / HTTP/1.9"), st505},
		{"HTTP/2.0", request("GET / HTTP/2.0"), st505},
		{"HTTP/0.9", request("GET / HTTP/0.9"), st505},
		{"HTTP/1.0", request("GET / HTTP/1.0"), st505},
		{"HTTP/1.10", request("GET / HTTP/1.10"), st400},
		{"lower-case http/1.1", request("GET / http/1.1"), st400},
		{"two spaces after the method", request("GET  / HTTP/1.1"), st400},
		{"space after the version", request("GET / HTTP/1.1 "), st400},
		{"asterisk-form target", request("GET * HTTP/1.1"), st400},
		{"authority-form target", request("GET 127.0.0.1:80 HTTP/1.1"), st400},
		{"absolute target with user information", request("GET http://user@127.0.0.1/ HTTP/1.1"), st400},
		{"absolute target without a host", request("GET http:///ws HTTP/1.1"), st400},
		{"target with a fragment", request("GET /ws#x HTTP/1.1"), st400},
		{"control byte in the target", request("GET /w\x01s HTTP/1.1"), st400},
		{"bad percent-encoding in the target", request("GET /a%zz HTTP/1.1"), st400},
		{"percent sign ending the target", request("GET /?a=% HTTP/1.1"), st400},
		{"percent-encoding in the target", request("GET /a%20b?c=%2F HTTP/1.1"), st101},
		{"bad percent-encoding in an absolute target's host", request("GET http://x%zz/ HTTP/1.1"), st400},

		// Origins under the default rule.
		{"same origin", request(get, "Origin: http://127.0.0.1\r\n"), st101},
		{"empty Origin", request(get, "Origin:\r\n"), st403},
		{"Origin of spaces", request(get, "Origin:   \r\n"), st403},
		{"Origin and Host differing in ASCII case", without("Host:", "Host: k.localhost\r\n", "Origin: http://K.LOCALHOST\r\n"), st101},
		{"Origin with the Kelvin sign for k", without("Host:", "Host: k.localhost\r\n", "Origin: http://\u212a.localhost\r\n"), st403},
		{"Origin with a list of origins", request(get, "Origin: http://127.0.0.1 http://127.0.0.1\r\n"), st403},
		// An absolute target names the host (RFC 7230, section 5.4): the
		// Host header does not count.
		{"absolute target, Origin naming the Host header", request("GET http://evil.example/ HTTP/1.1", "Origin: http://127.0.0.1\r\n"), st403},
		{"absolute target, Origin naming its authority", request("GET http://app.example/ HTTP/1.1", "Origin: http://app.example\r\n"), st101},
	}
}

// TestStrictRequests sends each request of strictCases on a raw socket, at
// once and one byte per write, and checks the exact status line of the
// answer; a refused request's connection is then closed, an accepted one
// echoes.
func TestStrictRequests(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))
	for _, mode := range []string{"whole", "bytewise"} {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range strictCases() {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					rc := dialRaw(t, addr)
					if mode == "whole" {
						rc.write([]byte(tc.req))
					} else {
						rc.writeBytewise([]byte(tc.req), 0)
					}
					expectStatus(t, rc, tc.status)
				})
			}
		})
	}
}

// expectStatus reads the answer to an upgrade request and requires its
// status line; then, after a 101, an echo, and otherwise the TCP close.
func expectStatus(t *testing.T, rc *rawConn, status string) {
	t.Helper()
	resp, body := rc.readResponse()
	if got := resp.Proto + " " + resp.Status; got != status {
		t.Fatalf("answered %q (%q), want %q", got, body, status)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rc.expectClosed()
		return
	}
	rc.write(frame(finBit|opText, []byte("hi")))
	rc.deadline()
	f, err := readFrame(rc.br)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameFrames([]sframe{f}, []sframe{textFrame([]byte("hi"))}); err != nil {
		t.Fatal(err)
	}
}

// TestAbsoluteTarget checks what a hook sees of a request whose target is
// an absolute URI: its authority as the host, its path and query split.
func TestAbsoluteTarget(t *testing.T) {
	seen := make(chan websocket.Request, 1)
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
		Mapping:     websocket.Raw{},
		OnHandshake: func(_ codec.Conn, r *websocket.Request) error { seen <- *r; return nil },
	})))
	for _, tc := range []struct{ target, host, path, query string }{
		{"http://app.example:8080/room/1?x=1", "app.example:8080", "/room/1", "x=1"},
		{"ws://app.example?x=2", "app.example", "/", "x=2"},
		{"https://[::1]", "[::1]", "/", ""},
	} {
		rc := dialRaw(t, addr)
		rc.write([]byte(request("GET " + tc.target + " HTTP/1.1")))
		expectStatus(t, rc, st101)
		r := <-seen
		if r.URI != tc.target || r.Host != tc.host || r.Path != tc.path || r.RawQuery != tc.query {
			t.Errorf("target %q: URI %q, host %q, path %q, query %q", tc.target, r.URI, r.Host, r.Path, r.RawQuery)
		}
	}
}

// TestRejectStatus: a hook's RejectError is answered with its status if
// that is a client or server error, and with 500 otherwise.
func TestRejectStatus(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
		OnHandshake: func(_ codec.Conn, r *websocket.Request) error {
			var status int
			_, _ = fmt.Sscan(r.Query().Get("status"), &status)
			return websocket.Reject(status, "no")
		},
	})))
	for _, tc := range []struct {
		status int
		want   string
	}{
		{401, "HTTP/1.1 401 Unauthorized"},
		{400, st400},
		{503, "HTTP/1.1 503 Service Unavailable"},
		{101, st500},
		{200, st500},
		{399, st500},
		{600, st500},
		{-7, st500},
		{0, st500},
		{99999, st500},
	} {
		rc := dialRaw(t, addr)
		rc.write([]byte(request(fmt.Sprintf("GET /?status=%d HTTP/1.1", tc.status))))
		resp, body := rc.readResponse()
		if got := resp.Proto + " " + resp.Status; got != tc.want {
			t.Errorf("Reject(%d): answered %q (%q), want %q", tc.status, got, body, tc.want)
			continue
		}
		rc.expectClosed()
	}
}
