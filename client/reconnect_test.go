package client_test

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// journal is a server handler that records, per connection, the bodies of
// packets of types 5 (login) and 6 (data), in arrival order.
type journal struct {
	mu    sync.Mutex
	byCon map[*channel.Channel][]string // (ids restart with a new server)
	order []*channel.Channel            // connections, in the order they first sent
}

func (j *journal) ServePacket(ch *channel.Channel, p *codec.Packet) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.byCon == nil {
		j.byCon = make(map[*channel.Channel][]string)
	}
	if _, ok := j.byCon[ch]; !ok {
		j.order = append(j.order, ch)
	}
	j.byCon[ch] = append(j.byCon[ch], string(p.Body))
}

func (j *journal) conn(i int) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if i >= len(j.order) {
		return nil
	}
	return slices.Clone(j.byCon[j.order[i]])
}

// TestReconnectRunsHookThenQueue: the server stops and starts again on the
// same port; the client reconnects, its OnConnected hook runs (reconnect
// true) and logs in — a Call from the hook goes out at once — and only
// then do the sends queued meanwhile arrive, all of them, in order.
func TestReconnectRunsHookThenQueue(t *testing.T) {
	j := &journal{}
	mux := echoMux()
	mux.Handle(5, handler.Inline(j))
	mux.Handle(6, handler.Inline(j))
	srv := newRestartable(t, mux)

	var c *client.Client
	var hookMu sync.Mutex
	var hooks []bool
	var states []client.State
	c = newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, srv.url(),
		client.WithReconnect(client.Reconnect{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}),
		client.WithQueue(100, 0),
		client.WithOnConnected(func(ch *channel.Channel, reconnect bool) {
			hookMu.Lock()
			hooks = append(hooks, reconnect)
			hookMu.Unlock()
			_ = ch.Send(&codec.Packet{Type: 5, Body: []byte("login")})
			// A Call from the hook is not queued behind the hook.
			resp, err := c.Conn(ch).Call(ctx, &codec.Packet{Type: 2, Body: []byte{0, 'h'}})
			if err != nil || string(resp.Body) != "\x00h" {
				t.Errorf("Call from OnConnected: %v %v", resp, err)
			}
			_ = c.Conn(ch).Send(&codec.Packet{Type: 5, Body: []byte("rooms")})
		}),
		client.WithOnStateChange(func(cn *client.Conn, s client.State, err error) {
			hookMu.Lock()
			states = append(states, s)
			hookMu.Unlock()
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "connected", func() bool { return cn.State() == client.StateConnected })
	for i := range 5 {
		if err := cn.Send(&codec.Packet{Type: 6, Body: []byte{'a' + byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	tiotest.Eventually(t, "the first sends", func() bool { return len(j.conn(0)) == 7 })

	srv.stop()
	tiotest.Eventually(t, "reconnecting", func() bool { return cn.State() == client.StateReconnecting })
	var want []string
	for i := range 20 {
		b := []byte{'A' + byte(i)}
		if err := cn.Send(&codec.Packet{Type: 6, Body: b}); err != nil {
			t.Fatalf("queued send %d: %v", i, err)
		}
		want = append(want, string(b))
	}
	srv.start()
	tiotest.Eventually(t, "the queued sends", func() bool { return len(j.conn(1)) >= 22 })
	got := j.conn(1)
	want = append([]string{"login", "rooms"}, want...)
	if !slices.Equal(got, want) {
		t.Fatalf("after the reconnect the server got %q, want %q", got, want)
	}
	tiotest.Eventually(t, "connected again", func() bool { return cn.State() == client.StateConnected })
	hookMu.Lock()
	defer hookMu.Unlock()
	if !slices.Equal(hooks, []bool{false, true}) {
		t.Fatalf("OnConnected ran with %v", hooks)
	}
	if want := []client.State{client.StateConnected, client.StateReconnecting, client.StateConnected}; !slices.Equal(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	if st := c.Stats(); st.Reconnects != 1 || st.Connects != 2 || st.Disconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSendsWhileDownFailFast: without a queue, a send while the
// connection is down fails with ErrNotConnected; a full queue fails with
// ErrQueueFull, and closing with sends still queued says so.
func TestSendsWhileDownFailFast(t *testing.T) {
	srv := newRestartable(t, echoMux())
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	re := client.WithReconnect(client.Reconnect{Initial: time.Hour})
	fast, err := c.Dial(ctx, srv.url(), re)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := c.Dial(ctx, srv.url(), re, client.WithQueue(3, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv.stop()
	tiotest.Eventually(t, "both down", func() bool {
		return fast.State() == client.StateReconnecting && queued.State() == client.StateReconnecting
	})
	if err := fast.Send(&codec.Packet{Type: 1}); !errors.Is(err, client.ErrNotConnected) {
		t.Fatalf("send while down without a queue: %v", err)
	}
	if _, err := fast.Call(ctx, &codec.Packet{Type: 2}); !errors.Is(err, client.ErrNotConnected) {
		t.Fatalf("call while down without a queue: %v", err)
	}
	for i := range 3 {
		if err := queued.Send(&codec.Packet{Type: 1}); err != nil {
			t.Fatalf("queued send %d: %v", i, err)
		}
	}
	if err := queued.Send(&codec.Packet{Type: 1}); !errors.Is(err, client.ErrQueueFull) {
		t.Fatalf("send to a full queue: %v", err)
	}
	if err := queued.Close(); !errors.Is(err, client.ErrDiscarded) {
		t.Fatalf("Close with sends queued: %v", err)
	}
	if err := queued.Send(&codec.Packet{Type: 1}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
	if st := c.Stats(); st.QueueFull != 1 || st.Discarded != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBoundedRetriesGiveUp: a server that is not there; the attempts stop
// after MaxAttempts, the connection is closed with ErrGaveUp.
func TestBoundedRetriesGiveUp(t *testing.T) {
	addr := freePort(t)
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var final atomic.Value
	start := time.Now()
	_, err := c.Dial(ctx, "tio://"+addr,
		client.WithReconnect(client.Reconnect{Initial: 20 * time.Millisecond, MaxAttempts: 3}),
		client.WithOnStateChange(func(_ *client.Conn, s client.State, err error) {
			if s == client.StateClosed {
				final.Store(err)
			}
		}))
	if !errors.Is(err, client.ErrGaveUp) {
		t.Fatalf("Dial: %v, want ErrGaveUp", err)
	}
	if st := c.Stats(); st.Dials != 3 || st.DialErrors != 3 || st.Conns != 0 {
		t.Fatalf("stats %+v", st)
	}
	tiotest.Eventually(t, "the state hook told of the close", func() bool { return final.Load() != nil })
	if e, _ := final.Load().(error); !errors.Is(e, client.ErrGaveUp) {
		t.Fatalf("the state hook saw %v", e)
	}
	t.Logf("gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)

	// Connect reports the same through the connection.
	cn, err := c.Connect("tio://"+addr, client.WithReconnect(client.Reconnect{Initial: 10 * time.Millisecond, MaxAttempts: 2}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-cn.Done():
	case <-ctx.Done():
		t.Fatal("Connect's connection did not give up")
	}
	if cn.State() != client.StateClosed || !errors.Is(cn.Err(), client.ErrGaveUp) {
		t.Fatalf("state %v, err %v", cn.State(), cn.Err())
	}
}

// rawServer is a listener that accepts and then does what each test
// says, counting what it reads.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int32
	read     chan []byte
}

func newRawServer(t *testing.T, serve func(r *rawServer, c net.Conn)) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawServer{ln: ln, read: make(chan []byte, 1024)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); serve(r, c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return r
}

// reads copies what c sends into r.read until c closes.
func (r *rawServer) reads(c net.Conn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			select {
			case r.read <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// TestSilentServerAbandoned: a server that accepts and never answers the
// handshake is abandoned after the handshake timeout, every attempt.
func TestSilentServerAbandoned(t *testing.T) {
	raw := newRawServer(t, func(r *rawServer, c net.Conn) { r.reads(c) })
	c := newClient(t, nil, client.WithHandshakeTimeout(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Dial(ctx, "tio://"+raw.ln.Addr().String(),
		client.WithReconnect(client.Reconnect{Initial: 10 * time.Millisecond, MaxAttempts: 2}))
	took := time.Since(start)
	if !errors.Is(err, client.ErrGaveUp) {
		t.Fatalf("Dial: %v", err)
	}
	// Two attempts of 200 ms, a 10 ms wait, the wheel's 20 ms resolution.
	if took < 400*time.Millisecond || took > 1500*time.Millisecond {
		t.Fatalf("gave up after %v", took)
	}
	if st := c.Stats(); st.HandshakeTimeouts != 2 || raw.accepted.Load() != 2 {
		t.Fatalf("stats %+v, %d accepted", st, raw.accepted.Load())
	}
	if b := <-raw.read; b[0] != tbin.TagHandshake {
		t.Fatalf("the server read %x", b)
	}
	t.Logf("abandoned after %v: %v", took.Round(time.Millisecond), err)
}

// TestDeadServerDetected: a server that answers the handshake and then
// goes silent gets heartbeats after the idle time, is taken for dead after
// the timeout, and the client dials again.
func TestDeadServerDetected(t *testing.T) {
	raw := newRawServer(t, func(r *rawServer, c net.Conn) {
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil || b[0] != tbin.TagHandshake {
			return
		}
		_, _ = c.Write([]byte{tbin.TagHandshake})
		r.reads(c)
	})
	c := newClient(t, nil, client.WithHeartbeat(100*time.Millisecond, 300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lost := make(chan time.Time, 4)
	cn, err := c.Dial(ctx, "tio://"+raw.ln.Addr().String(),
		client.WithReconnect(client.Reconnect{Initial: 10 * time.Millisecond}),
		client.WithOnStateChange(func(_ *client.Conn, s client.State, err error) {
			if s == client.StateReconnecting {
				lost <- time.Now()
				if !errors.Is(err, client.ErrConnLost) {
					t.Errorf("lost with %v", err)
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case b := <-raw.read:
		if b[0] != tbin.TagHeartbeat {
			t.Fatalf("the server read %x, want a heartbeat", b)
		}
		if d := time.Since(start); d < 80*time.Millisecond {
			t.Fatalf("heartbeat after %v, before the idle time", d)
		}
	case <-ctx.Done():
		t.Fatal("no heartbeat")
	}
	select {
	case at := <-lost:
		d := at.Sub(start)
		if d < 280*time.Millisecond || d > 800*time.Millisecond {
			t.Fatalf("taken for dead after %v (timeout 300ms)", d)
		}
		t.Logf("taken for dead after %v", d.Round(time.Millisecond))
	case <-ctx.Done():
		t.Fatal("the dead server was not detected")
	}
	tiotest.Eventually(t, "a new attempt", func() bool { return raw.accepted.Load() >= 2 })
	if st := c.Stats(); st.HeartbeatTimeouts < 1 {
		t.Fatalf("stats %+v", st)
	}
	_ = cn.Close()
}

// TestIdleLiveServerKept: a live tio server answers the client's
// heartbeats, so an idle connection lives on, through many timeouts.
func TestIdleLiveServerKept(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux())
	c := newClient(t, nil, client.WithHeartbeat(50*time.Millisecond, 150*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, binURL(srv.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	id := cn.Channel().ID()
	time.Sleep(700 * time.Millisecond)
	if cn.State() != client.StateConnected || cn.Channel() == nil || cn.Channel().ID() != id {
		t.Fatalf("the idle connection did not last: %v", cn.State())
	}
	if st := c.Stats(); st.HeartbeatTimeouts != 0 || st.Traffic.BytesOut < 5 {
		t.Fatalf("stats %+v", st)
	}
}

// TestManyReconnectsSpreadOut: 500 connections lose their server at once;
// it comes back at once; jitter spreads their reconnects. With Initial 4
// s and the default jitter (0.5), the first attempts are uniform over [2
// s, 4 s], so a 100 ms window holds 5% of them on average: the test
// allows no window more than 20% of the attempts (a loaded CPU fires
// timers late, in bunches), nor more than 30% of the connects the server
// sees (its accepts bunch up behind a busy CPU). The same connections
// without jitter attempt all at once:
// the busiest window holds at least half of the attempts (the losses
// themselves take some tens of milliseconds, more on a loaded machine).
func TestManyReconnectsSpreadOut(t *testing.T) {
	if testing.Short() {
		t.Skip("500 connections")
	}
	const n = 500
	for _, tc := range []struct {
		name     string
		jitter   float64
		maxShare float64 // of the attempts, at most, in any 100 ms window
		minShare float64 // of the attempts, at least, in the busiest window
		maxSeen  float64 // of the connects the server sees, at most, in any 100 ms window
	}{
		{"jitter", 0, 0.20, 0, 0.30},
		{"none", -1, 1, 0.5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var accepts, attempts []time.Time
			srv := newRestartable(t, echoMux(), tio.WithOnConnect(func(*channel.Channel) {
				mu.Lock()
				accepts = append(accepts, time.Now())
				mu.Unlock()
			}))
			var lost []time.Time
			c := newClient(t, nil)
			client.SetAttemptHook(c, func() {
				mu.Lock()
				attempts = append(attempts, time.Now())
				mu.Unlock()
			})
			opt := client.WithReconnect(client.Reconnect{Initial: 4 * time.Second, Jitter: tc.jitter})
			hook := client.WithOnStateChange(func(_ *client.Conn, s client.State, _ error) {
				if s == client.StateReconnecting {
					mu.Lock()
					lost = append(lost, time.Now())
					mu.Unlock()
				}
			})
			for range n {
				if _, err := c.Connect(srv.url(), opt, hook); err != nil {
					t.Fatal(err)
				}
			}
			tiotest.EventuallyWithin(t, 30*time.Second, "all connected", func() bool { return c.Stats().Connects == n })
			mu.Lock()
			accepts, attempts = nil, nil
			mu.Unlock()
			stopAt := time.Now()
			srv.stop()
			t.Logf("the server stopped in %v", time.Since(stopAt).Round(time.Millisecond))
			srv.start()
			tiotest.EventuallyWithin(t, 30*time.Second, "all reconnected", func() bool { return c.Stats().Reconnects == n })
			mu.Lock()
			at, ac := slices.Clone(attempts), slices.Clone(accepts)
			mu.Unlock()
			_, spanLost := busiest(slices.Clone(lost))
			t.Logf("the losses span %v", spanLost)
			if os.Getenv("SPREAD_DEBUG") != "" {
				l0 := slices.MinFunc(lost, func(a, b time.Time) int { return a.Compare(b) })
				sorted := slices.Clone(at)
				slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
				for i := 0; i < len(sorted); i += 25 {
					t.Logf("attempt %d at +%v", i, sorted[i].Sub(l0))
				}
			}
			shareAt, spanAt := busiest(at)
			shareAc, spanAc := busiest(ac)
			t.Logf("%d attempts over %v, the busiest 100 ms window held %.0f%% of them; %d connects seen by the server over %v, busiest window %.0f%%",
				len(at), spanAt, 100*shareAt, len(ac), spanAc, 100*shareAc)
			if shareAt > tc.maxShare || shareAt < tc.minShare || shareAc > tc.maxSeen {
				t.Fatalf("busiest window shares %.2f (attempts), %.2f (connects), want attempts in [%.2f, %.2f] and connects under %.2f",
					shareAt, shareAc, tc.minShare, tc.maxShare, tc.maxSeen)
			}
		})
	}
}

// busiest returns the largest share of ts in any 100 ms window, and the
// time ts span.
func busiest(ts []time.Time) (float64, time.Duration) {
	if len(ts) == 0 {
		return 0, 0
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	most, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= 100*time.Millisecond {
			j++
		}
		most = max(most, i-j+1)
	}
	return float64(most) / float64(len(ts)), ts[len(ts)-1].Sub(ts[0]).Round(time.Millisecond)
}
