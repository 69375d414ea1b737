package tio_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/tiotest"
)

// Plain HTTP shares the WebSocket port: with a handler, requests are served
// on the worker pool with keep-alive, pipelining, HEAD and bounded bodies;
// WebSocket upgrades and the binary protocol work beside them.
func TestHTTPOnTheSamePort(t *testing.T) {
	// The handlers run on the pool's workers, started with the server
	// before srv is assigned: reaching srv through the socket is no
	// synchronization the race detector sees.
	var srvp atomic.Pointer[tio.Server]
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<h1>hello %s</h1>", r.URL.Query().Get("name"))
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("handler bug") })
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { srvp.Load().MetricsHandler().ServeHTTP(w, r) }))
	srv := tiotest.NewServer(t, echoMux(), tio.WithHTTP(mux))
	srvp.Store(srv)
	base := "http://" + srv.Addr().String()

	// net/http's client, keep-alive: several requests, one connection.
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 3 {
		resp, err := client.Get(fmt.Sprintf("%s/?name=n%d", base, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("<h1>hello n%d</h1>", i) || resp.Header.Get("Content-Type") != "text/html" {
			t.Fatalf("GET %d: %d %q %v", i, resp.StatusCode, b, resp.Header)
		}
	}
	resp, err := client.Post(base+"/echo", "text/plain", strings.NewReader("a body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(b) != "a body" {
		t.Fatalf("POST: %d %q", resp.StatusCode, b)
	}
	resp, err = client.Head(base + "/?name=x")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len("<h1>hello x</h1>")) {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "tio_connections_active") {
		t.Fatalf("/metrics on the same port: %q", b[:min(len(b), 200)])
	}
	resp, err = client.Get(base + "/panic")
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("a panicking handler: %v %v", resp, err)
	}
	resp.Body.Close()

	// Pipelined raw requests: answered in order, on one connection.
	c := tiotest.Dial(t, srv)
	_, _ = c.Write([]byte("GET /?name=a HTTP/1.1\r\nHost: x\r\n\r\nGET /?name=b HTTP/1.1\r\nHost: x\r\n\r\nGET /?name=c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	r := bufio.NewReader(c)
	for _, want := range []string{"a", "b", "c"} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("pipelined %s: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "<h1>hello "+want+"</h1>" {
			t.Fatalf("pipelined %s: %q", want, b)
		}
	}
	if rest := tiotest.ExpectClosed(t, c); len(rest) != 0 {
		t.Fatalf("after Connection: close: %q", rest)
	}

	// Oversized and chunked bodies are refused with a status.
	for _, c := range []struct{ req, status string }{
		{"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", "413"},
		{"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "411"},
		{"GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 100)+"\r\n", 100) + "\r\n", "431"},
	} {
		conn := tiotest.Dial(t, srv)
		_, _ = conn.Write([]byte(c.req))
		if got := string(tiotest.ExpectClosed(t, conn)); !strings.HasPrefix(got, "HTTP/1.1 "+c.status) {
			t.Fatalf("%.40q answered %.40q, want %s", c.req, got, c.status)
		}
	}

	// And WebSocket and the binary protocol on the same port.
	ws := dialWS(t, srv, "/ws")
	_ = ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, m, err := ws.ReadMessage(); err != nil || string(m) != "hi" {
		t.Fatalf("websocket beside HTTP: %q %v", m, err)
	}
	bc := tiotest.DialBinary(t, srv)
	bc.Send(1, []byte("bin"))
	if p := bc.Recv(); string(p.Body) != "bin" {
		t.Fatalf("binary beside HTTP: %q", p.Body)
	}
}

// Without an HTTP handler a plain request gets an answer, never a dropped
// socket: 426 for GET, 405 with Allow: GET for other methods (a POST with
// upgrade headers too).
func TestPlainHTTPWithoutAHandler(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	for _, c := range []struct{ req, status, header string }{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "426", "Upgrade: websocket"},
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "426", "Upgrade: websocket"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "405", "Allow: GET"},
		{"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "405", "Allow: GET"},
		{"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n", "405", "Allow: GET"},
	} {
		conn := tiotest.Dial(t, srv)
		_, _ = conn.Write([]byte(c.req))
		got := string(tiotest.ExpectClosed(t, conn))
		if !strings.HasPrefix(got, "HTTP/1.1 "+c.status) || !strings.Contains(got, c.header) {
			t.Fatalf("%.30q answered %q, want %s with %s", c.req, got, c.status, c.header)
		}
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + srv.Addr().String() + "/")
	if err != nil || resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("net/http GET without a handler: %v %v", resp, err)
	}
	resp.Body.Close()
}

// An idle keep-alive HTTP connection is closed without a WebSocket close
// frame, by a shutdown or by the handshake timeout that bounds its life:
// an HTTP client would read the frame as an unsolicited response.
func TestIdleHTTPClosesWithoutAFrame(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	for _, c := range []struct {
		name  string
		opts  []tio.Option
		close func(*tio.Server)
	}{
		{"shutdown", nil, func(s *tio.Server) {
			ctx, cancel := contextTimeout(5 * time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
		}},
		{"handshake timeout", []tio.Option{tio.WithHandshakeTimeout(300 * time.Millisecond)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := tiotest.NewServer(t, echoMux(), append([]tio.Option{tio.WithHTTP(ok)}, c.opts...)...)
			conn := tiotest.Dial(t, srv)
			_, _ = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("%d %q", resp.StatusCode, b)
			}
			if c.close != nil {
				c.close(srv)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the response: %q, %v; want the connection closed with nothing more", rest, err)
			}
		})
	}
}
