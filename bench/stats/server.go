package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/stats"
)

// NewServer returns the echo server of the benchmark in one of its modes
// (off, on, on+ip) on addr: every binary-protocol packet comes back
// unchanged, from an inline handler, as in example/echo.
func NewServer(addr, mode string) (*tio.Server, error) {
	mux := handler.NewMux()
	mux.NotFound(handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) { _ = ch.Send(p) }))
	opts := []tio.Option{tio.WithCodec(binary.New(binary.Config{}))}
	switch mode {
	case "off":
		opts = append(opts, tio.WithStats(false))
	case "on":
	case "on+ip":
		opts = append(opts, tio.WithIPStats(stats.IPConfig{Windows: []time.Duration{time.Minute, time.Hour}}))
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	return tio.NewServer(addr, mux, opts...), nil
}

// runServer runs the server of a child process: it prints the echo address
// and the metrics address, then serves until killed.
func runServer(mode string) error {
	srv, err := NewServer("127.0.0.1:0", mode)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.MetricsHandler())
	go func() { _ = http.Serve(ln, mux) }()
	fmt.Println(srv.Addr(), ln.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// processCPU returns the CPU time process pid has used, in nanoseconds: the
// sum over its threads of /proc/PID/task/TID/schedstat's first field (time
// on CPU, ns precision). 0 if unknown.
func processCPU(pid int) int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return sum
}
