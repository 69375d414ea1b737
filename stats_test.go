package tio_test

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/stats"
	"github.com/tiogo/tio/tiotest"
)

// statsMux echoes type 1 inline, echoes type 2 on the pool after 2 ms, and
// panics on type 3.
func statsMux() *handler.Mux {
	mux := handler.NewMux()
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	mux.HandleFunc(2, func(ch *channel.Channel, p *codec.Packet) {
		time.Sleep(2 * time.Millisecond)
		_ = ch.Send(p)
	})
	mux.Handle(3, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { panic("boom") }))
	return mux
}

// The server's snapshot counts connections, closes by reason,
// traffic, handled packets and their time, decode errors, panics, drops, and
// keeps a latency histogram per packet type.
func TestStatsSnapshot(t *testing.T) {
	srv := tiotest.NewServer(t, statsMux())
	const h = tbin.HeaderSize

	a := tiotest.DialBinary(t, srv)
	for i := range 10 {
		a.Send(1, []byte{byte(i)})
		a.Recv()
	}
	for range 3 {
		a.Send(2, []byte("xy"))
		a.Recv()
	}
	a.Send(9, nil) // no handler: dropped
	ws := dialWS(t, srv, "/")
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{1, 'h', 'i'}); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "\x01hi" {
		t.Fatalf("ws echo %q %v", msg, err)
	}
	bad := tiotest.DialBinary(t, srv)
	bad.SendRaw([]byte{0xEE}) // an unknown tag: a decode error
	tiotest.ExpectClosed(t, bad)
	boom := tiotest.DialBinary(t, srv)
	boom.Send(3, nil)
	tiotest.ExpectClosed(t, boom)

	tiotest.Eventually(t, "counters", func() bool {
		s := srv.Stats()
		return s.Accepted == 4 && s.Active == 2 && s.Closed[channel.ReasonDecodeError] == 1 &&
			s.Closed[channel.ReasonHandlerPanic] == 1 && s.HandlerPanics == 1 && s.DroppedPackets == 1 &&
			s.Traffic.Handled >= 14 && s.Traffic.DecodeErrors == 1
	})
	a.Close()
	ws.Close()
	tiotest.Eventually(t, "closes", func() bool {
		s := srv.Stats()
		return s.Active == 0 && s.Closed[channel.ReasonClosedByPeer] == 2
	})
	s := srv.Stats()
	tr := s.Traffic
	// binary: 4 handshakes, 10+3+1 packets of a, 1 bad byte, 1 packet of boom
	binIn := uint64(4 + 10*(h+1) + 3*(h+2) + h + 1 + h)
	if tr.BytesIn <= binIn { // plus the WebSocket upgrade request and frame
		t.Errorf("BytesIn %d, want more than %d", tr.BytesIn, binIn)
	}
	if tr.PacketsIn != 10+3+1+1+1 || tr.PacketsOut != 10+3+1 {
		t.Errorf("packets in %d out %d", tr.PacketsIn, tr.PacketsOut)
	}
	if tr.BytesOut < uint64(3+10*(h+1)+3*(h+2)) {
		t.Errorf("BytesOut %d", tr.BytesOut)
	}
	if tr.Reads < 4+10+3 || tr.BytesPerRead() <= 0 || tr.PacketsPerRead() <= 0 || tr.PacketsPerRead() > 1.01 {
		t.Errorf("reads %d, bytes/read %.1f, packets/read %.2f", tr.Reads, tr.BytesPerRead(), tr.PacketsPerRead())
	}
	if tr.HandleNanos < uint64(3*2*time.Millisecond) {
		t.Errorf("handling time %v, want at least 6 ms", time.Duration(tr.HandleNanos))
	}
	lat := map[codec.Type]stats.LatencySnapshot{}
	for _, l := range s.Latency {
		lat[l.Type] = l
	}
	// (The panicking handler of type 3 may count as handled or not.)
	if lat[1].Count != 11 || lat[2].Count != 3 || len(s.Latency) > 3 {
		t.Fatalf("latency histograms %+v", s.Latency)
	}
	slow := lat[2]
	if slow.Sum < 6*time.Millisecond {
		t.Errorf("type 2 latency sum %v", slow.Sum)
	}
	bounds := stats.LatencyBounds()
	for i, n := range slow.Buckets {
		if n > 0 && i < len(bounds) && bounds[i] < 2*time.Millisecond {
			t.Errorf("a 2 ms handler in the bucket up to %v", bounds[i])
		}
	}
}

// A channel's own counters (t-io's ChannelStat).
func TestChannelStats(t *testing.T) {
	var got atomic.Pointer[channel.Channel]
	srv := tiotest.NewServer(t, statsMux(), tio.WithOnConnect(func(ch *channel.Channel) { got.Store(ch) }))
	before := time.Now()
	c := tiotest.DialBinary(t, srv)
	tiotest.Eventually(t, "connect hook", func() bool { return got.Load() != nil })
	ch := got.Load()
	const n, h = 5, tbin.HeaderSize
	for range n {
		c.Send(1, []byte("abc"))
		c.Recv()
	}
	c.Send(2, []byte("abc"))
	c.Recv()
	want := uint64(1 + (n+1)*(h+3))
	tiotest.Eventually(t, "channel counters", func() bool {
		st := ch.Stats()
		return st.BytesIn == want && st.BytesOut == want && st.PacketsIn == n+1 && st.PacketsOut == n+1 &&
			st.PacketsHandled == n+1
	})
	st := ch.Stats()
	if st.Reads < n+2 || st.Reads > want {
		t.Errorf("reads %d", st.Reads)
	}
	after := time.Now()
	for name, tm := range map[string]time.Time{"created": st.Created, "last received": st.LastReceived, "last sent": st.LastSent} {
		if tm.Before(before.Add(-time.Millisecond)) || tm.After(after) {
			t.Errorf("%s %v not within the test", name, tm)
		}
	}
	if st.LastReceived.Before(st.Created) || st.LastSent.Before(st.LastReceived.Add(-time.Second)) {
		t.Errorf("times %+v", st)
	}
}

// Per-IP windows report each address's traffic, window by window.
func TestIPStatsWindows(t *testing.T) {
	var mu sync.Mutex
	var reports []stats.IPWindow
	srv := tiotest.NewServer(t, statsMux(), tio.WithIPStats(stats.IPConfig{
		Windows: []time.Duration{100 * time.Millisecond, 400 * time.Millisecond},
		OnWindow: func(w stats.IPWindow) {
			mu.Lock()
			reports = append(reports, w)
			mu.Unlock()
		},
	}))
	const h = tbin.HeaderSize
	send := map[string]int{"127.0.0.2": 3, "127.0.0.3": 5}
	for ip, n := range send {
		c := tiotest.DialBinaryFrom(t, srv, ip)
		for range n {
			c.Send(1, []byte("ab"))
			c.Recv()
		}
	}
	sum := func(ip string, w time.Duration) (acc uint64, tr stats.Traffic) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			if r.IP.String() == ip && r.Window == w {
				acc += r.Accepted
				tr.BytesIn += r.Traffic.BytesIn
				tr.PacketsIn += r.Traffic.PacketsIn
				tr.PacketsOut += r.Traffic.PacketsOut
				tr.Handled += r.Traffic.Handled
				if r.Active != 1 {
					t.Errorf("report %+v: one connection open", r)
				}
				if r.End.Sub(r.Start) < w/2 {
					t.Errorf("report %+v: a window of %v", r, r.End.Sub(r.Start))
				}
			}
		}
		return acc, tr
	}
	for ip, n := range send {
		want := uint64(1 + n*(h+2))
		for _, w := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond} {
			tiotest.Eventually(t, ip+" reported over "+w.String(), func() bool {
				acc, tr := sum(ip, w)
				return acc == 1 && tr.BytesIn == want && tr.PacketsIn == uint64(n) && tr.PacketsOut == uint64(n) && tr.Handled == uint64(n)
			})
		}
		st, ok := srv.IPStats(netip.MustParseAddr(ip))
		if !ok || st.Active != 1 || st.Accepted != 1 || st.Traffic.BytesIn != want || st.Traffic.BytesOut != want {
			t.Errorf("%s totals %+v %v", ip, st, ok)
		}
	}
	if s := srv.Stats(); s.IPs != 2 {
		t.Errorf("%d addresses tracked, want 2", s.IPs)
	}
}

// Memory stays bounded. Waves of connections from many distinct
// addresses come and go; the addresses expire once idle for longer than the
// longest window, so the table follows the recent addresses instead of
// growing with all those ever seen, and MaxIPs caps it.
func TestIPStatsBoundedMemory(t *testing.T) {
	const waves, perWave, maxIPs = 3, 150, 200
	srv := tiotest.NewServer(t, statsMux(), tio.WithIPStats(stats.IPConfig{
		Windows: []time.Duration{50 * time.Millisecond, 150 * time.Millisecond},
		MaxIPs:  maxIPs,
	}))
	peak := 0
	for w := range waves {
		var conns []*tiotest.BinaryConn
		for i := range perWave {
			n := w*perWave + i
			conns = append(conns, tiotest.DialBinaryFrom(t, srv, netip.AddrFrom4([4]byte{127, 1, byte(n >> 8), byte(n)}).String()))
		}
		for _, c := range conns {
			c.Send(1, []byte("x"))
			c.Recv()
		}
		s := srv.Stats()
		peak = max(peak, s.IPs)
		if s.IPs < perWave || s.IPs > maxIPs {
			t.Fatalf("wave %d: %d addresses tracked with %d connected", w, s.IPs, perWave)
		}
		for _, c := range conns {
			c.Close()
		}
		tiotest.Eventually(t, "idle addresses expire", func() bool { return srv.Stats().IPs == 0 })
	}
	s := srv.Stats()
	if s.Accepted != waves*perWave || s.IPsUntracked != 0 {
		t.Fatalf("accepted %d, untracked %d", s.Accepted, s.IPsUntracked)
	}
	t.Logf("%d addresses seen, at most %d tracked at once", waves*perWave, peak)

	// Past MaxIPs, connections are served but not tracked.
	var conns []*tiotest.BinaryConn
	for i := range maxIPs + 20 {
		conns = append(conns, tiotest.DialBinaryFrom(t, srv, netip.AddrFrom4([4]byte{127, 2, byte(i >> 8), byte(i)}).String()))
	}
	conns[len(conns)-1].Send(1, []byte("still served"))
	conns[len(conns)-1].Recv()
	if s := srv.Stats(); s.IPs != maxIPs || s.IPsUntracked != 20 {
		t.Fatalf("%d tracked, %d untracked", s.IPs, s.IPsUntracked)
	}
	for _, c := range conns {
		c.Close()
	}
	tiotest.Eventually(t, "idle addresses expire", func() bool { return srv.Stats().IPs == 0 })
}

// WithStats(false) turns off traffic totals, the latency histogram and
// per-IP statistics; connection counts and each channel's counters remain.
func TestStatsOff(t *testing.T) {
	var got atomic.Pointer[channel.Channel]
	srv := tiotest.NewServer(t, statsMux(), tio.WithStats(false),
		tio.WithIPStats(stats.IPConfig{Windows: []time.Duration{time.Minute}}),
		tio.WithOnConnect(func(ch *channel.Channel) { got.Store(ch) }))
	c := tiotest.DialBinary(t, srv)
	for range 3 {
		c.Send(1, []byte("x"))
		c.Recv()
	}
	tiotest.Eventually(t, "channel counters", func() bool { ch := got.Load(); return ch != nil && ch.Stats().PacketsHandled == 3 })
	s := srv.Stats()
	if s.Traffic != (stats.Traffic{}) || s.Latency != nil || s.IPs != 0 {
		t.Fatalf("statistics kept while off: %+v", s)
	}
	if s.Accepted != 1 || s.Active != 1 {
		t.Fatalf("connections %+v", s)
	}
	if _, ok := srv.IPStats(netip.MustParseAddr("127.0.0.1")); ok {
		t.Fatal("per-IP statistics while off")
	}
}
