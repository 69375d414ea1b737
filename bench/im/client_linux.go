//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tiogo/tio/bench"
)

// The load: cfg.Conns WebSocket connections, connection i logged in as
// user "u<i>" from its upgrade request and joined to room "r<i mod
// cfg.Rooms>". Once every connection has joined, each sends a say command
// every 1/cfg.Rate seconds, their phases spread evenly over the period:
//
//	{"cmd":"say","room":"r7","text":"t=<16 hex digits: the send time, ns on the client's monotonic clock>"}
//
// The server sends each message to the room's other members; each
// receiver reads the send time back out of the message event and records
// the delivery latency in a histogram. Connections run on raw non-blocking
// sockets driven by a few epoll loops (as in package bench's load client),
// so that the client costs little CPU.

var clock = time.Now()

func now() uint64 { return uint64(time.Since(clock)) }

type conn struct {
	fd      int
	room    string
	mask    [4]byte
	partial []byte
	out     []byte // bytes a write left over
	joined  bool
	dead    bool
}

type worker struct {
	epfd      int
	conns     []*conn
	next      []uint64 // next send time of each connection, ns
	buf       []byte
	period    uint64
	sending   *atomic.Bool
	measuring *atomic.Bool
	stop      *atomic.Bool
	errs      *errorLog
	joined    *atomic.Int64

	sent, acked, deliveries atomic.Uint64
	h                       hist // the worker's own, merged once it has stopped
	frame                   []byte
}

func (w *worker) run() {
	events := make([]unix.EpollEvent, 512)
	cur := 0 // the next connection to send, round robin in phase order
	for !w.stop.Load() {
		timeout := 5
		if w.sending.Load() {
			t := now()
			for range len(w.conns) {
				if w.next[cur] > t {
					break
				}
				w.say(cur)
				w.next[cur] += w.period
				if w.next[cur] < t { // far behind (a stall): skip, do not burst
					w.next[cur] = t + w.period
				}
				cur = (cur + 1) % len(w.conns)
			}
			// Sleep at least a millisecond: the sends due meanwhile go out
			// together (each carries its own send time), and the client
			// does not spin.
			d := int64(w.next[cur]) - int64(now())
			timeout = min(timeout, max(1, int((d+999_999)/1e6)))
		}
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			w.errs.add(err)
			return
		}
		for _, ev := range events[:n] {
			c := w.conns[ev.Fd]
			if c.dead {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && len(c.out) > 0 {
				w.flush(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				w.read(c)
			}
		}
	}
}

// say writes connection i's next message.
func (w *worker) say(i int) {
	c := w.conns[i]
	if c.dead {
		return
	}
	var p [96]byte
	payload := append(p[:0], `{"cmd":"say","room":"`...)
	payload = append(payload, c.room...)
	payload = append(payload, `","text":"t=`...)
	payload = appendHex(payload, now())
	payload = append(payload, `"}`...)
	w.frame = bench.AppendClientFrame(w.frame[:0], 0x1, payload, c.mask)
	w.write(c, w.frame)
	if w.measuring.Load() {
		w.sent.Add(1)
	}
}

func (w *worker) write(c *conn, b []byte) {
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return
	}
	for len(b) > 0 {
		n, err := unix.Write(c.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			c.out = append(c.out, b...)
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLOUT, Fd: int32(w.index(c))}
			_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
			return
		}
		if err != nil {
			w.fail(c, err)
			return
		}
		b = b[n:]
	}
}

func (w *worker) flush(c *conn) {
	b := c.out
	c.out = nil
	w.write(c, b)
	if len(c.out) == 0 {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(w.index(c))}
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
	}
}

func (w *worker) index(c *conn) int {
	for i, x := range w.conns {
		if x == c {
			return i
		}
	}
	return -1
}

func (w *worker) fail(c *conn, err error) {
	c.dead = true
	if !w.stop.Load() {
		w.errs.add(err)
	}
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

func (w *worker) read(c *conn) {
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

var (
	evMessage = []byte(`{"event":"message"`)
	evAck     = []byte(`{"event":"ack"`)
	evError   = []byte(`{"event":"error"`)
	evOnline  = []byte(`{"event":"online"`)
	textTag   = []byte(`"text":"t=`)
)

func (w *worker) consume(c *conn, b []byte) {
	t := now()
	measuring := w.measuring.Load()
	var got, acks uint64
	for {
		b0, p, n, err := bench.ParseServerFrame(b)
		if err != nil {
			w.fail(c, err)
			return
		}
		if n == 0 {
			break
		}
		b = b[n:]
		if b0 != 0x81 {
			w.fail(c, fmt.Errorf("unexpected frame: first byte %#x, %q", b0, p[:min(len(p), 60)]))
			return
		}
		switch {
		case bytes.HasPrefix(p, evMessage):
			i := bytes.Index(p, textTag)
			if i < 0 || len(p) < i+len(textTag)+16 {
				w.fail(c, fmt.Errorf("message without a send time: %q", p))
				return
			}
			ts, ok := parseHex(p[i+len(textTag) : i+len(textTag)+16])
			if !ok {
				w.fail(c, fmt.Errorf("bad send time in %q", p))
				return
			}
			if measuring {
				got++
				w.h.add(t - min(ts, t))
			}
		case bytes.HasPrefix(p, evAck):
			if measuring {
				acks++
			}
		case bytes.HasPrefix(p, evOnline):
			if !c.joined {
				c.joined = true
				w.joined.Add(1)
			}
		case bytes.HasPrefix(p, evError):
			w.errs.add(fmt.Errorf("server: %s", p))
		}
	}
	c.partial = append(c.partial[:0], b...)
	if got > 0 {
		w.deliveries.Add(got)
	}
	if acks > 0 {
		w.acked.Add(acks)
	}
}

func runClient(cfg config) (result, error) {
	res := result{Conns: cfg.Conns, Rooms: cfg.Rooms, Rate: cfg.Rate, ServerCPU: -1}
	if cfg.Conns <= 0 || cfg.Rooms <= 0 || cfg.Rooms > cfg.Conns || cfg.Rate <= 0 {
		return res, errors.New("need conns ≥ rooms > 0 and a rate > 0")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	var (
		sending, measuring, stop atomic.Bool
		errs                     errorLog
		joined                   atomic.Int64
	)
	// Dial, 64 handshakes at a time.
	nc := make([]net.Conn, cfg.Conns)
	rests := make([][]byte, cfg.Conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for errs.n.Load() == 0 {
				i := int(next.Add(1)) - 1
				if i >= cfg.Conns {
					return
				}
				c, rest, err := bench.DialWSPath(cfg.Addr, "/ws?user=u"+strconv.Itoa(i), 10*time.Second)
				if err != nil {
					errs.add(fmt.Errorf("connection %d: %w", i, err))
					return
				}
				nc[i], rests[i] = c, rest
			}
		}()
	}
	wg.Wait()
	if errs.n.Load() > 0 {
		for _, c := range nc {
			if c != nil {
				c.Close()
			}
		}
		return res, errs.first
	}
	period := uint64(float64(time.Second) / cfg.Rate)
	workers := make([]*worker, cfg.Workers)
	for i := range workers {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return res, err
		}
		workers[i] = &worker{epfd: epfd, buf: make([]byte, 256<<10), period: period,
			sending: &sending, measuring: &measuring, stop: &stop, errs: &errs, joined: &joined}
	}
	for i, c := range nc {
		fd, err := bench.TakeFD(c)
		if err != nil {
			return res, err
		}
		w := workers[i%len(workers)]
		lc := &conn{fd: fd, room: "r" + strconv.Itoa(i%cfg.Rooms), partial: append([]byte(nil), rests[i]...)}
		_, _ = rand.Read(lc.mask[:])
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(len(w.conns))}
		w.conns = append(w.conns, lc)
		// Phases spread evenly: connection i sends at i/conns of the period.
		w.next = append(w.next, uint64(i)*period/uint64(cfg.Conns))
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return res, err
		}
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				for _, c := range w.conns {
					unix.Close(c.fd)
				}
				unix.Close(w.epfd)
			}()
			w.run()
		}()
	}
	// Join (the workers' loops read the answers), then wait for every
	// connection's online event.
	joinAll(workers)
	deadline := time.Now().Add(30 * time.Second)
	for joined.Load() < int64(cfg.Conns) && errs.n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := joined.Load(); n < int64(cfg.Conns) {
		stop.Store(true)
		wg.Wait()
		if errs.first != nil {
			return res, errs.first
		}
		return res, fmt.Errorf("only %d of %d connections joined their rooms", n, cfg.Conns)
	}
	start := now()
	for _, w := range workers {
		for i := range w.next {
			w.next[i] += start
		}
	}
	sending.Store(true)

	time.Sleep(cfg.Warmup)
	srv0, cli0, sys0 := bench.ProcCPU(cfg.ServerPID), bench.SelfCPU(), busyCPU()
	t0 := time.Now()
	measuring.Store(true)
	time.Sleep(cfg.Duration)
	measuring.Store(false)
	t1 := time.Now()
	srv1, cli1, sys1 := bench.ProcCPU(cfg.ServerPID), bench.SelfCPU(), busyCPU()
	if rss, err := bench.ProcRSS(cfg.ServerPID); err == nil && cfg.ServerPID > 0 {
		res.ServerRSS = rss
	}
	time.Sleep(10 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	var h hist
	for _, w := range workers {
		h.merge(&w.h)
		res.Sent += w.sent.Load()
		res.Acked += w.acked.Load()
		res.Deliveries += w.deliveries.Load()
	}
	res.Seconds = t1.Sub(t0).Seconds()
	res.PerSecond = float64(res.Deliveries) / res.Seconds
	members := float64(cfg.Conns) / float64(cfg.Rooms)
	res.Expected = float64(cfg.Conns) * cfg.Rate * (members - 1)
	res.P50, res.P99, res.P999, res.Max = h.quantile(0.5), h.quantile(0.99), h.quantile(0.999), h.quantile(1)
	res.ClientCPU = cli1 - cli0
	res.OtherCPU = -1
	if srv0 >= 0 && srv1 >= 0 {
		res.ServerCPU = srv1 - srv0
		if sys0 >= 0 && sys1 >= 0 {
			res.OtherCPU = max(0, sys1-sys0-res.ServerCPU-res.ClientCPU)
		}
	}
	res.Errors = int(errs.n.Load())
	if errs.first != nil {
		res.FirstError = errs.first.Error()
	}
	return res, nil
}

// joinAll sends every connection's join command. The sockets are fresh and
// the commands small: a write that would block is an error.
func joinAll(workers []*worker) {
	var frame []byte
	for _, w := range workers {
		for _, c := range w.conns {
			frame = bench.AppendClientFrame(frame[:0], 0x1, []byte(`{"cmd":"join","room":"`+c.room+`"}`), c.mask)
			if _, err := unix.Write(c.fd, frame); err != nil {
				w.errs.add(fmt.Errorf("join: %w", err))
			}
		}
	}
}

// busyCPU returns the CPU seconds all processes have used (user, nice,
// system, irq, softirq: /proc/stat), or -1.
func busyCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq …
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	sum := 0.0
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return -1
		}
		sum += float64(n)
	}
	return sum / 100 // USER_HZ
}

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

// hist is a log-linear latency histogram of nanoseconds: 64 buckets per
// power of two (under 1.6% error). (The same as bench/broadcast's.)
type hist struct{ counts [64 * 64]uint64 }

func histIndex(v uint64) int {
	if v < 128 {
		return int(v)
	}
	e := bits.Len64(v) - 7
	return (e+1)*64 + int(v>>uint(e)) - 64
}

func histValue(i int) uint64 {
	if i < 128 {
		return uint64(i)
	}
	e := i/64 - 1
	return (uint64(i%64+64)+1)<<uint(e) - 1
}

func (h *hist) add(v uint64) {
	if i := histIndex(v); i < len(h.counts) {
		h.counts[i]++
	} else {
		h.counts[len(h.counts)-1]++
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the q-quantile in microseconds.
func (h *hist) quantile(q float64) float64 {
	var total uint64
	for _, c := range h.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := max(uint64(q*float64(total)+0.5), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return float64(histValue(i)) / 1e3
		}
	}
	return float64(histValue(len(h.counts)-1)) / 1e3
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
