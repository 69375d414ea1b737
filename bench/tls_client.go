package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The TLS scenarios' client. Unlike the cleartext client (raw sockets on
// epoll loops), it runs crypto/tls's client as it is meant to be run: a
// blocking *tls.Conn per connection, with a goroutine of its own. It costs
// more CPU per message than the cleartext client, the same for every
// server; the interleaved slices (see CompareConfig) share the machine
// alike between them.

// TLSResult is what a TLS scenario measured for one server: the
// throughput figures (for the handshake scenario, Msgs counts handshakes
// completed) and the latency of what was counted, µs: a message's round
// trip, or a handshake's whole connection setup.
type TLSResult struct {
	LoadResult
	Dialers int     `json:"dialers,omitempty"` // handshake scenario: concurrent dialers
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p999_us"`
	Max     float64 `json:"max_us"`
	Mean    float64 `json:"mean_us"`
	Samples uint64  `json:"latency_samples"` // what the latency figures are of
}

// DialWSS connects to addr over TLS with cfg (its ServerName defaults to
// addr's host) and completes the WebSocket handshake, all within timeout.
// It returns the *tls.Conn and any bytes read past the upgrade response.
func DialWSS(addr string, cfg *tls.Config, timeout time.Duration) (net.Conn, []byte, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	rest, err := Handshake(c, addr)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, rest, nil
}

// shardedHist is a latency histogram that goroutines add to concurrently.
type shardedHist struct {
	shards [16]struct {
		mu  sync.Mutex
		h   Hist
		sum time.Duration
	}
}

func (s *shardedHist) add(i int, d time.Duration) {
	sh := &s.shards[i%len(s.shards)]
	sh.mu.Lock()
	sh.h.Add(uint64(d))
	sh.sum += d
	sh.mu.Unlock()
}

func (s *shardedHist) fill(r *TLSResult) {
	var (
		h   Hist
		sum time.Duration
	)
	for i := range s.shards {
		s.shards[i].mu.Lock()
		h.Merge(&s.shards[i].h)
		sum += s.shards[i].sum
		s.shards[i].mu.Unlock()
	}
	r.P50, r.P99, r.P999, r.Max = h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999), h.Quantile(1)
	if r.Samples = h.Count(); r.Samples > 0 {
		r.Mean = float64(sum) / float64(r.Samples) / 1e3
	}
}

// gate tells the client's goroutines which target is active.
type gate struct {
	mu      sync.Mutex
	cond    sync.Cond
	active  atomic.Int32 // the target worked for, -1 for none
	measure atomic.Int32 // the target in a measured window, -1 for none
	stop    atomic.Bool
}

func newGate() *gate {
	g := &gate{}
	g.cond.L = &g.mu
	g.active.Store(-1)
	g.measure.Store(-1)
	return g
}

func (g *gate) set(t int) {
	g.mu.Lock()
	g.active.Store(int32(t))
	g.cond.Broadcast()
	g.mu.Unlock()
}

// wait blocks until target t is active (t < 0: any target) and returns the
// active one, or -1 once stopped.
func (g *gate) wait(t int) int {
	ok := func(a int) bool { return a >= 0 && (t < 0 || a == t) }
	if a := int(g.active.Load()); ok(a) && !g.stop.Load() {
		return a
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		if g.stop.Load() {
			return -1
		}
		if a := int(g.active.Load()); ok(a) {
			return a
		}
		g.cond.Wait()
	}
}

func (g *gate) halt() {
	g.mu.Lock()
	g.stop.Store(true)
	g.cond.Broadcast()
	g.mu.Unlock()
}

// CompareTLS runs the wss echo: the throughput scenario of Compare
// (cfg.Conns connections per target, cfg.Inflight messages of cfg.Size
// bytes in flight on each, interleaved slices; cfg.Workers is not used),
// over TLS with tlsCfg, a goroutine per connection writing its messages
// and reading their echoes (each one checked). It also measures the round
// trips that end in the measured windows: from the write of a connection's
// messages to the last of their echoes. With a nil tlsCfg the same client
// speaks ws in clear, which tells what the client does to a comparison
// from what TLS does.
func CompareTLS(cfg CompareConfig, tlsCfg *tls.Config) ([]TLSResult, error) {
	if len(cfg.Targets) == 0 || cfg.Conns <= 0 || cfg.Size < 0 || cfg.Inflight <= 0 || cfg.Cycles <= 0 || cfg.Slice <= cfg.Settle {
		return nil, errors.New("bench: need targets, conns, inflight and cycles > 0, and a slice longer than its settling time")
	}
	nt := len(cfg.Targets)
	payload := randomPayload(cfg.Size)
	g := newGate()
	counts := make([]atomic.Uint64, nt)
	hists := make([]shardedHist, nt)
	var errs errorLog

	type conn struct {
		c    net.Conn
		r    io.Reader
		t, i int
	}
	var all []conn
	closeAll := func() {
		for _, c := range all {
			c.c.Close()
		}
	}
	for t, tg := range cfg.Targets {
		cs, rests, err := dialAllWith(cfg.Conns, 64, func() (net.Conn, []byte, error) {
			if tlsCfg == nil {
				return DialWS(tg.Addr, 10*time.Second)
			}
			return DialWSS(tg.Addr, tlsCfg, 10*time.Second)
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", tg.Addr, err)
		}
		for i, c := range cs {
			var r io.Reader = c
			if len(rests[i]) > 0 {
				r = io.MultiReader(bytes.NewReader(rests[i]), c)
			}
			all = append(all, conn{c: c, r: r, t: t, i: i})
		}
	}

	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mask [4]byte
			_, _ = rand.Read(mask[:])
			burst := bytes.Repeat(AppendClientFrame(nil, 2, payload, mask), cfg.Inflight)
			buf := make([]byte, 4096)
			for g.wait(c.t) >= 0 {
				t0 := time.Now()
				if _, err := c.c.Write(burst); err != nil {
					if !g.stop.Load() {
						errs.add(fmt.Errorf("write: %w", err))
					}
					return
				}
				for range cfg.Inflight {
					b0, p, grown, err := ReadServerFrame(c.r, buf)
					buf = grown
					if err == nil && (b0 != 0x82 || !bytes.Equal(p, payload)) {
						err = fmt.Errorf("bad echo: first byte %#x, %d bytes (want 0x82, %d bytes)", b0, len(p), len(payload))
					}
					if err != nil {
						if !g.stop.Load() {
							errs.add(fmt.Errorf("read: %w", err))
						}
						return
					}
				}
				d := time.Since(t0)
				counts[c.t].Add(uint64(cfg.Inflight))
				if int(g.measure.Load()) == c.t {
					hists[c.t].add(c.i, d)
				}
			}
		}()
	}

	base := interleaver{
		targets: cfg.Targets, warmup: cfg.Warmup, slice: cfg.Slice, settle: cfg.Settle, cycles: cfg.Cycles,
		activate: g.set,
		measure:  func(t int) { g.measure.Store(int32(t)) },
		count:    func(t int) uint64 { return counts[t].Load() },
	}.run()
	g.halt()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second): // a round trip that never ended
	}
	closeAll()
	<-stopped

	n, first := errs.get()
	res := make([]TLSResult, nt)
	for t := range res {
		r := &res[t]
		r.LoadResult = base[t]
		r.Conns, r.Size, r.Inflight = cfg.Conns, cfg.Size, cfg.Inflight
		r.Errors, r.FirstError = n, first
		hists[t].fill(r)
	}
	return res, nil
}

// IdleTLS opens n wss connections to addr with cfg (at most 64 handshakes
// at a time), sends one binary message of size bytes on each and reads
// its echo, and leaves them idle; close them with CloseAll. Alive tells
// which the server still holds.
func IdleTLS(addr string, cfg *tls.Config, n, size int) ([]net.Conn, error) {
	payload := randomPayload(size)
	conns, _, err := dialAllWith(n, 64, func() (net.Conn, []byte, error) {
		c, rest, err := DialWSS(addr, cfg, 10*time.Second)
		if err != nil {
			return nil, nil, err
		}
		if err := echoOnce(c, rest, payload, 10*time.Second); err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, nil, nil
	})
	return conns, err
}

// echoOnce sends payload as a binary message on c and checks its echo.
func echoOnce(c net.Conn, rest, payload []byte, timeout time.Duration) error {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := c.Write(AppendClientFrame(nil, 2, payload, mask)); err != nil {
		return err
	}
	var r io.Reader = c
	if len(rest) > 0 {
		r = io.MultiReader(bytes.NewReader(rest), c)
	}
	b0, p, _, err := ReadServerFrame(r, nil)
	if err == nil && (b0 != 0x82 || !bytes.Equal(p, payload)) {
		err = fmt.Errorf("bad echo: first byte %#x, %d bytes", b0, len(p))
	}
	return err
}

// HandshakeConfig describes the handshake scenario: Dialers goroutines
// (default 64) dial the active target over and over, interleaved in slices
// as CompareConfig describes. A handshake counts when the TLS handshake
// has completed on the client and one round trip of application data has
// worked: the WebSocket upgrade request and its 101 answer (so that the
// server has finished its side of the handshake too). The client then
// closes the connection with close_notify and a reset (SO_LINGER 0: no
// TIME_WAIT, so that the loopback's ports last).
type HandshakeConfig struct {
	Targets               []Target
	TLS                   *tls.Config
	Dialers               int
	Warmup, Slice, Settle time.Duration
	Cycles                int
	Timeout               time.Duration // per handshake (default 10 s)
}

// Handshakes runs the handshake scenario and returns a result per target:
// Msgs is the handshakes completed in the measured windows, Rate their
// rate, and the latency that of the whole setup (TCP connect, TLS
// handshake, upgrade).
func Handshakes(cfg HandshakeConfig) ([]TLSResult, error) {
	if len(cfg.Targets) == 0 || cfg.Cycles <= 0 || cfg.Slice <= cfg.Settle || cfg.TLS == nil {
		return nil, errors.New("bench: need targets, a TLS configuration, cycles > 0, and a slice longer than its settling time")
	}
	if cfg.Dialers <= 0 {
		cfg.Dialers = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	nt := len(cfg.Targets)
	tcfgs := make([]*tls.Config, nt)
	for t, tg := range cfg.Targets {
		tcfgs[t] = cfg.TLS.Clone()
		if tcfgs[t].ServerName == "" {
			tcfgs[t].ServerName, _, _ = net.SplitHostPort(tg.Addr)
		}
	}
	g := newGate()
	counts := make([]atomic.Uint64, nt)
	hists := make([]shardedHist, nt)
	var errs errorLog
	var wg sync.WaitGroup
	for i := range cfg.Dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t := g.wait(-1)
				if t < 0 {
					return
				}
				t0 := time.Now()
				if err := handshakeOnce(cfg.Targets[t].Addr, tcfgs[t], cfg.Timeout); err != nil {
					if !g.stop.Load() {
						errs.add(fmt.Errorf("%s: %w", cfg.Targets[t].Name, err))
					}
					continue
				}
				d := time.Since(t0)
				counts[t].Add(1)
				if int(g.measure.Load()) == t {
					hists[t].add(i, d)
				}
			}
		}()
	}
	base := interleaver{
		targets: cfg.Targets, warmup: cfg.Warmup, slice: cfg.Slice, settle: cfg.Settle, cycles: cfg.Cycles,
		activate: g.set,
		measure:  func(t int) { g.measure.Store(int32(t)) },
		count:    func(t int) uint64 { return counts[t].Load() },
	}.run()
	g.halt()
	wg.Wait() // each dialer ends within its handshake's timeout

	n, first := errs.get()
	res := make([]TLSResult, nt)
	for t := range res {
		r := &res[t]
		r.LoadResult = base[t]
		r.Dialers = cfg.Dialers
		r.Errors, r.FirstError = n, first
		hists[t].fill(r)
	}
	return res, nil
}

// handshakeOnce makes one connection to addr: TCP, a full TLS handshake,
// the WebSocket upgrade; then closes it. cfg names the server.
func handshakeOnce(addr string, cfg *tls.Config, timeout time.Duration) error {
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	_ = raw.(*net.TCPConn).SetLinger(0)
	_ = raw.SetDeadline(time.Now().Add(timeout))
	c := tls.Client(raw, cfg)
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if _, err := Handshake(c, addr); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	return nil
}
