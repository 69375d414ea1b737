package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/lxzan/gws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
)

// The "memory per active connection" scenario: N WebSocket connections to a
// server that, once told to, sends one message to all of them at a fixed
// interval (a server-side ticker: tio's srv.Send(tio.All(), p), gws's
// Broadcaster), while it still echoes whatever a connection sends. The
// client (ActiveClient) reads everything, checks it and measures latency;
// RunActive drives the phases (idle, broadcast, broadcast + echo) and reads
// the server's resident memory and CPU time. benchrun's scenario (e) runs it
// with each server and the client in processes of their own.
//
// Every message is a binary frame. A broadcast's payload is 'B', the time it
// was made (MonoNow, 8 bytes big-endian), its sequence number (8 bytes, from
// 1) and padding; an echo's is 'E', the time the client sent it (8 bytes),
// and the client's filler.

// MinBroadcastSize is the least payload a broadcast can have.
const MinBroadcastSize = 1 + 8 + 8

// MinEchoSize is the least payload of the client's echoed messages.
const MinEchoSize = 1 + 8

// ActiveImpls lists the servers that implement the scenario (the gnet
// floor has no broadcast).
var ActiveImpls = []string{ImplTio, ImplGws}

// BroadcastConfig is the server side of the scenario.
type BroadcastConfig struct {
	Interval time.Duration // one broadcast per interval
	Size     int           // payload bytes, at least MinBroadcastSize
}

// BroadcastStats is what a server of the scenario reports of itself.
type BroadcastStats struct {
	Broadcasts uint64 `json:"broadcasts"` // made so far; the last one's sequence number
	Sends      uint64 `json:"sends"`      // connections that took a broadcast
	Failed     uint64 `json:"failed"`     // connections that refused one
	// FanoutNs is the time the broadcasts' fan-out calls took in all, and
	// FanoutMaxNs the longest (queueing for every connection, not writing).
	FanoutNs    int64 `json:"fanout_ns"`
	FanoutMaxNs int64 `json:"fanout_max_ns"`
	// The Go runtime's memory when the stats were taken (runtime.MemStats).
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapIdle   uint64 `json:"heap_idle"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
	Goroutines int    `json:"goroutines"`
}

// ActiveServer is a running server of the scenario: an echo server that
// broadcasts between StartBroadcast and StopBroadcast.
type ActiveServer interface {
	Server
	// PID is the server's process: this one.
	PID() int
	StartBroadcast() error
	StopBroadcast() error
	Stats() (BroadcastStats, error)
}

// StartActive starts impl's server of the scenario on addr. logger may be
// nil.
func StartActive(impl, addr string, logger *slog.Logger, cfg BroadcastConfig) (ActiveServer, error) {
	if cfg.Interval <= 0 || cfg.Size < MinBroadcastSize {
		return nil, fmt.Errorf("bench: a broadcast needs an interval and at least %d bytes", MinBroadcastSize)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch impl {
	case ImplTio:
		return startTioActive(addr, logger, cfg)
	case ImplGws:
		return startGwsActive(addr, cfg)
	}
	return nil, fmt.Errorf("bench: %q has no broadcast scenario (want tio or gws)", impl)
}

// AppendBroadcast appends a broadcast's payload: size bytes, stamped with
// seq and ts.
func AppendBroadcast(dst []byte, size int, seq uint64, ts int64) []byte {
	dst = append(dst, 'B')
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	for range size - MinBroadcastSize {
		dst = append(dst, 'x')
	}
	return dst
}

// broadcaster is the ticker both servers share: while on, it makes a
// payload every interval and hands it to send, which fans it out.
type broadcaster struct {
	cfg  BroadcastConfig
	send func(p []byte) (ok, failed int)

	mu    sync.Mutex
	stop  chan struct{} // nil while off
	done  chan struct{}
	stats BroadcastStats
}

func (b *broadcaster) StartBroadcast() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stop != nil {
		return errors.New("bench: already broadcasting")
	}
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	go b.run(b.stop, b.done)
	return nil
}

func (b *broadcaster) StopBroadcast() error {
	b.mu.Lock()
	stop, done := b.stop, b.done
	b.stop = nil
	b.mu.Unlock()
	if stop == nil {
		return errors.New("bench: not broadcasting")
	}
	close(stop)
	<-done
	return nil
}

func (b *broadcaster) run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(b.cfg.Interval)
	defer t.Stop()
	for {
		b.mu.Lock()
		seq := b.stats.Broadcasts + 1
		b.mu.Unlock()
		// A payload of its own for every broadcast: gws's Broadcaster
		// keeps it until the last connection has written it.
		p := AppendBroadcast(make([]byte, 0, b.cfg.Size), b.cfg.Size, seq, MonoNow())
		t0 := time.Now()
		ok, failed := b.send(p)
		d := time.Since(t0).Nanoseconds()
		b.mu.Lock()
		b.stats.Broadcasts = seq
		b.stats.Sends += uint64(ok)
		b.stats.Failed += uint64(failed)
		b.stats.FanoutNs += d
		b.stats.FanoutMaxNs = max(b.stats.FanoutMaxNs, d)
		b.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (b *broadcaster) Stats() (BroadcastStats, error) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.mu.Lock()
	s := b.stats
	b.mu.Unlock()
	s.HeapAlloc, s.HeapInuse, s.HeapIdle, s.StackInuse, s.Sys, s.NumGC = m.HeapAlloc, m.HeapInuse, m.HeapIdle, m.StackInuse, m.Sys, m.NumGC
	s.Goroutines = runtime.NumGoroutine()
	return s, nil
}

func (*broadcaster) PID() int { return os.Getpid() }

// tioActive is tio's echo (NewTio: example/echo's server) with a ticker
// calling srv.Send(tio.All(), p), from its own goroutine, as an application
// pushing to every client does.
type tioActive struct {
	tioServer
	*broadcaster
}

func startTioActive(addr string, logger *slog.Logger, cfg BroadcastConfig) (ActiveServer, error) {
	s, err := StartTio(addr, logger)
	if err != nil {
		return nil, err
	}
	srv := s.(tioServer).s
	b := &broadcaster{cfg: cfg, send: func(p []byte) (int, int) {
		res, err := srv.Send(tio.All(), &codec.Packet{Type: websocket.TypeBinary, Body: p})
		if err != nil && res.Targets() == 0 {
			return 0, 1
		}
		return res.OK, res.Failed
	}}
	return tioActive{s.(tioServer), b}, nil
}

// gwsActive is StartGws's echo with the connections kept in gws's own
// sharded map, and a ticker that broadcasts as gws documents: one
// Broadcaster per message (the frame is built once and queued on each
// connection's write queue), Broadcast for every connection, then Close.
type gwsActive struct {
	gwsServer
	*broadcaster
}

type gwsActiveHandler struct {
	gwsEcho
	conns *gws.ConcurrentMap[*gws.Conn, struct{}]
}

func (h *gwsActiveHandler) OnOpen(c *gws.Conn)           { h.conns.Store(c, struct{}{}) }
func (h *gwsActiveHandler) OnClose(c *gws.Conn, _ error) { h.conns.Delete(c) }

func startGwsActive(addr string, cfg BroadcastConfig) (ActiveServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &gwsActiveHandler{conns: gws.NewConcurrentMap[*gws.Conn, struct{}](16)}
	sl := &stopListener{Listener: ln, stop: make(chan struct{})}
	srv := gws.NewServer(h, &gws.ServerOption{ParallelEnabled: false})
	srv.OnError = func(net.Conn, error) {}
	go func() { _ = srv.RunListener(sl) }()
	b := &broadcaster{cfg: cfg, send: func(p []byte) (ok, failed int) {
		bc := gws.NewBroadcaster(gws.OpcodeBinary, p)
		h.conns.Range(func(c *gws.Conn, _ struct{}) bool {
			if bc.Broadcast(c) == nil {
				ok++
			} else {
				failed++
			}
			return true
		})
		_ = bc.Close()
		return ok, failed
	}}
	return gwsActive{gwsServer{sl}, b}, nil
}
