package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/example/echo/echoserver"
)

// The servers compared. Each broadcasts a text message whose payload starts
// with "B:" to every connected client, the sender included, unchanged, and
// echoes anything else to its sender.
const (
	implTio     = "tio"     // tio, built exactly like example/echo: SendToAll from an inline handler
	implGws     = "gws"     // github.com/lxzan/gws: a Broadcaster (frame encoded once) over a ConcurrentMap of connections
	implGorilla = "gorilla" // github.com/gorilla/websocket: a hub goroutine and one writer goroutine per connection
)

var impls = []string{implTio, implGws, implGorilla}

var prefix = echoserver.BroadcastPrefix

// serve starts impl on addr and returns the address it listens on.
func serve(impl, addr string) (string, error) {
	switch impl {
	case implTio:
		return serveTio(addr)
	case implGws:
		return serveGws(addr)
	case implGorilla:
		return serveGorilla(addr)
	}
	return "", fmt.Errorf("unknown implementation %q (want tio, gws or gorilla)", impl)
}

// serveTio runs example/echo's server (package echoserver).
func serveTio(addr string) (string, error) {
	srv := echoserver.New(addr,
		tio.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		tio.WithHooks(tioHooks),
	)
	if err := srv.Start(); err != nil {
		return "", err
	}
	return srv.Addr().String(), nil
}

// tioHooks is empty unless -writes asks to count tio's writes.
var tioHooks tio.Hooks

// writeStats counts tio's socket writes and the bytes they carried.
var writeStats struct{ writes, bytes atomic.Int64 }

func countWrites() {
	tioHooks.OnSent = func(_ *channel.Channel, n int) {
		writeStats.writes.Add(1)
		writeStats.bytes.Add(int64(n))
	}
}

// gwsHub keeps gws's connections in gws's own sharded map.
type gwsHub struct {
	gws.BuiltinEventHandler
	conns *gws.ConcurrentMap[*gws.Conn, struct{}]
}

func (h *gwsHub) OnOpen(c *gws.Conn)             { h.conns.Store(c, struct{}{}) }
func (h *gwsHub) OnClose(c *gws.Conn, err error) { h.conns.Delete(c) }

// OnMessage broadcasts as gws's documentation shows: one Broadcaster per
// message, which builds the frame once and queues it for each connection
// (written by the connection's write queue), then Close.
func (h *gwsHub) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if m.Opcode != gws.OpcodeText || !bytes.HasPrefix(m.Bytes(), prefix) {
		_ = c.WriteMessage(m.Opcode, m.Bytes())
		return
	}
	// The broadcaster writes asynchronously, after m is released: copy.
	b := gws.NewBroadcaster(gws.OpcodeText, bytes.Clone(m.Bytes()))
	h.conns.Range(func(c *gws.Conn, _ struct{}) bool {
		_ = b.Broadcast(c)
		return true
	})
	_ = b.Close()
}

// serveGws runs gws's own server (one reading goroutine per connection,
// messages handled in order), default options otherwise.
func serveGws(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	h := &gwsHub{conns: gws.NewConcurrentMap[*gws.Conn, struct{}](16)}
	srv := gws.NewServer(h, &gws.ServerOption{ParallelEnabled: false})
	srv.OnError = func(net.Conn, error) {}
	go func() { _ = srv.RunListener(ln) }()
	return ln.Addr().String(), nil
}

// The gorilla hub is gorilla's chat example (hub goroutine, register,
// unregister and broadcast channels, a reader and a writer goroutine per
// client, a 256-message send buffer, slow clients dropped), with one change
// so that every server sends the same frames: the example's writer joins
// the messages queued for a client into one frame with newlines; this one
// writes each message as its own frame into a buffer and flushes the buffer
// in one write once the queue is empty, so it still pays one system call
// per batch of queued frames, not per frame.
type gorillaHub struct {
	clients    map[*gorillaClient]bool
	broadcast  chan []byte
	register   chan *gorillaClient
	unregister chan *gorillaClient
}

type gorillaClient struct {
	hub  *gorillaHub
	conn *gorilla.Conn
	out  *bufConn
	send chan []byte
}

func (h *gorillaHub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
			}
		case m := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- m:
				default:
					close(c.send)
					delete(h.clients, c)
				}
			}
		}
	}
}

func (c *gorillaClient) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(1 << 20)
	for {
		op, m, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if op == gorilla.TextMessage && bytes.HasPrefix(m, prefix) {
			c.hub.broadcast <- m
		} // the benchmark sends nothing else

	}
}

func (c *gorillaClient) writePump() {
	defer c.conn.Close()
	for m := range c.send {
		if err := c.conn.WriteMessage(gorilla.TextMessage, m); err != nil {
			return
		}
		for n := len(c.send); n > 0; n-- {
			if err := c.conn.WriteMessage(gorilla.TextMessage, <-c.send); err != nil {
				return
			}
		}
		if err := c.out.Flush(); err != nil {
			return
		}
	}
	_ = c.conn.WriteMessage(gorilla.CloseMessage, []byte{})
	_ = c.out.Flush()
}

// bufConn buffers what gorilla writes once buffering is on (after the
// handshake), until Flush. gorilla serializes its own writes; the mutex
// orders them with Flush.
type bufConn struct {
	net.Conn
	mu       sync.Mutex
	w        *bufio.Writer
	buffered bool
}

func (c *bufConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.buffered {
		return c.Conn.Write(b)
	}
	return c.w.Write(b)
}

func (c *bufConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

type bufListener struct{ net.Listener }

func (l bufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	bc := &bufConn{Conn: c}
	bc.w = bufio.NewWriterSize(c, 16<<10)
	return bc, nil
}

func serveGorilla(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	hub := &gorillaHub{
		clients:    make(map[*gorillaClient]bool),
		broadcast:  make(chan []byte),
		register:   make(chan *gorillaClient),
		unregister: make(chan *gorillaClient),
	}
	go hub.run()
	up := gorilla.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, CheckOrigin: func(*http.Request) bool { return true }}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			out, ok := conn.NetConn().(*bufConn)
			if !ok {
				conn.Close()
				return
			}
			out.mu.Lock()
			out.buffered = true
			out.mu.Unlock()
			c := &gorillaClient{hub: hub, conn: conn, out: out, send: make(chan []byte, 256)}
			hub.register <- c
			go c.writePump()
			go c.readPump()
		}),
	}
	go func() {
		if err := srv.Serve(bufListener{ln}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("gorilla server", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
