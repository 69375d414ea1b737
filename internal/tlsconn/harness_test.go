package tlsconn

import (
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait of the tests.
const testTimeout = 10 * time.Second

// newEngine returns an engine closed at the end of the test.
func newEngine(t testing.TB, cfg *tls.Config, opts Options) *Engine {
	t.Helper()
	e, err := NewEngine(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// driver drives a Session exactly as the event loop will: raw is the
// ciphertext the loop holds for the connection (gnet's inbound buffer), a
// pass decrypts what it can, hands the plaintext to the application and
// writes the output in one write.
type driver struct {
	s   *Session
	raw []byte
	// app consumes plaintext and may write through the session; it returns
	// how many bytes it consumed (nil: take everything, echo nothing).
	app func(s *Session, p []byte) int
	out func(b []byte) // where the output goes (the peer)
	got []byte         // all the plaintext, when app is nil
	err error          // the first error Input returned

	maxRaw   int // the most ciphertext the loop held after a pass
	maxHeld  int // the most bytes the session held (held) after a pass
	passes   int
	outBytes int
}

// pass is one OnTraffic: Input in a loop, decode, then one write.
func (d *driver) pass() {
	d.passes++
	for d.err == nil {
		n, err := d.s.Input(d.raw)
		d.raw = append(d.raw[:0], d.raw[n:]...)
		if p := d.s.Plaintext(); len(p) > 0 {
			m := len(p)
			if d.app != nil {
				m = d.app(d.s, p)
			} else {
				d.got = append(d.got, p...)
			}
			d.s.Discard(m)
		}
		if err != nil {
			d.err = err
			break
		}
		if n == 0 || len(d.raw) == 0 {
			break
		}
	}
	d.maxRaw = max(d.maxRaw, len(d.raw))
	d.maxHeld = max(d.maxHeld, d.s.held())
	d.flush()
}

func (d *driver) flush() {
	if o := d.s.AppendOutput(nil); len(o) > 0 {
		d.outBytes += len(o)
		if d.out != nil {
			d.out(o)
		}
	}
}

// echo is an application that writes back what it reads.
func echo(s *Session, p []byte) int {
	if _, err := s.Write(p); err != nil {
		return 0
	}
	return len(p)
}

// memConn is the client's end of an in-memory connection: what the client
// writes goes to the loop (written), what the loop delivers the client reads.
type memConn struct {
	mu       sync.Mutex
	cond     sync.Cond
	rbuf     []byte // for the client to read
	written  []byte // from the client, for the loop
	eof      bool   // the server side closed: reads end after rbuf
	closed   bool
	deadline time.Time
	timer    *time.Timer
	notify   func()
	reads    int // Read calls that returned bytes
}

func newMemConn(notify func()) *memConn {
	c := &memConn{notify: notify}
	c.cond.L = &c.mu
	return c
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.rbuf) == 0 {
		switch {
		case c.closed:
			return 0, net.ErrClosed
		case c.eof:
			return 0, io.EOF
		case !c.deadline.IsZero() && !time.Now().Before(c.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		c.cond.Wait()
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	c.reads++
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.written = append(c.written, p...)
	c.mu.Unlock()
	c.notify()
	return len(p), nil
}

// inject sends b to the server as if the client had written it.
func (c *memConn) inject(b []byte) {
	c.mu.Lock()
	c.written = append(c.written, b...)
	c.mu.Unlock()
	c.notify()
}

// take returns what the client wrote since the last take.
func (c *memConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.written
	c.written = nil
	return b
}

// deliver gives the client bytes to read.
func (c *memConn) deliver(b []byte) {
	c.mu.Lock()
	c.rbuf = append(c.rbuf, b...)
	c.cond.Broadcast()
	c.mu.Unlock()
}

// hangUp makes the client's reads end (after what was delivered) with EOF.
func (c *memConn) hangUp() {
	c.mu.Lock()
	c.eof = true
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *memConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop() // it holds c
	}
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.notify()
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (c *memConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443} }

func (c *memConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }
func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.timer != nil {
		c.timer.Stop()
	}
	if !t.IsZero() {
		c.timer = time.AfterFunc(time.Until(t), func() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		})
	}
	return nil
}
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// memPair is a crypto/tls client talking to a Session in memory. A goroutine
// plays the event loop: it owns the driver and the session, feeds the
// client's bytes in chunks of random sizes (each chunk a pass, as separate
// reads would be), runs a pass on each wake-up, and delivers the output.
type memPair struct {
	t      testing.TB
	client *tls.Conn
	cc     *memConn
	d      *driver
	ev     chan struct{}
	calls  chan func()
	stop   chan struct{}
	done   chan struct{}
	rnd    *rand.Rand
	// maxChunk is the largest chunk of client bytes a pass gets (0: all).
	maxChunk int
	// hold, if set, is asked before each chunk whether to keep the bytes
	// for later (to make them arrive together).
	hold func() bool
	// fromClient and toClient record the first bytes each way (loop only).
	fromClient, toClient []byte
}

// recordCap bounds what a memPair records of each direction.
const recordCap = 64 << 10

func newMemPair(t testing.TB, e *Engine, ccfg *tls.Config, maxChunk int, app func(*Session, []byte) int) *memPair {
	t.Helper()
	p := &memPair{
		t:        t,
		ev:       make(chan struct{}, 1),
		calls:    make(chan func()),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		rnd:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		maxChunk: maxChunk,
	}
	p.cc = newMemConn(p.notify)
	p.client = tls.Client(p.cc, ccfg)
	_ = p.client.SetDeadline(time.Now().Add(testTimeout))
	s := e.NewSession(time.Now().Add(testTimeout), p.notify, p.cc.RemoteAddr(), p.cc.LocalAddr())
	p.d = &driver{s: s, app: app, out: func(b []byte) {
		if len(p.toClient) < recordCap {
			p.toClient = append(p.toClient, b...)
		}
		p.cc.deliver(b)
	}}
	go p.loop()
	t.Cleanup(p.close)
	return p
}

func (p *memPair) notify() {
	select {
	case p.ev <- struct{}{}:
	default:
	}
}

func (p *memPair) loop() {
	defer close(p.done)
	var pending []byte
	for {
		select {
		case <-p.stop:
			return
		case f := <-p.calls:
			f()
			continue
		case <-p.ev:
		case <-time.After(5 * time.Millisecond): // a held chunk may be due
		}
		fresh := p.cc.take()
		if len(p.fromClient) < recordCap {
			p.fromClient = append(p.fromClient, fresh...)
		}
		pending = append(pending, fresh...)
		if p.hold != nil && p.hold() {
			continue
		}
		for len(pending) > 0 {
			k := len(pending)
			if p.maxChunk > 0 {
				k = min(k, 1+p.rnd.IntN(p.maxChunk))
			}
			p.d.raw = append(p.d.raw, pending[:k]...)
			pending = pending[k:]
			p.d.pass()
		}
		p.d.pass() // a wake-up
		if p.d.err != nil {
			p.cc.hangUp()
		}
	}
}

// onLoop runs f with the loop parked: f has the driver and the session to
// itself, on the test's goroutine (so that it may call t.Fatal).
func (p *memPair) onLoop(f func(d *driver)) {
	p.t.Helper()
	paused, resume := make(chan struct{}), make(chan struct{})
	select {
	case p.calls <- func() { close(paused); <-resume }:
	case <-time.After(testTimeout):
		p.t.Fatal("loop does not answer")
	}
	<-paused
	defer close(resume)
	f(p.d)
}

// waitLoop polls cond on the loop until it holds.
func (p *memPair) waitLoop(what string, cond func(d *driver) bool) {
	p.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		ok := false
		p.onLoop(func(d *driver) { ok = cond(d) })
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// handshake runs the client's handshake and waits until the session has
// seen it succeed.
func (p *memPair) handshake() {
	p.t.Helper()
	if err := p.client.Handshake(); err != nil {
		p.t.Fatalf("client handshake: %v", err)
	}
	p.waitLoop("the session to be established", func(d *driver) bool {
		if d.err != nil {
			p.t.Fatalf("session: %v", d.err)
		}
		return d.s.Established()
	})
}

func (p *memPair) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	_ = p.cc.Close()
	p.d.s.Close()
}

// sessionErr waits until the session has failed, and returns its error.
func (p *memPair) sessionErr() error {
	p.t.Helper()
	var err error
	p.waitLoop("the session to fail", func(d *driver) bool {
		err = d.err
		return err != nil
	})
	return err
}

// tcpServer serves TLS sessions on 127.0.0.1, one "event loop" goroutine per
// connection driving a Session as the server will: a reader goroutine plays
// the kernel and gnet (it reads bytes in chunks of random sizes and passes
// them on), the loop goroutine owns the driver.
type tcpServer struct {
	ln   net.Listener
	e    *Engine
	app  func(*Session, []byte) int
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error // the sessions' final errors (nil for none)
	// onEnd, if set, runs on the loop when a session ends.
	onEnd func(d *driver)
}

func newTCPServer(t testing.TB, e *Engine, app func(*Session, []byte) int) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &tcpServer{ln: ln, e: e, app: app}
	srv.wg.Add(1)
	go srv.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		srv.wg.Wait()
	})
	return srv
}

func (srv *tcpServer) addr() string { return srv.ln.Addr().String() }

func (srv *tcpServer) accept() {
	defer srv.wg.Done()
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			return
		}
		srv.wg.Add(1)
		go srv.serve(c)
	}
}

func (srv *tcpServer) serve(c net.Conn) {
	defer srv.wg.Done()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	wake := make(chan struct{}, 1)
	s := srv.e.NewSession(time.Now().Add(testTimeout), func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}, c.LocalAddr(), c.RemoteAddr())
	d := &driver{s: s, app: srv.app, out: func(b []byte) { _, _ = c.Write(b) }}
	chunks := make(chan []byte, 16)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(chunks)
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for {
			b := make([]byte, 1+rnd.IntN(8192))
			n, err := c.Read(b)
			if n > 0 {
				select {
				case chunks <- b[:n]:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for d.err == nil {
		select {
		case b, ok := <-chunks:
			if !ok {
				d.err = io.ErrUnexpectedEOF // the peer hung up without close_notify
				break
			}
			d.raw = append(d.raw, b...)
		case <-wake:
		}
		d.pass()
	}
	if errors.Is(d.err, io.EOF) {
		s.Close() // answer close_notify with ours
		d.flush()
	}
	if srv.onEnd != nil {
		srv.onEnd(d)
	}
	s.Close()
	srv.mu.Lock()
	srv.errs = append(srv.errs, d.err)
	srv.mu.Unlock()
}
