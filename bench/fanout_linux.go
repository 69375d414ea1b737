//go:build linux

package bench

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// CompareFanout runs the compressed fan-out scenario against every target,
// interleaved in slices as Compare does: each target gets cfg.Receivers
// connections that only read, and a sender connection; while a target is
// active its sender keeps cfg.Inflight broadcasts in flight, sending a new
// one each time one has reached every receiver (or after a stall of half a
// second, counted), and stops sending when the next target's slice begins;
// that slice's unmeasured start (Settle) waits until what the others had in
// flight has reached all their receivers (for at most a second), so that a
// slow server's backlog is not drained in another's measured time. Every
// connection offers permessage-deflate (DeflateOffer).
//
// A broadcast is a text message of cfg.Size bytes: "B:", its send time and
// its sequence number (16 hex digits each, separated by ':'), ':', then a
// JSON document (AppendJSON, seeded with the sequence number). The sender
// compresses it (on its own) when its server accepted compression.
//
// Receivers run on raw non-blocking sockets driven by cfg.Workers epoll
// loops. Each delivery is checked: its frame (text, compressed or not), the
// message it inflates to (prefix, sequence: a gap counts as lost; and,
// the first time a loop sees a message, every byte against the message
// rebuilt from its time and sequence number), and during a measured window
// its latency (receive time minus send time) goes into a histogram. Unless
// cfg.InflateEvery, a loop inflates each distinct compressed payload once
// and compares the following copies with it byte for byte: a server that
// compresses a broadcast once sends every receiver the same bytes, which
// inflate to the same message whatever window a receiver keeps, if they
// inflate without one; a payload that needs the receiver's window (a
// server that compresses for each receiver with its context) is inflated
// for each receiver with its window, and not remembered. A receiver whose
// server keeps its context slides every message into its window.
func CompareFanout(cfg FanoutConfig) ([]FanoutResult, error) {
	if len(cfg.Targets) == 0 || cfg.Receivers <= 0 || cfg.Inflight <= 0 || cfg.Cycles <= 0 || cfg.Slice <= cfg.Settle {
		return nil, errors.New("bench: need targets, receivers, inflight and cycles > 0, and a slice longer than its settling time")
	}
	if cfg.Size < fanHeader+64 {
		return nil, fmt.Errorf("bench: fan-out messages need at least %d bytes", fanHeader+64)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	nt := len(cfg.Targets)
	var (
		stop      atomic.Bool
		active    atomic.Int32
		measuring atomic.Int32
		errs      errorLog
	)
	active.Store(-1)
	measuring.Store(-1)
	workers := make([]*fanWorker, cfg.Workers)
	for i := range workers {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			for _, w := range workers[:i] {
				w.close()
			}
			return nil, err
		}
		workers[i] = &fanWorker{
			epfd: epfd, buf: make([]byte, 256<<10), size: cfg.Size, every: cfg.InflateEvery,
			inf: newInflater(), seed: maphash.MakeSeed(), measuring: &measuring, stop: &stop, errs: &errs,
			deliveries: make([]atomic.Uint64, nt), compressed: make([]atomic.Uint64, nt), wire: make([]atomic.Uint64, nt),
			lost: make([]atomic.Uint64, nt), hists: make([]Hist, nt), sums: make([]uint64, nt), inflated: make([]uint64, nt),
		}
	}
	closeAll := func() {
		for _, w := range workers {
			w.close()
		}
	}
	senders := make([]*fanSender, nt)
	answers := make([]string, nt)
	next := 0
	for t, tg := range cfg.Targets {
		tr := &fanTracker{need: int32(cfg.Receivers), done: make(chan struct{}, 1024)}
		conns, rests, params, err := dialAllDeflate(tg.Addr, cfg.Receivers, 64, 10*time.Second)
		if err != nil {
			closeAll()
			for _, s := range senders[:t] {
				s.c.Close()
			}
			return nil, fmt.Errorf("%s: %w", tg.Name, err)
		}
		answers[t] = params[0].answer
		for i, c := range conns {
			fd, err := TakeFD(c)
			if err != nil {
				CloseAll(conns[i+1:])
				closeAll()
				return nil, err
			}
			w := workers[next%len(workers)]
			next++
			rc := &fanConn{fd: fd, target: t, tr: tr, partial: rests[i]}
			if params[i].on {
				rc.rx = newFlateRx(params[i])
			}
			w.conns = append(w.conns, rc)
		}
		sc, rest, p, err := dialWSDeflate(tg.Addr, 10*time.Second)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s, sender: %w", tg.Name, err)
		}
		s := &fanSender{
			c: sc, rest: rest, p: p, t: int32(t), size: cfg.Size, inflight: cfg.Inflight, tr: tr,
			active: &active, stop: &stop, errs: &errs, wake: make(chan struct{}, 1), inf: newInflater(),
		}
		if p.on {
			s.rx = newFlateRx(p)
		}
		_, _ = rand.Read(s.mask[:])
		senders[t] = s
	}
	for _, w := range workers {
		for i, c := range w.conns {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(i)}
			if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
				closeAll()
				return nil, err
			}
		}
	}
	// The servers register a connection right after its handshake; give
	// the last ones a moment so that the first broadcasts reach everyone.
	time.Sleep(100 * time.Millisecond)

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	for _, s := range senders {
		wg.Add(2)
		go func() {
			defer wg.Done()
			s.run()
		}()
		go func() {
			defer wg.Done()
			s.drain()
		}()
	}
	sentIn := make([]uint64, nt) // broadcasts sent in measured windows
	var sent0 uint64
	cur := -1
	res := interleaver{
		targets: cfg.Targets, warmup: cfg.Warmup, slice: cfg.Slice, settle: cfg.Settle, cycles: cfg.Cycles,
		activate: func(t int) {
			active.Store(int32(t))
			for _, s := range senders {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
			// Let what the other servers have in flight reach their
			// receivers first (for at most a second), so that a slow
			// server's backlog is not drained in the next one's slice.
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				busy := false
				for i, s := range senders {
					busy = busy || (i != t && s.outstanding.Load() > 0)
				}
				if !busy {
					break
				}
			}
		},
		measure: func(t int) {
			if t >= 0 {
				cur, sent0 = t, senders[t].sent.Load()
			} else if cur >= 0 {
				sentIn[cur] += senders[cur].sent.Load() - sent0
				cur = -1
			}
			measuring.Store(int32(t))
		},
		count: func(t int) uint64 {
			var n uint64
			for _, w := range workers {
				n += w.deliveries[t].Load()
			}
			return n
		},
	}.run()
	stop.Store(true)
	for _, s := range senders {
		s.c.Close()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	wg.Wait()

	n, first := errs.get()
	out := make([]FanoutResult, nt)
	for t := range res {
		r := &out[t]
		r.LoadResult = res[t]
		r.Conns, r.Size, r.Inflight = cfg.Receivers, cfg.Size, cfg.Inflight
		r.Errors, r.FirstError = n, first
		r.Sent, r.Stalls, r.Extensions = sentIn[t], senders[t].stalls.Load(), answers[t]
		var (
			h                 Hist
			sum, zipped, wire uint64
		)
		for _, w := range workers {
			h.Merge(&w.hists[t])
			sum += w.sums[t]
			r.Lost += w.lost[t].Load()
			r.Total += w.deliveries[t].Load()
			zipped += w.compressed[t].Load()
			wire += w.wire[t].Load()
			r.Inflated += w.inflated[t]
		}
		if r.Total > 0 {
			r.CompressedShare, r.WirePerMsg = float64(zipped)/float64(r.Total), float64(wire)/float64(r.Total)
		}
		r.P50, r.P99, r.P999, r.Max = h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999), h.Quantile(1)
		if r.Samples = h.Count(); r.Samples > 0 {
			r.Mean = float64(sum) / float64(r.Samples) / 1e3
		}
	}
	return out, nil
}

// fanHeader is the length of a broadcast's header: "B:", 16 hex digits,
// ':', 16 hex digits, ':'.
const fanHeader = 2 + 16 + 1 + 16 + 1

var fanClock = time.Now()

func fanNow() uint64 { return uint64(time.Since(fanClock)) }

// appendBroadcast appends the broadcast message of size bytes sent at ts
// with sequence number seq.
func appendBroadcast(dst []byte, size int, ts, seq uint64) []byte {
	dst = append(dst, 'B', ':')
	dst = appendHex16(dst, ts)
	dst = append(dst, ':')
	dst = appendHex16(dst, seq)
	dst = append(dst, ':')
	return AppendJSON(dst, size-fanHeader, seq)
}

func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, digits[(v>>uint(i))&0xF])
	}
	return b
}

func parseHex16(b []byte) (uint64, bool) {
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

// parseBroadcast reads a broadcast's send time and sequence number.
func parseBroadcast(m []byte) (ts, seq uint64, err error) {
	if len(m) < fanHeader || m[0] != 'B' || m[1] != ':' || m[18] != ':' || m[35] != ':' {
		return 0, 0, fmt.Errorf("unexpected message: %d bytes %q", len(m), m[:min(len(m), 40)])
	}
	ts, ok1 := parseHex16(m[2:18])
	seq, ok2 := parseHex16(m[19:35])
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("bad broadcast header %q", m[:fanHeader])
	}
	return ts, seq, nil
}

// dialAllDeflate is dialAll offering permessage-deflate; it also returns
// each connection's answer.
func dialAllDeflate(addr string, n, par int, timeout time.Duration) ([]net.Conn, [][]byte, []flateParams, error) {
	var (
		mu     sync.Mutex
		params = map[net.Conn]flateParams{}
	)
	conns, rests, err := dialAllWith(n, par, func() (net.Conn, []byte, error) {
		c, rest, p, err := dialWSDeflate(addr, timeout)
		if err == nil {
			mu.Lock()
			params[c] = p
			mu.Unlock()
		}
		return c, rest, err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	ps := make([]flateParams, n)
	for i, c := range conns {
		ps[i] = params[c]
	}
	return conns, rests, ps, nil
}

// fanTracker counts each broadcast's deliveries to a target's receivers,
// to tell its sender when one has reached every receiver.
type fanTracker struct {
	need   int32
	counts [1024]atomic.Int32 // by sequence number modulo 1024 (far more than in flight)
	done   chan struct{}
}

func (t *fanTracker) delivered(seq uint64) {
	if t.counts[seq%uint64(len(t.counts))].Add(1) == t.need {
		select {
		case t.done <- struct{}{}:
		default:
		}
	}
}

// fanSender is a target's sender (see CompareFanout).
type fanSender struct {
	c        net.Conn
	rest     []byte
	p        flateParams
	rx       *flateRx
	inf      *inflater
	mask     [4]byte
	t        int32
	size     int
	inflight int
	tr       *fanTracker
	active   *atomic.Int32
	stop     *atomic.Bool
	errs     *errorLog
	wake     chan struct{}
	sent     atomic.Uint64
	stalls   atomic.Uint64
	// outstanding: the broadcasts in flight, as the sender last saw them.
	outstanding atomic.Int32
}

func (s *fanSender) run() {
	seq := uint64(1)
	var out, msg []byte
	send := func(k int) bool {
		out = out[:0]
		for range k {
			s.tr.counts[seq%uint64(len(s.tr.counts))].Store(0)
			msg = appendBroadcast(msg[:0], s.size, fanNow(), seq)
			out = appendClientMessage(out, msg, s.p, s.mask)
			seq++
		}
		if _, err := s.c.Write(out); err != nil {
			if !s.stop.Load() {
				s.errs.add(fmt.Errorf("sender: %w", err))
			}
			return false
		}
		s.sent.Add(uint64(k))
		return true
	}
	outstanding := 0
	stall := time.NewTimer(time.Hour)
	defer stall.Stop()
	for !s.stop.Load() {
		s.outstanding.Store(int32(outstanding))
		if s.active.Load() == s.t && outstanding < s.inflight {
			if !send(s.inflight - outstanding) {
				return
			}
			outstanding = s.inflight
		}
		if outstanding > 0 {
			stall.Reset(500 * time.Millisecond)
		}
		select {
		case <-s.tr.done:
			outstanding = max(0, outstanding-1)
		case <-s.wake:
		case <-stall.C:
			if outstanding > 0 && !s.stop.Load() {
				s.stalls.Add(1) // give up on one: a receiver did not get it in time
				outstanding--
			}
		}
	}
}

// drain reads and checks the sender's own copies.
func (s *fanSender) drain() {
	buf := make([]byte, 256<<10)
	k := copy(buf, s.rest)
	var want []byte
	for {
		b := buf[:k]
		for {
			b0, p, n, err := ParseServerFrame(b)
			if err == nil && n > 0 {
				var m []byte
				if m, err = s.message(b0, p); err == nil {
					var ts, seq uint64
					if ts, seq, err = parseBroadcast(m); err == nil {
						if want = appendBroadcast(want[:0], s.size, ts, seq); !bytes.Equal(m, want) {
							err = fmt.Errorf("sender: broadcast %d is not what was sent", seq)
						}
					}
				}
			}
			if err != nil {
				if !s.stop.Load() {
					s.errs.add(fmt.Errorf("sender: %w", err))
				}
				return
			}
			if n == 0 {
				break
			}
			b = b[n:]
		}
		k = copy(buf, b)
		if k == len(buf) {
			s.errs.add(errors.New("sender: frame too long"))
			return
		}
		n, err := s.c.Read(buf[k:])
		k += n
		if err != nil {
			if !s.stop.Load() {
				s.errs.add(fmt.Errorf("sender: %w", err))
			}
			return
		}
	}
}

// message returns the message a frame of the sender's carries.
func (s *fanSender) message(b0 byte, p []byte) ([]byte, error) {
	switch {
	case b0 == 0x81:
		return p, nil
	case b0 == 0xC1 && s.rx != nil:
		m, err := s.inf.inflate(p, s.rx.dict())
		if err == nil {
			s.rx.push(m)
		}
		return m, err
	}
	return nil, fmt.Errorf("unexpected frame: first byte %#x, %d bytes", b0, len(p))
}

// fanConn is a receiver.
type fanConn struct {
	fd      int
	target  int
	tr      *fanTracker
	rx      *flateRx // nil: no compression negotiated
	partial []byte
	next    uint64 // next sequence number expected (0: none seen yet)
	dead    bool
}

// fanWorker is an epoll loop of receivers.
type fanWorker struct {
	epfd      int
	conns     []*fanConn
	buf       []byte
	size      int
	every     bool // inflate every delivery
	inf       *inflater
	want      []byte // a message rebuilt, to check one
	seed      maphash.Seed
	cache     [32]fanEntry // the last payloads inflated without a window
	cacheNext int          // the entry to replace next
	measuring *atomic.Int32
	stop      *atomic.Bool
	errs      *errorLog
	// Per target: deliveries (all), those compressed, their payload bytes,
	// sequence gaps; latency of deliveries in measured windows; inflations.
	deliveries, compressed, wire, lost []atomic.Uint64
	hists                              []Hist
	sums                               []uint64
	inflated                           []uint64 // read once the loop has ended
}

// fanEntry is a compressed payload that inflated, without a window, to
// a broadcast that was checked.
type fanEntry struct {
	hash        uint64 // of comp
	comp, plain []byte
}

func (w *fanWorker) close() {
	for _, c := range w.conns {
		if !c.dead {
			c.dead = true
			unix.Close(c.fd)
		}
	}
	unix.Close(w.epfd)
}

func (w *fanWorker) run() {
	defer w.close()
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

func (w *fanWorker) fail(c *fanConn, err error) {
	c.dead = true
	if !w.stop.Load() {
		w.errs.add(err)
	}
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

func (w *fanWorker) read(c *fanConn) {
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

func (w *fanWorker) consume(c *fanConn, b []byte) {
	t := fanNow()
	measuring := int(w.measuring.Load()) == c.target
	var got, zipped, wire uint64
	for {
		b0, p, n, err := ParseServerFrame(b)
		if err == nil && n > 0 {
			var m []byte
			if m, err = w.message(c, b0, p); err == nil {
				var ts, seq uint64
				if ts, seq, err = parseBroadcast(m); err == nil {
					if c.next != 0 && seq != c.next {
						if seq < c.next {
							err = fmt.Errorf("sequence went back from %d to %d", c.next, seq)
						} else {
							w.lost[c.target].Add(seq - c.next)
						}
					}
					c.next = seq + 1
					c.tr.delivered(seq)
					got++
					wire += uint64(len(p))
					if b0 == 0xC1 {
						zipped++
					}
					if measuring {
						d := t - min(ts, t)
						w.hists[c.target].Add(d)
						w.sums[c.target] += d
					}
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
		w.deliveries[c.target].Add(got)
		w.compressed[c.target].Add(zipped)
		w.wire[c.target].Add(wire)
	}
}

// message returns the broadcast that a receiver's frame carries, checked
// (see CompareFanout).
func (w *fanWorker) message(c *fanConn, b0 byte, p []byte) ([]byte, error) {
	switch {
	case b0 == 0x81:
		if err := w.check(p); err != nil {
			return nil, err
		}
		return p, nil
	case b0 != 0xC1 || c.rx == nil:
		return nil, fmt.Errorf("unexpected frame: first byte %#x, %d bytes", b0, len(p))
	}
	h := maphash.Bytes(w.seed, p)
	if !w.every {
		// The last few payloads, not a hash table: a collision among the
		// broadcasts in flight would inflate them again and again.
		for i := range w.cache {
			if e := &w.cache[i]; e.hash == h && bytes.Equal(e.comp, p) {
				c.rx.push(e.plain)
				return e.plain, nil
			}
		}
	}
	w.inflated[c.target]++
	m, err := w.inf.inflate(p, nil)
	if err != nil && c.rx.takeover {
		// It may need the window: inflate it with the receiver's.
		w.inflated[c.target]++
		if m, err = w.inf.inflate(p, c.rx.dict()); err == nil {
			if err = w.check(m); err == nil {
				c.rx.push(m)
			}
		}
		return m, err
	}
	if err != nil {
		return nil, fmt.Errorf("inflating %d bytes: %w", len(p), err)
	}
	if err := w.check(m); err != nil {
		return nil, err
	}
	c.rx.push(m)
	if !w.every {
		e := &w.cache[w.cacheNext]
		w.cacheNext = (w.cacheNext + 1) % len(w.cache)
		e.hash, e.comp, e.plain = h, append(e.comp[:0], p...), append(e.plain[:0], m...)
		return e.plain, nil
	}
	return m, nil
}

// check compares a broadcast with the message rebuilt from its header.
func (w *fanWorker) check(m []byte) error {
	ts, seq, err := parseBroadcast(m)
	if err != nil {
		return err
	}
	if w.want = appendBroadcast(w.want[:0], w.size, ts, seq); !bytes.Equal(m, w.want) {
		return fmt.Errorf("broadcast %d (%d bytes) is not what was sent", seq, len(m))
	}
	return nil
}
