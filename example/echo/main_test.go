package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/example/echo/echoserver"
)

// The echo example's contract: WebSocket messages come back with the same
// opcode and payload on any path, and binary-protocol packets come back
// unchanged, on one port.
func TestEcho(t *testing.T) {
	srv := newServer("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr().String()

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/some/path?q=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, m := range []struct {
		op      int
		payload []byte
	}{
		{websocket.TextMessage, []byte("hello")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xFF}},
		{websocket.BinaryMessage, nil},
		{websocket.TextMessage, bytes.Repeat([]byte("é"), 40000)},
	} {
		if err := ws.WriteMessage(m.op, m.payload); err != nil {
			t.Fatal(err)
		}
		op, got, err := ws.ReadMessage()
		if err != nil || op != m.op || !bytes.Equal(got, m.payload) {
			t.Fatalf("sent op %d %d bytes, got op %d %d bytes, %v", m.op, len(m.payload), op, len(got), err)
		}
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	in := []byte{0xA1, 0xA2, 0xA3, 0, 7, 0, 0, 0, 2, 'h', 'i'}
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(in))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, in) {
		t.Fatalf("binary echo % x, want % x (%v)", got, in, err)
	}
}

// A text message starting with "B:" goes, unchanged, to every connected
// client, the sender included; WebSocket clients get it as a text message,
// binary-protocol clients as a packet of type websocket.TypeText. Other
// messages are still echoed to their sender alone.
func TestBroadcast(t *testing.T) {
	srv := newServer("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Addr().String()

	var wss []*websocket.Conn
	for range 3 {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		wss = append(wss, ws)
	}
	bin, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()
	_ = bin.SetDeadline(time.Now().Add(5 * time.Second))
	hs := []byte{0xA1}
	if _, err := bin.Write(hs); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(bin, hs); err != nil {
		t.Fatal(err)
	}
	// Every connection has completed its handshake once the server counts
	// it and the WebSocket dials returned; wait for the binary one too.
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.Channels(tio.All())) != 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	msg := []byte("B:hello, everyone")
	if err := wss[1].WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Fatal(err)
	}
	for i, ws := range wss {
		op, got, err := ws.ReadMessage()
		if err != nil || op != websocket.TextMessage || !bytes.Equal(got, msg) {
			t.Fatalf("client %d got op %d %q, %v", i, op, got, err)
		}
	}
	want := append([]byte{0xA3, 0x01, 0x00, 0, 0, 0, byte(len(msg))}, msg...) // packet tag, type 0x100, length
	got := make([]byte, len(want))
	if _, err := io.ReadFull(bin, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("binary client got % x, want % x (%v)", got, want, err)
	}

	// Plain text is echoed to the sender only: the next message the others
	// see is the next broadcast.
	if err := wss[0].WriteMessage(websocket.TextMessage, []byte("just me")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := wss[0].ReadMessage(); err != nil || string(got) != "just me" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if err := wss[0].WriteMessage(websocket.TextMessage, []byte("B:2")); err != nil {
		t.Fatal(err)
	}
	for i, ws := range wss {
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != "B:2" {
			t.Fatalf("client %d got %q, %v", i, got, err)
		}
	}
}

// permessage-deflate is negotiated with a client that offers it, unless
// -deflate=false; compressed and uncompressed clients get the same
// echoes and broadcasts.
func TestEchoDeflate(t *testing.T) {
	for _, deflate := range []bool{true, false} {
		srv := newServer("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)), deflate)
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		addr := srv.Addr().String()
		d := &websocket.Dialer{EnableCompression: true}
		zc, resp, err := d.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Extensions"); (got != "") != deflate {
			t.Fatalf("deflate %v: extension answer %q", deflate, got)
		}
		plain, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*websocket.Conn{zc, plain} {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		}
		for srv.Count(tio.All()) != 2 {
			time.Sleep(time.Millisecond)
		}
		big := bytes.Repeat([]byte("compressible "), 1000)
		for _, m := range [][]byte{[]byte("hi"), big} {
			for _, c := range []*websocket.Conn{zc, plain} {
				if err := c.WriteMessage(websocket.BinaryMessage, m); err != nil {
					t.Fatal(err)
				}
				if op, got, err := c.ReadMessage(); err != nil || op != websocket.BinaryMessage || !bytes.Equal(got, m) {
					t.Fatalf("deflate %v: echo of %d bytes: op %d, %d bytes, %v", deflate, len(m), op, len(got), err)
				}
			}
		}
		msg := append([]byte("B:"), big...)
		if err := zc.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		for i, c := range []*websocket.Conn{zc, plain} {
			if op, got, err := c.ReadMessage(); err != nil || op != websocket.TextMessage || !bytes.Equal(got, msg) {
				t.Fatalf("deflate %v: broadcast to client %d: op %d, %d bytes, %v", deflate, i, op, len(got), err)
			}
		}
		zc.Close()
		plain.Close()
		_ = srv.Shutdown(context.Background())
	}
}

// echoserver's ContextTakeover answers a Chrome-like offer with context
// takeover kept on the server's side (no server_no_context_takeover) and
// the client's window bounded; the default answers no context takeover
// both ways.
func TestEchoContextTakeover(t *testing.T) {
	for _, ct := range []bool{false, true} {
		srv := echoserver.NewWith("127.0.0.1:0", echoserver.Config{ContextTakeover: ct},
			tio.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr().String()+"/", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Header.Get("Sec-WebSocket-Extensions")
		resp.Body.Close()
		want := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		if ct {
			want = "permessage-deflate; client_max_window_bits=12"
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || got != want {
			t.Errorf("ContextTakeover %v: %d, extension answer %q, want %q", ct, resp.StatusCode, got, want)
		}
		_ = srv.Shutdown(context.Background())
	}
}
