// Command echo serves tio's echo on one port, for WebSocket and for tio's
// binary protocol: every WebSocket message (any path) comes back with the same
// opcode and payload, and every binary-protocol packet comes back unchanged.
// One exception: a WebSocket text message whose payload starts with "B:" is
// broadcast unchanged to every connected client, the sender included (a
// send to everyone, encoded once per protocol), so that benchmarks can
// measure fan-out. permessage-deflate (RFC 7692, without context takeover)
// is negotiated with clients that offer it; -deflate=false turns it off.
// Conformance checks and benchmarks run against it; keep -addr and this
// behaviour stable.
//
//	go run ./example/echo -addr 127.0.0.1:9001
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/example/echo/echoserver"
)

// newServer builds the echo server (package echoserver, which the
// benchmarks share); main_test.go runs it too.
func newServer(addr string, logger *slog.Logger, deflate bool) *tio.Server {
	return echoserver.NewWith(addr, echoserver.Config{NoDeflate: !deflate}, tio.WithLogger(logger))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "TCP address to listen on")
	metricsAddr := flag.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9002 (empty: off)")
	deflate := flag.Bool("deflate", true, "negotiate permessage-deflate with clients that offer it")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	srv := newServer(*addr, logger, *deflate)
	if err := srv.Start(); err != nil {
		logger.Error("echo: cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	logger.Info("echo: serving WebSocket and binary protocol", "addr", srv.Addr().String(), "deflate", *deflate)
	if *metricsAddr != "" {
		at, err := serveMetrics(*metricsAddr, srv)
		if err != nil {
			logger.Error("echo: cannot serve metrics", "addr", *metricsAddr, "err", err)
			os.Exit(1)
		}
		logger.Info("echo: serving Prometheus metrics", "url", "http://"+at.String()+"/metrics")
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Error("echo: shutdown", "err", err)
	}
}

// serveMetrics serves srv's Prometheus metrics at http://addr/metrics.
func serveMetrics(addr string, srv *tio.Server) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.MetricsHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return ln.Addr(), nil
}
