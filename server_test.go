package tio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

func dialWS(t testing.TB, srv *tio.Server, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+path, nil)
	if err != nil {
		t.Fatalf("dial ws: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

// Several servers run in one process, each with its own handler, state and
// port, and each shuts down on its own.
func TestManyServersInOneProcess(t *testing.T) {
	var servers []*tio.Server
	for i := range 3 {
		mux := handler.NewMux()
		mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
			_ = ch.Send(&codec.Packet{Type: p.Type, Body: fmt.Appendf(nil, "s%d:%s", i, p.Body)})
		}))
		srv := tio.NewServer("127.0.0.1:0", mux)
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve() }()
		tiotest.Eventually(t, "server listening", func() bool { return srv.Addr() != nil })
		servers = append(servers, srv)
		t.Cleanup(func() {
			select {
			case err := <-errc:
				if !errors.Is(err, tio.ErrServerClosed) {
					t.Errorf("Serve returned %v, want ErrServerClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Serve did not return after Shutdown")
			}
		})
	}
	for i, srv := range servers {
		c := tiotest.DialBinary(t, srv)
		c.Send(7, []byte("hi"))
		if got := c.Recv(); string(got.Body) != fmt.Sprintf("s%d:hi", i) || got.Type != 7 {
			t.Fatalf("server %d answered %d %q", i, got.Type, got.Body)
		}
		if n := srv.Count(tio.All()); n != 1 {
			t.Fatalf("server %d counts %d connections, want 1", i, n)
		}
	}
	for _, srv := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		cancel()
	}
}

// Start on a busy address fails with the bind error, not a hang.
func TestStartOnBusyAddress(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	other := tio.NewServer(srv.Addr().String(), echoMux())
	done := make(chan error, 1)
	go func() { done <- other.Start() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("second server on the same address started")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start hung on a busy address")
	}
}

// Sends from many goroutines at once are all delivered, each goroutine's in
// order, and the channel's counters add up.
func TestConcurrentSendsAndStats(t *testing.T) {
	const senders, each = 8, 200
	var got atomic.Pointer[channel.Channel]
	mux := handler.NewMux()
	srv := tiotest.NewServer(t, mux, tio.WithOnConnect(func(ch *channel.Channel) { got.Store(ch) }))
	c := tiotest.DialBinary(t, srv)
	tiotest.Eventually(t, "connect hook", func() bool { return got.Load() != nil })
	ch := got.Load()

	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := ch.Send(&codec.Packet{Type: codec.Type(g), Body: fmt.Appendf(nil, "%d", i)}); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for range senders * each {
		p := c.Recv()
		if want := fmt.Sprint(next[p.Type]); string(p.Body) != want {
			t.Fatalf("sender %d: got %q, want %q", p.Type, p.Body, want)
		}
		next[p.Type]++
	}
	wg.Wait()
	st := ch.Stats()
	if st.PacketsOut != senders*each {
		t.Errorf("PacketsOut = %d, want %d", st.PacketsOut, senders*each)
	}
	// handshake reply (1 byte) + the packets
	if want := uint64(1 + senders*each*tbin.HeaderSize); st.BytesOut < want {
		t.Errorf("BytesOut = %d, want at least %d", st.BytesOut, want)
	}
	if st.BytesIn != 1 || st.LastSent.IsZero() || st.LastReceived.IsZero() || st.Created.IsZero() {
		t.Errorf("stats = %+v", st)
	}
}

// A closed channel refuses sends with ErrClosed, never a panic, and records
// who closed it.
func TestClosedChannelRefusesSend(t *testing.T) {
	var got atomic.Pointer[channel.Channel]
	closed := make(chan channel.Reason, 1)
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithOnConnect(func(ch *channel.Channel) { got.Store(ch) }),
		tio.WithOnClose(func(_ *channel.Channel, r channel.Reason, _ error) { closed <- r }))
	c := tiotest.DialBinary(t, srv)
	tiotest.Eventually(t, "connect hook", func() bool { return got.Load() != nil })
	c.Close()
	select {
	case r := <-closed:
		if r != channel.ReasonClosedByPeer {
			t.Fatalf("reason %v, want closed_by_peer", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close hook not called")
	}
	ch := got.Load()
	if err := ch.Send(&codec.Packet{Type: 1}); !errors.Is(err, channel.ErrClosed) {
		t.Fatalf("Send on closed channel = %v, want ErrClosed", err)
	}
	if err := ch.SendWait(context.Background(), &codec.Packet{Type: 1}); !errors.Is(err, channel.ErrClosed) {
		t.Fatalf("SendWait on closed channel = %v, want ErrClosed", err)
	}
	ch.Close(channel.ReasonClosedByApp) // no effect, no panic
	if r, _ := ch.Reason(); r != channel.ReasonClosedByPeer {
		t.Fatalf("reason changed to %v", r)
	}
	tiotest.Eventually(t, "close counted", func() bool { return srv.Stats().Closed[channel.ReasonClosedByPeer] == 1 })
}

// Close from another goroutine says goodbye in the codec's words: WebSocket
// close 1000, the binary protocol's close frame, after queued packets.
func TestCloseFromAnyGoroutine(t *testing.T) {
	mux := handler.NewMux()
	mux.HandleFunc(1, func(ch *channel.Channel, p *codec.Packet) { // on the pool
		_ = ch.Send(p)
		go ch.Close(channel.ReasonClosedByApp)
	})
	mux.HandleFunc(tws.TypeText, func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(p)
		go ch.Close(channel.ReasonClosedByApp)
	})
	srv := tiotest.NewServer(t, mux)

	bc := tiotest.DialBinary(t, srv)
	bc.Send(1, []byte("last"))
	if p := bc.Recv(); string(p.Body) != "last" {
		t.Fatalf("got %q", p.Body)
	}
	if rest := tiotest.ExpectClosed(t, bc); !bytes.Equal(rest, []byte{tbin.TagClose, tbin.CloseNormal}) {
		t.Fatalf("binary farewell % x, want a4 00", rest)
	}

	wc := dialWS(t, srv, "/")
	_ = wc.WriteMessage(websocket.TextMessage, []byte("bye"))
	if _, m, err := wc.ReadMessage(); err != nil || string(m) != "bye" {
		t.Fatalf("echo %q %v", m, err)
	}
	_, _, err := wc.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("got %v, want close 1000", err)
	}
	tiotest.Eventually(t, "closes counted", func() bool { return srv.Stats().Closed[channel.ReasonClosedByApp] == 2 })
}

// Handlers on the pool see each connection's packets in arrival order, even
// when they take varying time and inline handlers are mixed in.
func TestPoolKeepsPerConnectionOrder(t *testing.T) {
	mux := handler.NewMux()
	mux.HandleFunc(1, func(ch *channel.Channel, p *codec.Packet) {
		if p.Body[0]%7 == 0 {
			time.Sleep(time.Millisecond)
		}
		_ = ch.Send(p)
	})
	mux.Handle(2, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux, tio.WithWorkers(4, 4096))

	const conns, n = 4, 300
	var wg sync.WaitGroup
	for range conns {
		c := tiotest.DialBinary(t, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var all []byte
			for i := range n {
				typ := codec.Type(1)
				if i%3 == 0 {
					typ = 2
				}
				all = append(all, tiotest.Packet(typ, []byte{byte(i), byte(i >> 8)})...)
			}
			c.SendRaw(all) // many packets in one write
			for i := range n {
				p := c.Recv()
				if got := int(p.Body[0]) | int(p.Body[1])<<8; got != i {
					t.Errorf("packet %d arrived as %d", got, i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A panicking handler closes only its own connection (WebSocket 1011) and is
// counted; other connections keep working.
func TestPanicClosesOnlyItsConnection(t *testing.T) {
	mux := handler.NewMux()
	mux.Handle(9, handler.InlineFunc(func(*channel.Channel, *codec.Packet) { panic("boom") }))
	mux.HandleFunc(10, func(*channel.Channel, *codec.Packet) { panic("pool boom") })
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux)

	other := tiotest.DialBinary(t, srv)
	bad := dialWS(t, srv, "/")
	_ = bad.WriteMessage(websocket.BinaryMessage, []byte{9, 'x'})
	if _, _, err := bad.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseInternalServerErr) {
		t.Fatalf("got %v, want close 1011", err)
	}
	bad2 := tiotest.DialBinary(t, srv)
	bad2.Send(10, nil)
	if rest := tiotest.ExpectClosed(t, bad2); !bytes.Equal(rest, []byte{tbin.TagClose, tbin.CloseInternal}) {
		t.Fatalf("farewell % x, want a4 05", rest)
	}
	other.Send(3, []byte("still here"))
	if p := other.Recv(); string(p.Body) != "still here" {
		t.Fatalf("got %q", p.Body)
	}
	tiotest.Eventually(t, "panics counted", func() bool {
		st := srv.Stats()
		return st.HandlerPanics == 2 && st.Closed[channel.ReasonHandlerPanic] == 2
	})
	if h := srv.Stats().Traffic.Handled; h != 1 { // only the echo returned
		t.Fatalf("handled = %d, want 1: a panic is not a handled packet", h)
	}
}

// Packets of a type with no handler and no fallback are dropped and counted.
func TestUnknownTypeDropped(t *testing.T) {
	mux := handler.NewMux()
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux)
	c := tiotest.DialBinary(t, srv)
	c.Send(2, []byte("nobody"))
	c.Send(1, []byte("somebody"))
	if p := c.Recv(); string(p.Body) != "somebody" {
		t.Fatalf("got %q", p.Body)
	}
	if d := srv.Stats().DroppedPackets; d != 1 {
		t.Fatalf("dropped = %d, want 1", d)
	}
}

// Middleware wraps handlers registered after Use, outermost first.
func TestMiddlewareOrder(t *testing.T) {
	tag := func(s string) handler.Middleware {
		return func(next handler.Handler) handler.Handler {
			return handler.HandlerFunc(func(ch *channel.Channel, p *codec.Packet) {
				p.Body = append(append([]byte(nil), p.Body...), s...)
				next.ServePacket(ch, p)
			})
		}
	}
	mux := handler.NewMux()
	mux.Use(tag("a"), tag("b"))
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux)
	c := tiotest.DialBinary(t, srv)
	c.Send(1, []byte(">"))
	if p := c.Recv(); string(p.Body) != ">ab" {
		t.Fatalf("got %q, want >ab", p.Body)
	}
}

// A worker queue that is full closes the connection that overflowed it with
// ReasonOverloaded; the event loop never waits, so others keep echoing.
func TestOverloadedPoolClosesNotBlocks(t *testing.T) {
	release := make(chan struct{})
	mux := handler.NewMux()
	mux.HandleFunc(1, func(*channel.Channel, *codec.Packet) { <-release })
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := tiotest.NewServer(t, mux, tio.WithWorkers(1, 2))
	defer close(release)

	slow := tiotest.DialBinary(t, srv)
	var burst []byte
	for range 10 {
		burst = append(burst, tiotest.Packet(1, nil)...)
	}
	slow.SendRaw(burst)
	tiotest.ExpectClosed(t, slow)
	fast := tiotest.DialBinary(t, srv)
	fast.Send(2, []byte("ok"))
	if p := fast.Recv(); string(p.Body) != "ok" {
		t.Fatalf("got %q", p.Body)
	}
	tiotest.Eventually(t, "overload counted", func() bool { return srv.Stats().Closed[channel.ReasonOverloaded] == 1 })
}

// A server fixed to one codec does not sniff: a WebSocket request sent to a
// binary-only server is refused. Garbage is refused by a sniffing server.
func TestFixedCodecAndUnknownProtocol(t *testing.T) {
	bin := tiotest.NewServer(t, echoMux(), tio.WithCodec(tbin.New(tbin.Config{})))
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+bin.Addr().String()+"/", nil)
	if err == nil {
		t.Fatal("WebSocket upgrade succeeded on a binary-only server")
	}
	_ = resp
	tiotest.Eventually(t, "handshake failure counted", func() bool { return bin.Stats().Closed[channel.ReasonHandshakeFailed] == 1 })

	sniff := tiotest.NewServer(t, echoMux())
	c := tiotest.Dial(t, sniff)
	_, _ = c.Write([]byte("\x00\x01garbage"))
	tiotest.ExpectClosed(t, c)
	tiotest.Eventually(t, "unknown protocol counted", func() bool { return sniff.Stats().Closed[channel.ReasonUnknownProtocol] == 1 })
}

// The connect hook runs after the protocol handshake, with the upgrade
// request available to bind the connection (here from /ws/{key}).
func TestConnectHookSeesHandshake(t *testing.T) {
	type keyT struct{}
	keys := make(chan string, 1)
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithCodecs(tws.New(tws.Config{
			OnHandshake: func(c codec.Conn, r *tws.Request) error {
				key, ok := strings.CutPrefix(r.Path, "/ws/")
				if !ok {
					return tws.Reject(http.StatusNotFound, "no such endpoint")
				}
				c.SetValue(keyT{}, key)
				return nil
			},
		})),
		tio.WithOnConnect(func(ch *channel.Channel) { keys <- ch.Value(keyT{}).(string) }))
	dialWS(t, srv, "/ws/alice")
	if k := <-keys; k != "alice" {
		t.Fatalf("key %q", k)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/other", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("got %v %v, want 404", resp, err)
	}
}

// SendWait returns once the loop has written the bytes, and fails with
// ErrClosed on a channel that closed.
func TestSendWait(t *testing.T) {
	var got atomic.Pointer[channel.Channel]
	srv := tiotest.NewServer(t, echoMux(), tio.WithOnConnect(func(ch *channel.Channel) { got.Store(ch) }))
	c := tiotest.DialBinary(t, srv)
	tiotest.Eventually(t, "connect hook", func() bool { return got.Load() != nil })
	ch := got.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ch.SendWait(ctx, &codec.Packet{Type: 4, Body: []byte("sync")}); err != nil {
		t.Fatalf("SendWait: %v", err)
	}
	if ch.Stats().BytesOut < 1+tbin.HeaderSize+4 {
		t.Fatalf("SendWait returned before the bytes were written: %+v", ch.Stats())
	}
	if p := c.Recv(); string(p.Body) != "sync" {
		t.Fatalf("got %q", p.Body)
	}
	c.Close()
	tiotest.Eventually(t, "closed", func() bool { return ch.Closed() })
	if err := ch.SendWait(ctx, &codec.Packet{Type: 4}); !errors.Is(err, channel.ErrClosed) {
		t.Fatalf("SendWait on a closed channel = %v", err)
	}
}

// The server's aggregate traffic counts what its channels count.
func TestServerTraffic(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	c := tiotest.DialBinary(t, srv)
	for i := range 10 {
		c.Send(1, []byte{byte(i)})
		c.Recv()
	}
	c.SendRaw([]byte{0xEE}) // an unknown tag: a decode error
	tiotest.ExpectClosed(t, c)
	tiotest.Eventually(t, "traffic counted", func() bool {
		tr := srv.Stats().Traffic
		return tr.PacketsIn == 10 && tr.PacketsOut == 10 && tr.Handled == 10 && tr.DecodeErrors == 1 &&
			tr.BytesIn == 1+10*(tbin.HeaderSize+1)+1 && tr.BytesOut >= 1+10*(tbin.HeaderSize+1) && tr.Reads >= 2
	})
	if tr := srv.Stats().Traffic; tr.BytesPerRead() <= 0 || tr.PacketsPerRead() <= 0 {
		t.Fatalf("derived ratios %v %v", tr.BytesPerRead(), tr.PacketsPerRead())
	}
}
