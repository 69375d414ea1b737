package tlsconn

import (
	"crypto/tls"
	"errors"
	"runtime"
	"sync"
	"time"
)

// Options bound an Engine's work and memory. Zero fields take the defaults.
type Options struct {
	// MaxWorkers caps the goroutines that run handshakes (default
	// 32×GOMAXPROCS, at least 64). A handshake holds its worker for its
	// whole length, a round trip to the client included (a worker waits
	// for the client's Finished), so the cap is about how many handshakes
	// may be in flight rather than about CPUs. Workers start when there is
	// work and none idle, and exit after WorkerIdle without work.
	MaxWorkers int
	// MaxQueued caps the handshakes waiting for a worker (default 1024);
	// beyond it Input fails with ErrBusy. A queued handshake holds its
	// ClientHello (at most MaxHelloBytes) and a session.
	MaxQueued int
	// WorkerIdle is how long an idle worker waits for work before it exits
	// (default 2 s).
	WorkerIdle time.Duration
	// HandshakeTimeout is the handshake's deadline when NewSession is given
	// none (default 10 s).
	HandshakeTimeout time.Duration
	// MaxHelloBytes bounds the records carrying the ClientHello, headers
	// included (default 16 KiB; browsers' hellos, post-quantum key shares
	// included, are under 2 KiB). The loop holds no more than this for a
	// connection before its handshake is queued; the bytes stay in the
	// caller's buffer until the ClientHello is whole.
	MaxHelloBytes int
	// MaxHandshakeBytes bounds the bytes that arrived during the handshake
	// and that crypto/tls has not read yet (default 64 KiB); more is held
	// back in the caller's buffer until crypto/tls has read those (a
	// client's server may send a long certificate chain).
	MaxHandshakeBytes int
	// PlaintextLimit is how many decrypted bytes waiting to be decoded make
	// Input stop decrypting (default 64 KiB): Plaintext holds at most this
	// plus one record, beyond what the caller leaves undiscarded.
	PlaintextLimit int
}

func (o *Options) fill() {
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = max(64, 32*runtime.GOMAXPROCS(0))
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 1024
	}
	if o.WorkerIdle <= 0 {
		o.WorkerIdle = 2 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxHelloBytes <= 0 {
		o.MaxHelloBytes = 16 << 10
	}
	if o.MaxHandshakeBytes <= 0 {
		o.MaxHandshakeBytes = 64 << 10
	}
	if o.PlaintextLimit <= 0 {
		o.PlaintextLimit = 64 << 10
	}
}

// Engine holds what a server's TLS sessions share: the configuration and the
// handshake pool; or, made by NewClientEngine, what a client's sessions
// share: the pool alone. Its methods are safe for concurrent use.
type Engine struct {
	cfg  *tls.Config // the server's; nil in a client engine
	opts Options
	pool pool
}

// NewClientEngine returns an engine for the client side of TLS: its
// sessions are made by NewClientSession, each with a configuration of its
// own, and their handshakes run on its pool as a server's do. Of opts,
// MaxWorkers, MaxQueued, WorkerIdle, HandshakeTimeout, MaxHandshakeBytes
// and PlaintextLimit apply (MaxHelloBytes is the server's).
func NewClientEngine(opts Options) *Engine {
	opts.fill()
	e := &Engine{opts: opts}
	e.pool.init(&e.opts)
	return e
}

// NewEngine returns an engine serving with a clone of cfg (later changes to
// cfg are not seen; its callbacks, GetCertificate for a certificate reload
// among them, are called as usual, on the handshake workers). A MinVersion
// of 0 becomes TLS 1.2. cfg must give the server a certificate: Certificates,
// GetCertificate or GetConfigForClient.
func NewEngine(cfg *tls.Config, opts Options) (*Engine, error) {
	if cfg == nil {
		return nil, errors.New("tlsconn: nil tls.Config")
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, errors.New("tlsconn: tls.Config has no certificate (Certificates, GetCertificate or GetConfigForClient)")
	}
	opts.fill()
	e := &Engine{cfg: cfg.Clone(), opts: opts}
	if e.cfg.MinVersion == 0 {
		e.cfg.MinVersion = tls.VersionTLS12
	}
	e.pool.init(&e.opts)
	return e, nil
}

// Close stops the engine: handshakes still queued fail with ErrClosed (their
// sessions wake their loops), new ones are refused, and idle workers exit;
// handshakes running finish (each by its deadline). Established sessions are
// not affected. It does not wait.
func (e *Engine) Close() { e.pool.close() }

// Stats is a snapshot of an engine's handshake pool.
type Stats struct {
	Workers int // goroutines running (or waiting for) handshakes
	Idle    int // of which waiting for work
	Queued  int // handshakes waiting for a worker
}

// Stats returns a snapshot of the handshake pool.
func (e *Engine) Stats() Stats {
	p := &e.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Workers: p.running, Idle: p.idle, Queued: p.queued}
}

// pool runs handshakes on at most max workers, started on demand.
type pool struct {
	mu         sync.Mutex
	cond       sync.Cond // idle workers wait on it
	head, tail *Session  // the queue, linked through handshake.prev/next
	queued     int
	running    int // workers
	idle       int // workers waiting in cond
	closed     bool
	maxQueued  int
	maxWorkers int
	linger     time.Duration
}

func (p *pool) init(o *Options) {
	p.cond.L = &p.mu
	p.maxQueued, p.maxWorkers, p.linger = o.MaxQueued, o.MaxWorkers, o.WorkerIdle
}

// submit queues s's handshake, starting a worker if none is idle and the cap
// allows. It never blocks. s's mu is held (the lock order is session, then
// pool).
func (p *pool) submit(s *Session) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case p.queued >= p.maxQueued:
		return ErrBusy
	}
	hs := s.hs
	hs.prev, hs.next, hs.inQueue = p.tail, nil, true
	if p.tail != nil {
		p.tail.hs.next = s
	} else {
		p.head = s
	}
	p.tail = s
	p.queued++
	if p.idle > 0 {
		p.cond.Signal()
	}
	// A worker signalled but not yet awake still counts as idle: start
	// another when there is more work than idle workers.
	if p.queued > p.idle && p.running < p.maxWorkers {
		p.running++
		go p.work()
	}
	return nil
}

// remove takes s out of the queue if it is there, and reports whether it
// was. s's mu is held.
func (p *pool) remove(s *Session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unlinkLocked(s)
}

func (p *pool) unlinkLocked(s *Session) bool {
	hs := s.hs
	if !hs.inQueue {
		return false
	}
	if hs.prev != nil {
		hs.prev.hs.next = hs.next
	} else {
		p.head = hs.next
	}
	if hs.next != nil {
		hs.next.hs.prev = hs.prev
	} else {
		p.tail = hs.prev
	}
	hs.prev, hs.next, hs.inQueue = nil, nil, false
	p.queued--
	return true
}

// work is a worker: it runs queued handshakes until it has been idle for
// linger (or the pool closes).
func (p *pool) work() {
	var (
		idleSince time.Time
		timer     *time.Timer
	)
	p.mu.Lock()
	for {
		if s := p.head; s != nil {
			p.unlinkLocked(s)
			p.mu.Unlock()
			s.runHandshake()
			idleSince = time.Time{}
			p.mu.Lock()
			continue
		}
		if p.closed {
			break
		}
		now := time.Now()
		if idleSince.IsZero() {
			idleSince = now
		}
		wait := p.linger - now.Sub(idleSince)
		if wait <= 0 {
			break
		}
		if timer == nil {
			timer = time.AfterFunc(wait, p.nudge)
		} else {
			timer.Reset(wait)
		}
		p.idle++
		p.cond.Wait()
		p.idle--
	}
	p.running--
	p.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
}

// nudge wakes the idle workers so that those idle long enough exit.
func (p *pool) nudge() {
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	for {
		p.mu.Lock()
		s := p.head
		if s != nil {
			p.unlinkLocked(s)
		}
		p.mu.Unlock()
		if s == nil {
			return
		}
		s.abandon(ErrClosed)
	}
}
