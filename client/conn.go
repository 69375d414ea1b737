package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/goid"
	"github.com/tiogo/tio/internal/link"
)

// State is where a connection is in its life.
type State int32

// Connection states. A connection goes from StateConnecting to
// StateConnected, from there to StateReconnecting when it is lost (with
// WithReconnect) and back, and ends in StateClosed.
const (
	// StateConnecting: the first connection is being made.
	StateConnecting State = iota
	// StateConnected: the handshake completed, the OnConnected hook
	// returned and the sends queued meanwhile went out; sends go straight
	// to the connection.
	StateConnected
	// StateReconnecting: the connection was lost and is being made again
	// (waiting for the next attempt, or in one).
	StateReconnecting
	// StateClosed: closed by the application, lost without WithReconnect,
	// or given up; final.
	StateClosed
)

var stateNames = [...]string{"connecting", "connected", "reconnecting", "closed"}

// String returns the state's name ("connected").
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Conn is one connection to a server that outlives its TCP connections:
// with WithReconnect, a lost connection is made again and the Conn goes on
// (its channel is then a new one). Create it with Client.Dial or
// Client.Connect. Its methods are safe for concurrent use.
type Conn struct {
	c   *Client
	cfg *connConfig   // the client's default, unless Dial's options changed it
	dst *target       // shared by the connections that dial one URL the same way
	ids atomic.Uint32 // the last request id taken

	state atomic.Int32            // State
	cur   atomic.Pointer[session] // the TCP connection now, if any

	mu        sync.Mutex
	backlog   []queued // sends waiting for the connection (WithQueue)
	queued    int      // bytes of bodies in backlog
	attempts  int      // attempts failed in a row
	waits     int      // delays waited in this series of attempts
	connected bool     // it has connected at least once
	closing   bool     // closed, or closing: nothing more is attempted
	timer     *time.Timer
	cancel    context.CancelFunc // of the dial under way
	err       error
	events    []event
	notifying bool
	done      chan struct{} // closed in StateClosed; made on demand (Done)
	first     chan struct{} // Dial's: closed on the first connect, or on close
}

// queued is a send made while the connection was down.
type queued struct {
	p    codec.Packet // body copied
	call *call        // a Call's request; its id is taken when it is sent
}

type event struct {
	s   State
	err error
}

func (c *Client) newConn(rawURL string, opts []DialOption, dial bool) (*Conn, error) {
	cc := &c.cfg.conn
	if len(opts) > 0 {
		own := c.cfg.conn
		own.errs = nil
		for _, o := range opts {
			if o != nil {
				o.applyConn(&own)
			}
		}
		if err := own.check(&c.cfg); err != nil {
			return nil, err
		}
		cc = &own
	}
	dst, err := c.target(rawURL, cc)
	if err != nil {
		return nil, err
	}
	cn := &Conn{c: c, cfg: cc, dst: dst}
	if dial {
		cn.first = make(chan struct{})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	c.conns[cn] = struct{}{}
	return cn, nil
}

// URL returns the URL the connection dials.
func (cn *Conn) URL() string { return cn.dst.url }

// Client returns the client the connection belongs to.
func (cn *Conn) Client() *Client { return cn.c }

// State returns the connection's state now.
func (cn *Conn) State() State { return State(cn.state.Load()) }

// Done returns a channel closed once the connection is in StateClosed.
func (cn *Conn) Done() <-chan struct{} {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.done == nil {
		cn.done = make(chan struct{})
		if State(cn.state.Load()) == StateClosed {
			close(cn.done)
		}
	}
	return cn.done
}

// Err returns why the connection closed: nil while it is not closed and
// after a close by the application; else an error wrapping ErrConnLost
// (lost without WithReconnect) or ErrGaveUp, and ErrDiscarded if sends it
// had queued never went out.
func (cn *Conn) Err() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// Channel returns the channel of the TCP connection now, or nil while there
// is none (between attempts). It changes with each reconnect; sends on it
// bypass the queue and fail with channel.ErrNotReady before its handshake.
func (cn *Conn) Channel() *channel.Channel {
	if s := cn.cur.Load(); s != nil {
		return (*channel.Channel)(s.l)
	}
	return nil
}

func (cn *Conn) wasConnected() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.connected
}

// Send sends p to the server, from any goroutine, without waiting for the
// network: while the connection is up, p is encoded and queued on its
// channel (see channel.Channel.Send: the event loop writes it, after
// everything queued before). While it is down, p waits in the
// connection's queue, to go out in order after the next connect's
// OnConnected hook (WithQueue), or Send fails with ErrNotConnected, or
// ErrQueueFull when the queue has no room; on a closed connection it fails
// with ErrClosed. p may be reused when Send returns. A send that returned
// nil was handed to a TCP connection or queued; if that TCP connection
// drops before its bytes reach the server they are lost, as with any TCP
// send (use Call to know).
func (cn *Conn) Send(p *codec.Packet) error {
	if State(cn.state.Load()) == StateConnected {
		if s := cn.cur.Load(); s != nil {
			if err := s.l.Send(p); !gone(err) {
				return err
			}
		}
	}
	return cn.send(p, nil)
}

// gone reports whether a send failed because its TCP connection is going:
// the send then takes the slow path (the queue, or ErrNotConnected).
func gone(err error) bool {
	return errors.Is(err, link.ErrClosed) || errors.Is(err, link.ErrNotReady)
}

// send is Send's and Call's slow path, under mu: straight to the TCP
// connection if it is up (or if the OnConnected hook sends), else to the
// queue.
func (cn *Conn) send(p *codec.Packet, cl *call) error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.closing {
		return ErrClosed
	}
	if s := cn.cur.Load(); s != nil && (State(cn.state.Load()) == StateConnected && !s.l.Closing() || s.inHook()) {
		if err := cn.sendOn(s, p, cl); !gone(err) {
			return err
		}
	}
	switch {
	case cn.cfg.queue == 0:
		return ErrNotConnected
	case len(cn.backlog) >= cn.cfg.queue || len(cn.backlog) > 0 && cn.queued+len(p.Body) > cn.cfg.queueBytes:
		cn.c.stats.queueFull.Add(1)
		return ErrQueueFull
	}
	q := queued{p: *p, call: cl}
	q.p.Body = append([]byte(nil), p.Body...)
	cn.backlog = append(cn.backlog, q)
	cn.queued += len(q.p.Body)
	return nil
}

// sendOn sends p on s: a Call's request takes a fresh id first.
func (cn *Conn) sendOn(s *session, p *codec.Packet, cl *call) error {
	if cl == nil {
		return s.l.Send(p)
	}
	id := s.register(cl)
	if id == 0 {
		return link.ErrClosed
	}
	req := *p
	req.ID, req.Reply = id, false
	err := s.l.Send(&req)
	if err != nil {
		s.unregister(cl)
	}
	return err
}

// Close closes the connection, from any goroutine, without waiting: it
// stops reconnecting, says goodbye to the server (a WebSocket close frame,
// the binary close frame) after the bytes queued for it, and fails Calls
// in flight with ErrClosed. It returns an error wrapping ErrDiscarded if
// sends queued while the connection was down never went out. Closing a
// closed connection does nothing.
func (cn *Conn) Close() error {
	cn.mu.Lock()
	n := cn.closeLocked(nil)
	cn.unlockAndNotify()
	if n > 0 {
		return fmt.Errorf("%w: %d", ErrDiscarded, n)
	}
	return nil
}

// closeLocked closes the connection with err (nil: by the application) and
// returns how many queued sends it discarded. Called with mu held.
func (cn *Conn) closeLocked(err error) int {
	if cn.closing {
		return 0
	}
	cn.closing = true
	if cn.timer != nil {
		cn.timer.Stop()
		cn.timer = nil
	}
	if cn.cancel != nil {
		cn.cancel()
	}
	n := 0
	for _, q := range cn.backlog {
		if q.call != nil {
			q.call.finish(nil, ErrClosed)
		} else {
			n++
		}
	}
	cn.backlog, cn.queued = nil, 0
	if n > 0 {
		cn.c.stats.discarded.Add(uint64(n))
		err = errors.Join(err, fmt.Errorf("%w: %d", ErrDiscarded, n))
	}
	cn.err = err
	cn.setStateLocked(StateClosed, err)
	if cn.done != nil {
		close(cn.done)
	}
	cn.firstLocked()
	if s := cn.cur.Load(); s != nil {
		s.l.Close(link.ReasonClosedByApp)
	}
	cn.c.mu.Lock()
	delete(cn.c.conns, cn)
	cn.c.mu.Unlock()
	return n
}

// firstLocked tells Dial, if it waits, that the first attempts are over.
// Called with mu held.
func (cn *Conn) firstLocked() {
	if cn.first != nil {
		close(cn.first)
		cn.first = nil
	}
}

// setStateLocked changes the state and queues the event for the hook.
func (cn *Conn) setStateLocked(s State, err error) {
	if State(cn.state.Swap(int32(s))) == s {
		return
	}
	if cn.cfg.onState != nil {
		cn.events = append(cn.events, event{s, err})
	}
}

// unlockAndNotify unlocks mu and tells the state hook of the changes made
// meanwhile, one at a time and in order: if another goroutine is telling
// it already, that one tells these too once it is done.
func (cn *Conn) unlockAndNotify() {
	if cn.notifying || len(cn.events) == 0 {
		cn.mu.Unlock()
		return
	}
	cn.notifying = true
	for len(cn.events) > 0 {
		evs := cn.events
		cn.events = nil
		cn.mu.Unlock()
		for _, e := range evs {
			cn.tell(e)
		}
		cn.mu.Lock()
	}
	cn.notifying = false
	cn.mu.Unlock()
}

// tell runs the state hook; a panic in it is recovered and counted.
func (cn *Conn) tell(e event) {
	defer func() {
		if v := recover(); v != nil {
			cn.c.stats.panics.Add(1)
			cn.c.log.Error("client: OnStateChange panicked", "url", cn.dst.url, "state", e.s.String(), "panic", v, "stack", string(debug.Stack()))
		}
	}()
	cn.cfg.onState(cn, e.s, e.err)
}

// attempt makes one connection attempt, on the calling goroutine: the
// caller's for Dial, a timer's for a reconnect. It blocks while it dials
// (at most WithDialTimeout) and while an event loop takes the connection
// in; the handshake then goes on on the loop.
func (cn *Conn) attempt(ctx context.Context) {
	c := cn.c
	if !c.enter() {
		cn.mu.Lock()
		cn.closeLocked(ErrClosed)
		cn.unlockAndNotify()
		return
	}
	defer c.inflight.Done()
	cn.mu.Lock()
	if cn.closing {
		cn.mu.Unlock()
		return
	}
	cn.timer = nil
	dctx, cancel := context.WithTimeout(ctx, cn.cfg.dialTimeout)
	cn.cancel = cancel
	cn.mu.Unlock()
	c.stats.dials.Add(1)
	if c.onAttempt != nil {
		c.onAttempt()
	}
	nc, err := c.dialer.DialContext(dctx, "tcp", cn.dst.addr)
	cancel()
	if err == nil {
		// The event loop runs onOpen before EnrollContext returns; it
		// closes nc (gnet keeps a duplicate of its descriptor).
		_, err = c.gc.EnrollContext(nc, &session{cn: cn})
	}
	cn.mu.Lock()
	cn.cancel = nil
	if err != nil {
		c.stats.dialErrors.Add(1)
		cn.failedLocked(fmt.Errorf("client: dial %s: %w", cn.dst.url, err))
	}
	cn.unlockAndNotify()
}

// failedLocked records a failed attempt: the next is scheduled, or the
// connection closes (no WithReconnect, or Reconnect.MaxAttempts reached).
// Called with mu held.
func (cn *Conn) failedLocked(err error) {
	if cn.closing {
		return
	}
	r := cn.cfg.reconnect
	if r == nil {
		cn.closeLocked(err)
		return
	}
	cn.attempts++
	if r.MaxAttempts > 0 && cn.attempts >= r.MaxAttempts {
		cn.c.log.Warn("client: giving up", "url", cn.dst.url, "attempts", cn.attempts, "err", err)
		cn.closeLocked(fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, cn.attempts, err))
		return
	}
	cn.c.log.Debug("client: attempt failed", "url", cn.dst.url, "attempts", cn.attempts, "err", err)
	cn.scheduleLocked()
}

// scheduleLocked arms the timer of the next attempt. Called with mu held.
func (cn *Conn) scheduleLocked() {
	d := cn.cfg.reconnect.delay(cn.waits)
	cn.waits++
	cn.timer = time.AfterFunc(d, func() { cn.attempt(context.Background()) })
}

// delay returns the wait before an attempt after n earlier waits of the
// same series: Initial×Multiplier^n, capped at Max, less a random share of
// up to Jitter of it.
func (r *Reconnect) delay(n int) time.Duration {
	d := float64(r.Initial) * math.Pow(r.Multiplier, float64(n))
	d = min(d, float64(r.Max))
	d -= d * r.Jitter * rand.Float64()
	return time.Duration(d)
}

// lost records that the TCP connection of s closed (on its event loop).
func (cn *Conn) lost(s *session, r link.Reason, err error) {
	cn.mu.Lock()
	cn.cur.CompareAndSwap(s, nil)
	switch {
	case cn.closing:
	case !s.ready:
		cn.c.stats.dialErrors.Add(1)
		cn.failedLocked(fmt.Errorf("client: %s: %w", cn.dst.url, err))
	default:
		cn.c.stats.disconnects.Add(1)
		if cn.cfg.reconnect == nil {
			cn.closeLocked(err)
			break
		}
		cn.c.log.Debug("client: connection lost", "url", cn.dst.url, "reason", r.String(), "err", err)
		cn.attempts, cn.waits = 0, 0
		cn.setStateLocked(StateReconnecting, err)
		cn.scheduleLocked()
	}
	cn.unlockAndNotify()
}

// up finishes a connect once the handshake completed and the OnConnected
// hook returned: the sends queued meanwhile go out, in order, and the
// state becomes StateConnected. Called on the loop or on the pool.
func (cn *Conn) up(s *session, reconnect bool) {
	cn.mu.Lock()
	if cn.closing || cn.cur.Load() != s || s.l.Closing() {
		cn.mu.Unlock()
		return
	}
	sent := 0
	for i := range cn.backlog {
		q := &cn.backlog[i]
		if q.call != nil && q.call.abandoned() {
			sent++
			continue
		}
		if err := cn.sendOn(s, &q.p, q.call); err != nil {
			if gone(err) || errors.Is(err, link.ErrSlowConsumer) {
				// The connection is going, or took no more: what is
				// left waits for the next.
				break
			}
			// The packet cannot be encoded (a request the mapping
			// cannot carry): it never will be. Say so, and go on.
			if q.call != nil {
				q.call.finish(nil, err)
			} else {
				cn.c.stats.discarded.Add(1)
				cn.c.log.Warn("client: a queued send cannot be encoded; discarded", "url", cn.dst.url, "type", q.p.Type, "err", err)
			}
		}
		sent++
	}
	for _, q := range cn.backlog[:sent] {
		cn.queued -= len(q.p.Body)
	}
	cn.backlog = append(cn.backlog[:0], cn.backlog[sent:]...)
	if len(cn.backlog) == 0 {
		cn.backlog = nil
	}
	if len(cn.backlog) > 0 {
		cn.mu.Unlock()
		return
	}
	cn.connected = true
	cn.c.stats.connects.Add(1)
	if reconnect {
		cn.c.stats.reconnects.Add(1)
	}
	cn.setStateLocked(StateConnected, nil)
	cn.firstLocked()
	cn.unlockAndNotify()
}

// session is one TCP connection of a Conn: what the event loop keeps as
// the gnet connection's context.
type session struct {
	cn    *Conn
	l     *link.Link
	ready bool          // loop only: the handshake completed
	hookG atomic.Uint64 // the goroutine running the OnConnected hook, 0: none

	mu     sync.Mutex
	calls  map[uint32]*call // Calls waiting for their replies
	closed bool
}

// inHook reports whether the calling goroutine runs s's OnConnected hook,
// whose sends go out at once, ahead of the queue.
func (s *session) inHook() bool {
	g := s.hookG.Load()
	return g != 0 && g == goid.ID()
}
