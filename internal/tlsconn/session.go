package tlsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// state is where a Session is in its life.
type state uint8

const (
	stHello       state = iota // the loop collects the ClientHello
	stQueued                   // the handshake waits for a worker
	stRunning                  // a worker runs the handshake
	stEstablished              // the handshake succeeded
	stFailed                   // an error is stored in err
	stClosed                   // Close was called
)

// Session is the server side of one TLS connection (NewSession), or the
// client side (NewClientSession), driven by the event loop that owns the
// connection.
//
// # Goroutines
//
// Every method is for the connection's event loop (one goroutine at a time:
// the loop's), and none blocks: each returns after a bounded amount of
// work. The handshake runs on one of the engine's workers; while it does, the
// session's own lock arbitrates between the loop and the worker, and the
// loop never waits for the worker's work, only for the lock, which nobody
// holds while it computes or waits. Once the handshake has succeeded and the
// loop has seen it, only the loop touches the tls.Conn and the session takes
// no lock on its fast path.
//
// # Driving it
//
// On each pass over the connection (gnet's OnTraffic, which a Wake also
// triggers):
//
//	raw := all the ciphertext buffered for the connection
//	for {
//		n, err := s.Input(raw)      // takes n bytes (the caller discards them)
//		raw = raw[n:]
//		decode s.Plaintext(), then s.Discard(the bytes decoded)
//		if err != nil { flush the output, then close }  // io.EOF: the peer's close_notify
//		if n == 0 || len(raw) == 0 { break }
//	}
//	s.Write(the plaintext queued for the peer during the pass)
//	s.WriteTo(conn)                 // or AppendOutput: all the ciphertext, in one write
//
// The wake function given to NewSession asks for such a pass when the handshake
// has bytes for the peer or has ended.
type Session struct {
	eng  *Engine
	conn *tls.Conn // nil until the ClientHello is whole
	wake func()

	// mu guards st, hs and, until the loop has taken the session over
	// (loop), everything the worker can touch: the output, the cursor. It
	// is never held while crypto/tls computes or waits.
	mu   sync.Mutex
	st   state
	loop bool   // the loop has seen the handshake succeed; loop only from then on
	vers uint16 // the negotiated version, set before st becomes stEstablished
	big  bool   // a record longer than crypto/tls accepts was seen
	// reneg: a TLS 1.2 peer sent a handshake record after the handshake.
	reneg bool
	// tlsHolds: crypto/tls may hold decrypted bytes not yet read (the last
	// Read filled its buffer). Loop only.
	tlsHolds bool
	cur      cursor

	hs  *handshake // until the loop has fed the handshake's leftovers
	err error      // the stored error (stFailed), or io.EOF after close_notify

	src  []byte // loop mode: the caller's ciphertext, during Input
	srcN int    // bytes of src handed to crypto/tls

	out      *[]byte // ciphertext waiting for the caller; nil when none
	plain    *[]byte // decrypted bytes; nil when none
	plainOff int     // bytes of plain discarded
}

// handshake is the state a Session needs only until the handshake is over;
// an established session drops it.
type handshake struct {
	cond          sync.Cond // the worker waits on it for bytes; L is the session's mu
	deadline      time.Time
	local, remote net.Addr

	in       []byte // ciphertext received and not yet read by crypto/tls
	inOff    int
	helloEnd int     // bytes of in that carried the ClientHello
	flushed  bool    // this side has written its first bytes
	alert    int     // the alert of a server's first write if it was one, else -1
	held     bool    // Input held bytes back (MaxHandshakeBytes): wake the loop once these are read
	staged   *[]byte // what the handshake wrote since it last waited: the loop's once it waits or ends
	closed   bool    // the transport was closed
	timedOut bool    // the deadline passed while a worker ran the handshake
	waiting  bool    // the worker waits in Read (tests look)

	ctx    context.Context
	cancel context.CancelFunc
	stop   func() bool // stops expire

	prev, next *Session // the pool's queue: the pool's mu guards these two
	inQueue    bool     // and this
}

// NewSession starts the server side of a new TLS connection, typically once
// Sniff has matched its first bytes. deadline bounds the whole handshake,
// including the time the ClientHello takes to arrive and the time it waits
// for a worker (zero: Options.HandshakeTimeout from now). wake, if not nil,
// is called from another goroutine when the session needs a pass of the
// loop: the handshake has bytes for the peer, or it has ended (succeeded,
// failed or timed out). wake must not block and must not call back into the
// session (gnet's Conn.Wake fits); it is never called after Close has
// returned. local and remote are the connection's addresses, which the
// handshake shows to the configuration's callbacks (ClientHelloInfo.Conn);
// they may be nil. Safe from any goroutine; it allocates a few hundred
// bytes and starts nothing.
func (e *Engine) NewSession(deadline time.Time, wake func(), local, remote net.Addr) *Session {
	if deadline.IsZero() {
		deadline = time.Now().Add(e.opts.HandshakeTimeout)
	}
	s := &Session{eng: e, wake: wake}
	s.hs = &handshake{deadline: deadline, local: local, remote: remote, alert: -1}
	s.hs.cond.L = &s.mu
	return s
}

// NewClientSession starts the client side of a new TLS connection, once
// the TCP connection is up, with cfg: tls.Client's configuration, which
// the session keeps and which must not be modified afterwards (the caller
// clones a shared one and sets ServerName). Its handshake is queued for a
// worker at once: the ClientHello, and every flight after it, comes out
// through wake and the output (WriteTo), and the server's answers go in
// through Input, as a server session's do. deadline bounds the whole
// handshake, the wait for a worker included (zero: Options.HandshakeTimeout
// from now); wake, local and remote are as for NewSession. It fails with
// ErrBusy when the pool's queue is full and ErrClosed after Close; the
// engine must be a client engine (NewClientEngine).
func (e *Engine) NewClientSession(cfg *tls.Config, deadline time.Time, wake func(), local, remote net.Addr) (*Session, error) {
	if e.cfg != nil {
		return nil, errors.New("tlsconn: NewClientSession on a server engine")
	}
	s := e.NewSession(deadline, wake, local, remote)
	hs := s.hs
	s.conn = tls.Client((*transport)(s), cfg)
	hs.ctx, hs.cancel = context.WithDeadline(context.Background(), hs.deadline)
	hs.stop = context.AfterFunc(hs.ctx, s.expire)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = stQueued
	if err := e.pool.submit(s); err != nil {
		hs.stop()
		hs.cancel()
		s.st = stFailed
		return nil, err
	}
	return s, nil
}

// Input takes ciphertext received from the peer, ct (all the bytes the
// caller holds for the connection, oldest first), and returns how many of
// them the session took: the caller discards those and keeps the rest for
// the next call. It never blocks and never keeps a reference to ct.
//
// Before the ClientHello is whole, Input takes nothing (n == 0): the caller
// keeps the bytes and passes them again with more appended, as codec
// decoders are driven. A whole ClientHello is copied and its handshake queued
// for a worker. (A client session's handshake is queued from the start.)
// While the handshake runs, Input takes what arrives, up to
// Options.MaxHandshakeBytes not yet read by the handshake; a peer that sends
// more before the handshake ends is held back (n < len(ct)) until the
// worker has read what the session holds (a wake-up then asks for a pass)
// or the handshake ends, or refused with ErrHandshakeOverflow if it does so
// before this side has sent its first flight (the server its answer to the
// ClientHello, the client its ClientHello). Once the handshake is
// over, Input decrypts the records of ct into Plaintext, at least one record
// per call, stopping once Options.PlaintextLimit bytes are waiting to be
// decoded (call it again with ct[n:] after Discard); bytes of a partial
// record are taken too (crypto/tls holds them).
//
// The error is one of this package's sentinels (possibly wrapping
// crypto/tls's error), io.EOF when the peer sent close_notify, or ErrClosed
// after Close. Once Input has returned an error it returns it again. The
// plaintext decrypted before an error or io.EOF is still in Plaintext, and
// Output may hold an alert for the peer: write it before closing.
func (s *Session) Input(ct []byte) (n int, err error) {
	if !s.loop {
		s.mu.Lock()
		switch s.st {
		case stHello:
			n, err = s.inputHello(ct)
			s.mu.Unlock()
			return n, err
		case stQueued, stRunning:
			n, err = s.inputHandshake(ct)
			s.mu.Unlock()
			return n, err
		case stEstablished:
			s.loop = true
		case stFailed:
			err = s.err
			s.mu.Unlock()
			return 0, err
		case stClosed:
			s.mu.Unlock()
			return 0, ErrClosed
		}
		s.mu.Unlock()
	}
	return s.inputRecords(ct)
}

// preFlightSlack is how many bytes beyond its ClientHello a client may send
// before the server has answered: legitimate clients send at most a
// change_cipher_spec record (6 bytes) before they see the ServerHello.
const preFlightSlack = 1024

// inputHello collects the ClientHello and queues the handshake. mu is held.
func (s *Session) inputHello(ct []byte) (int, error) {
	hs := s.hs
	if time.Now().After(hs.deadline) {
		return 0, s.failLocked(fmt.Errorf("%w (before the ClientHello was whole)", ErrHandshakeTimeout))
	}
	h, err := scanHello(ct, s.eng.opts.MaxHelloBytes)
	if err != nil {
		switch {
		case errors.Is(err, ErrRecordTooLarge):
			s.alertLocked(alertRecordOverflow)
		case errors.Is(err, ErrMalformedHello):
			s.alertLocked(alertDecodeError)
		default:
			s.alertLocked(alertInternalError) // as crypto/tls answers a handshake message over its limit
		}
		return 0, s.failLocked(err)
	}
	if h.end == 0 {
		return 0, nil
	}
	cfg := s.eng.cfg
	if cfg.GetConfigForClient == nil && h.maxVersion < cfg.MinVersion {
		// crypto/tls would answer the same, but this costs no worker.
		s.alertLocked(alertProtocolVersion)
		return 0, s.failLocked(fmt.Errorf("%w: the client offers at most %#04x, the minimum is %#04x", ErrUnsupportedVersion, h.maxVersion, cfg.MinVersion))
	}
	if len(ct)-h.end > preFlightSlack {
		return 0, s.failLocked(fmt.Errorf("%w: %d bytes after the ClientHello, before the server's answer", ErrHandshakeOverflow, len(ct)-h.end))
	}
	hs.in = append(make([]byte, 0, len(ct)), ct...)
	hs.helloEnd = h.end
	s.conn = tls.Server((*transport)(s), cfg)
	hs.ctx, hs.cancel = context.WithDeadline(context.Background(), hs.deadline)
	hs.stop = context.AfterFunc(hs.ctx, s.expire)
	s.st = stQueued
	if err := s.eng.pool.submit(s); err != nil {
		s.st = stHello
		hs.stop()
		hs.cancel()
		s.alertLocked(alertInternalError)
		return 0, s.failLocked(err)
	}
	return len(ct), nil
}

// inputHandshake buffers what arrives while the handshake runs, for the
// worker's reads. mu is held.
func (s *Session) inputHandshake(ct []byte) (int, error) {
	hs := s.hs
	if time.Now().After(hs.deadline) {
		hs.timedOut = true
		return 0, s.failLocked(ErrHandshakeTimeout)
	}
	if len(ct) == 0 {
		return 0, nil
	}
	take := len(ct)
	if !hs.flushed {
		if len(hs.in)+take > hs.helloEnd+preFlightSlack {
			return 0, s.failLocked(fmt.Errorf("%w: more than %d bytes after the ClientHello, before the server's answer", ErrHandshakeOverflow, preFlightSlack))
		}
	} else if room := s.eng.opts.MaxHandshakeBytes - (len(hs.in) - hs.inOff); take > room {
		take = max(room, 0) // held back until the worker has read what it holds
		hs.held = true
	}
	if take == 0 {
		return 0, nil
	}
	if hs.inOff > 0 {
		// Drop what the worker has read (at most MaxHandshakeBytes move).
		hs.in = hs.in[:copy(hs.in, hs.in[hs.inOff:])]
		hs.helloEnd = max(hs.helloEnd-hs.inOff, 0)
		hs.inOff = 0
	}
	hs.in = append(hs.in, ct[:take]...)
	hs.cond.Signal()
	return take, nil
}

// inputRecords decrypts records once the loop owns the session: first what
// arrived during the handshake and crypto/tls has not read, then ct.
func (s *Session) inputRecords(ct []byte) (int, error) {
	if s.st == stClosed {
		return 0, ErrClosed
	}
	if s.err != nil {
		return 0, s.err
	}
	s.src, s.srcN = ct, 0
	limit := s.eng.opts.PlaintextLimit
	for progress := false; ; progress = true {
		// Stop at the limit, but only once the handshake's leftovers are
		// fed: a caller that has no new bytes (n == 0) will not call again.
		if progress && s.plainLen() >= limit && !s.leftover() {
			break
		}
		// With no new bytes, and nothing decrypted left in crypto/tls,
		// a Read would only say so (and allocate: crypto/tls's reader).
		if !s.tlsHolds && s.srcN == len(s.src) && !s.leftover() {
			break
		}
		space := s.plainSpace()
		n, err := s.conn.Read(space)
		// A Read that fills the space may have left plaintext in crypto/tls;
		// otherwise it returned the rest of its record (and crypto/tls
		// holds no more than that record: the transport feeds one at a time).
		s.tlsHolds = n == len(space)
		*s.plain = (*s.plain)[:len(*s.plain)+n]
		if err == nil {
			continue
		}
		if err != errAgain {
			s.mu.Lock()
			s.err = s.classify(err)
			if s.err != io.EOF {
				s.st = stFailed
			}
			s.mu.Unlock()
		}
		break
	}
	if s.plainLen() == 0 {
		s.releasePlain()
	}
	if s.hs != nil && !s.leftover() {
		s.mu.Lock()
		s.hs = nil // the handshake is over and its bytes are fed
		s.mu.Unlock()
	}
	n := s.srcN
	s.src, s.srcN = nil, 0
	return n, s.err
}

// classify turns an error of crypto/tls's Read into one of ours.
func (s *Session) classify(err error) error {
	var op *net.OpError
	switch {
	case err == io.EOF:
		return io.EOF
	case s.big:
		return wrap(ErrRecordTooLarge, err)
	case s.reneg:
		return wrap(ErrRenegotiation, err)
	case errors.As(err, &op) && op.Op == "remote error":
		return wrap(ErrAlert, err)
	}
	return wrap(ErrProtocol, err)
}

// Plaintext returns the decrypted bytes not yet discarded, oldest first.
// The slice is the session's buffer: valid until the next Input, Discard or
// Close, and the caller may modify it (a codec unmasking in place). Loop
// only.
func (s *Session) Plaintext() []byte {
	if s.plain == nil {
		return nil
	}
	return (*s.plain)[s.plainOff:]
}

// Discard drops the first n bytes of Plaintext (those the codec consumed).
// When none remain the buffer goes back to a shared pool, so that an idle
// session holds no plaintext buffer. Loop only.
func (s *Session) Discard(n int) {
	if n <= 0 || s.plain == nil {
		return
	}
	s.plainOff = min(s.plainOff+n, len(*s.plain))
	if s.plainOff == len(*s.plain) {
		s.releasePlain()
	}
}

// leftover reports whether bytes that arrived during the handshake are
// still to be fed to crypto/tls. Loop mode.
func (s *Session) leftover() bool {
	return s.hs != nil && s.hs.inOff < len(s.hs.in)
}

func (s *Session) plainLen() int {
	if s.plain == nil {
		return 0
	}
	return len(*s.plain) - s.plainOff
}

// minFree is the least room a Read into the plaintext buffer gets.
const minFree = 4096

// plainSpace returns the free room of the plaintext buffer, at least
// minFree bytes, compacting or growing it as needed.
func (s *Session) plainSpace() []byte {
	if s.plain == nil {
		s.plain = getBuf()
	}
	b := *s.plain
	if cap(b)-len(b) < minFree {
		if s.plainOff > 0 {
			b = b[:copy(b, b[s.plainOff:])]
			s.plainOff = 0
		}
		if cap(b)-len(b) < minFree {
			nb := make([]byte, len(b), 2*cap(b))
			copy(nb, b)
			putBuf(s.plain)
			s.plain = &nb
			b = nb
		}
		*s.plain = b
	}
	return b[len(b):cap(b)]
}

func (s *Session) releasePlain() {
	if s.plain != nil {
		putBuf(s.plain)
		s.plain, s.plainOff = nil, 0
	}
}

// Write encrypts p into records and queues them for the peer (see
// WriteTo). It never blocks and always takes all of p: bounding what is
// queued for a peer is the caller's outbound limit. It fails with
// ErrHandshaking before the handshake has succeeded, ErrClosed after Close,
// and with the stored error after a fatal one (not after io.EOF: a peer that
// sent close_notify may still be written to). Loop only.
func (s *Session) Write(p []byte) (int, error) {
	if !s.own() {
		s.mu.Lock()
		st, err := s.st, s.err
		s.mu.Unlock()
		switch st {
		case stClosed:
			return 0, ErrClosed
		case stFailed:
			return 0, err
		}
		return 0, ErrHandshaking
	}
	switch {
	case s.st == stClosed:
		return 0, ErrClosed
	case s.err != nil && s.err != io.EOF:
		return 0, s.err
	}
	n, err := s.conn.Write(p)
	if err != nil {
		// The transport accepts every write, so this is crypto/tls's own
		// refusal (an alert it sent before): the session is done for.
		s.mu.Lock()
		s.err, s.st = wrap(ErrProtocol, err), stFailed
		err = s.err
		s.mu.Unlock()
	}
	return n, err
}

// own makes the loop the session's sole owner if the handshake has
// succeeded, and reports whether it is.
func (s *Session) own() bool {
	if s.loop {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == stEstablished {
		s.loop = true
	}
	return s.loop
}

// Pending returns the number of ciphertext bytes waiting for the caller
// (see WriteTo). Loop only.
func (s *Session) Pending() int {
	if !s.loop {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if s.out == nil {
		return 0
	}
	return len(*s.out)
}

// AppendOutput appends every ciphertext byte waiting for the peer to dst
// and returns the extended slice; the session forgets them. Loop only.
func (s *Session) AppendOutput(dst []byte) []byte {
	if !s.loop {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	if s.out != nil {
		dst = append(dst, *s.out...)
		putBuf(s.out)
		s.out = nil
	}
	return dst
}

// WriteTo writes every ciphertext byte waiting for the peer to w, in one
// Write call (gnet's Conn.Write on the loop copies into its outbound
// buffer), and forgets them. It implements io.WriterTo. Loop only.
//
// The bytes are taken from the session before w.Write is called, and no
// lock is held during the call, so that w may call back into the session:
// gnet's Conn.Write, failing, closes the connection and runs the server's
// OnClose, which closes the session, from inside the Write.
func (s *Session) WriteTo(w io.Writer) (int64, error) {
	locked := !s.loop // only the loop changes s.loop, and the loop calls this
	if locked {
		s.mu.Lock()
	}
	out := s.out
	s.out = nil
	if locked {
		s.mu.Unlock()
	}
	if out == nil {
		return 0, nil
	}
	n, err := w.Write(*out)
	if err == nil && n < len(*out) {
		err = io.ErrShortWrite
	}
	putBuf(out)
	return int64(n), err
}

// appendOut queues ciphertext for the caller. The loop, or mu held.
func (s *Session) appendOut(p []byte) {
	if s.out == nil {
		s.out = getBuf()
	}
	*s.out = append(*s.out, p...)
}

// alertLocked queues a plaintext fatal alert (before any keys). mu is held.
func (s *Session) alertLocked(desc byte) {
	if s.out == nil {
		s.out = getBuf()
	}
	*s.out = appendAlert(*s.out, desc)
}

// publishLocked hands what the handshake wrote since it last waited to the
// output, and reports whether there was anything. mu is held.
func (s *Session) publishLocked() bool {
	hs := s.hs
	if hs == nil || hs.staged == nil {
		return false
	}
	s.appendOut(*hs.staged)
	putBuf(hs.staged)
	hs.staged = nil
	return true
}

// dropStagedLocked forgets what the handshake wrote and nobody will send.
// mu is held.
func (s *Session) dropStagedLocked() {
	if hs := s.hs; hs != nil && hs.staged != nil {
		putBuf(hs.staged)
		hs.staged = nil
	}
}

// failLocked stores err and returns it; a queued handshake leaves the
// queue, a running one stops at its next read. mu is held.
func (s *Session) failLocked(err error) error {
	s.err, s.st = err, stFailed
	if hs := s.hs; hs != nil {
		hs.in, hs.inOff = nil, 0
		hs.cond.Broadcast()
		if s.eng.pool.remove(s) {
			hs.stop() // no worker will run it: release its timer now
			hs.cancel()
		}
	}
	return err
}

// abandon fails a handshake that a closing pool took out of its queue.
func (s *Session) abandon(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != stQueued {
		return
	}
	s.failLocked(err)
	s.hs.stop()
	s.hs.cancel()
	if s.wake != nil {
		s.wake()
	}
}

// Partial reports whether a record has begun to arrive and is not yet
// whole: crypto/tls holds its first bytes, waiting for the rest. The server
// counts it toward its packet deadline, as it does a partial frame. Loop
// only.
func (s *Session) Partial() bool { return s.loop && s.cur.hdrN > 0 }

// Handshaking reports whether the handshake is still under way (collecting
// the ClientHello, queued, or running): false once it has succeeded or
// the session has failed or closed. A snapshot. Loop only.
func (s *Session) Handshaking() bool {
	if s.loop {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st < stEstablished
}

// Established reports whether the handshake has succeeded (and the session
// has not failed or closed since). A snapshot. Loop only.
func (s *Session) Established() bool {
	if s.loop {
		return s.st == stEstablished
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st == stEstablished
}

// Err returns the error that ended the session, or nil (io.EOF after the
// peer's close_notify). A snapshot. Loop only.
func (s *Session) Err() error {
	if s.loop {
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// ConnectionState returns crypto/tls's account of the connection (version,
// cipher suite, ALPN protocol, server name, the client's certificates...);
// the zero value before the handshake has succeeded. Safe from any
// goroutine: the fields it reads are the handshake's, which crypto/tls
// guards with its own lock, and none of them changes once the handshake is
// over.
func (s *Session) ConnectionState() tls.ConnectionState {
	s.mu.Lock()
	done := s.vers != 0
	s.mu.Unlock()
	if !done {
		return tls.ConnectionState{}
	}
	return s.conn.ConnectionState()
}

// Close ends the session. Once the handshake has succeeded (and no fatal
// error happened), it queues a close_notify alert: write the output (WriteTo)
// before closing the socket. During the handshake it abandons it: a queued
// handshake leaves the queue, a running one fails at once and its worker
// moves on; wake is not called after Close returns. Input and Write return
// ErrClosed afterwards; the output methods still work. Calling Close again
// does nothing. Loop only; it never blocks.
func (s *Session) Close() error {
	s.mu.Lock()
	st := s.st
	if st == stClosed {
		s.mu.Unlock()
		return nil
	}
	s.st = stClosed
	hs := s.hs
	if hs != nil {
		hs.closed = true
		hs.in = nil
		s.dropStagedLocked()
		hs.cond.Broadcast()
		if s.eng.pool.remove(s) {
			hs.stop()
			hs.cancel()
		}
	}
	notify := st == stEstablished && (s.err == nil || s.err == io.EOF)
	if notify {
		s.loop = true
	}
	s.mu.Unlock()
	if notify {
		// crypto/tls writes close_notify through the transport (after a
		// SetWriteDeadline, a no-op), then closes it.
		_ = s.conn.Close()
	}
	s.releasePlain()
	return nil
}

// runHandshake runs the handshake on a worker.
func (s *Session) runHandshake() {
	s.mu.Lock()
	if s.st != stQueued {
		// Closed or failed after the worker took it from the queue.
		s.hs.stop()
		s.hs.cancel()
		s.mu.Unlock()
		return
	}
	s.st = stRunning
	ctx := s.hs.ctx
	s.mu.Unlock()
	err := s.conn.HandshakeContext(ctx)
	s.finish(err)
}

// finish publishes the handshake's outcome and wakes the loop. Worker.
func (s *Session) finish(err error) {
	hs := s.hs
	hs.stop()
	hs.cancel()
	var vers uint16
	if err == nil {
		vers = s.conn.ConnectionState().Version
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != stRunning {
		s.dropStagedLocked()
		return // closed, or failed by the loop (deadline, overflow)
	}
	s.publishLocked() // the last flight, or the alert that says why it failed
	if err != nil {
		s.failLocked(s.classifyHandshake(err))
	} else {
		s.vers, s.st = vers, stEstablished
		if hs.inOff == len(hs.in) {
			hs.in, hs.inOff = nil, 0
		}
	}
	if s.wake != nil {
		s.wake()
	}
}

// classifyHandshake turns a handshake error into one of ours. mu is held.
func (s *Session) classifyHandshake(err error) error {
	hs := s.hs
	switch {
	case hs.timedOut || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrHandshakeTimeout):
		return wrap(ErrHandshakeTimeout, err)
	case s.big:
		return wrap(ErrRecordTooLarge, err)
	case hs.alert == alertProtocolVersion:
		return wrap(ErrUnsupportedVersion, err)
	case hs.alert == alertDecodeError:
		return wrap(ErrMalformedHello, err)
	}
	return wrap(ErrHandshake, err)
}

// expire runs when the handshake's deadline passes (on a goroutine of the
// context package's).
func (s *Session) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.hs
	if hs == nil {
		return
	}
	switch s.st {
	case stQueued:
		s.failLocked(fmt.Errorf("%w (waiting for a worker)", ErrHandshakeTimeout))
		if s.wake != nil {
			s.wake()
		}
	case stRunning:
		hs.timedOut = true
		hs.cond.Broadcast()
	}
}

// held returns the bytes received from the peer that the session holds,
// beyond crypto/tls's own buffers (which hold at most one record): for
// tests. (The output is what the server wrote: its outbound limit bounds it.)
func (s *Session) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.plainLen()
	if s.hs != nil {
		n += len(s.hs.in)
	}
	return n
}
