package tio_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/tiotest"
)

// A connection that sends nothing for the heartbeat timeout is closed with
// reason heartbeat_timeout; one that sends heartbeat bytes, packets or
// WebSocket pings stays.
func TestHeartbeatTimeout(t *testing.T) {
	closed := make(chan channel.Reason, 8)
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithHeartbeat(time.Second, nil),
		tio.WithOnClose(func(_ *channel.Channel, r channel.Reason, _ error) { closed <- r }))

	idle := tiotest.DialBinary(t, srv)
	if rest := tiotest.ExpectClosed(t, idle); len(rest) != 2 || rest[0] != tbin.TagClose || rest[1] != tbin.ClosePolicy {
		t.Fatalf("idle connection's farewell % x, want a4 04", rest)
	}
	if r := <-closed; r != channel.ReasonHeartbeatTimeout {
		t.Fatalf("reason %v", r)
	}

	// Alive by heartbeat bytes (binary) and by pings (WebSocket): 2.5
	// timeouts long, beating 20 times per timeout (margin for a loaded
	// machine).
	beating := tiotest.DialBinary(t, srv)
	ws := dialWS(t, srv, "/")
	for range 50 {
		time.Sleep(50 * time.Millisecond)
		beating.SendRaw([]byte{tbin.TagHeartbeat})
		if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	beating.Send(1, []byte("alive"))
	if p := beating.Recv(); string(p.Body) != "alive" {
		t.Fatalf("got %q", p.Body)
	}
	_ = ws.WriteMessage(websocket.TextMessage, []byte("alive"))
	if _, m, err := ws.ReadMessage(); err != nil || string(m) != "alive" {
		t.Fatalf("ws: %q %v", m, err)
	}
	if n := srv.Stats().Closed[channel.ReasonHeartbeatTimeout]; n != 1 {
		t.Fatalf("heartbeat closes = %d, want 1", n)
	}
}

// The timeout can be changed per connection, and the timeout hook may keep
// a connection.
func TestHeartbeatPerConnectionAndHook(t *testing.T) {
	var kept, seq atomic.Int32
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithHeartbeat(100*time.Millisecond, func(ch *channel.Channel) bool {
			if ch.Value("vip") != nil && kept.Add(1) <= 2 {
				return true // keep it twice, then let it go
			}
			return false
		}),
		tio.WithOnConnect(func(ch *channel.Channel) {
			switch seq.Add(1) % 3 { // connections are dialled one by one
			case 1:
				ch.SetHeartbeatTimeout(time.Hour)
			case 2:
				ch.SetValue("vip", true)
			}
		}))
	long := tiotest.DialBinary(t, srv)  // the 1st: an hour
	vip := tiotest.DialBinary(t, srv)   // the 2nd: kept twice by the hook
	plain := tiotest.DialBinary(t, srv) // the 3rd: the server's 100 ms
	tiotest.ExpectClosed(t, plain)
	tiotest.ExpectClosed(t, vip)
	// Three calls for vip: kept twice, let go at the third (a hook whose
	// answer were ignored would have been called once).
	if kept.Load() != 3 {
		t.Fatalf("hook called %d times for vip, want 3", kept.Load())
	}
	long.Send(1, []byte("still"))
	if p := long.Recv(); string(p.Body) != "still" {
		t.Fatalf("got %q", p.Body)
	}
}

// Slowloris: connections that never finish their handshake are closed at the
// handshake deadline, while a normal client keeps echoing all along.
func TestHandshakeDeadline(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithHandshakeTimeout(300*time.Millisecond), tio.WithHeartbeat(0, nil))
	const slow = 200
	var conns []net.Conn
	for i := range slow {
		c := tiotest.Dial(t, srv)
		if i%2 == 0 {
			_, _ = c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n")) // never ends
		} // the other half sends nothing at all
		conns = append(conns, c)
	}
	good := tiotest.DialBinary(t, srv)
	stop := time.Now().Add(600 * time.Millisecond)
	for i := 0; time.Now().Before(stop); i++ {
		body := fmt.Appendf(nil, "%d", i)
		good.Send(1, body)
		if p := good.Recv(); string(p.Body) != string(body) {
			t.Fatalf("echo %q, want %q", p.Body, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, c := range conns {
		got := tiotest.ExpectClosed(t, c)
		// The sniffed WebSocket requests are told 408; the silent ones had
		// no protocol yet and get nothing.
		if want := i%2 == 0; strings.HasPrefix(string(got), "HTTP/1.1 408 ") != want {
			t.Fatalf("slow connection %d got %q", i, got)
		}
	}
	tiotest.Eventually(t, "handshake timeouts counted", func() bool {
		return srv.Stats().Closed[channel.ReasonHandshakeTimeout] == slow
	})
}

// With keepalive on, an idle WebSocket client receives pings and an idle
// binary client heartbeat bytes; answering them keeps the connection alive.
func TestKeepalive(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithKeepalive(50*time.Millisecond), tio.WithHeartbeat(time.Second, nil))
	ws := dialWS(t, srv, "/")
	pings := make(chan struct{}, 100)
	ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	bc := tiotest.DialBinary(t, srv)
	deadline := time.Now().Add(2500 * time.Millisecond) // 2.5 heartbeat timeouts
	beats := 0
	for time.Now().Before(deadline) {
		b := bc.ReadN(1)
		if b[0] != tbin.TagHeartbeat {
			t.Fatalf("binary client got % x, want heartbeats", append(b, bc.ReadN(1)...))
		}
		beats++
		bc.SendRaw([]byte{tbin.TagHeartbeat}) // answer: alive
	}
	if beats < 5 || len(pings) < 5 {
		t.Fatalf("%d heartbeats, %d pings in 2.5 s with a 50 ms keepalive", beats, len(pings))
	}
	if n := srv.Stats().Closed[channel.ReasonHeartbeatTimeout]; n != 0 {
		t.Fatalf("%d connections timed out although they answered", n)
	}
}

// The wheel closes thousands of idle connections, each once, all within a
// few ticks of their deadline; connections are real sockets on 127.0.0.1.
func TestHeartbeatAtScale(t *testing.T) {
	n := 4000 // TIO_HEARTBEAT_CONNS=9000 for the full size (18,000 descriptors)
	if v, err := strconv.Atoi(os.Getenv("TIO_HEARTBEAT_CONNS")); err == nil && v > 0 {
		n = v
	} else if testing.Short() {
		n = 500
	}
	raiseNoFile(t, 2*n+200)
	srv := tiotest.NewServer(t, echoMux(), tio.WithHeartbeat(time.Second, nil), tio.WithHandshakeTimeout(0))
	conns := make([]net.Conn, 0, n)
	hs := []byte{tbin.TagHandshake}
	for range n {
		c := tiotest.Dial(t, srv)
		_, _ = c.Write(hs)
		conns = append(conns, c)
	}
	begin := time.Now()
	for _, c := range conns {
		tiotest.ExpectClosed(t, c)
	}
	t.Logf("%d idle connections closed %v after the last connect", n, time.Since(begin))
	tiotest.Eventually(t, "all counted", func() bool { return srv.Stats().Closed[channel.ReasonHeartbeatTimeout] == uint64(n) })
}
