// Package clientload measures tio's client as a load generator beside a
// gorilla/websocket client: each holds many WebSocket connections to an
// echo server (example/echo's) and keeps messages in flight on each, and
// the runner (cmd/clientrun) compares their memory per connection and
// their message rates. Both run in processes of their own (the runner
// drives them over stdin, see cmd/clientload), each against its own echo
// server process, so that neither process holds more than 20,000 files.
package clientload

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// The implementations.
const (
	ImplTio     = "tio"     // package client: connections on gnet event loops
	ImplGorilla = "gorilla" // gorilla/websocket: a reading goroutine per connection
)

// Loader is one load client.
type Loader interface {
	// Connect opens n connections to url, par at a time.
	Connect(url string, n, par int) error
	// Run keeps inflight messages of size bytes in flight on every
	// connection for d and returns the echoes received after settle, and
	// the time they were counted over. It waits for the echoes still in
	// flight before it returns.
	Run(d, settle time.Duration, size, inflight int) (uint64, time.Duration, error)
	// Alive returns how many connections are still open.
	Alive() int
	// Close closes every connection.
	Close()
}

// New returns the loader impl; loops is the tio client's event loops.
func New(impl string, loops int, logger *slog.Logger) (Loader, error) {
	switch impl {
	case ImplTio:
		return newTio(loops, logger)
	case ImplGorilla:
		return &gorillaLoader{}, nil
	}
	return nil, fmt.Errorf("clientload: no implementation %q", impl)
}

// traffic is what both loaders count.
type traffic struct {
	running  atomic.Bool
	counting atomic.Bool
	sent     atomic.Int64
	recv     atomic.Int64
	counted  atomic.Uint64
	payload  []byte
}

// echoed counts one echo and says whether to send the next message.
func (t *traffic) echoed() bool {
	t.recv.Add(1)
	if t.counting.Load() {
		t.counted.Add(1)
	}
	if t.running.Load() {
		t.sent.Add(1)
		return true
	}
	return false
}

// run drives one measured run: start sends the first messages.
func (t *traffic) run(d, settle time.Duration, size int, start func() error) (uint64, time.Duration, error) {
	t.payload = make([]byte, size)
	for i := range t.payload {
		t.payload[i] = byte('a' + i%26)
	}
	t.counted.Store(0)
	t.running.Store(true)
	if err := start(); err != nil {
		t.running.Store(false)
		return 0, 0, err
	}
	time.Sleep(settle)
	t.counting.Store(true)
	begin := time.Now()
	time.Sleep(d - settle)
	t.counting.Store(false)
	took := time.Since(begin)
	t.running.Store(false)
	n := t.counted.Load()
	deadline := time.Now().Add(5 * time.Second)
	for t.recv.Load() < t.sent.Load() {
		if time.Now().After(deadline) {
			return n, took, fmt.Errorf("clientload: %d echoes never came", t.sent.Load()-t.recv.Load())
		}
		time.Sleep(time.Millisecond)
	}
	return n, took, nil
}

// tioLoader is package client's: one Client, many Conns, an inline
// handler that answers each echo with the next message.
type tioLoader struct {
	traffic
	c     *client.Client
	conns []*client.Conn
}

func newTio(loops int, logger *slog.Logger) (*tioLoader, error) {
	l := &tioLoader{}
	mux := handler.NewMux()
	mux.Handle(websocket.TypeBinary, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		if l.echoed() {
			_ = ch.Send(&codec.Packet{Type: websocket.TypeBinary, Body: l.payload})
		}
	}))
	opts := []client.Option{
		client.WithLogger(logger),
		client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}),
	}
	if loops > 0 {
		opts = append(opts, client.WithEventLoops(loops))
	}
	c, err := client.New(mux, opts...)
	if err != nil {
		return nil, err
	}
	l.c = c
	return l, nil
}

func (l *tioLoader) Connect(url string, n, par int) error {
	conns, err := parallel(n, par, func() (*client.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return l.c.Dial(ctx, url)
	})
	l.conns = conns
	return err
}

func (l *tioLoader) Run(d, settle time.Duration, size, inflight int) (uint64, time.Duration, error) {
	return l.run(d, settle, size, func() error {
		p := &codec.Packet{Type: websocket.TypeBinary, Body: l.payload}
		for _, cn := range l.conns {
			for range inflight {
				l.sent.Add(1)
				if err := cn.Send(p); err != nil {
					l.sent.Add(-1)
					return err
				}
			}
		}
		return nil
	})
}

func (l *tioLoader) Alive() int { return l.c.Stats().Open }

func (l *tioLoader) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.c.Shutdown(ctx)
}

// gorillaLoader is gorilla/websocket's usual client: a goroutine per
// connection reads each echo and writes the next message (a mutex keeps
// the first writes of a run, from the driver, from racing it).
type gorillaLoader struct {
	traffic
	conns []*gorillaConn
	alive atomic.Int64
}

type gorillaConn struct {
	mu sync.Mutex
	c  *gorilla.Conn
}

func (l *gorillaLoader) Connect(url string, n, par int) error {
	d := &gorilla.Dialer{HandshakeTimeout: 30 * time.Second} // default 4 KiB buffers
	conns, err := parallel(n, par, func() (*gorillaConn, error) {
		c, resp, err := d.Dial(url, http.Header{})
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		gc := &gorillaConn{c: c}
		l.alive.Add(1)
		go l.read(gc)
		return gc, nil
	})
	l.conns = conns
	return err
}

func (l *gorillaLoader) read(gc *gorillaConn) {
	defer l.alive.Add(-1)
	for {
		_, r, err := gc.c.NextReader()
		if err != nil {
			return
		}
		// ReadMessage's io.ReadAll, without its growth: the echo is as
		// long as what was sent.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
		if l.echoed() {
			gc.mu.Lock()
			err := gc.c.WriteMessage(gorilla.BinaryMessage, l.payload)
			gc.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

func (l *gorillaLoader) Run(d, settle time.Duration, size, inflight int) (uint64, time.Duration, error) {
	return l.run(d, settle, size, func() error {
		for _, gc := range l.conns {
			gc.mu.Lock()
			for range inflight {
				l.sent.Add(1)
				if err := gc.c.WriteMessage(gorilla.BinaryMessage, l.payload); err != nil {
					l.sent.Add(-1)
					gc.mu.Unlock()
					return err
				}
			}
			gc.mu.Unlock()
		}
		return nil
	})
}

func (l *gorillaLoader) Alive() int { return int(l.alive.Load()) }

func (l *gorillaLoader) Close() {
	for _, gc := range l.conns {
		_ = gc.c.Close()
	}
}

// parallel makes n things, par at a time, and returns them (and the first
// error).
func parallel[T any](n, par int, make1 func() (T, error)) ([]T, error) {
	out := make([]T, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range max(par, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				v, err := make1()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n)) // stop
					return
				}
				out[i] = v
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return out, nil
}
