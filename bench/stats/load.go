package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/codec"
	tbin "github.com/tiogo/tio/codec/binary"
)

// Config is the workload: Conns connections, each writing Inflight packets
// of Size body bytes in one write and reading their echoes back, over and
// over, for Duration.
type Config struct {
	Conns, Inflight, Size int
	Duration              time.Duration
}

// Load is a set of connections to one server, kept across runs.
type Load struct {
	cfg   Config
	conns []net.Conn
	batch []byte
}

// Dial opens the connections and does their handshakes.
func Dial(addr string, cfg Config) (*Load, error) {
	l := &Load{cfg: cfg}
	cd := tbin.New(tbin.Config{})
	body := make([]byte, cfg.Size)
	for i := range body {
		body[i] = byte(i)
	}
	for range cfg.Inflight {
		l.batch, _ = cd.Encode(l.batch, &codec.Packet{Type: 1, Body: body})
	}
	for range cfg.Conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.conns = append(l.conns, c)
		b := []byte{tbin.TagHandshake}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b); err != nil {
			l.Close()
			return nil, err
		}
		if _, err := io.ReadFull(c, b); err != nil || b[0] != tbin.TagHandshake {
			l.Close()
			return nil, fmt.Errorf("handshake: %v %#x", err, b[0])
		}
	}
	return l, nil
}

// Close closes the connections.
func (l *Load) Close() {
	for _, c := range l.conns {
		c.Close()
	}
}

// Run runs the workload for the configured duration and returns the
// messages echoed and the time it took (every batch started is finished).
func (l *Load) Run() (uint64, time.Duration, error) {
	var msgs atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, len(l.conns))
	begin := time.Now()
	for _, c := range l.conns {
		wg.Go(func() {
			buf := make([]byte, len(l.batch))
			_ = c.SetDeadline(time.Now().Add(l.cfg.Duration + 10*time.Second))
			for !stop.Load() {
				if _, err := c.Write(l.batch); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
				msgs.Add(uint64(l.cfg.Inflight))
			}
		})
	}
	time.Sleep(l.cfg.Duration)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(begin)
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	return msgs.Load(), elapsed, err
}

// RunN echoes at least n packets, in whole batches spread over the
// connections.
func (l *Load) RunN(n int) error {
	var batches atomic.Int64
	batches.Store(int64((n + l.cfg.Inflight - 1) / l.cfg.Inflight))
	var wg sync.WaitGroup
	errs := make(chan error, len(l.conns))
	for _, c := range l.conns {
		wg.Go(func() {
			buf := make([]byte, len(l.batch))
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			for batches.Add(-1) >= 0 {
				if _, err := c.Write(l.batch); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}
