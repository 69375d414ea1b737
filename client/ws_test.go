package client_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// TestWebSocketTioServer: over WebSocket to a tio server: the request's
// path, query and headers reach its handshake hook; packets are routed by
// type both ways (TypePrefix); Call's requests carry their ids in the
// 0xFE prefix and come back in 0xFF replies; text messages are TypeText.
func TestWebSocketTioServer(t *testing.T) {
	mux := echoMux()
	mux.Handle(websocket.TypeText, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(websocket.TextBytes(append([]byte("text:"), p.Body...)))
	}))
	var seen struct {
		sync.Mutex
		path, room, auth string
	}
	srv := tiotest.NewServer(t, mux, tio.WithWebSocket(websocket.Config{
		OnHandshake: func(c codec.Conn, r *websocket.Request) error {
			seen.Lock()
			defer seen.Unlock()
			seen.path, seen.room, seen.auth = r.Path, r.Query().Get("room"), r.Header().Get("Authorization")
			return nil
		},
	}))
	rec := newRecorder()
	cmux := handler.NewMux()
	cmux.Handle(1, handler.Inline(rec))
	cmux.Handle(websocket.TypeText, rec)
	c := newClient(t, cmux)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws://"+srv.Addr().String()+"/im?room=go",
		client.WithHeader(http.Header{"Authorization": {"Bearer t0ken"}}))
	if err != nil {
		t.Fatal(err)
	}
	seen.Lock()
	if seen.path != "/im" || seen.room != "go" || seen.auth != "Bearer t0ken" {
		t.Errorf("the server saw path %q room %q auth %q", seen.path, seen.room, seen.auth)
	}
	seen.Unlock()
	big := bytes.Repeat([]byte("x"), 200000)
	for _, b := range [][]byte{nil, []byte("hi"), big} {
		if err := cn.Send(&codec.Packet{Type: 1, Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cn.Send(websocket.Text("hello")); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 4)
	if len(got[0].Body) != 0 || string(got[1].Body) != "hi" || !bytes.Equal(got[2].Body, big) ||
		got[3].Type != websocket.TypeText || string(got[3].Body) != "text:hello" {
		t.Fatalf("got %.60v", got)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte{byte(i % 10), byte(i)}
			resp, err := cn.Call(ctx, &codec.Packet{Type: 2, Body: body})
			if err != nil || !resp.Reply || string(resp.Body) != string(body) {
				t.Errorf("Call %d: %+v %v", i, resp, err)
			}
		}()
	}
	wg.Wait()
	if _, err := cn.Call(ctx, &codec.Packet{Type: 0x100, Body: []byte("x")}); !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("a request of a type over 0xFF: %v", err)
	}
	if err := cn.Close(); err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "the server saw a clean close", func() bool { return srv.Stats().Closed[channel.ReasonClosedByPeer] == 1 })
}

// TestWebSocketRefused: a server that refuses the upgrade (403): Dial
// fails with an error that says so.
func TestWebSocketRefused(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(), tio.WithWebSocket(websocket.Config{Logger: tiotest.Logger(t)}))
	c := newClient(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Dial(ctx, "ws://"+srv.Addr().String()+"/", client.WithHeader(http.Header{"Origin": {"http://evil.example"}}))
	if !errors.Is(err, codec.ErrRefused) || !errors.Is(err, client.ErrConnLost) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Dial: %v", err)
	}
	// wss:// to a server without TLS, which hangs up on the ClientHello.
	if _, err := c.Dial(ctx, "wss://"+srv.Addr().String()+"/"); !errors.Is(err, client.ErrTLS) || !errors.Is(err, client.ErrConnLost) {
		t.Fatalf("wss: %v", err)
	}
	if _, err := c.Dial(ctx, "ws://"+srv.Addr().String()+"/", client.WithHeader(http.Header{"Sec-WebSocket-Key": {"x"}})); !errors.Is(err, client.ErrConfig) {
		t.Fatalf("a reserved header: %v", err)
	}
}

// gorillaServer is a gorilla/websocket echo server (a non-tio RFC 6455
// server, which refuses unmasked client frames): it echoes every message
// with its type, answers pings and records them, and records how the
// session ended.
type gorillaServer struct {
	*httptest.Server
	mu     sync.Mutex
	pings  int
	header http.Header
	proto  string
	ended  error
}

func newGorillaServer(t *testing.T) *gorillaServer {
	g := &gorillaServer{}
	up := gorilla.Upgrader{Subprotocols: []string{"tio.v2", "tio.v1"}, ReadBufferSize: 4096, WriteBufferSize: 4096}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		g.mu.Lock()
		g.header, g.proto = r.Header.Clone(), c.Subprotocol()
		g.mu.Unlock()
		c.SetReadLimit(4 << 20)
		c.SetPingHandler(func(data string) error {
			g.mu.Lock()
			g.pings++
			g.mu.Unlock()
			return c.WriteControl(gorilla.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				g.mu.Lock()
				g.ended = err
				g.mu.Unlock()
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(g.Close)
	return g
}

// TestWebSocketGorillaServer: the client against gorilla's server, which
// fails the session on an unmasked client frame: messages of every length
// encoding echo back, the subprotocol and headers are negotiated, the
// client's heartbeat pings are answered, and the close is clean (1000).
func TestWebSocketGorillaServer(t *testing.T) {
	g := newGorillaServer(t)
	rec := newRecorder()
	c := newClient(t, rec, client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}),
		client.WithHeartbeat(50*time.Millisecond, 2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(g.URL, "http") + "/echo?x=1"
	cn, err := c.Dial(ctx, url, client.WithSubprotocols("tio.v1", "tio.v2"),
		client.WithHeader(http.Header{"X-Token": {"abc"}}))
	if err != nil {
		t.Fatal(err)
	}
	if p := websocket.ProtocolOf(cn.Channel()); p != "tio.v2" {
		t.Fatalf("subprotocol %q", p) // gorilla picks by its own order
	}
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20}
	for _, n := range sizes {
		body := bytes.Repeat([]byte{byte(n)}, n)
		if err := cn.Send(&codec.Packet{Type: websocket.TypeBinary, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cn.Send(websocket.Text("héllo")); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, len(sizes)+1)
	for i, n := range sizes {
		if got[i].Type != websocket.TypeBinary || len(got[i].Body) != n || n > 0 && got[i].Body[0] != byte(n) {
			t.Fatalf("echo %d: type %#x, %d bytes", i, got[i].Type, len(got[i].Body))
		}
	}
	if last := got[len(sizes)]; last.Type != websocket.TypeText || string(last.Body) != "héllo" {
		t.Fatalf("text echo %+v", last)
	}
	time.Sleep(200 * time.Millisecond) // idle: heartbeats
	if err := cn.Close(); err != nil {
		t.Fatal(err)
	}
	tiotest.Eventually(t, "gorilla saw the close", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.ended != nil
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	if !gorilla.IsCloseError(g.ended, gorilla.CloseNormalClosure) {
		t.Fatalf("gorilla's session ended with %v", g.ended)
	}
	if g.pings == 0 || g.header.Get("X-Token") != "abc" || g.proto != "tio.v2" {
		t.Fatalf("pings %d, header %v, protocol %q", g.pings, g.header, g.proto)
	}
}

// TestWebSocketGobwasServer: the client against a gobwas/ws server on
// net/http, whose reader refuses unmasked client frames.
func TestWebSocketGobwasServer(t *testing.T) {
	var mu sync.Mutex
	var ended error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			msg, op, err := wsutil.ReadClientData(conn)
			if err != nil {
				mu.Lock()
				ended = err
				mu.Unlock()
				return
			}
			if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	rec := newRecorder()
	c := newClient(t, rec, client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := cn.Send(&codec.Packet{Type: websocket.TypeBinary, Body: bytes.Repeat([]byte{byte(i)}, i*1000)}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.wait(t, 20)
	for i, p := range got {
		if len(p.Body) != i*1000 {
			t.Fatalf("echo %d: %d bytes", i, len(p.Body))
		}
	}
	_ = cn.Close()
	tiotest.Eventually(t, "gobwas saw the close", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ended != nil
	})
	mu.Lock()
	defer mu.Unlock()
	var ce wsutil.ClosedError
	if !errors.As(ended, &ce) || ce.Code != ws.StatusNormalClosure {
		t.Fatalf("gobwas's session ended with %v", ended)
	}
}

// TestWebSocketDeadServer: a server that upgrades and then goes silent
// gets WebSocket pings after the idle time and is taken for dead after the
// timeout.
func TestWebSocketDeadServer(t *testing.T) {
	raw := newRawServer(t, func(r *rawServer, c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"))
		for {
			h, err := ws.ReadHeader(br)
			if err != nil || h.Length > 125 {
				return
			}
			if _, err := io.CopyN(io.Discard, br, h.Length); err != nil {
				return
			}
			if !h.Masked {
				r.read <- []byte("unmasked")
				return
			}
			r.read <- []byte{byte(h.OpCode)}
		}
	})
	c := newClient(t, nil, client.WithHeartbeat(100*time.Millisecond, 300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws://"+raw.ln.Addr().String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if b := <-raw.read; len(b) != 1 || ws.OpCode(b[0]) != ws.OpPing {
		t.Fatalf("the server read %q, want a masked ping", b)
	}
	select {
	case <-cn.Done():
	case <-ctx.Done():
		t.Fatal("the dead server was not detected")
	}
	if d := time.Since(start); d > time.Second || !errors.Is(cn.Err(), client.ErrConnLost) {
		t.Fatalf("after %v: %v", d, cn.Err())
	}
	if c.Stats().HeartbeatTimeouts != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

// TestQueuedUnencodable: a request queued while the connection was down
// that its mapping cannot carry (Raw has no ids) fails when the queue is
// sent; it does not hold up the queue, and the connection comes up.
func TestQueuedUnencodable(t *testing.T) {
	echo := handler.NewMux()
	echo.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	srv := newRestartable(t, echo, tio.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}, Logger: tiotest.Logger(t)}))
	rec := newRecorder()
	c := newClient(t, rec, client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "ws://"+srv.addr+"/",
		client.WithReconnect(client.Reconnect{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}), client.WithQueue(10, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv.stop()
	tiotest.Eventually(t, "down", func() bool { return cn.State() == client.StateReconnecting })
	called := make(chan error, 1)
	go func() {
		_, err := cn.Call(ctx, &codec.Packet{Type: websocket.TypeBinary, Body: []byte("q")})
		called <- err
	}()
	time.Sleep(20 * time.Millisecond) // the call is queued first
	if err := cn.Send(&codec.Packet{Type: websocket.TypeBinary, Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	srv.start()
	if err := <-called; !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("the queued Call: %v", err)
	}
	tiotest.Eventually(t, "connected", func() bool { return cn.State() == client.StateConnected })
	if got := rec.wait(t, 1); string(got[0].Body) != "after" {
		t.Fatalf("echo %q", got[0].Body)
	}
}

// TestCloseWhileTheServerSends: a client that closes while the server is
// still sending waits for the server's close frame behind what was in
// flight, skipping it, and only then closes TCP: the server's writes never
// meet a reset, and it reads a clean end after its answer.
func TestCloseWhileTheServerSends(t *testing.T) {
	type outcome struct{ write, end error }
	done := make(chan outcome, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer conn.Close()
		stop, wrote := make(chan struct{}), make(chan error, 1)
		go func() {
			frame := ws.MustCompileFrame(ws.NewTextFrame(bytes.Repeat([]byte("y"), 1000)))
			for {
				select {
				case <-stop:
					wrote <- nil
					return
				default:
				}
				if _, err := conn.Write(frame); err != nil {
					wrote <- err
					return
				}
			}
		}()
		var o outcome
		for {
			h, err := ws.ReadHeader(conn)
			if err != nil {
				close(stop)
				o.write, o.end = <-wrote, err
				done <- o
				return
			}
			if _, err := io.CopyN(io.Discard, conn, h.Length); err != nil {
				close(stop)
				o.write, o.end = <-wrote, err
				done <- o
				return
			}
			if h.OpCode == ws.OpClose {
				break
			}
		}
		close(stop)
		o.write = <-wrote
		time.Sleep(50 * time.Millisecond) // the client has not read it all yet: its wait goes on
		_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		_ = conn.SetReadDeadline(time.Now().Add(tiotest.Timeout))
		_, o.end = io.Copy(io.Discard, conn)
		done <- o
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, handler.NewMux(), client.WithCloseTimeout(time.Minute))
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cn, err := c.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the flood under way
		_ = cn.Close()
		o := <-done
		if o.write != nil {
			t.Fatalf("connection %d: the server's writes failed before the client's wait was over: %v", i, o.write)
		}
		if o.end != nil {
			t.Fatalf("connection %d: after its close the server read %v, want a clean end", i, o.end)
		}
	}
}
