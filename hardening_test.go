package tio_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/stats"
	"github.com/tiogo/tio/tiotest"
)

// maskedFrame returns a final client frame with the given opcode and payload.
func maskedFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var f []byte
	switch n := len(payload); {
	case n < 126:
		f = append(f, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, b0, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	f = append(f, mask[:]...)
	for i, c := range payload {
		f = append(f, c^mask[i&3])
	}
	return f
}

// upgradeRaw performs a WebSocket upgrade on a raw connection and reads the
// server's 101 response.
func upgradeRaw(t testing.TB, c net.Conn) {
	t.Helper()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp []byte
	buf := make([]byte, 1)
	for !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("reading the upgrade response: %v (%q)", err, resp)
		}
		resp = append(resp, buf[0])
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
		t.Fatalf("upgrade answered %q", resp)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// flood writes chunk to c until the server cuts the connection (a write
// fails) or the time is up, and reports whether it was cut.
func flood(c net.Conn, chunk []byte, limit time.Duration) bool {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(chunk); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // the server is not reading either: keep trying
			}
			return true
		}
	}
	return false
}

// A peer that makes the server answer (WebSocket pings, binary heartbeats
// answered by default) as fast as it can and never reads is cut as a
// slow consumer once the answers waiting for it pass the outbound limit:
// every byte queued for a peer counts, not only packets.
func TestAutomaticAnswersObeyTheOutboundLimit(t *testing.T) {
	const limit = 1 << 20
	// Memory the flood may cost the process: the limit, the socket buffers
	// are the kernel's, plus slack for the runtime and the test's own chunk.
	const bound = 48 << 20
	for _, tc := range []struct {
		name    string
		codec   codec.Codec
		connect func(net.Conn)
		chunk   []byte
	}{
		{"websocket pings", tws.New(tws.Config{}), func(c net.Conn) { upgradeRaw(t, c) },
			bytes.Repeat(maskedFrame(0x9, true, bytes.Repeat([]byte("p"), 125)), 512)},
		{"binary heartbeats", tbin.New(tbin.Config{}), func(c net.Conn) {
			_, _ = c.Write([]byte{tbin.TagHandshake})
		}, bytes.Repeat([]byte{tbin.TagHeartbeat}, 64<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tiotest.NewServer(t, echoMux(), tio.WithCodec(tc.codec), tio.WithLimits(tio.Limits{MaxOutbound: limit}))
			c := tiotest.Dial(t, srv)
			// Fewer answers fit in the kernel's buffers before the
			// server's queue grows: one byte answers one heartbeat, and
			// answering millions takes seconds under the race detector.
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
			tc.connect(c)
			runtime.GC()
			before := rssBytes(t)
			if !flood(c, tc.chunk, time.Minute) {
				t.Fatalf("a peer that never reads was not cut in a minute")
			}
			grown := rssBytes(t) - before
			t.Logf("RSS grew by %d KB", grown>>10)
			if grown > bound {
				t.Fatalf("RSS grew by %d MB, bound %d MB", grown>>20, bound>>20)
			}
			tiotest.Eventually(t, "closed as a slow consumer", func() bool {
				return srv.Stats().Closed[channel.ReasonSlowConsumer] == 1
			})
		})
	}
}

// One message as large as the largest the server accepts reaches a peer
// that reads, at default settings, although it is larger than the outbound
// limit: the limit bounds the backlog, not one packet. Sent whole and in
// 1,024 fragments.
func TestOneMessageLargerThanTheOutboundLimit(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	for _, size := range []int{4 << 20, 8 << 20, tws.DefaultMaxMessage} {
		for _, frags := range []int{1, 1024} {
			t.Run(fmt.Sprintf("%dMiB/%d", size>>20, frags), func(t *testing.T) {
				d := websocket.Dialer{WriteBufferSize: max(size/frags, 4096)}
				if frags == 1 {
					d.WriteBufferSize = size + 16
				}
				ws, _, err := d.Dial("ws://"+srv.Addr().String()+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer ws.Close()
				msg := make([]byte, size)
				_, _ = rand.Read(msg)
				msg[0] = 7 // the packet type, under the default mapping
				_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
				w, err := ws.NextWriter(websocket.BinaryMessage)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(msg); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
				op, got, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("echo of %d bytes: %v", size, err)
				}
				if op != websocket.BinaryMessage || !bytes.Equal(got, msg) {
					t.Fatalf("echo of %d bytes came back as %d bytes (opcode %d)", size, len(got), op)
				}
			})
		}
	}
	// A peer that closes right after a large message still gets the whole
	// echo, then the answer to its close: the close drains what is queued
	// (the answer is not refused for the backlog ahead of it).
	t.Run("then close", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		msg := bytes.Repeat([]byte{7}, tws.DefaultMaxMessage)
		_ = ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		if err := ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // let the backlog build up
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, got, err := ws.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo before the close: %d bytes, %v", len(got), err)
		}
		if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Fatalf("after the echo: %v, want the answer to our close", err)
		}
	})
	if n := srv.Stats().Closed[channel.ReasonSlowConsumer]; n != 0 {
		t.Fatalf("%d connections closed as slow consumers", n)
	}
}

// A server that closed thousands of connections itself (they wait in
// TIME_WAIT on its port) is stopped, and a new server binds the same port
// at once; without SO_REUSEADDR it cannot, and the error names the address.
func TestRestartBindsItsPortAtOnce(t *testing.T) {
	const conns = 2000
	run := func(addr string, opts ...tio.Option) (*tio.Server, error) {
		opts = append(opts, tio.WithOnConnect(func(ch *channel.Channel) { ch.Close(channel.ReasonClosedByApp) }))
		srv := tio.NewServer(addr, echoMux(), opts...)
		return srv, srv.Start()
	}
	// churn runs a server that closes conns connections itself, stops it,
	// and returns its address.
	churn := func() string {
		srv, err := run("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := srv.Addr().String()
		var wg sync.WaitGroup
		var closedByServer atomic.Int32
		sem := make(chan struct{}, 32)
		for i := range conns {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				_, _ = c.Write([]byte{tbin.TagHandshake})
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				var b [16]byte
				for {
					if _, err := c.Read(b[:]); err != nil {
						closedByServer.Add(1) // the server closed first: TIME_WAIT is on its side
						return
					}
				}
			}()
		}
		wg.Wait()
		if closedByServer.Load() != conns {
			t.Fatalf("%d of %d connections closed by the server", closedByServer.Load(), conns)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	// The control: without SO_REUSEADDR the port cannot be bound. Rarely,
	// under load, the kernel leaves no connection of the run in TIME_WAIT
	// and the control binds: the premise did not hold, so the run is
	// repeated (a few times at most) rather than the restart judged on it.
	var addr string
	for attempt := 1; ; attempt++ {
		addr = churn()
		ctl, err := run(addr, tio.WithReuseAddr(false))
		if errors.Is(err, syscall.EADDRINUSE) && strings.Contains(err.Error(), addr) {
			break
		}
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = ctl.Shutdown(ctx)
			cancel()
		}
		if attempt == 3 {
			t.Fatalf("without SO_REUSEADDR, Start = %v; want EADDRINUSE naming %s (is anything in TIME_WAIT?)", err, addr)
		}
		t.Logf("attempt %d: the control bound %s (%v): nothing in TIME_WAIT; again", attempt, addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	again, err := run(addr)
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	c := tiotest.DialBinary(t, again)
	tiotest.ExpectClosed(t, c)
	if err := again.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// A pooled handler that never returns does not hold up Shutdown for the
// other connections: they get their going-away close at once, with what
// was queued for them; Shutdown returns at its deadline and Serve returns.
func TestShutdownWithAStuckHandler(t *testing.T) {
	block := make(chan struct{})
	defer close(block) // let the stuck goroutine go when the test ends
	mux := handler.NewMux()
	mux.HandleFunc(1, func(*channel.Channel, *codec.Packet) { <-block })
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tio.NewServer("127.0.0.1:0", mux)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	tiotest.Eventually(t, "listening", func() bool { return srv.Addr() != nil })
	stuck := tiotest.DialBinary(t, srv)
	stuck.Send(1, nil)
	others := make([]*tiotest.BinaryConn, 8)
	for i := range others {
		others[i] = tiotest.DialBinary(t, srv)
		others[i].Send(2, []byte("hi"))
		others[i].Recv()
	}
	time.Sleep(20 * time.Millisecond) // the stuck handler is running
	for _, ch := range srv.Channels(tio.All()) {
		_ = ch.Send(&codec.Packet{Type: 3, Body: []byte("bye")})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	begin := time.Now()
	go func() { shut <- srv.Shutdown(ctx) }()
	for i, c := range others {
		if p := c.Recv(); string(p.Body) != "bye" {
			t.Fatalf("connection %d: %q before the close", i, p.Body)
		}
		if rest := tiotest.ExpectClosed(t, c); !bytes.Equal(rest, []byte{tbin.TagClose, tbin.CloseGoingAway}) {
			t.Fatalf("connection %d: farewell % x", i, rest)
		}
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("the other connections were closed after %v, behind the stuck handler", d)
	}
	if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline (a handler is stuck)", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("Shutdown returned after %v with a 2 s deadline", d)
	}
	select {
	case err := <-served:
		if !errors.Is(err, tio.ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	tiotest.ExpectClosed(t, stuck)
}

// One connection's pooled handler blocks for good; 64 other connections
// keep getting their replies (whatever workers they would have hashed to),
// and the stuck handler is counted and reported once, by packet type.
func TestAStuckHandlerStallsOnlyItsConnection(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	mux := handler.NewMux()
	mux.HandleFunc(9, func(*channel.Channel, *codec.Packet) { <-block })
	mux.HandleFunc(2, func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) })
	srv := tiotest.NewServer(t, mux, tio.WithWorkers(4, 16), tio.WithSlowHandler(100*time.Millisecond), tio.WithLogger(log))
	stuck := tiotest.DialBinary(t, srv)
	stuck.Send(9, nil)
	stuck.Send(2, []byte("after")) // waits behind its own stuck handler
	others := make([]*tiotest.BinaryConn, 64)
	for i := range others {
		others[i] = tiotest.DialBinary(t, srv)
	}
	for round := range 5 {
		for _, c := range others {
			c.Send(2, []byte("ping"))
		}
		for i, c := range others {
			if p := c.Recv(); string(p.Body) != "ping" {
				t.Fatalf("round %d, connection %d: %q", round, i, p.Body)
			}
		}
	}
	tiotest.Eventually(t, "the stuck handler reported", func() bool { return srv.Stats().SlowHandlers == 1 })
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	if !strings.Contains(text, "running long") || !strings.Contains(text, "type=9") {
		t.Fatalf("no warning naming type 9 in the log:\n%s", text)
	}
	time.Sleep(300 * time.Millisecond)
	if n := srv.Stats().SlowHandlers; n != 1 {
		t.Fatalf("SlowHandlers = %d, want the stuck handler counted once", n)
	}
	_ = stuck.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := stuck.Read(make([]byte, 1)); n != 0 {
		t.Fatal("the stuck connection's next packet ran before its stuck handler returned")
	}
}

// openFiles counts the process's open descriptors.
func openFiles(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Connections that open and close leave nothing behind for long: after
// 20,000 connect/close cycles the heap returns near where it was within a
// couple of seconds (the heartbeat wheel does not hold closed channels
// until their handshake deadline).
func TestChurnLeavesNoGarbage(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	addr := srv.Addr().String()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	cycle := func(n int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+w))}, Timeout: 5 * time.Second}
				for range n / 8 {
					c, err := d.Dial("tcp", addr)
					if err != nil {
						t.Error(err)
						return
					}
					_ = c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT on the client's side
					_ = c.Close()
				}
			}()
		}
		wg.Wait()
		tiotest.Eventually(t, "every connection closed", func() bool { return srv.Count(tio.All()) == 0 })
	}
	cycle(2000) // warm up pools and tables
	time.Sleep(100 * time.Millisecond)
	base := heap()
	goroutines, fds := runtime.NumGoroutine(), openFiles(t)
	cycle(20000)
	tiotest.Eventually(t, "goroutines and descriptors back to where they were", func() bool {
		return runtime.NumGoroutine() <= goroutines+2 && openFiles(t) <= fds+2
	})
	var after uint64
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if after = heap(); after < base+2<<20 || time.Now().After(end) {
			break
		}
	}
	t.Logf("heap %d KB before, %d KB after 20,000 cycles", base>>10, after>>10)
	if after > base+2<<20 {
		t.Fatalf("heap grew by %d KB after 20,000 connect/close cycles and did not come back", (after-base)>>10)
	}
	if sz := srv.Stats().Bindings; sz != (stats.Bindings{}) {
		t.Fatalf("indexes after churn: %+v", sz)
	}
}

// A packet or message that has begun must complete within the packet
// timeout, however the peer trickles it: one byte of a binary packet every
// 200 ms, or a fragmented WebSocket message kept open with pings, is closed
// as packet_timeout (WebSocket 1008, binary close code 4).
func TestPacketMustCompleteInTime(t *testing.T) {
	const timeout = 600 * time.Millisecond
	srv := tiotest.NewServer(t, echoMux(), tio.WithPacketTimeout(timeout))
	t.Run("binary", func(t *testing.T) {
		c := tiotest.DialBinary(t, srv)
		c.Send(1, []byte("whole")) // a whole packet is fine
		c.Recv()
		hdr := tiotest.Packet(1, make([]byte, 100))[:tbin.HeaderSize+1]
		c.SendRaw(hdr)
		begin := time.Now()
		got, closed := trickle(c, []byte{0}, 200*time.Millisecond, 5*time.Second, func(got []byte) bool { return len(got) > 0 })
		if !closed {
			t.Fatal("a packet trickled a byte at a time for 5 s was not cut")
		}
		if d := time.Since(begin); d < timeout {
			t.Fatalf("cut after %v, before the timeout", d)
		}
		if !bytes.Equal(got, []byte{tbin.TagClose, tbin.ClosePolicy}) {
			t.Fatalf("farewell % x, want a4 04", got)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c := tiotest.Dial(t, srv)
		upgradeRaw(t, c)
		_, _ = c.Write(maskedFrame(0x2, false, []byte{7, 'a'})) // a message begins
		got, closed := trickle(c, maskedFrame(0x9, true, nil), 200*time.Millisecond, 5*time.Second, func(got []byte) bool {
			return bytes.Contains(got, []byte{0x88}) // a close frame has begun
		})
		if !closed {
			t.Fatal("a fragmented message kept open with pings for 5 s was not cut")
		}
		want := append([]byte{0x88, 2 + byte(len("packet took too long")), 0x03, 0xF0}, "packet took too long"...)
		if !bytes.HasSuffix(got, want) { // pongs, then close 1008 with its reason
			t.Fatalf("no close 1008 at the end of % x", got)
		}
	})
	tiotest.Eventually(t, "both counted", func() bool { return srv.Stats().Closed[channel.ReasonPacketTimeout] == 2 })
}

// trickle writes b every interval, up to limit, while it reads what the
// server sends, and stops writing once done says what it read is the end
// (so that no write of ours meets a closed socket, whose reset would
// discard what the server sent last). It returns what was read and whether
// the server closed.
func trickle(c net.Conn, b []byte, interval, limit time.Duration, done func(got []byte) bool) (got []byte, closed bool) {
	var mu sync.Mutex
	var buf []byte
	read := make(chan error, 1)
	_ = c.SetReadDeadline(time.Now().Add(limit + 2*time.Second))
	go func() {
		chunk := make([]byte, 4096)
		for {
			n, err := c.Read(chunk)
			mu.Lock()
			buf = append(buf, chunk[:n]...)
			mu.Unlock()
			if err != nil {
				read <- err
				return
			}
		}
	}()
	result := func(err error) ([]byte, bool) {
		mu.Lock()
		defer mu.Unlock()
		return buf, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.After(limit)
	for {
		select {
		case err := <-read:
			return result(err)
		case <-end:
			return result(<-read)
		case <-tick.C:
			mu.Lock()
			stop := done(buf)
			mu.Unlock()
			if !stop {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write(b)
			}
		}
	}
}

// A handler panic on a connection that is already closing is counted as a
// panic but leaves the first reason in place; the counters add up:
// HandlerPanics = Closed[handler_panic] + PanicsWhileClosing.
func TestPanicCountersAddUp(t *testing.T) {
	mux := handler.NewMux()
	mux.HandleFunc(1, func(ch *channel.Channel, p *codec.Packet) { panic("plain") })
	mux.HandleFunc(2, func(ch *channel.Channel, p *codec.Packet) {
		ch.Close(channel.ReasonClosedByApp)
		panic("while closing")
	})
	srv := tiotest.NewServer(t, mux, tio.WithLogger(slog.New(slog.DiscardHandler)))
	a, b := tiotest.DialBinary(t, srv), tiotest.DialBinary(t, srv)
	a.Send(1, nil)
	b.Send(2, nil)
	tiotest.ExpectClosed(t, a)
	tiotest.ExpectClosed(t, b)
	tiotest.Eventually(t, "both closes counted", func() bool { return srv.Count(tio.All()) == 0 })
	// The second panic comes after its connection began to close: the
	// connection may be gone before the pool's worker has counted it.
	tiotest.Eventually(t, "both panics counted", func() bool { return srv.Stats().HandlerPanics >= 2 })
	s := srv.Stats()
	if s.HandlerPanics != 2 || s.PanicsWhileClosing != 1 || s.Closed[channel.ReasonHandlerPanic] != 1 || s.Closed[channel.ReasonClosedByApp] != 1 {
		t.Fatalf("panics %d, while closing %d, closed handler_panic %d, closed_by_app %d; want 2, 1, 1, 1",
			s.HandlerPanics, s.PanicsWhileClosing, s.Closed[channel.ReasonHandlerPanic], s.Closed[channel.ReasonClosedByApp])
	}
}

// A close asked for by another goroutine while the loop is in its pass
// over the connection (here: a pooled handler closing at once, as the
// loop finishes the pass that dispatched to it) is carried out then, not
// when the peer next sends: the peer here waits for it in silence.
func TestCloseDuringThePassIsNotLost(t *testing.T) {
	mux := handler.NewMux()
	mux.HandleFunc(1, func(ch *channel.Channel, p *codec.Packet) { ch.Close(channel.ReasonClosedByApp) })
	srv := tiotest.NewServer(t, mux, tio.WithLogger(slog.New(slog.DiscardHandler)))
	const rounds = 300
	for i := range rounds {
		c := tiotest.DialBinary(t, srv)
		c.Send(1, nil)
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("round %d: not closed: %v", i, err)
		}
		c.Close()
	}
}
