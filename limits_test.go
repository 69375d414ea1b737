package tio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	tws "github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// Connections past the total or the per-IP limit are refused at accept and
// counted; closing one makes room again.
func TestConnectionLimits(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithLimits(tio.Limits{MaxConnections: 3, MaxConnectionsPerIP: 2}))
	handshake := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{tbin.TagHandshake}); err != nil {
			return err
		}
		b := make([]byte, 1)
		_, err := c.Read(b)
		return err
	}
	a1, a2 := tiotest.DialFrom(t, srv, "127.0.0.1"), tiotest.DialFrom(t, srv, "127.0.0.1")
	for _, c := range []net.Conn{a1, a2} {
		if err := handshake(c); err != nil {
			t.Fatalf("connection within limits refused: %v", err)
		}
	}
	if err := handshake(tiotest.DialFrom(t, srv, "127.0.0.1")); err == nil {
		t.Fatal("third connection from one IP accepted with a per-IP limit of 2")
	}
	b1 := tiotest.DialFrom(t, srv, "127.0.0.2")
	if err := handshake(b1); err != nil {
		t.Fatalf("connection from another IP refused: %v", err)
	}
	if err := handshake(tiotest.DialFrom(t, srv, "127.0.0.3")); err == nil {
		t.Fatal("fourth connection accepted with a total limit of 3")
	}
	tiotest.Eventually(t, "refusals counted", func() bool { return srv.Stats().Closed[channel.ReasonTooManyConnections] == 2 })
	a1.Close()
	tiotest.Eventually(t, "room again", func() bool { return srv.Count(tio.All()) == 2 })
	if err := handshake(tiotest.DialFrom(t, srv, "127.0.0.1")); err != nil {
		t.Fatalf("connection refused after another closed: %v", err)
	}
}

// Limits configure the default codecs: a big upgrade request gets 431, a
// big WebSocket message 1009, a big binary packet the too-big close code.
func TestMessageLimitsAsOptions(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithLimits(tio.Limits{MaxHandshake: 1024, MaxMessage: 1000, MaxPacket: 500}))
	hdr := map[string][]string{"X-Pad": {strings.Repeat("p", 2000)}}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr().String()+"/", hdr); err == nil || resp == nil || resp.StatusCode != 431 {
		t.Fatalf("big upgrade: %v %v, want 431", resp, err)
	}
	ws := dialWS(t, srv, "/")
	_ = ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 1000))
	if _, m, err := ws.ReadMessage(); err != nil || len(m) != 1000 {
		t.Fatalf("message at the limit: %d bytes, %v", len(m), err)
	}
	_ = ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 1001))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("message over the limit: %v, want 1009", err)
	}
	bc := tiotest.DialBinary(t, srv)
	bc.Send(1, make([]byte, 501))
	if rest := tiotest.ExpectClosed(t, bc); !bytes.Equal(rest, []byte{tbin.TagClose, tbin.CloseTooBig}) {
		t.Fatalf("big packet farewell % x", rest)
	}
	tiotest.Eventually(t, "too big counted", func() bool { return srv.Stats().Closed[channel.ReasonTooBig] == 3 })
}

// The rate limit closes a flooding connection, or drops its excess packets
// and counts them.
func TestRateLimit(t *testing.T) {
	flood := func(c *tiotest.BinaryConn, n int) {
		var b []byte
		for i := range n {
			b = append(b, tiotest.Packet(1, []byte{byte(i)})...)
		}
		c.SendRaw(b)
	}
	closing := tiotest.NewServer(t, echoMux(), tio.WithRateLimit(10, 5, false))
	c := tiotest.DialBinary(t, closing)
	flood(c, 50)
	for range 5 { // the burst is served
		c.Recv()
	}
	tiotest.ExpectClosed(t, c)
	tiotest.Eventually(t, "rate close counted", func() bool { return closing.Stats().Closed[channel.ReasonRateLimited] == 1 })

	dropping := tiotest.NewServer(t, echoMux(), tio.WithRateLimit(10, 5, true))
	d := tiotest.DialBinary(t, dropping)
	flood(d, 50)
	for range 5 {
		d.Recv()
	}
	tiotest.Eventually(t, "drops counted", func() bool { return dropping.Stats().RateLimited == 45 })
	time.Sleep(150 * time.Millisecond) // refills at least one token
	d.Send(2, []byte("later"))
	if p := d.Recv(); string(p.Body) != "later" {
		t.Fatalf("got %q after the bucket refilled", p.Body)
	}
}

func rssBytes(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// A client that never reads while the server pushes 100 MB at it is closed
// as a slow consumer once 4 MiB wait for it; the process's memory stays
// bounded and another connection keeps its latency throughout.
func TestSlowConsumerIsCut(t *testing.T) {
	const maxOutbound = 4 << 20
	var slowCh atomic.Pointer[channel.Channel]
	var seq atomic.Int32
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithLimits(tio.Limits{MaxOutbound: maxOutbound}),
		tio.WithOnConnect(func(ch *channel.Channel) {
			if seq.Add(1) == 1 {
				slowCh.Store(ch)
			}
		}))
	slow := tiotest.DialBinary(t, srv) // never reads from here on
	tiotest.Eventually(t, "slow client connected", func() bool { return slowCh.Load() != nil })
	other := tiotest.DialBinary(t, srv)

	runtime.GC()
	before := rssBytes(t)
	chunk := &codec.Packet{Type: 1, Body: make([]byte, 64<<10)}
	pushed, sendErr := 0, error(nil)
	var worst time.Duration
	for pushed < 100<<20 {
		if sendErr = slowCh.Load().Send(chunk); sendErr != nil {
			break
		}
		pushed += len(chunk.Body)
		if pushed%(2<<20) == 0 { // the other connection's round trip meanwhile
			begin := time.Now()
			other.Send(2, []byte("ping"))
			other.Recv()
			worst = max(worst, time.Since(begin))
		}
	}
	if !errors.Is(sendErr, channel.ErrSlowConsumer) && !errors.Is(sendErr, channel.ErrClosed) {
		t.Fatalf("pushed %d MB without being stopped (err %v)", pushed>>20, sendErr)
	}
	grown := rssBytes(t) - before
	t.Logf("stopped after %d MB; RSS grew %d MB; worst round trip of the other connection %v", pushed>>20, grown>>20, worst)
	// The bound: the high-water mark, the kernel's buffers are not ours,
	// plus slack for the runtime (pooled buffers, GC headroom).
	if grown > 64<<20 {
		t.Fatalf("RSS grew by %d MB while pushing to a slow consumer (bound 64 MB)", grown>>20)
	}
	if worst > 500*time.Millisecond {
		t.Fatalf("the other connection waited %v for an echo", worst)
	}
	tiotest.Eventually(t, "slow consumer closed and counted", func() bool {
		r, _ := slowCh.Load().Reason()
		return r == channel.ReasonSlowConsumer && srv.Stats().Closed[channel.ReasonSlowConsumer] == 1
	})
	_ = slow
}

// Shutdown sends WebSocket close 1001 and the binary going-away frame after
// every message queued before it — including from handlers still running on
// the pool — and then Serve returns.
func TestGracefulShutdownDeliversQueued(t *testing.T) {
	const queued = 200
	body := bytes.Repeat([]byte("x"), 16<<10) // 3.2 MB per client: more than socket buffers hold
	var chans sync.Map
	release := make(chan struct{})
	mux := handler.NewMux()
	mux.HandleFunc(5, func(ch *channel.Channel, p *codec.Packet) { // on the pool, in flight at shutdown
		<-release
		_ = ch.Send(&codec.Packet{Type: 5, Body: []byte("late")})
	})
	srv := tio.NewServer("127.0.0.1:0", mux, tio.WithOnConnect(func(ch *channel.Channel) { chans.Store(ch.ID(), ch) }))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	bc := tiotest.DialBinary(t, srv)
	ws := dialWS(t, srv, "/")
	tiotest.Eventually(t, "both connected", func() bool { return srv.Count(tio.All()) == 2 })
	bc.Send(5, nil)
	chans.Range(func(_, v any) bool {
		ch := v.(*channel.Channel)
		for i := range queued {
			p := &codec.Packet{Type: 1, Body: append(fmt.Appendf(nil, "%04d", i), body...)}
			if err := ch.Send(p); err != nil {
				t.Errorf("queue %d: %v", i, err)
				return false
			}
		}
		return true
	})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	time.Sleep(50 * time.Millisecond)
	close(release) // the in-flight handler finishes during shutdown

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // binary client: every packet, the late reply, then going away
		defer wg.Done()
		_ = bc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range queued {
			if p := bc.Recv(); string(p.Body[:4]) != fmt.Sprintf("%04d", i) {
				t.Errorf("binary: packet %d is %q", i, p.Body[:4])
				return
			}
		}
		if p := bc.Recv(); string(p.Body) != "late" {
			t.Errorf("binary: in-flight handler's reply %q", p.Body)
		}
		if rest := tiotest.ExpectClosed(t, bc); !bytes.Equal(rest, []byte{tbin.TagClose, tbin.CloseGoingAway}) {
			t.Errorf("binary farewell % x, want a4 01", rest)
		}
	}()
	go func() {
		defer wg.Done()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range queued {
			_, m, err := ws.ReadMessage()
			if err != nil || string(m[1:5]) != fmt.Sprintf("%04d", i) {
				t.Errorf("ws: message %d: %v", i, err)
				return
			}
		}
		if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("ws: got %v, want close 1001", err)
		}
	}()
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := srv.Stats().Closed[channel.ReasonServerShutdown]; n != 2 {
		t.Fatalf("shutdown closes = %d", n)
	}
	_ = tws.TypeText
}

// Shutdown honours its context: with a peer that never reads, it returns
// when the context ends.
func TestShutdownHonoursDeadline(t *testing.T) {
	var got atomic.Pointer[channel.Channel]
	srv := tio.NewServer("127.0.0.1:0", echoMux(), tio.WithDrainTimeout(time.Minute),
		tio.WithLimits(tio.Limits{MaxOutbound: -1}), // more than kernel buffers hold
		tio.WithOnConnect(func(ch *channel.Channel) { got.Store(ch) }))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c := tiotest.DialBinary(t, srv) // never reads
	tiotest.Eventually(t, "connected", func() bool { return got.Load() != nil })
	for range 64 {
		if err := got.Load().Send(&codec.Packet{Type: 1, Body: make([]byte, 1<<20)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("Shutdown took %v with a 300 ms deadline", d)
	}
	_ = c
	// The engine still stops: a second Shutdown with time to spare completes.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	_ = srv.Shutdown(ctx2)
}

// Pings and heartbeat bytes take tokens from the rate limit like packets: a
// flood of them is cut (close mode) or counted (drop mode).
func TestRateLimitCountsPingsAndHeartbeats(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithRateLimit(1, 5, false))
	w := tiotest.DialWebSocket(t, srv, "/")
	var pings bytes.Buffer // twenty pings in one write: the server cuts the flood mid-way
	for range 20 {
		_ = ws.WriteFrame(&pings, ws.MaskFrame(ws.NewPingFrame(nil)))
	}
	_, _ = w.Conn.Write(pings.Bytes())
	if ce := w.ExpectClose(); ce.Code != ws.StatusPolicyViolation {
		t.Fatalf("ping flood: close %+v, want 1008", ce)
	}
	b := tiotest.DialBinary(t, srv)
	b.SendRaw(bytes.Repeat([]byte{tbin.TagHeartbeat}, 20))
	if code := b.ExpectClose(); code != tbin.ClosePolicy {
		t.Fatalf("heartbeat flood: close code %d", code)
	}
	tiotest.Eventually(t, "both closed as rate_limited", func() bool {
		return srv.Stats().Closed[channel.ReasonRateLimited] == 2
	})

	drop := tiotest.NewServer(t, echoMux(), tio.WithRateLimit(1, 5, true))
	d := tiotest.DialBinary(t, drop)
	d.SendRaw(bytes.Repeat([]byte{tbin.TagHeartbeat}, 20))
	tiotest.Eventually(t, "dropped heartbeats counted", func() bool { return drop.Stats().RateLimited >= 14 })
}

// WithLimits composes: a later option keeps the fields it leaves zero.
func TestWithLimitsComposes(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithLimits(tio.Limits{MaxConnectionsPerIP: 1}),
		tio.WithLimits(tio.Limits{MaxPacket: 1 << 10}))
	a := tiotest.DialBinary(t, srv)
	b := tiotest.Dial(t, srv) // a second connection from 127.0.0.1: over the per-IP limit
	tiotest.ExpectClosed(t, b)
	a.Send(1, make([]byte, 2<<10)) // over MaxPacket
	if code := a.ExpectClose(); code == 0 {
		t.Fatalf("a packet over the later MaxPacket closed with code %d", code)
	}
	tiotest.Eventually(t, "one close for each limit", func() bool {
		s := srv.Stats()
		return s.Closed[channel.ReasonTooManyConnections] == 1 && s.Closed[channel.ReasonTooBig] == 1
	})
}
