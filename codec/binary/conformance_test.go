package binary_test

import (
	"bytes"
	"context"
	encbin "encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/codec/codectest"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// ioTimeout bounds every read and write of a test.
const ioTimeout = 3 * time.Second

func echoMux() *handler.Mux {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	return mux
}

func startServer(t testing.TB, opts ...tio.Option) (*tio.Server, string) {
	t.Helper()
	srv := tiotest.NewServer(t, echoMux(), append([]tio.Option{tio.WithLogger(slog.New(slog.DiscardHandler)), tio.WithEventLoops(2)}, opts...)...)
	return srv, srv.Addr().String()
}

// packet is the wire form of a packet, built by hand.
func packet(typ uint16, body []byte) []byte {
	b := []byte{0xA3, byte(typ >> 8), byte(typ)}
	b = encbin.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func bodyOf(n int) []byte {
	b := make([]byte, n)
	x := uint32(88172645)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

type client struct {
	t testing.TB
	c net.Conn
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{t: t, c: c}
}

func (cl *client) write(b []byte) {
	cl.t.Helper()
	_ = cl.c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := cl.c.Write(b); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// writeBytewise writes one byte per write; it stops at the first error.
func (cl *client) writeBytewise(b []byte, pause time.Duration) {
	_ = cl.c.SetDeadline(time.Now().Add(ioTimeout))
	for i := range b {
		if _, err := cl.c.Write(b[i : i+1]); err != nil {
			return
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// expect reads exactly len(want) bytes and compares them.
func (cl *client) expect(want []byte) {
	cl.t.Helper()
	_ = cl.c.SetDeadline(time.Now().Add(ioTimeout))
	got := make([]byte, len(want))
	if n, err := io.ReadFull(cl.c, got); err != nil {
		cl.t.Fatalf("read %d of %d bytes: %v (got %.32x)", n, len(want), err, got[:n])
	}
	if !bytes.Equal(got, want) {
		cl.t.Fatalf("got %.64x, want %.64x", got, want)
	}
}

// expectClosed requires that the server closes the connection after sending
// exactly want.
func (cl *client) expectClosed(want []byte) {
	cl.t.Helper()
	_ = cl.c.SetDeadline(time.Now().Add(ioTimeout))
	got, err := io.ReadAll(cl.c)
	var ne net.Error
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
	case errors.As(err, &ne) && ne.Timeout():
		cl.t.Fatalf("server did not close the connection (got %x)", got)
	default:
		cl.t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		cl.t.Fatalf("before closing the server sent %x, want %x", got, want)
	}
}

func (cl *client) handshake() {
	cl.t.Helper()
	cl.write([]byte{binary.TagHandshake})
	cl.expect([]byte{binary.TagHandshake})
}

// waitReason waits until the server has counted one more close for reason r
// than before, and no close for any other reason.
func waitReason(t testing.TB, srv *tio.Server, before [channel.NumReasons]uint64, r channel.Reason) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for srv.Stats().Closed[r] != before[r]+1 {
		if time.Now().After(deadline) {
			t.Fatalf("close not counted as %v: %v", r, srv.Stats().Closed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	after := srv.Stats().Closed
	for i := range after {
		if channel.Reason(i) != r && after[i] != before[i] {
			t.Errorf("a close was also counted as %v", channel.Reason(i))
		}
	}
}

func TestHandshakeAndHeartbeat(t *testing.T) {
	_, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{})))
	cl := dial(t, addr)
	cl.handshake()
	cl.write([]byte{binary.TagHeartbeat})
	cl.expect([]byte{binary.TagHeartbeat})
	// Heartbeats are answered by default. Heartbeats and packets interleaved in one write keep their order.
	cl.write(cat([]byte{binary.TagHeartbeat}, packet(1, []byte("a")), []byte{binary.TagHeartbeat, binary.TagHeartbeat}, packet(2, nil)))
	cl.expect(cat([]byte{binary.TagHeartbeat}, packet(1, []byte("a")), []byte{binary.TagHeartbeat, binary.TagHeartbeat}, packet(2, nil)))
}

func TestSilentHeartbeats(t *testing.T) {
	_, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{SilentHeartbeats: true})))
	cl := dial(t, addr)
	cl.handshake()
	cl.write(cat([]byte{binary.TagHeartbeat}, packet(3, []byte("x"))))
	cl.expect(packet(3, []byte("x"))) // no heartbeat before the echo
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestPackets(t *testing.T) {
	_, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{})))

	t.Run("sizes", func(t *testing.T) {
		cl := dial(t, addr)
		cl.handshake()
		for _, n := range []int{0, 1, 6, 7, 4096, 65536, 1 << 20} {
			p := packet(uint16(n), bodyOf(n))
			cl.write(p)
			cl.expect(p)
		}
		p := packet(0xFFFF, []byte("max type"))
		cl.write(p)
		cl.expect(p)
	})

	t.Run("split across reads", func(t *testing.T) {
		cl := dial(t, addr)
		cl.handshake()
		p := cat(packet(10, bodyOf(100_000)), packet(11, []byte("tail")))
		for _, cut := range []int{1, 2, 3, 1, 50, 10_000, 1, 60_000, len(p)} {
			cut = min(cut, len(p))
			cl.write(p[:cut])
			p = p[cut:]
			time.Sleep(time.Millisecond)
		}
		cl.expect(cat(packet(10, bodyOf(100_000)), packet(11, []byte("tail"))))
	})

	t.Run("many in one write", func(t *testing.T) {
		cl := dial(t, addr)
		var all []byte
		all = append(all, binary.TagHandshake)
		var want []byte
		want = append(want, binary.TagHandshake)
		for i := range 500 {
			p := packet(uint16(i), bodyOf(i%64))
			all = append(all, p...)
			want = append(want, p...)
		}
		cl.write(all)
		cl.expect(want)
	})

	t.Run("bytewise", func(t *testing.T) {
		cl := dial(t, addr)
		in := cat([]byte{binary.TagHandshake}, packet(1, []byte("hello")), []byte{binary.TagHeartbeat}, packet(2, nil), packet(3, bodyOf(40)))
		cl.writeBytewise(in, 50*time.Microsecond)
		cl.expect(cat([]byte{binary.TagHandshake}, packet(1, []byte("hello")), []byte{binary.TagHeartbeat}, packet(2, nil), packet(3, bodyOf(40))))
	})
}

// TestFailures runs the bad inputs, written at once and one byte per write,
// and checks the close frame, the TCP close and the counted reason.
func TestFailures(t *testing.T) {
	srv, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{MaxBody: 1024})))
	cases := []struct {
		name   string
		in     []byte
		want   []byte // bytes from the server before it closes
		reason channel.Reason
	}{
		{"unknown tag", []byte{0xA1, 0x00}, []byte{0xA1, 0xA4, 0x02}, channel.ReasonDecodeError},
		{"unknown tag after a packet", cat([]byte{0xA1}, packet(1, []byte("ok")), []byte{0xA0, 0xA3}),
			cat([]byte{0xA1}, packet(1, []byte("ok")), []byte{0xA4, 0x02}), channel.ReasonDecodeError},
		{"second handshake byte", []byte{0xA1, 0xA1}, []byte{0xA1, 0xA4, 0x02}, channel.ReasonDecodeError},
		{"packet over MaxBody", cat([]byte{0xA1}, packet(1, bodyOf(1025))), []byte{0xA1, 0xA4, 0x03}, channel.ReasonTooBig},
		{"header announcing 4 GiB", []byte{0xA1, 0xA3, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF}, []byte{0xA1, 0xA4, 0x03}, channel.ReasonTooBig},
		{"packet of exactly MaxBody, then close", cat([]byte{0xA1}, packet(1, bodyOf(1024)), []byte{0xA4, 0x00}),
			cat([]byte{0xA1}, packet(1, bodyOf(1024))), channel.ReasonClosedByPeer},
		{"client close", []byte{0xA1, 0xA4, 0x00}, []byte{0xA1}, channel.ReasonClosedByPeer},
		{"nothing after the client's close", cat([]byte{0xA1, 0xA4, 0x01}, packet(1, []byte("late")), []byte{0xA2}),
			[]byte{0xA1}, channel.ReasonClosedByPeer},
	}
	for _, mode := range []string{"whole", "bytewise"} {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				before := srv.Stats().Closed
				cl := dial(t, addr)
				if mode == "whole" {
					cl.write(tc.in)
				} else {
					cl.writeBytewise(tc.in, 20*time.Microsecond)
				}
				cl.expectClosed(tc.want)
				waitReason(t, srv, before, tc.reason)
			})
		}
	}
}

// TestWrongFirstByte: a server fixed to the binary codec closes a connection
// that does not start with the handshake byte.
func TestWrongFirstByte(t *testing.T) {
	srv, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{})))
	for _, first := range [][]byte{[]byte("GET / HTTP/1.1\r\n\r\n"), {0xA3, 0, 1, 0, 0, 0, 0}, {0x00}} {
		before := srv.Stats().Closed
		cl := dial(t, addr)
		cl.write(first)
		_ = cl.c.SetDeadline(time.Now().Add(ioTimeout))
		got, err := io.ReadAll(cl.c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("first bytes %q: not closed: %v", first, err)
		}
		if bytes.Contains(got, []byte{binary.TagHandshake}) {
			t.Fatalf("first bytes %q: server answered %x", first, got)
		}
		waitReason(t, srv, before, channel.ReasonHandshakeFailed)
	}
}

// TestShutdownFarewell: Shutdown sends the going-away close frame to an open
// connection, and closes one still before its handshake without a frame.
func TestShutdownFarewell(t *testing.T) {
	srv, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{})))
	open := dial(t, addr)
	open.handshake()
	early := dial(t, addr)
	waitFor := time.Now().Add(2 * time.Second)
	for srv.Count(tio.All()) != 2 && time.Now().Before(waitFor) {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	open.expectClosed([]byte{binary.TagClose, binary.CloseGoingAway})
	early.expectClosed(nil)
	if n := srv.Stats().Closed[channel.ReasonServerShutdown]; n != 2 {
		t.Fatalf("%d closes counted as server_shutdown, want 2", n)
	}
}

// TestAppClose: a handler's Close sends the normal close frame after the
// replies queued before it.
func TestAppClose(t *testing.T) {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(p)
		if p.Type == 99 {
			ch.Close(channel.ReasonClosedByApp)
		}
	}))
	srv := tio.NewServer("127.0.0.1:0", mux, tio.WithLogger(slog.New(slog.DiscardHandler)), tio.WithCodec(binary.New(binary.Config{})))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	cl := dial(t, srv.Addr().String())
	cl.write(cat([]byte{binary.TagHandshake}, packet(1, []byte("a")), packet(99, []byte("bye")), packet(2, []byte("late"))))
	cl.expectClosed(cat([]byte{binary.TagHandshake}, packet(1, []byte("a")), packet(99, []byte("bye")), []byte{binary.TagClose, binary.CloseNormal}))
}

// Requests and replies (version 2) carry their id both ways: a request
// decodes with its ID, a reply with Reply set, and encoding gives back the
// same bytes. An id of 0 is a protocol error.
func TestRequestsAndReplies(t *testing.T) {
	cd := binary.New(binary.Config{})
	for _, p := range []codec.Packet{
		{Type: 7, ID: 42, Body: []byte("req")},
		{Type: 7, ID: 42, Reply: true, Body: []byte("rep")},
		{Type: 0xFFFF, ID: 0xFFFFFFFF, Body: nil},
	} {
		wire, err := cd.Encode(nil, &p)
		if err != nil {
			t.Fatal(err)
		}
		tag := binary.TagRequest
		if p.Reply {
			tag = binary.TagReply
		}
		if wire[0] != tag || len(wire) != binary.IDHeaderSize+len(p.Body) {
			t.Fatalf("%+v encodes as % x", p, wire)
		}
		in := append([]byte{binary.TagHandshake}, wire...)
		r := codectest.Decode(t, cd.NewDecoder(), in, func() int { return 1 }, nil)
		want := codectest.Packet{Type: p.Type, Body: string(p.Body), ID: p.ID, Reply: p.Reply}
		if len(r.Packets) != 1 || r.Packets[0] != want {
			t.Fatalf("%+v decodes byte by byte as %+v", p, r.Packets)
		}
	}
	if _, err := cd.Encode(nil, &codec.Packet{Type: 1, Reply: true}); !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("a reply without an id: %v", err)
	}
	_, addr := startServer(t, tio.WithCodec(binary.New(binary.Config{})))
	cl := dial(t, addr)
	cl.handshake()
	req, _ := cd.Encode(nil, &codec.Packet{Type: 3, ID: 9, Body: []byte("x")})
	cl.write(req)
	cl.expect(req) // the echo keeps the id
	cl.write([]byte{binary.TagRequest, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0})
	cl.expect([]byte{binary.TagClose, binary.CloseProtocol})
}

// The client side opens the session and waits for the server's answer; it
// never answers heartbeats (a server answering a client that answered would
// be a ping-pong).
func TestClientRole(t *testing.T) {
	cd := binary.New(binary.Config{Client: true})
	d := cd.NewDecoder()
	var c codectest.Conn
	if err := d.(codec.Opener).Open(&c); err != nil || string(c.Written) != "\xa1" {
		t.Fatalf("Open wrote % x, %v", c.Written, err)
	}
	c.Written = nil
	var p codec.Packet
	if n, ok, err := d.Decode(&c, []byte{binary.TagHandshake, binary.TagHeartbeat}, &p); n != 1 || ok || err != nil || c.Readies != 1 {
		t.Fatalf("the server's answer: %d %v %v, %d readies", n, ok, err, c.Readies)
	}
	if n, _, err := d.Decode(&c, []byte{binary.TagHeartbeat}, &p); n != 1 || err != nil || len(c.Written) != 0 || c.Controls != 1 {
		t.Fatalf("a heartbeat from the server: %d %v, wrote % x", n, err, c.Written)
	}
	bad := cd.NewDecoder()
	if _, _, err := bad.Decode(&c, []byte{0x33}, &p); !errors.Is(err, codec.ErrHandshake) {
		t.Fatalf("a wrong answer: %v", err)
	}
}
