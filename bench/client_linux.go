//go:build linux

package bench

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Load runs one throughput scenario against the WebSocket echo at cfg.Addr:
// Compare with one target, one slice of cfg.Duration after cfg.Warmup.
func Load(cfg LoadConfig) (LoadResult, error) {
	res, err := Compare(CompareConfig{
		Targets: []Target{{Addr: cfg.Addr, PID: cfg.ServerPID}},
		Conns:   cfg.Conns, Size: cfg.Size, Inflight: cfg.Inflight,
		Warmup: cfg.Warmup, Slice: cfg.Duration, Cycles: 1, Workers: cfg.Workers,
	})
	if err != nil {
		return LoadResult{}, err
	}
	return res[0], nil
}

// Compare runs one throughput scenario against every target, interleaved
// (see CompareConfig), and returns a result per target.
//
// The connections are opened and upgraded with package net, then their
// sockets are taken over by cfg.Workers epoll loops (raw non-blocking
// sockets, level-triggered), so that the client costs as little CPU as it can
// and the same for every server. When a server's slice starts, each of its
// connections is topped up to cfg.Inflight messages in flight (sent in one
// write); every echo received is checked (opcode, length, bytes) and, while
// the slice lasts, answered with a new message, the new messages of one read
// going out in one write.
func Compare(cfg CompareConfig) ([]LoadResult, error) {
	if len(cfg.Targets) == 0 || cfg.Conns <= 0 || cfg.Size < 0 || cfg.Inflight <= 0 || cfg.Cycles <= 0 || cfg.Slice <= cfg.Settle {
		return nil, errors.New("bench: need targets, conns, inflight and cycles > 0, and a slice longer than its settling time")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	cfg.Workers = min(cfg.Workers, cfg.Conns*len(cfg.Targets))
	nt := len(cfg.Targets)

	payload := randomPayload(cfg.Size)
	var (
		stop   atomic.Bool
		active atomic.Int32
		errs   errorLog
	)
	active.Store(-1)
	workers, err := newWorkers(cfg.Workers, func(w *worker) {
		w.payload, w.inflight, w.stop, w.active = payload, cfg.Inflight, &stop, &active
		w.errs, w.counts = &errs, make([]atomic.Uint64, nt)
		w.zcounts, w.wire = make([]atomic.Uint64, nt), make([]atomic.Uint64, nt)
	})
	if err != nil {
		return nil, err
	}
	cleanup := func() { closeWorkers(workers) }
	frameLen := len(AppendClientFrame(nil, 2, payload, [4]byte{}))
	rcap := max(cfg.Inflight*frameLen+4096, 8192)
	next := 0
	answers := make([]string, nt)
	for t, tg := range cfg.Targets {
		var (
			conns  []net.Conn
			rests  [][]byte
			params []flateParams
			err    error
		)
		if cfg.Deflate {
			conns, rests, params, err = dialAllDeflate(tg.Addr, cfg.Conns, 64, 10*time.Second)
		} else {
			conns, rests, err = dialAll(tg.Addr, cfg.Conns, 64, 10*time.Second)
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%s: %w", tg.Addr, err)
		}
		ci := 0
		err = attach(workers, &next, conns, rests, rcap, func(lc *loadConn) {
			lc.target = t
			if cfg.Deflate {
				lc.fl = newEchoFlate(params[ci], cfg.Size, uint64(t)<<32|uint64(ci)<<8, lc.mask, cfg.InflateEvery)
				answers[t] = params[0].answer
				ci++
				return
			}
			frame := AppendClientFrame(nil, 2, payload, lc.mask)
			lc.frameLen, lc.burst = len(frame), bytes.Repeat(frame, cfg.Inflight)
		})
		if err != nil {
			cleanup()
			return nil, err
		}
	}

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	res := interleaver{
		targets: cfg.Targets, warmup: cfg.Warmup, slice: cfg.Slice, settle: cfg.Settle, cycles: cfg.Cycles,
		activate: func(t int) { active.Store(int32(t)) },
		count: func(t int) uint64 {
			var n uint64
			for _, w := range workers {
				n += w.counts[t].Load()
			}
			return n
		},
	}.run()
	stop.Store(true)
	wg.Wait()

	n, first := errs.get()
	for t := range res {
		r := &res[t]
		r.Conns, r.Size, r.Inflight = cfg.Conns, cfg.Size, cfg.Inflight
		r.Errors, r.FirstError = n, first // the client does not tell whose connection failed
		if cfg.Deflate {
			var all, zipped, wire uint64
			for _, w := range workers {
				all += w.counts[t].Load()
				zipped += w.zcounts[t].Load()
				wire += w.wire[t].Load()
			}
			r.Extensions = answers[t]
			if all > 0 {
				r.CompressedShare, r.WirePerMsg = float64(zipped)/float64(all), float64(wire)/float64(all)
			}
		}
	}
	return res, nil
}

// newWorkers makes n workers, each with its epoll instance, set up by init.
func newWorkers(n int, init func(*worker)) ([]*worker, error) {
	workers := make([]*worker, n)
	for i := range workers {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			closeWorkers(workers)
			return nil, err
		}
		workers[i] = &worker{epfd: epfd, index: i, nworkers: n}
		init(workers[i])
	}
	return workers, nil
}

// closeWorkers closes workers that did not run, and their connections.
func closeWorkers(workers []*worker) {
	for _, w := range workers {
		if w != nil {
			w.closeAll()
		}
	}
}

// attach takes the sockets of conns (the bytes read past their handshakes
// in rests) out of the Go runtime and deals them to the workers in turn,
// starting with workers[*next], as loadConns with a random mask and a read
// buffer of rcap bytes, set up further by init. On failure it closes the
// connections not yet attached.
func attach(workers []*worker, next *int, conns []net.Conn, rests [][]byte, rcap int, init func(*loadConn)) error {
	for i, c := range conns {
		fd, err := TakeFD(c)
		if err != nil {
			CloseAll(conns[i+1:])
			return err
		}
		lc := &loadConn{fd: fd, rbuf: make([]byte, max(rcap, len(rests[i])))}
		_, _ = rand.Read(lc.mask[:])
		lc.rlen = copy(lc.rbuf, rests[i])
		init(lc)
		w := workers[*next%len(workers)]
		*next++
		w.conns = append(w.conns, lc)
	}
	return nil
}

// TakeFD takes c's socket out of the Go runtime's poller: it duplicates the
// descriptor (non-blocking, like the original) and closes c.
func TakeFD(c net.Conn) (int, error) {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := sc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	c.Close()
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

type loadConn struct {
	fd       int
	target   int // index in CompareConfig.Targets
	sent     int // messages in flight
	mask     [4]byte
	seq      uint64 // active scenario: the last broadcast received
	frameLen int
	burst    []byte // Inflight copies of this connection's masked frame
	rbuf     []byte
	rlen     int
	pending  []byte     // bytes a write left unsent
	fl       *echoFlate // CompareConfig.Deflate: the messages and the compression state
	dead     bool
	failed   bool // dead by fail, not closed at the end
}

type worker struct {
	epfd     int
	index    int // among nworkers: connection i of this worker is the index+i*nworkers'th dealt
	nworkers int
	conns    []*loadConn
	payload  []byte
	inflight int
	stop     *atomic.Bool
	active   *atomic.Int32 // the target being sent messages, -1 for none
	errs     *errorLog
	counts   []atomic.Uint64 // echoes received, per target
	zcounts  []atomic.Uint64 // CompareConfig.Deflate: those that came compressed
	wire     []atomic.Uint64 // CompareConfig.Deflate: their payload bytes
	inf      *inflater       // CompareConfig.Deflate, made on first use
	current  int             // loop only: the active target as last seen
	act      *activeWorker   // the active scenario (ActiveClient), nil for Compare
}

const (
	evIn   = unix.EPOLLIN | unix.EPOLLRDHUP
	userHZ = 100 // USER_HZ, the unit of /proc's CPU times, fixed on Linux
)

func (w *worker) run() {
	defer w.closeAll()
	for i, c := range w.conns {
		ev := unix.EpollEvent{Events: evIn, Fd: int32(i)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			w.fail(c, err)
		}
	}
	w.current = -1
	for i, c := range w.conns {
		if !c.dead && c.rlen > 0 {
			w.consume(i, c)
		}
	}
	events := make([]unix.EpollEvent, 256)
	for !w.stop.Load() {
		timeout := 10 // ms
		if w.act != nil {
			timeout = w.sendEchoes()
		} else if a := int(w.active.Load()); a != w.current {
			w.current = a
			for i, c := range w.conns {
				if c.target == a && !c.dead && c.sent < w.inflight {
					w.send(i, c, w.inflight-c.sent)
				}
			}
		}
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			w.errs.add(fmt.Errorf("epoll_wait: %w", err))
			return
		}
		for _, ev := range events[:n] {
			i := int(ev.Fd)
			c := w.conns[i]
			if c.dead {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				w.flush(i, c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 && !c.dead {
				w.read(i, c)
			}
		}
	}
}

// read reads what the socket holds (once, or again while it fills the
// buffer) and answers every echo.
func (w *worker) read(i int, c *loadConn) {
	for {
		if c.rlen == len(c.rbuf) {
			c.rbuf = append(c.rbuf, make([]byte, len(c.rbuf))...)
		}
		space := len(c.rbuf) - c.rlen
		n, err := unix.Read(c.fd, c.rbuf[c.rlen:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			w.fail(c, fmt.Errorf("read: %w", err))
			return
		}
		if n == 0 {
			w.fail(c, errors.New("connection closed by the server"))
			return
		}
		c.rlen += n
		w.consume(i, c)
		if c.dead || n < space {
			return
		}
	}
}

// consume checks the whole echoes buffered and sends as many new messages.
func (w *worker) consume(i int, c *loadConn) {
	if w.act != nil {
		w.consumeActive(c)
		return
	}
	off, k := 0, 0
	for {
		b0, p, n, err := ParseServerFrame(c.rbuf[off:c.rlen])
		if err != nil {
			w.fail(c, err)
			return
		}
		if n == 0 {
			break
		}
		if c.fl != nil {
			if w.inf == nil {
				w.inf = newInflater()
			}
			z, err := c.fl.check(b0, p, w.inf)
			if err != nil {
				w.fail(c, err)
				return
			}
			if z {
				w.zcounts[c.target].Add(1)
			}
			w.wire[c.target].Add(uint64(len(p)))
		} else if b0 != 0x82 || !bytes.Equal(p, w.payload) {
			w.fail(c, fmt.Errorf("bad echo: first byte %#x, %d bytes (want 0x82, %d bytes)", b0, len(p), len(w.payload)))
			return
		}
		off += n
		k++
	}
	if off > 0 {
		c.rlen = copy(c.rbuf, c.rbuf[off:c.rlen])
	}
	if k > c.sent {
		w.fail(c, fmt.Errorf("%d echoes for %d messages in flight", k, c.sent))
		return
	}
	c.sent -= k
	if k > 0 {
		w.counts[c.target].Add(uint64(k))
		if c.target == w.current {
			w.send(i, c, k)
		}
	}
}

// send writes k messages (c.sent+k <= inflight).
func (w *worker) send(i int, c *loadConn, k int) {
	c.sent += k
	if c.fl != nil {
		w.writeOut(i, c, c.fl.frames(k))
		return
	}
	w.writeOut(i, c, c.burst[:k*c.frameLen])
}

// writeOut writes data to connection i, c, after what earlier writes left
// unsent, and keeps (a copy of) what the socket does not take now.
func (w *worker) writeOut(i int, c *loadConn, data []byte) {
	if len(c.pending) > 0 {
		c.pending = append(c.pending, data...)
		return
	}
	n, err := write(c.fd, data)
	if err != nil {
		w.fail(c, fmt.Errorf("write: %w", err))
		return
	}
	if n < len(data) {
		c.pending = append(c.pending[:0], data[n:]...)
		ev := unix.EpollEvent{Events: evIn | unix.EPOLLOUT, Fd: int32(i)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			w.fail(c, err)
		}
	}
}

// flush writes what a short write left.
func (w *worker) flush(i int, c *loadConn) {
	n, err := write(c.fd, c.pending)
	if err != nil {
		w.fail(c, fmt.Errorf("write: %w", err))
		return
	}
	c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	if len(c.pending) == 0 {
		ev := unix.EpollEvent{Events: evIn, Fd: int32(i)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			w.fail(c, err)
		}
	}
}

// write writes b until done or EAGAIN and returns how much went out.
func write(fd int, b []byte) (int, error) {
	sent := 0
	for sent < len(b) {
		n, err := unix.Write(fd, b[sent:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

func (w *worker) fail(c *loadConn, err error) {
	if c.dead {
		return
	}
	c.dead, c.failed = true, true
	if !w.stop.Load() {
		w.errs.add(err)
	}
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	unix.Close(c.fd)
}

func (w *worker) closeAll() {
	for _, c := range w.conns {
		if !c.dead {
			c.dead = true
			unix.Close(c.fd)
		}
	}
	unix.Close(w.epfd)
}

// ProcCPU returns the user+system CPU seconds of process pid, or -1.
func ProcCPU(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses: state is the
	// first, utime the 12th and stime the 13th (fields 14 and 15 of proc(5)).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return float64(ut+st) / userHZ
}

type sysCPU struct {
	tasks   float64 // user+nice+system seconds, all CPUs
	softirq float64
	ok      bool
}

// systemCPU reads the machine's CPU time from /proc/stat.
func systemCPU() sysCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return sysCPU{}
	}
	var v [8]float64
	for i := 1; i < 8; i++ {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return sysCPU{}
		}
		v[i] = float64(n) / userHZ
	}
	return sysCPU{tasks: v[1] + v[2] + v[3], softirq: v[7], ok: true}
}

// SelfCPU returns this process's user+system CPU seconds.
func SelfCPU() float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// ProcRSS returns process pid's resident set size (VmRSS) in bytes.
func ProcRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("bench: no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}
