// Package bench compares tio's WebSocket echo with a minimal gnet+gobwas echo
// (tio's overhead floor) and with github.com/lxzan/gws, driven by one load
// client for all three.
//
// The servers live here so that the benchserver command and the in-process
// testing.B benchmarks build exactly the same ones; the load client (raw
// sockets, a hand-written client handshake, masked frames) is in client.go and
// client_linux.go. The TLS scenarios (tio.WithTLS against gws on net/http
// with crypto/tls: a wss echo, memory per idle wss connection, handshakes per
// second) are in tls.go and tls_client.go. See docs/benchmarks.md for the
// method and the numbers, and
// run the whole comparison, from bench/ (the benchmarks' own module), with
//
//	go run ./cmd/benchrun
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lxzan/gws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/example/echo/echoserver"
)

// Implementations compared, in the order the runner reports them.
const (
	ImplTio  = "tio"  // tio, built like example/echo
	ImplGnet = "gnet" // the minimal gnet+gobwas echo: the overhead floor
	ImplGws  = "gws"  // github.com/lxzan/gws
)

// Impls lists the implementations.
var Impls = []string{ImplTio, ImplGnet, ImplGws}

// ImplsEnv names the environment variable that limits the tests and the
// in-process benchmarks of bench and bench/broadcast to some implementations:
// a comma-separated list, or every implementation when it is unset or empty.
// scripts/test.sh sets it to "tio" so that CI runs none of the peers' code
// (gorilla's hub, for one, drops receivers that fall behind on a loaded
// machine).
const ImplsEnv = "TIO_BENCH_IMPLS"

// Selected reports whether ImplsEnv selects impl.
func Selected(impl string) bool {
	v := strings.TrimSpace(os.Getenv(ImplsEnv))
	if v == "" {
		return true
	}
	for s := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(s) == impl {
			return true
		}
	}
	return false
}

// Server is a running echo server.
type Server interface {
	// Addr is the address it listens on ("127.0.0.1:PORT").
	Addr() string
	// Close stops it (best effort; the benchmark processes are killed).
	Close() error
}

// Start starts the echo server impl on addr ("127.0.0.1:0" for a free port)
// and returns once it listens. logger may be nil (errors go to stderr).
func Start(impl, addr string, logger *slog.Logger) (Server, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch impl {
	case ImplTio:
		return StartTio(addr, logger)
	case ImplGnet:
		return StartFloor(addr)
	case ImplGws:
		return StartGws(addr)
	}
	return nil, fmt.Errorf("bench: unknown implementation %q (want tio, gnet or gws)", impl)
}

// NewTio builds tio's echo: example/echo's server itself (package
// echoserver): a WebSocket codec with the Raw mapping and any origin, plus
// the binary codec, sniffed on one port, echoing inline with ch.Send.
func NewTio(addr string, logger *slog.Logger) *tio.Server {
	return echoserver.New(addr, tio.WithLogger(logger))
}

type tioServer struct{ s *tio.Server }

// StartTio starts NewTio's server.
func StartTio(addr string, logger *slog.Logger) (Server, error) {
	s := NewTio(addr, logger)
	if err := s.Start(); err != nil {
		return nil, err
	}
	if s.Addr() == nil {
		_ = s.Shutdown(context.Background())
		return nil, errors.New("bench: tio started without an address")
	}
	return tioServer{s}, nil
}

func (t tioServer) Addr() string { return t.s.Addr().String() }

func (t tioServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return t.s.Shutdown(ctx)
}

// gwsEcho echoes every message with its opcode. It answers a ping with a
// pong carrying the ping's payload (BuiltinEventHandler's pong is empty, which
// RFC 6455 does not allow); the benchmark's traffic has no pings.
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

type gwsServer struct {
	ln *stopListener
}

// StartGws starts a gws echo through gws's own net/http-free server
// (gws.NewServer, RunListener: one goroutine per connection), messages
// handled in order (ParallelEnabled false), default options otherwise.
func StartGws(addr string) (Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	sl := &stopListener{Listener: ln, stop: make(chan struct{})}
	srv := gws.NewServer(gwsEcho{}, &gws.ServerOption{ParallelEnabled: false})
	srv.OnError = func(net.Conn, error) {}
	go func() { _ = srv.RunListener(sl) }()
	return gwsServer{sl}, nil
}

func (g gwsServer) Addr() string { return g.ln.Addr().String() }

func (g gwsServer) Close() error { return g.ln.Close() }

// stopListener makes Accept block once the listener is closed: gws's
// RunListener retries a failed Accept forever, which would spin after Close.
// Connections already served are not closed (the processes are killed).
type stopListener struct {
	net.Listener
	once sync.Once
	stop chan struct{}
}

func (l *stopListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.stop:
			<-make(chan struct{}) // closed for good: park
		default:
		}
	}
	return c, err
}

func (l *stopListener) Close() error {
	l.once.Do(func() { close(l.stop) })
	return l.Listener.Close()
}
