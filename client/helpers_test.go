package client_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// newClient makes a client for the test, shut down when it ends.
func newClient(t testing.TB, h handler.Handler, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithLogger(tiotest.Logger(t)), client.WithEventLoops(2)}, opts...)
	c, err := client.New(h, opts...)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			t.Errorf("client shutdown: %v", err)
		}
	})
	return c
}

// echoMux echoes packets of type 1 inline, and answers requests of type
// 2 with their body after the delay the body's first byte names in ms,
// on the pool.
func echoMux() *handler.Mux {
	mux := handler.NewMux()
	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		_ = ch.Send(&codec.Packet{Type: 1, Body: p.Body})
	}))
	mux.HandleFunc(2, func(ch *channel.Channel, p *codec.Packet) {
		if len(p.Body) > 0 {
			time.Sleep(time.Duration(p.Body[0]) * time.Millisecond)
		}
		_ = ch.Reply(p, &codec.Packet{Type: 2, Body: p.Body})
	})
	return mux
}

// recorder collects the packets a client receives.
type recorder struct {
	mu   sync.Mutex
	got  []codec.Packet
	more chan struct{}
}

func newRecorder() *recorder { return &recorder{more: make(chan struct{}, 1)} }

func (r *recorder) ServePacket(_ *channel.Channel, p *codec.Packet) {
	r.mu.Lock()
	r.got = append(r.got, codec.Packet{Type: p.Type, ID: p.ID, Reply: p.Reply, Body: append([]byte(nil), p.Body...)})
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *recorder) packets() []codec.Packet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]codec.Packet(nil), r.got...)
}

// wait waits until n packets came.
func (r *recorder) wait(t testing.TB, n int) []codec.Packet {
	t.Helper()
	tiotest.Eventually(t, strconv.Itoa(n)+" packets", func() bool { return len(r.packets()) >= n })
	return r.packets()
}

func binURL(addr net.Addr) string { return "tio://" + addr.String() }

// freePort returns a port of 127.0.0.1 nothing listens on (now).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// restartable is a tio server on a fixed address that a test stops and
// starts again.
type restartable struct {
	t    testing.TB
	addr string
	h    handler.Handler
	opts []tio.Option
	mu   sync.Mutex
	srv  *tio.Server
}

func newRestartable(t testing.TB, h handler.Handler, opts ...tio.Option) *restartable {
	r := &restartable{t: t, addr: freePort(t), h: h, opts: append([]tio.Option{tio.WithLogger(tiotest.Logger(t))}, opts...)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	srv := tio.NewServer(r.addr, r.h, r.opts...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := srv.Start()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("restart on %s: %v", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
		srv = tio.NewServer(r.addr, r.h, r.opts...)
	}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
}

func (r *restartable) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		r.t.Errorf("shutdown: %v", err)
	}
}

func (r *restartable) url() string { return "tio://" + r.addr }

// gorillaEcho upgrades r with up and echoes every message of up to 8 MiB
// until the connection ends: the gorilla peer of the client's tests.
func gorillaEcho(up gorilla.Upgrader, w http.ResponseWriter, r *http.Request) {
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(8 << 20)
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, msg); err != nil {
			return
		}
	}
}
