package websocket_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// ioTimeout bounds every read and write of a test.
const ioTimeout = 3 * time.Second

// Opcodes and the FIN bit, spelled out so that the tests do not depend on the
// library under test for the wire format.
const (
	opCont  byte = 0x0
	opText  byte = 0x1
	opBin   byte = 0x2
	opClose byte = 0x8
	opPing  byte = 0x9
	opPong  byte = 0xA
	finBit  byte = 0x80
)

// echoMux answers every packet with itself.
func echoMux() *handler.Mux {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	return mux
}

// startServer starts a tio server on a free port of 127.0.0.1 and shuts it
// down when the test ends.
func startServer(t testing.TB, h handler.Handler, opts ...tio.Option) (*tio.Server, string) {
	t.Helper()
	srv := tiotest.NewServer(t, h, append([]tio.Option{tio.WithLogger(slog.New(slog.DiscardHandler)), tio.WithEventLoops(2)}, opts...)...)
	return srv, srv.Addr().String()
}

// waitFor polls cond (see tiotest.Eventually).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tiotest.Eventually(t, what, cond)
}

// testMask is the masking key of every client frame the tests build.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frame builds a masked client frame whose first byte is b0 (FIN, RSV bits
// and opcode), with the shortest length encoding.
func frame(b0 byte, payload []byte) []byte { return buildFrame(b0, payload, true) }

// unmaskedFrame builds a frame without a mask, as a client must not send it.
func unmaskedFrame(b0 byte, payload []byte) []byte { return buildFrame(b0, payload, false) }

func buildFrame(b0 byte, payload []byte, masked bool) []byte {
	b := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, m|127), uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	b = append(b, testMask[:]...)
	for i, c := range payload {
		b = append(b, c^testMask[i&3])
	}
	return b
}

// closeBody is the payload of a close frame with a code and a reason.
func closeBody(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// textOf returns n bytes of valid UTF-8 mixing one-, two- and four-byte
// characters, so that fragment boundaries fall inside code points.
func textOf(n int) []byte {
	const unit = "añ😀z" // 1+2+4+1 bytes
	b := []byte(strings.Repeat(unit, n/len(unit)))
	return append(b, strings.Repeat("x", n%len(unit))...)
}

// binaryOf returns n bytes of a fixed pseudo-random pattern.
func binaryOf(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// sframe is a frame read from the server.
type sframe struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

func (f sframe) String() string {
	if f.op == opClose && len(f.payload) >= 2 {
		return fmt.Sprintf("close(%d %q)", binary.BigEndian.Uint16(f.payload), f.payload[2:])
	}
	p := f.payload
	if len(p) > 16 {
		p = p[:16]
	}
	return fmt.Sprintf("op%#x fin=%v rsv=%#x len=%d %q", f.op, f.fin, f.rsv, len(f.payload), p)
}

// readFrame reads one server frame; a server frame must not be masked.
func readFrame(r io.Reader) (sframe, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return sframe{}, err
	}
	f := sframe{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0x0F}
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	if n > 64<<20 {
		return f, fmt.Errorf("server frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(r, f.payload)
	return f, err
}

// rawConn is a client on a plain TCP connection.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) deadline() { _ = rc.c.SetDeadline(time.Now().Add(ioTimeout)) }

// write writes b at once.
func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	rc.deadline()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// writeBytewise writes b one byte per write, pausing between writes so that
// the server sees many small reads. It stops quietly at the first error:
// the server may close the connection before it has seen everything.
func (rc *rawConn) writeBytewise(b []byte, pause time.Duration) {
	rc.deadline()
	for i := range b {
		if _, err := rc.c.Write(b[i : i+1]); err != nil {
			return
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// The key of RFC 6455's example and the accept value it must produce.
const (
	testKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// upgradeRequest is a valid upgrade request with extra header lines.
func upgradeRequest(path string, extra ...string) []byte {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// readResponse reads the server's HTTP response and its body.
func (rc *rawConn) readResponse() (*http.Response, string) {
	rc.t.Helper()
	rc.deadline()
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read response body: %v", err)
	}
	return resp, string(body)
}

// expectUpgraded reads a response and requires a valid 101.
func (rc *rawConn) expectUpgraded() {
	rc.t.Helper()
	resp, body := rc.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rc.t.Fatalf("status %d %q, want 101", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != testAccept {
		rc.t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, testAccept)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		rc.t.Fatalf("Upgrade header %q", resp.Header.Get("Upgrade"))
	}
}

// upgrade performs the opening handshake.
func (rc *rawConn) upgrade() {
	rc.t.Helper()
	rc.write(upgradeRequest("/"))
	rc.expectUpgraded()
}

// readFrames reads server frames up to and including a close frame.
func (rc *rawConn) readFrames() []sframe {
	rc.t.Helper()
	rc.deadline()
	var got []sframe
	for {
		f, err := readFrame(rc.br)
		if err != nil {
			rc.t.Fatalf("after %v: read frame: %v", got, err)
		}
		got = append(got, f)
		if f.op == opClose {
			return got
		}
	}
}

// expectClosed requires that the server closes the TCP connection without
// sending anything more.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rc.deadline()
	var buf [512]byte
	extra := 0
	for {
		n, err := rc.br.Read(buf[:])
		extra += n
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		case errors.As(err, &ne) && ne.Timeout():
			rc.t.Fatalf("server did not close the connection (%d bytes read): %v", extra, err)
		default:
			rc.t.Fatalf("read: %v", err)
		}
		if extra > 0 {
			rc.t.Fatalf("server sent %d bytes after its last frame", extra)
		}
		return
	}
}

// closeFrame is the close frame the server is expected to send (code 0: an
// empty close frame).
func closeFrame(code uint16) sframe {
	if code == 0 {
		return sframe{fin: true, op: opClose}
	}
	return sframe{fin: true, op: opClose, payload: closeBody(code, "")}
}

func textFrame(s []byte) sframe   { return sframe{fin: true, op: opText, payload: s} }
func binaryFrame(b []byte) sframe { return sframe{fin: true, op: opBin, payload: b} }
func pongFrame(b []byte) sframe   { return sframe{fin: true, op: opPong, payload: b} }

// sameFrames compares server frames with expectations: close frames are
// compared by code (and must carry a UTF-8 reason), others byte for byte.
func sameFrames(got, want []sframe) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d frames %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.fin || g.rsv != 0 || g.op != w.op {
			return fmt.Errorf("frame %d: got %v, want %v", i, g, w)
		}
		if w.op == opClose {
			if len(w.payload) == 0 {
				if len(g.payload) != 0 {
					return fmt.Errorf("frame %d: got %v, want an empty close frame", i, g)
				}
				continue
			}
			if len(g.payload) < 2 || string(g.payload[:2]) != string(w.payload[:2]) || !utf8.Valid(g.payload[2:]) {
				return fmt.Errorf("frame %d: got %v, want %v", i, g, w)
			}
			continue
		}
		if string(g.payload) != string(w.payload) {
			return fmt.Errorf("frame %d: got %v, want %v", i, g, w)
		}
	}
	return nil
}
