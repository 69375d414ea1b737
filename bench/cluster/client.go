//go:build linux

package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/bench"
)

type clientConfig struct {
	Addrs     []string
	Per       int // receivers per address (the single server: len(Addrs) is 1 and Per is the whole room)
	Inflight  int
	Size      int
	Proto     string
	Warmup    time.Duration
	Duration  time.Duration
	ServerPID int
}

type result struct {
	Scenario   string      `json:"scenario,omitempty"`
	Receivers  int         `json:"receivers"`
	Sent       uint64      `json:"sent"`       // group sends, the whole run
	Deliveries uint64      `json:"deliveries"` // in the window
	Rate       float64     `json:"rate"`       // deliveries per second in the window
	P50        float64     `json:"p50_us"`
	P99        float64     `json:"p99_us"`
	ServerCPU  float64     `json:"server_cpu"` // CPU seconds in the window
	Server     serverStats `json:"server"`
}

var clock = time.Now()

func now() uint64 { return uint64(time.Since(clock)) }

// The message: the send time (8 bytes, ns on the client's clock), the
// sequence number (8 bytes), padding.
const header = 16

const ring = 1 << 12

type receiver struct {
	c     net.Conn
	r     *bufio.Reader
	ws    bool
	buf   []byte
	lat   []uint32 // µs, in the window
	count uint64   // deliveries in the window
}

func dialOne(addr string, ws bool) (net.Conn, *bufio.Reader, error) {
	if ws {
		c, rest, err := bench.DialWS(addr, 10*time.Second)
		if err != nil {
			return nil, nil, err
		}
		if len(rest) != 0 {
			c.Close()
			return nil, nil, errors.New("bytes after the handshake")
		}
		return c, bufio.NewReaderSize(c, 4096), nil
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Write([]byte{0xA1}); err != nil {
		c.Close()
		return nil, nil, err
	}
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 0xA1 {
		c.Close()
		return nil, nil, fmt.Errorf("binary handshake: %#x %v", b[0], err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, bufio.NewReaderSize(c, 4096), nil
}

// read returns the next message's body.
func (r *receiver) read() ([]byte, error) {
	if r.ws {
		b0, p, grown, err := bench.ReadServerFrame(r.r, r.buf)
		r.buf = grown
		if err != nil {
			return nil, err
		}
		if b0 != 0x82 || len(p) < 1 || p[0] != typeMsg {
			return nil, fmt.Errorf("unexpected frame %#x % x", b0, p[:min(len(p), 8)])
		}
		return p[1:], nil
	}
	var h [7]byte
	for {
		if _, err := io.ReadFull(r.r, h[:1]); err != nil {
			return nil, err
		}
		if h[0] != 0xA2 { // heartbeats aside
			break
		}
	}
	if _, err := io.ReadFull(r.r, h[1:]); err != nil {
		return nil, err
	}
	if h[0] != 0xA3 || binary.BigEndian.Uint16(h[1:]) != typeMsg {
		return nil, fmt.Errorf("unexpected packet % x", h)
	}
	n := int(binary.BigEndian.Uint32(h[3:]))
	if n > 1<<20 {
		return nil, fmt.Errorf("packet of %d bytes", n)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	_, err := io.ReadFull(r.r, b)
	return b, err
}

func runClient(cfg clientConfig) (result, error) {
	ws := cfg.Proto == "ws"
	if !ws && cfg.Proto != "binary" {
		return result{}, fmt.Errorf("unknown -proto %q", cfg.Proto)
	}
	if cfg.Size < header {
		cfg.Size = header
	}
	var rs []*receiver
	for _, a := range cfg.Addrs {
		for range cfg.Per {
			c, br, err := dialOne(a, ws)
			if err != nil {
				return result{}, err
			}
			defer c.Close()
			rs = append(rs, &receiver{c: c, r: br, ws: ws})
		}
	}
	sc, _, err := dialOne(cfg.Addrs[0], ws)
	if err != nil {
		return result{}, err
	}
	defer sc.Close()
	time.Sleep(200 * time.Millisecond) // bindings settle (OnConnect binds)

	total := int32(len(rs))
	var counts [ring]atomic.Int32
	done := make(chan uint64, ring)
	var winStart, winEnd atomic.Uint64
	winStart.Store(1 << 63)
	winEnd.Store(1 << 63)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := uint64(0)
			for {
				b, err := r.read()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
						failed.CompareAndSwap(nil, &err)
					}
					return
				}
				t := now()
				ts, seq := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
				if seq != next {
					err := fmt.Errorf("receiver got message %d, expected %d (lost or duplicated)", seq, next)
					failed.CompareAndSwap(nil, &err)
					return
				}
				next++
				if ts >= winStart.Load() && ts < winEnd.Load() {
					r.count++
					r.lat = append(r.lat, uint32(min((t-ts)/1000, 1<<32-1)))
				}
				if counts[seq%ring].Add(1) == total {
					counts[seq%ring].Store(0)
					done <- seq
				}
			}
		}()
	}

	msg := make([]byte, cfg.Size)
	_, _ = rand.Read(msg[header:])
	var frame []byte
	var seq uint64
	send := func() error {
		binary.BigEndian.PutUint64(msg, now())
		binary.BigEndian.PutUint64(msg[8:], seq)
		seq++
		if ws {
			frame = bench.AppendClientFrame(frame[:0], 0x2, append([]byte{typeSend}, msg...), [4]byte{1, 2, 3, 4})
		} else {
			frame = append(frame[:0], 0xA3, 0, typeSend)
			frame = binary.BigEndian.AppendUint32(frame, uint32(len(msg)))
			frame = append(frame, msg...)
		}
		_, err := sc.Write(frame)
		return err
	}
	for range cfg.Inflight {
		if err := send(); err != nil {
			return result{}, err
		}
	}
	start := time.Now()
	var cpu0, cpu1 float64
	measuring, over := false, false
	for !over {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			if e := failed.Load(); e != nil {
				return result{}, *e
			}
			return result{}, errors.New("stalled: a group send did not reach every receiver within 2 s")
		}
		el := time.Since(start)
		switch {
		case !measuring && el >= cfg.Warmup:
			measuring = true
			cpu0 = bench.ProcCPU(cfg.ServerPID)
			winStart.Store(now())
		case measuring && el >= cfg.Warmup+cfg.Duration:
			winEnd.Store(now())
			cpu1 = bench.ProcCPU(cfg.ServerPID)
			over = true
			continue
		}
		if err := send(); err != nil {
			return result{}, err
		}
	}
	// Let the sends in flight arrive, then stop the receivers.
	for range cfg.Inflight - 1 {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	for _, r := range rs {
		r.c.Close()
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		return result{}, *e
	}
	res := result{Receivers: len(rs), Sent: seq}
	var lat []uint32
	for _, r := range rs {
		res.Deliveries += r.count
		lat = append(lat, r.lat...)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.P50 = float64(lat[len(lat)/2])
		res.P99 = float64(lat[len(lat)*99/100])
	}
	res.Rate = float64(res.Deliveries) / cfg.Duration.Seconds()
	res.ServerCPU = -1
	if cpu0 >= 0 && cpu1 >= 0 {
		res.ServerCPU = cpu1 - cpu0
	}
	return res, nil
}
