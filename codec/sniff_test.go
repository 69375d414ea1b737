package codec_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

const ioTimeout = 3 * time.Second

// startDefault starts a server with the default codecs (WebSocket and the
// binary protocol, sniffed on one port) and an echo handler.
func startDefault(t *testing.T) (*tio.Server, string) {
	t.Helper()
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux, tio.WithLogger(slog.New(slog.DiscardHandler)), tio.WithEventLoops(2))
	return srv, srv.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return c
}

// TestSniffBothProtocols serves a WebSocket client and a binary-protocol
// client on the same port, at the same time.
func TestSniffBothProtocols(t *testing.T) {
	_, addr := startDefault(t)

	d := gorilla.Dialer{HandshakeTimeout: ioTimeout}
	ws, _, err := d.Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(ioTimeout))

	bin := dial(t, addr)
	pkt := []byte{0xA3, 0x00, 0x05, 0, 0, 0, 3, 'a', 'b', 'c'}
	if _, err := bin.Write(append([]byte{0xA1}, pkt...)); err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(gorilla.BinaryMessage, []byte("\x05ws")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1+len(pkt))
	if _, err := io.ReadFull(bin, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte{0xA1}, pkt...)) {
		t.Fatalf("binary client got %x", got)
	}
	typ, msg, err := ws.ReadMessage()
	if err != nil || typ != gorilla.BinaryMessage || string(msg) != "\x05ws" {
		t.Fatalf("WebSocket client got %d %q %v", typ, msg, err)
	}
}

// TestSniffAcrossReads sends the first bytes one at a time: the server must
// wait until it can tell the protocol.
func TestSniffAcrossReads(t *testing.T) {
	_, addr := startDefault(t)
	c := dial(t, addr)
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	for i := range 4 {
		if _, err := c.Write([]byte(req[i : i+1])); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := c.Write([]byte(req[4:])); err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 101 "
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

// TestSniffGarbage: first bytes that match no protocol close the connection
// (an HTTP request of any method matches the WebSocket codec, which answers
// it: see codec/websocket),
// counted as ReasonUnknownProtocol.
func TestSniffGarbage(t *testing.T) {
	srv, addr := startDefault(t)
	for _, first := range []string{"\x00\x01\x02\x03", "\x16\x03\x01\x02\x00\x01\x00", "GEX / HTTP/1.1\r\n", "\xA3\x00\x01"} {
		before := srv.Stats().Closed[channel.ReasonUnknownProtocol]
		c := dial(t, addr)
		if _, err := c.Write([]byte(first)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("first bytes %q: connection not closed", first)
		}
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("first bytes %q: %v", first, err)
		}
		if len(got) != 0 {
			t.Fatalf("first bytes %q: server answered %q", first, got)
		}
		deadline := time.Now().Add(2 * time.Second)
		for srv.Stats().Closed[channel.ReasonUnknownProtocol] != before+1 {
			if time.Now().After(deadline) {
				t.Fatalf("first bytes %q: close not counted as unknown_protocol: %v", first, srv.Stats().Closed)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
