package websocket_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec/websocket"
)

// Limits of the server that the frame table runs against.
const (
	limitFrame   = 1024
	limitMessage = 2048
)

func startLimitedServer(t testing.TB) (*tio.Server, string) {
	return startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
		MaxFrame:   limitFrame,
		MaxMessage: limitMessage,
		Mapping:    websocket.Raw{},
	})))
}

type frameCase struct {
	name string
	in   []byte   // what the client sends after the handshake
	want []sframe // what the server sends back, ending with its close frame
}

// frameCases is the table of frames, valid and invalid, with the server's
// expected answer. Each case ends with the server's close frame: accepted
// input is followed by a client close 1000 that the server echoes.
func frameCases() []frameCase {
	bye := frame(finBit|opClose, closeBody(1000, "bye"))
	cases := []frameCase{
		// Accepted input.
		{"text echo", cat(frame(finBit|opText, []byte("hello")), bye),
			[]sframe{textFrame([]byte("hello")), closeFrame(1000)}},
		{"binary echo", cat(frame(finBit|opBin, []byte{0, 1, 2, 0xff}), bye),
			[]sframe{binaryFrame([]byte{0, 1, 2, 0xff}), closeFrame(1000)}},
		{"empty text and binary", cat(frame(finBit|opText, nil), frame(finBit|opBin, nil), bye),
			[]sframe{textFrame(nil), binaryFrame(nil), closeFrame(1000)}},
		{"several messages in order", cat(frame(finBit|opText, []byte("a")), frame(finBit|opBin, []byte("b")), frame(finBit|opText, []byte("c")), bye),
			[]sframe{textFrame([]byte("a")), binaryFrame([]byte("b")), textFrame([]byte("c")), closeFrame(1000)}},
		{"fragmented text with a ping between fragments",
			cat(frame(opText, []byte("hel")), frame(finBit|opPing, []byte("p1")), frame(opCont, []byte("l")), frame(finBit|opPong, []byte("x")), frame(finBit|opCont, []byte("o")), bye),
			[]sframe{pongFrame([]byte("p1")), textFrame([]byte("hello")), closeFrame(1000)}},
		{"fragmented binary with empty fragments",
			cat(frame(opBin, nil), frame(opCont, []byte{1, 2}), frame(opCont, nil), frame(finBit|opCont, []byte{3}), bye),
			[]sframe{binaryFrame([]byte{1, 2, 3}), closeFrame(1000)}},
		{"code point split across two fragments",
			cat(frame(opText, []byte("caf\xc3")), frame(finBit|opCont, []byte("\xa9!")), bye),
			[]sframe{textFrame([]byte("café!")), closeFrame(1000)}},
		{"four-byte code point split across three fragments",
			cat(frame(opText, []byte("\xf0")), frame(opCont, []byte("\x9f\x98")), frame(finBit|opCont, []byte("\x80")), bye),
			[]sframe{textFrame([]byte("😀")), closeFrame(1000)}},
		{"ping with 125-byte payload", cat(frame(finBit|opPing, bytes.Repeat([]byte{'p'}, 125)), bye),
			[]sframe{pongFrame(bytes.Repeat([]byte{'p'}, 125)), closeFrame(1000)}},
		{"empty ping", cat(frame(finBit|opPing, nil), bye),
			[]sframe{pongFrame(nil), closeFrame(1000)}},
		{"unsolicited pong is ignored", cat(frame(finBit|opPong, []byte("zz")), frame(finBit|opText, []byte("t")), bye),
			[]sframe{textFrame([]byte("t")), closeFrame(1000)}},
		{"frame of exactly MaxFrame", cat(frame(finBit|opBin, binaryOf(limitFrame)), bye),
			[]sframe{binaryFrame(binaryOf(limitFrame)), closeFrame(1000)}},
		{"fragmented message of exactly MaxMessage",
			cat(frame(opText, textOf(limitFrame)), frame(finBit|opCont, textOf(limitMessage-limitFrame)), bye),
			[]sframe{textFrame(append(textOf(limitFrame), textOf(limitMessage-limitFrame)...)), closeFrame(1000)}},
		{"close without a body", frame(finBit|opClose, nil), []sframe{closeFrame(0)}},
		{"close reason in UTF-8", frame(finBit|opClose, closeBody(1000, "héllo")), []sframe{closeFrame(1000)}},

		// Protocol errors: 1002.
		{"unmasked frame", unmaskedFrame(finBit|opText, []byte("hi")), []sframe{closeFrame(1002)}},
		{"unmasked close", unmaskedFrame(finBit|opClose, closeBody(1000, "")), []sframe{closeFrame(1002)}},
		{"RSV1", frame(finBit|0x40|opText, []byte("hi")), []sframe{closeFrame(1002)}},
		{"RSV2", frame(finBit|0x20|opBin, []byte("hi")), []sframe{closeFrame(1002)}},
		{"RSV3", frame(finBit|0x10|opText, []byte("hi")), []sframe{closeFrame(1002)}},
		{"RSV1 on a ping", frame(finBit|0x40|opPing, nil), []sframe{closeFrame(1002)}},
		{"ping with 126-byte payload", frame(finBit|opPing, bytes.Repeat([]byte{'p'}, 126)), []sframe{closeFrame(1002)}},
		{"close with 126-byte payload", frame(finBit|opClose, closeBody(1000, strings.Repeat("r", 124))), []sframe{closeFrame(1002)}},
		{"fragmented ping", frame(opPing, []byte("p")), []sframe{closeFrame(1002)}},
		{"fragmented close", frame(opClose, closeBody(1000, "")), []sframe{closeFrame(1002)}},
		{"continuation without a start", frame(finBit|opCont, []byte("x")), []sframe{closeFrame(1002)}},
		{"unfinished continuation without a start", frame(opCont, []byte("x")), []sframe{closeFrame(1002)}},
		{"continuation after a finished message",
			cat(frame(finBit|opText, []byte("a")), frame(finBit|opCont, []byte("b"))),
			[]sframe{textFrame([]byte("a")), closeFrame(1002)}},
		{"text frame inside a fragmented message", cat(frame(opText, []byte("a")), frame(finBit|opText, []byte("b"))), []sframe{closeFrame(1002)}},
		{"binary frame inside a fragmented message", cat(frame(opText, []byte("a")), frame(finBit|opBin, []byte("b"))), []sframe{closeFrame(1002)}},
		{"unfinished text frame inside a fragmented message", cat(frame(opBin, []byte("a")), frame(opText, []byte("b"))), []sframe{closeFrame(1002)}},
		{"64-bit length with the top bit set",
			cat([]byte{finBit | opBin, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, testMask[:]), []sframe{closeFrame(1002)}},
		{"close with a one-byte body", frame(finBit|opClose, []byte{0x03}), []sframe{closeFrame(1002)}},

		// Invalid UTF-8: 1007.
		{"invalid UTF-8 in a text frame", frame(finBit|opText, []byte("ab\xffcd")), []sframe{closeFrame(1007)}},
		{"overlong encoding", frame(finBit|opText, []byte("\xc0\xaf")), []sframe{closeFrame(1007)}},
		{"encoded surrogate", frame(finBit|opText, []byte("\xed\xa0\x80")), []sframe{closeFrame(1007)}},
		{"code point over U+10FFFF", frame(finBit|opText, []byte("\xf4\x90\x80\x80")), []sframe{closeFrame(1007)}},
		{"text ends inside a code point", frame(finBit|opText, []byte("ab\xe2\x82")), []sframe{closeFrame(1007)}},
		{"fragmented text ends inside a code point",
			cat(frame(opText, []byte("ab")), frame(finBit|opCont, []byte("\xe2\x82"))), []sframe{closeFrame(1007)}},
		{"invalid UTF-8 in the last fragment",
			cat(frame(opText, []byte("ab")), frame(finBit|opCont, []byte("\xff"))), []sframe{closeFrame(1007)}},
		// Fail fast: the message never ends, so only an early check answers.
		{"fail fast: invalid first fragment of an unfinished message",
			frame(opText, []byte("ok\xff")), []sframe{closeFrame(1007)}},
		{"fail fast: invalid start of a frame that has not arrived whole",
			frame(finBit|opText, []byte("abc\xffdefghijklmnopqrstuvwxyz"))[:6+8], []sframe{closeFrame(1007)}},
		{"fail fast: invalid continuation byte in an unfinished message",
			cat(frame(opText, []byte("\xe2")), frame(opCont, []byte("A"))), []sframe{closeFrame(1007)}},
		{"close reason with invalid UTF-8", frame(finBit|opClose, closeBody(1000, "bad\xff")), []sframe{closeFrame(1007)}},

		// Limits: 1009.
		{"frame over MaxFrame", frame(finBit|opBin, binaryOf(limitFrame+1)), []sframe{closeFrame(1009)}},
		{"header announcing a huge frame",
			cat([]byte{finBit | opBin, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0}, testMask[:]), []sframe{closeFrame(1009)}},
		{"fragmented message over MaxMessage",
			cat(frame(opBin, binaryOf(1000)), frame(opCont, binaryOf(1000)), frame(finBit|opCont, binaryOf(1000))), []sframe{closeFrame(1009)}},
		{"fragmented text over MaxMessage by one byte",
			cat(frame(opText, textOf(limitFrame)), frame(opCont, textOf(limitFrame)), frame(finBit|opCont, []byte("x"))), []sframe{closeFrame(1009)}},

		// Nothing is delivered after the client's close frame.
		{"text after close is not delivered", cat(frame(finBit|opClose, closeBody(1000, "")), frame(finBit|opText, []byte("late"))),
			[]sframe{closeFrame(1000)}},
		{"ping after close is not answered", cat(frame(finBit|opClose, closeBody(1001, "")), frame(finBit|opPing, []byte("late"))),
			[]sframe{closeFrame(1001)}},
		{"nothing after a protocol error", cat(unmaskedFrame(finBit|opText, []byte("x")), frame(finBit|opText, []byte("late"))),
			[]sframe{closeFrame(1002)}},
	}
	for op := byte(3); op <= 0xF; op++ {
		if op >= opClose && op <= opPong {
			continue
		}
		cases = append(cases, frameCase{"reserved opcode " + string("0123456789ABCDEF"[op]),
			frame(finBit|op, []byte("x")), []sframe{closeFrame(1002)}})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, frameCase{"invalid close code " + strconv.Itoa(int(code)),
			frame(finBit|opClose, closeBody(code, "")), []sframe{closeFrame(1002)}})
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, frameCase{"close code echoed " + strconv.Itoa(int(code)),
			frame(finBit|opClose, closeBody(code, "reason")), []sframe{closeFrame(code)}})
	}
	return cases
}

// TestFrames runs the frame table against a real server, the client's bytes
// written at once and then one byte per write: the outcome must not depend
// on how the bytes are split into reads.
func TestFrames(t *testing.T) {
	_, addr := startLimitedServer(t)
	for _, mode := range []string{"whole", "bytewise"} {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range frameCases() {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					rc := dialRaw(t, addr)
					rc.upgrade()
					if mode == "whole" {
						rc.write(tc.in)
					} else {
						rc.writeBytewise(tc.in, 20*time.Microsecond)
					}
					if err := sameFrames(rc.readFrames(), tc.want); err != nil {
						t.Fatal(err)
					}
					rc.expectClosed()
				})
			}
		})
	}
}

// TestFrameInHandshakeWrite sends frames in the same write as the upgrade
// request: they must not be lost.
func TestFrameInHandshakeWrite(t *testing.T) {
	_, addr := startLimitedServer(t)
	rc := dialRaw(t, addr)
	rc.write(cat(upgradeRequest("/"), frame(finBit|opText, []byte("early")), frame(finBit|opPing, []byte("p")),
		frame(finBit|opClose, closeBody(1000, ""))))
	rc.expectUpgraded()
	if err := sameFrames(rc.readFrames(), []sframe{textFrame([]byte("early")), pongFrame([]byte("p")), closeFrame(1000)}); err != nil {
		t.Fatal(err)
	}
	rc.expectClosed()
}

// TestHandshakeBytewise sends the request and a first frame one byte per
// write, with pauses, so that the server sees many small reads.
func TestHandshakeBytewise(t *testing.T) {
	connected := make(chan *channel.Channel, 1)
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{Mapping: websocket.Raw{}})),
		tio.WithOnConnect(func(ch *channel.Channel) { connected <- ch }))
	rc := dialRaw(t, addr)
	req := upgradeRequest("/split?x=1", "X-Long-Header: "+strings.Repeat("v", 100))
	rc.writeBytewise(req, 100*time.Microsecond)
	rc.expectUpgraded()
	ch := <-connected
	if reads := ch.Stats().Reads; reads < uint64(len(req)/4) {
		t.Fatalf("the %d-byte request came in %d reads: the test did not split it", len(req), reads)
	}
	rc.writeBytewise(frame(finBit|opText, []byte("after")), 100*time.Microsecond)
	f, err := readFrame(rc.br)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameFrames([]sframe{f}, []sframe{textFrame([]byte("after"))}); err != nil {
		t.Fatal(err)
	}
}

// TestLargeFrameInPieces sends a large frame in a few uneven writes; the
// server must stream it and echo it whole.
func TestLargeFrameInPieces(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{Mapping: websocket.Raw{}})))
	rc := dialRaw(t, addr)
	rc.upgrade()
	msg := textOf(300_000)
	b := frame(finBit|opText, msg)
	for _, cut := range []int{1, 5, 13, 4096, 100_000, len(b)} {
		cut = min(cut, len(b))
		rc.write(b[:cut])
		b = b[cut:]
		time.Sleep(time.Millisecond)
	}
	rc.deadline()
	f, err := readFrame(rc.br)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameFrames([]sframe{f}, []sframe{textFrame(msg)}); err != nil {
		t.Fatal(err)
	}
}

type handshakeCase struct {
	name   string
	req    string
	status int
	header [2]string // a response header that must be present, if any
}

func handshakeCases() []handshakeCase {
	const key = "Sec-WebSocket-Key: " + testKey + "\r\n"
	const ver = "Sec-WebSocket-Version: 13\r\n"
	const up = "Upgrade: websocket\r\n"
	const conn = "Connection: Upgrade\r\n"
	const host = "Host: 127.0.0.1\r\n"
	return []handshakeCase{
		{"valid", "GET / HTTP/1.1\r\n" + host + up + conn + key + ver + "\r\n", 101, [2]string{"Sec-WebSocket-Accept", testAccept}},
		{"header names and values in other cases", "GET / HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-key: " + testKey + "\r\nsec-websocket-version: 13\r\n\r\n", 101, [2]string{}},
		{"garbage request line", "HELLO\r\n\r\n", 400, [2]string{}},
		{"request line without a version", "GET /\r\n" + host + up + conn + key + ver + "\r\n", 400, [2]string{}},
		{"request line with a bad version", "GET / FOO/1.1\r\n" + host + up + conn + key + ver + "\r\n", 400, [2]string{}},
		{"binary garbage after GET", "GET \x00\x01\x02\x03\r\n\r\n", 400, [2]string{}},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + host + up + conn + key + ver + "\r\n", 505, [2]string{}},
		{"POST", "POST / HTTP/1.1\r\n" + host + up + conn + key + ver + "\r\n", 405, [2]string{}},
		{"header line without a colon", "GET / HTTP/1.1\r\n" + host + "garbage\r\n" + up + conn + key + ver + "\r\n", 400, [2]string{}},
		{"missing Host", "GET / HTTP/1.1\r\n" + up + conn + key + ver + "\r\n", 400, [2]string{}},
		{"missing Sec-WebSocket-Key", "GET / HTTP/1.1\r\n" + host + up + conn + ver + "\r\n", 400, [2]string{}},
		{"short Sec-WebSocket-Key", "GET / HTTP/1.1\r\n" + host + up + conn + "Sec-WebSocket-Key: abc\r\n" + ver + "\r\n", 400, [2]string{}},
		{"missing Upgrade", "GET / HTTP/1.1\r\n" + host + conn + key + ver + "\r\n", 400, [2]string{}},
		{"Upgrade: h2c", "GET / HTTP/1.1\r\n" + host + "Upgrade: h2c\r\n" + conn + key + ver + "\r\n", 400, [2]string{}},
		{"missing Connection", "GET / HTTP/1.1\r\n" + host + up + key + ver + "\r\n", 400, [2]string{}},
		{"Connection: keep-alive", "GET / HTTP/1.1\r\n" + host + up + "Connection: keep-alive\r\n" + key + ver + "\r\n", 400, [2]string{}},
		{"missing Sec-WebSocket-Version", "GET / HTTP/1.1\r\n" + host + up + conn + key + "\r\n", 400, [2]string{}},
		{"Sec-WebSocket-Version: 8", "GET / HTTP/1.1\r\n" + host + up + conn + key + "Sec-WebSocket-Version: 8\r\n\r\n", 426, [2]string{"Sec-WebSocket-Version", "13"}},
		{"cross-origin", "GET / HTTP/1.1\r\n" + host + up + conn + key + ver + "Origin: http://evil.example\r\n\r\n", 403, [2]string{}},
		{"over MaxHandshake", "GET / HTTP/1.1\r\n" + host + "X-Filler: " + strings.Repeat("f", 2000) + "\r\n", 431, [2]string{}},
		{"over MaxHandshake with the blank line past the limit", "GET / HTTP/1.1\r\n" + host + up + conn + key + ver + "X-Filler: " + strings.Repeat("f", 1100) + "\r\n\r\n", 431, [2]string{}},
		{"no blank line, garbage over MaxHandshake", strings.Repeat("\x16\x03\x01", 400), 431, [2]string{}},
	}
}

// TestHandshakes sends good and bad upgrade requests on a raw connection:
// each gets its HTTP status, and a refused one is then closed.
func TestHandshakes(t *testing.T) {
	_, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{MaxHandshake: 1024})))
	for _, mode := range []string{"whole", "bytewise"} {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range handshakeCases() {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					rc := dialRaw(t, addr)
					if mode == "whole" {
						rc.write([]byte(tc.req))
					} else {
						rc.writeBytewise([]byte(tc.req), 0)
					}
					resp, body := rc.readResponse()
					if resp.StatusCode != tc.status {
						t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
					}
					if k := tc.header[0]; k != "" && resp.Header.Get(k) != tc.header[1] {
						t.Fatalf("header %s: %q, want %q (headers %v)", k, resp.Header.Get(k), tc.header[1], resp.Header)
					}
					if tc.status == http.StatusSwitchingProtocols {
						// The connection is open: check it with an echo.
						rc.write(frame(finBit|opText, []byte("hi")))
						rc.deadline()
						f, err := readFrame(rc.br)
						if err != nil {
							t.Fatal(err)
						}
						if err := sameFrames([]sframe{f}, []sframe{textFrame([]byte("hi"))}); err != nil {
							t.Fatal(err)
						}
						return
					}
					rc.expectClosed()
				})
			}
		})
	}
}

// TestCloseReasons checks that the server counts each kind of failure under
// its close reason.
func TestCloseReasons(t *testing.T) {
	srv, addr := startServer(t, echoMux(), tio.WithCodec(websocket.New(websocket.Config{
		MaxFrame: limitFrame, MaxMessage: limitMessage, MaxHandshake: 1024, Mapping: websocket.Raw{},
	})))
	cases := []struct {
		name    string
		upgrade bool
		in      []byte
		reason  channel.Reason
	}{
		{"protocol error", true, unmaskedFrame(finBit|opText, nil), channel.ReasonProtocolError},
		{"reserved opcode", true, frame(finBit|0x3, nil), channel.ReasonProtocolError},
		{"frame too big", true, frame(finBit|opBin, binaryOf(limitFrame+1)), channel.ReasonTooBig},
		{"message too big", true, cat(frame(opBin, binaryOf(1000)), frame(opCont, binaryOf(1000)), frame(opCont, binaryOf(1000))), channel.ReasonTooBig},
		{"invalid UTF-8", true, frame(finBit|opText, []byte{0xff}), channel.ReasonDecodeError},
		{"client close", true, frame(finBit|opClose, closeBody(1000, "")), channel.ReasonClosedByPeer},
		{"bad handshake", false, []byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"), channel.ReasonHandshakeFailed},
		{"plain GET, no HTTP handler", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), channel.ReasonHandshakeRefused},
		{"handshake too big", false, bytes.Repeat([]byte("GET "), 300), channel.ReasonTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats().Closed
			rc := dialRaw(t, addr)
			if tc.upgrade {
				rc.upgrade()
			}
			rc.write(tc.in)
			rc.deadline()
			for {
				// Drain whatever the server says until it closes.
				if _, err := rc.br.ReadByte(); err != nil {
					break
				}
			}
			waitFor(t, "close counted as "+tc.reason.String(), func() bool {
				return srv.Stats().Closed[tc.reason] == before[tc.reason]+1
			})
			after := srv.Stats().Closed
			for r := range after {
				if channel.Reason(r) != tc.reason && after[r] != before[r] {
					t.Errorf("reason %v also counted (%d → %d)", channel.Reason(r), before[r], after[r])
				}
			}
		})
	}
}
