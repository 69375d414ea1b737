// Command echo serves tio's echo on one port, for WebSocket and for tio's
// binary protocol: every WebSocket message (any path) comes back with the same
// opcode and payload, and every binary-protocol packet comes back unchanged.
// One exception: a WebSocket text message whose payload starts with "B:" is
// broadcast unchanged to every connected client, the sender included (a
// send to everyone, encoded once per protocol), so that benchmarks can
// measure fan-out. With -cert and -key it serves TLS too, on the same port
// (wss:// next to ws://, the binary protocol over TLS next to it in clear),
// and reloads the certificate files on SIGHUP. Conformance checks and
// benchmarks run against it; keep -addr, -cert, -key and this behaviour
// stable.
//
//	go run ./example/echo -addr 127.0.0.1:9001
//	go run ./example/echo -addr :9443 -cert fullchain.pem -key privkey.pem
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
	"github.com/tiogo/tio/internal/certfile"
)

// newServer builds the echo server (package echoserver, which the
// benchmarks share); main_test.go runs it too.
func newServer(addr string, logger *slog.Logger, opts ...tio.Option) *tio.Server {
	return echoserver.New(addr, append([]tio.Option{tio.WithLogger(logger)}, opts...)...)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "TCP address to listen on")
	metricsAddr := flag.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9002 (empty: off)")
	certFile := flag.String("cert", "", "serve TLS too, with the certificate chain in PEM `FILE` (reloaded on SIGHUP)")
	keyFile := flag.String("key", "", "the private key of -cert, in PEM `FILE`")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var opts []tio.Option
	var certs *certfile.Reloader
	if *certFile != "" || *keyFile != "" {
		if *certFile == "" || *keyFile == "" {
			logger.Error("echo: -cert and -key go together")
			os.Exit(2)
		}
		var err error
		if certs, err = certfile.Load(*certFile, *keyFile); err != nil {
			logger.Error("echo: cannot load the certificate", "err", err)
			os.Exit(1)
		}
		opts = append(opts, tio.WithTLS(certs.Config()))
	}
	srv := newServer(*addr, logger, opts...)
	if err := srv.Start(); err != nil {
		logger.Error("echo: cannot listen", "addr", *addr, "err", err)
		os.Exit(1)
	}
	logger.Info("echo: serving WebSocket and binary protocol", "addr", srv.Addr().String(), "tls", certs != nil)
	if *metricsAddr != "" {
		at, err := serveMetrics(*metricsAddr, srv)
		if err != nil {
			logger.Error("echo: cannot serve metrics", "addr", *metricsAddr, "err", err)
			os.Exit(1)
		}
		logger.Info("echo: serving Prometheus metrics", "url", "http://"+at.String()+"/metrics")
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	for s := <-sig; s == syscall.SIGHUP; s = <-sig {
		if certs == nil {
			continue
		}
		if err := certs.Reload(); err != nil {
			logger.Error("echo: certificate not reloaded", "err", err)
			continue
		}
		logger.Info("echo: certificate reloaded", "serial", certs.Certificate().Leaf.SerialNumber)
	}
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
