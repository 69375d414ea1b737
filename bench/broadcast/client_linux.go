//go:build linux

package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tiogo/tio/bench"
)

// The load: cfg.Receivers WebSocket connections that only read, and one
// sender that keeps cfg.Inflight broadcasts in flight: it starts with that
// many and sends a new one each time one has reached every receiver, so
// that no server can let queues grow by serving the sender first (or, with
// -pace sender, each time one of its own copies comes back to it). Every message is a text frame of cfg.Size
// bytes: "B:", the send time (16 hex digits, nanoseconds on the client's
// monotonic clock), ":", a sequence number (16 hex digits), ":", padding.
//
// Receivers run on raw non-blocking sockets driven by a few epoll loops, so
// that the client costs as little CPU as it can and the same for every
// server. Each receiver checks each frame (opcode, prefix, sequence: a gap
// counts as lost messages) and, during the measured window, records its
// delivery latency (receive time minus send time) in a histogram.

var clock = time.Now()

func now() uint64 { return uint64(time.Since(clock)) }

// appendMessage appends a masked client text frame carrying a message.
func appendMessage(dst []byte, size int, seq uint64, mask [4]byte) []byte {
	var p [128]byte
	payload := p[:0]
	payload = append(payload, 'B', ':')
	payload = appendHex(payload, now())
	payload = append(payload, ':')
	payload = appendHex(payload, seq)
	payload = append(payload, ':')
	for len(payload) < size {
		payload = append(payload, 'x')
	}
	return bench.AppendClientFrame(dst, 0x1, payload, mask)
}

const minSize = 2 + 16 + 1 + 16 + 1

func appendHex(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, digits[(v>>uint(i))&0xF])
	}
	return b
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// parseMessage checks a broadcast and returns its send time and sequence.
func parseMessage(b0 byte, p []byte) (ts, seq uint64, err error) {
	if b0 != 0x81 || len(p) < minSize || p[0] != 'B' || p[1] != ':' {
		return 0, 0, fmt.Errorf("unexpected frame: first byte %#x, %d bytes %q", b0, len(p), p[:min(len(p), 40)])
	}
	ts, ok1 := parseHex(p[2:18])
	seq, ok2 := parseHex(p[19:35])
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("bad message %q", p)
	}
	return ts, seq, nil
}

type errorLog struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (e *errorLog) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err
		e.mu.Unlock()
	}
}

type rconn struct {
	fd      int
	partial []byte
	next    uint64 // next sequence number expected (0: none seen yet)
	dead    bool
}

type worker struct {
	epfd       int
	conns      []*rconn
	buf        []byte
	tr         *tracker
	measuring  *atomic.Bool
	stop       *atomic.Bool
	errs       *errorLog
	deliveries atomic.Uint64
	lost       atomic.Uint64
	h          bench.Hist
}

func (w *worker) run() {
	defer func() {
		for _, c := range w.conns {
			unix.Close(c.fd)
		}
		unix.Close(w.epfd)
	}()
	events := make([]unix.EpollEvent, 512)
	for !w.stop.Load() {
		n, err := unix.EpollWait(w.epfd, events, 20)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			w.errs.add(err)
			return
		}
		for _, ev := range events[:n] {
			if c := w.conns[ev.Fd]; !c.dead {
				w.read(c)
			}
		}
	}
}

func (w *worker) fail(c *rconn, err error) {
	c.dead = true
	if !w.stop.Load() {
		w.errs.add(err)
	}
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

func (w *worker) read(c *rconn) {
	for {
		k := copy(w.buf, c.partial)
		n, err := unix.Read(c.fd, w.buf[k:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			w.fail(c, err)
			return
		}
		if n == 0 {
			w.fail(c, errors.New("connection closed by the server"))
			return
		}
		w.consume(c, w.buf[:k+n])
		if c.dead || k+n < len(w.buf) {
			return
		}
	}
}

func (w *worker) consume(c *rconn, b []byte) {
	t := now()
	measuring := w.measuring.Load()
	var got uint64
	for {
		b0, p, n, err := bench.ParseServerFrame(b)
		if err == nil && n > 0 {
			var ts, seq uint64
			if ts, seq, err = parseMessage(b0, p); err == nil {
				if c.next != 0 && seq != c.next {
					if seq < c.next {
						err = fmt.Errorf("sequence went back from %d to %d", c.next, seq)
					} else {
						w.lost.Add(seq - c.next)
					}
				}
				c.next = seq + 1
				w.tr.delivered(seq)
				if measuring {
					got++
					w.h.Add(t - min(ts, t))
				}
			}
		}
		if err != nil {
			w.fail(c, err)
			return
		}
		if n == 0 {
			break
		}
		b = b[n:]
	}
	c.partial = append(c.partial[:0], b...)
	if got > 0 {
		w.deliveries.Add(got)
	}
}

// tracker counts each broadcast's deliveries to the receivers, to tell the
// sender when one has reached every receiver.
type tracker struct {
	need   int32
	counts [1024]atomic.Int32 // by sequence number modulo 1024 (far more than in flight)
	done   chan struct{}
}

func (t *tracker) delivered(seq uint64) {
	if t.counts[seq%uint64(len(t.counts))].Add(1) == t.need {
		select {
		case t.done <- struct{}{}:
		default:
		}
	}
}

// sender keeps cfg.Inflight broadcasts in flight: it sends that many, then
// one more each time one of them has reached every receiver (or, if a
// receiver is lost, after a stall of half a second, counted). Its own copies
// of the broadcasts are read and checked, not counted.
type sender struct {
	c        net.Conn
	size     int
	inflight int
	paceOwn  bool
	tr       *tracker
	sent     atomic.Uint64
	stalls   atomic.Uint64
	stop     *atomic.Bool
	errs     *errorLog
}

func (s *sender) run() {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	seq := uint64(1)
	var out []byte
	send := func(k int) error {
		out = out[:0]
		for range k {
			s.tr.counts[seq%uint64(len(s.tr.counts))].Store(0)
			out = appendMessage(out, s.size, seq, mask)
			seq++
		}
		s.sent.Add(uint64(k))
		_, err := s.c.Write(out)
		return err
	}
	if err := send(s.inflight); err != nil {
		s.errs.add(fmt.Errorf("sender: %w", err))
		return
	}
	stall := time.NewTimer(time.Hour)
	for !s.stop.Load() {
		stall.Reset(500 * time.Millisecond)
		select {
		case <-s.tr.done:
		case <-stall.C:
			if s.stop.Load() {
				return
			}
			s.stalls.Add(1)
			if os.Getenv("BCDEBUG") != "" {
				for i := seq - uint64(s.inflight); i < seq; i++ {
					fmt.Fprintf(os.Stderr, "stall: seq %d count %d (need %d)\n", i, s.tr.counts[i%1024].Load(), s.tr.need)
				}
			}
		}
		if err := send(1); err != nil {
			if !s.stop.Load() {
				s.errs.add(fmt.Errorf("sender: %w", err))
			}
			return
		}
	}
}

// drain reads and checks the sender's own copies.
func (s *sender) drain(rest []byte) {
	buf := make([]byte, 64<<10)
	k := copy(buf, rest)
	for {
		n, err := s.c.Read(buf[k:])
		k += n
		if err != nil {
			if !s.stop.Load() {
				s.errs.add(fmt.Errorf("sender: %w", err))
			}
			return
		}
		b := buf[:k]
		for {
			b0, p, n, err := bench.ParseServerFrame(b)
			if err == nil && n > 0 {
				_, _, err = parseMessage(b0, p)
			}
			if err != nil {
				s.errs.add(fmt.Errorf("sender: %w", err))
				return
			}
			if n == 0 {
				break
			}
			if s.paceOwn {
				select {
				case s.tr.done <- struct{}{}:
				default:
				}
			}
			b = b[n:]
		}
		k = copy(buf, b)
	}
}

func runClient(cfg config) (result, error) {
	res := result{Receivers: cfg.Receivers, Inflight: cfg.Inflight, Size: cfg.Size, Pace: "all", ServerCPU: -1}
	if cfg.PaceOnSender {
		res.Pace = "sender"
	}
	if cfg.Size < minSize || cfg.Size > 125 {
		return res, fmt.Errorf("size must be in [%d, 125]", minSize)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	var (
		measuring, stop atomic.Bool
		errs            errorLog
	)
	// Dial the receivers, 64 handshakes at a time.
	conns := make([]net.Conn, cfg.Receivers)
	rests := make([][]byte, cfg.Receivers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for errs.n.Load() == 0 {
				i := int(next.Add(1)) - 1
				if i >= cfg.Receivers {
					return
				}
				c, rest, err := bench.DialWS(cfg.Addr, 10*time.Second)
				if err != nil {
					errs.add(fmt.Errorf("receiver %d: %w", i, err))
					return
				}
				conns[i], rests[i] = c, rest
			}
		}()
	}
	wg.Wait()
	if errs.n.Load() > 0 {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return res, errs.first
	}
	tr := &tracker{need: int32(cfg.Receivers), done: make(chan struct{}, 1024)}
	if cfg.PaceOnSender {
		tr.need = -1 // never reached
	}
	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return res, err
		}
		workers[i] = &worker{epfd: epfd, buf: make([]byte, 256<<10), tr: tr, measuring: &measuring, stop: &stop, errs: &errs}
	}
	for i, c := range conns {
		fd, err := bench.TakeFD(c)
		if err != nil {
			return res, err
		}
		w := workers[i%len(workers)]
		rc := &rconn{fd: fd, partial: append([]byte(nil), rests[i]...)}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(len(w.conns))}
		w.conns = append(w.conns, rc)
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return res, err
		}
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	sc, rest, err := bench.DialWS(cfg.Addr, 10*time.Second)
	if err != nil {
		stop.Store(true)
		wg.Wait()
		return res, fmt.Errorf("sender: %w", err)
	}
	// The servers register a connection right after its handshake; give
	// the last ones a moment so that the first broadcasts reach everyone.
	time.Sleep(100 * time.Millisecond)
	snd := &sender{c: sc, size: cfg.Size, inflight: cfg.Inflight, paceOwn: cfg.PaceOnSender, tr: tr, stop: &stop, errs: &errs}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		snd.run()
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		snd.drain(rest)
	}()

	total := func() uint64 {
		var n uint64
		for _, w := range workers {
			n += w.deliveries.Load()
		}
		return n
	}
	time.Sleep(cfg.Warmup)
	srv0, cli0 := bench.ProcCPU(cfg.ServerPID), bench.SelfCPU()
	sent0 := snd.sent.Load()
	t0 := time.Now()
	measuring.Store(true)
	time.Sleep(cfg.Duration)
	measuring.Store(false)
	t1 := time.Now()
	sent1 := snd.sent.Load()
	srv1, cli1 := bench.ProcCPU(cfg.ServerPID), bench.SelfCPU()
	// Deliveries are counted as they are read while measuring: in-flight
	// reads finish within a few microseconds of the flag.
	time.Sleep(10 * time.Millisecond)
	deliveries := total()
	stop.Store(true)
	sc.Close()
	<-done
	<-done
	wg.Wait()

	var h bench.Hist
	for _, w := range workers {
		h.Merge(&w.h)
		res.Lost += w.lost.Load()
	}
	res.Seconds = t1.Sub(t0).Seconds()
	res.Sent = sent1 - sent0
	res.Deliveries = deliveries
	res.Rate = float64(deliveries) / res.Seconds
	res.P50, res.P99, res.P999, res.Max = h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999), h.Quantile(1)
	res.ClientCPU = cli1 - cli0
	if srv0 >= 0 && srv1 >= 0 {
		res.ServerCPU = srv1 - srv0
	}
	res.Stalls = snd.stalls.Load()
	res.Errors = int(errs.n.Load())
	if errs.first != nil {
		res.FirstError = errs.first.Error()
	}
	return res, nil
}
