package tio_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
)

// start runs a server on a free port of 127.0.0.1 until the test ends.
func start(t testing.TB, h handler.Handler, opts ...tio.Option) *tio.Server {
	t.Helper()
	srv := tio.NewServer("127.0.0.1:0", h, opts...)
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

func echoMux() *handler.Mux {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	return mux
}

// binClient is a minimal client of tio's binary protocol.
type binClient struct {
	t testing.TB
	net.Conn
}

func dialBinary(t testing.TB, srv *tio.Server) *binClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	bc := &binClient{t: t, Conn: c}
	bc.write([]byte{tbin.TagHandshake})
	if b := bc.readN(1); b[0] != tbin.TagHandshake {
		t.Fatalf("handshake answer %#x", b[0])
	}
	return bc
}

func (c *binClient) write(b []byte) {
	c.t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *binClient) readN(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func packet(t codec.Type, body []byte) []byte {
	b, _ := tbin.New(tbin.Config{}).Encode(nil, &codec.Packet{Type: t, Body: body})
	return b
}

func (c *binClient) send(t codec.Type, body []byte) { c.t.Helper(); c.write(packet(t, body)) }

// recv reads the next packet, failing on anything else.
func (c *binClient) recv() codec.Packet {
	c.t.Helper()
	h := c.readN(1)
	if h[0] != tbin.TagPacket {
		rest := []byte{}
		if h[0] == tbin.TagClose {
			rest = c.readN(1)
		}
		c.t.Fatalf("expected a packet, got tag %#x % x", h[0], rest)
	}
	h = c.readN(tbin.HeaderSize - 1)
	body := c.readN(int(binary.BigEndian.Uint32(h[2:6])))
	return codec.Packet{Type: codec.Type(binary.BigEndian.Uint16(h[0:2])), Body: body}
}

// expectClosed reads until EOF, returning what came before it.
func expectClosed(t testing.TB, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed by the server (read %q)", b)
	}
	return b
}

// eventually polls cond for up to 3 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func dialRaw(t testing.TB, srv *tio.Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
