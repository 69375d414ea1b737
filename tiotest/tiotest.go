// Package tiotest is a test kit for tio servers, in the spirit of
// net/http/httptest: start a server on a free port of 127.0.0.1 that shuts
// down when the test ends, dial it over WebSocket or tio's binary protocol,
// read packets with deadlines, and wait for conditions.
//
//	func TestEcho(t *testing.T) {
//		srv := tiotest.NewServer(t, echoHandler)
//		c := tiotest.DialBinary(t, srv)
//		c.Send(1, []byte("hi"))
//		if p := c.Recv(); string(p.Body) != "hi" {
//			t.Fatalf("echo %q", p.Body)
//		}
//	}
//
// Every helper fails the test (t.Fatal) on an error, so that tests read as
// the conversation they check. Helpers that read wait at most Timeout.
// Nothing here is needed by production code.
package tiotest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
)

// Timeout bounds every wait of the helpers: a read, a dial, Eventually,
// Shutdown at cleanup. Tests on a loaded machine may raise it.
var Timeout = 5 * time.Second

// NewServer starts a server for h on a free port of 127.0.0.1, with opts,
// and shuts it down when the test ends (failing the test if the shutdown
// fails). Its logger writes to the test's log (t.Log), unless opts set one.
func NewServer(t testing.TB, h handler.Handler, opts ...tio.Option) *tio.Server {
	t.Helper()
	opts = append([]tio.Option{tio.WithLogger(Logger(t))}, opts...)
	srv := tio.NewServer("127.0.0.1:0", h, opts...)
	if err := srv.Start(); err != nil {
		t.Fatalf("tiotest: start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("tiotest: shutdown: %v", err)
		}
	})
	return srv
}

// Logger returns a logger that writes to t.Log, at every level.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Eventually polls cond every few milliseconds until it holds, failing the
// test after Timeout with what was awaited.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin is Eventually with a timeout of its own.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("tiotest: timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Dial opens a raw TCP connection to srv, closed when the test ends.
func Dial(t testing.TB, srv *tio.Server) net.Conn {
	t.Helper()
	return DialFrom(t, srv, "")
}

// DialFrom is Dial from the local address ip ("127.0.0.2": on Linux every
// address of 127.0.0.0/8 is local), so that a test can play several peers
// by IP; "" lets the system choose.
func DialFrom(t testing.TB, srv *tio.Server, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: Timeout}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	c, err := d.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatalf("tiotest: dial from %q: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DialTLS opens a TLS connection to srv with cfg (PKI.ClientConfig, say),
// completes the handshake, and closes it when the test ends.
func DialTLS(t testing.TB, srv *tio.Server, cfg *tls.Config) *tls.Conn {
	t.Helper()
	cfg = cfg.Clone()
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		cfg.ServerName, _, _ = net.SplitHostPort(srv.Addr().String()) // as tls.Dial does
	}
	c := tls.Client(Dial(t, srv), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatalf("tiotest: TLS handshake: %v", err)
	}
	return c
}

// ExpectClosed reads from c until the server closes it and returns what
// came before, failing the test if the server does not close it within
// Timeout.
func ExpectClosed(t testing.TB, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(Timeout))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("tiotest: connection not closed by the server (read %q)", b)
	}
	return b
}

// BinaryConn is a client of tio's binary protocol (docs/binary-protocol.md).
type BinaryConn struct {
	net.Conn
	t testing.TB
}

// DialBinary connects to srv and performs the binary protocol's handshake.
func DialBinary(t testing.TB, srv *tio.Server) *BinaryConn {
	t.Helper()
	return DialBinaryFrom(t, srv, "")
}

// DialBinaryFrom is DialBinary from the local address ip (see DialFrom).
func DialBinaryFrom(t testing.TB, srv *tio.Server, ip string) *BinaryConn {
	t.Helper()
	c := &BinaryConn{Conn: DialFrom(t, srv, ip), t: t}
	c.SendRaw([]byte{tbin.TagHandshake})
	if b := c.ReadN(1); b[0] != tbin.TagHandshake {
		t.Fatalf("tiotest: binary handshake answered %#x", b[0])
	}
	return c
}

// DialBinaryTLS is DialBinary over TLS with cfg (see DialTLS).
func DialBinaryTLS(t testing.TB, srv *tio.Server, cfg *tls.Config) *BinaryConn {
	t.Helper()
	c := &BinaryConn{Conn: DialTLS(t, srv, cfg), t: t}
	c.SendRaw([]byte{tbin.TagHandshake})
	if b := c.ReadN(1); b[0] != tbin.TagHandshake {
		t.Fatalf("tiotest: binary handshake answered %#x", b[0])
	}
	return c
}

// AsBinary is a BinaryConn over a connection the test has already opened
// (and perhaps written a preamble to), without a handshake.
func AsBinary(t testing.TB, c net.Conn) *BinaryConn { return &BinaryConn{Conn: c, t: t} }

// SendRaw writes b as it is, failing the test on an error.
func (c *BinaryConn) SendRaw(b []byte) {
	c.t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("tiotest: write: %v", err)
	}
}

// ReadN reads exactly n bytes.
func (c *BinaryConn) ReadN(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	_ = c.SetReadDeadline(time.Now().Add(Timeout))
	if _, err := io.ReadFull(c.Conn, b); err != nil {
		c.t.Fatalf("tiotest: read %d bytes: %v", n, err)
	}
	return b
}

// Packet returns the wire form of a packet of type typ.
func Packet(typ codec.Type, body []byte) []byte {
	b := []byte{tbin.TagPacket, byte(typ >> 8), byte(typ)}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// Send sends a packet.
func (c *BinaryConn) Send(typ codec.Type, body []byte) { c.t.Helper(); c.SendRaw(Packet(typ, body)) }

// Recv reads the next packet, failing the test on anything else (a close
// frame: its code is in the message). Heartbeat bytes (the server's
// answers to the client's) are skipped. A request or a reply comes back
// with its ID and Reply set.
func (c *BinaryConn) Recv() codec.Packet {
	c.t.Helper()
	h := c.ReadN(1)
	for h[0] == tbin.TagHeartbeat {
		h = c.ReadN(1)
	}
	if h[0] == tbin.TagRequest || h[0] == tbin.TagReply {
		hdr := c.ReadN(tbin.IDHeaderSize - 1)
		body := c.ReadN(int(binary.BigEndian.Uint32(hdr[6:10])))
		return codec.Packet{Type: codec.Type(binary.BigEndian.Uint16(hdr[0:2])), ID: binary.BigEndian.Uint32(hdr[2:6]), Reply: h[0] == tbin.TagReply, Body: body}
	}
	if h[0] != tbin.TagPacket {
		rest := []byte{}
		if h[0] == tbin.TagClose {
			rest = c.ReadN(1)
		}
		c.t.Fatalf("tiotest: expected a packet, got tag %#x % x", h[0], rest)
	}
	h = c.ReadN(tbin.HeaderSize - 1)
	body := c.ReadN(int(binary.BigEndian.Uint32(h[2:6])))
	return codec.Packet{Type: codec.Type(binary.BigEndian.Uint16(h[0:2])), Body: body}
}

// ExpectClose reads until the server closes the connection and returns the
// close frame's code, failing the test if what came before was not exactly
// one close frame (after heartbeat answers, which are skipped).
func (c *BinaryConn) ExpectClose() byte {
	c.t.Helper()
	b := ExpectClosed(c.t, c.Conn)
	for len(b) > 0 && b[0] == tbin.TagHeartbeat {
		b = b[1:]
	}
	if len(b) != 2 || b[0] != tbin.TagClose {
		c.t.Fatalf("tiotest: expected a close frame, got % x", b)
	}
	return b[1]
}

// WSConn is a WebSocket client (masking its frames, as RFC 6455 requires)
// with blocking, deadline-bound reads.
type WSConn struct {
	net.Conn
	t  testing.TB
	br *bufio.Reader
	// Protocol is the subprotocol the server selected, or "".
	Protocol string
}

// DialWebSocket connects to srv over WebSocket at path ("/", "/ws?x=1"),
// with the given request headers ("Origin: http://x", …), and fails the test
// if the upgrade is refused.
func DialWebSocket(t testing.TB, srv *tio.Server, path string, header ...string) *WSConn {
	t.Helper()
	c, err := DialWebSocketErr(t, srv, path, header...)
	if err != nil {
		t.Fatalf("tiotest: dial websocket %s: %v", path, err)
	}
	return c
}

// DialWebSocketTLS is DialWebSocket over TLS (wss://) with cfg.
func DialWebSocketTLS(t testing.TB, srv *tio.Server, cfg *tls.Config, path string, header ...string) *WSConn {
	t.Helper()
	c, err := dialWebSocket(t, "wss://", cfg, srv, path, header...)
	if err != nil {
		t.Fatalf("tiotest: dial websocket %s: %v", path, err)
	}
	return c
}

// DialWebSocketErr is DialWebSocket that returns the upgrade's error (a
// ws.StatusError carries a refusal's HTTP status) instead of failing.
func DialWebSocketErr(t testing.TB, srv *tio.Server, path string, header ...string) (*WSConn, error) {
	t.Helper()
	return dialWebSocket(t, "ws://", nil, srv, path, header...)
}

func dialWebSocket(t testing.TB, scheme string, cfg *tls.Config, srv *tio.Server, path string, header ...string) (*WSConn, error) {
	t.Helper()
	var h strings.Builder
	for _, kv := range header {
		h.WriteString(kv + "\r\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderString(h.String()), Timeout: Timeout}
	if cfg != nil {
		d.TLSConfig = cfg.Clone()
	}
	conn, br, hs, err := d.Dial(ctx, scheme+srv.Addr().String()+path)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return &WSConn{Conn: conn, t: t, br: br, Protocol: hs.Protocol}, nil
}

// WriteMessage sends one masked, unfragmented message.
func (c *WSConn) WriteMessage(op ws.OpCode, payload []byte) {
	c.t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(Timeout))
	if err := ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewFrame(op, true, payload))); err != nil {
		c.t.Fatalf("tiotest: write: %v", err)
	}
}

// SendText sends a text message.
func (c *WSConn) SendText(s string) { c.t.Helper(); c.WriteMessage(ws.OpText, []byte(s)) }

// SendBinary sends a binary message.
func (c *WSConn) SendBinary(b []byte) { c.t.Helper(); c.WriteMessage(ws.OpBinary, b) }

// CloseError is the server's close frame, as ReadMessage reports it.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

// Error implements error.
func (e *CloseError) Error() string { return fmt.Sprintf("websocket closed: %d %q", e.Code, e.Reason) }

// ReadMessage reads the next data message, reassembling fragments and
// answering pings. A close frame from the server is answered and returned
// as a *CloseError; a read error or the deadline is returned as is.
func (c *WSConn) ReadMessage() (ws.OpCode, []byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(Timeout))
	var op ws.OpCode
	var msg []byte
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return 0, nil, err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return 0, nil, err
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch {
		case h.OpCode == ws.OpPing:
			_ = ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewPongFrame(payload)))
			continue
		case h.OpCode == ws.OpPong:
			continue
		case h.OpCode == ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			_ = ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
			return ws.OpClose, nil, &CloseError{Code: code, Reason: reason}
		case h.OpCode != ws.OpContinuation:
			op = h.OpCode
		}
		msg = append(msg, payload...)
		if h.Fin {
			return op, msg, nil
		}
	}
}

// Recv reads the next data message, failing the test on anything else.
func (c *WSConn) Recv() (ws.OpCode, []byte) {
	c.t.Helper()
	op, b, err := c.ReadMessage()
	if err != nil {
		c.t.Fatalf("tiotest: read message: %v", err)
	}
	return op, b
}

// ExpectClose reads until the server's close frame and returns it, failing
// the test if a data message or an error comes first.
func (c *WSConn) ExpectClose() CloseError {
	c.t.Helper()
	_, b, err := c.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) {
		c.t.Fatalf("tiotest: expected a close frame, got %q, %v", b, err)
	}
	return *ce
}
