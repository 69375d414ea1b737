package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The echo example's contract: WebSocket messages come back with the same
// opcode and payload on any path, and binary-protocol packets come back
// unchanged, on one port.
func TestEcho(t *testing.T) {
	srv := newServer("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
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
