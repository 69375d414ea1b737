package tlsconn

import (
	"net"
	"time"
)

// transport is the net.Conn that a Session's tls.Conn reads and writes: the
// session itself, seen from crypto/tls's side (no allocation of its own).
//
// During the handshake its Read blocks the worker until the loop has passed
// in more bytes (or the deadline passes, or the session closes): the
// handshake stores any error for good, so it cannot be told "no bytes yet".
// Once the loop owns the session, Read returns errAgain when the bytes the
// loop passed in are used up: crypto/tls's record layer keeps an error whose
// Temporary method returns true out of its sticky state, and a later Read
// resumes the record it was reading.
//
// Read never hands over more than the rest of the current record, so that
// crypto/tls's input buffer, which never shrinks, holds one record rather
// than what crypto/tls would read ahead; the session keeps the rest. Write
// always succeeds: crypto/tls keeps a write error for good, and bounding
// what is queued for a peer is the server's outbound limit.
type transport Session

// Read implements net.Conn for crypto/tls.
func (t *transport) Read(p []byte) (int, error) {
	s := (*Session)(t)
	if s.loop {
		if hs := s.hs; hs != nil && hs.inOff < len(hs.in) {
			n := s.feed(p, hs.in[hs.inOff:])
			hs.inOff += n
			return n, nil
		}
		if s.srcN < len(s.src) {
			n := s.feed(p, s.src[s.srcN:])
			s.srcN += n
			return n, nil
		}
		return 0, errAgain
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.hs
	for {
		switch {
		case hs.timedOut:
			return 0, errTimedOut
		case hs.closed || s.st != stRunning:
			return 0, net.ErrClosed
		case hs.inOff < len(hs.in):
			n := s.feed(p, hs.in[hs.inOff:])
			hs.inOff += n
			if hs.inOff == len(hs.in) {
				// All read: what arrives next counts from here.
				hs.in, hs.inOff, hs.helloEnd = hs.in[:0], 0, 0
			}
			return n, nil
		}
		if published := s.publishLocked(); (published || hs.held) && s.wake != nil {
			// The handshake waits for the peer: a pass sends what it
			// wrote, and brings in what the loop held back for want of
			// room, which there is now.
			hs.held = false
			s.wake()
		}
		hs.waiting = true
		hs.cond.Wait()
		hs.waiting = false
	}
}

// Write implements net.Conn for crypto/tls: it queues the records for the
// caller (see Session.WriteTo). During the handshake it notes whether the
// server's first write is an alert (which says why a handshake failed),
// and stages the records: the loop gets them, and is woken to send them,
// when the handshake waits for the peer or ends.
func (t *transport) Write(p []byte) (int, error) {
	s := (*Session)(t)
	if s.loop {
		s.appendOut(p)
		return len(p), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == stClosed {
		return len(p), nil // nobody will send it
	}
	if hs := s.hs; !hs.flushed {
		hs.flushed = true
		if len(p) >= recordHeaderLen+2 && p[0] == recordAlert && p[3] == 0 && p[4] == 2 {
			hs.alert = int(p[recordHeaderLen+1])
		}
	}
	// Staged: the output is the loop's when the handshake next waits for
	// the peer (Read) or ends (finish), so that a flight goes out in one
	// pass, and an alert only once the handshake's failure is published
	// (the loop, seeing the peer hang up after it, knows why).
	hs := s.hs
	if hs.staged == nil {
		hs.staged = getBuf()
	}
	*hs.staged = append(*hs.staged, p...)
	return len(p), nil
}

// Close implements net.Conn. crypto/tls calls it from Conn.Close (after
// close_notify) and, on its own goroutine, when the handshake's context ends.
func (t *transport) Close() error {
	s := (*Session)(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if hs := s.hs; hs != nil {
		hs.closed = true
		hs.cond.Broadcast()
	}
	return nil
}

// LocalAddr implements net.Conn: the address given to NewSession, during
// the handshake (when the configuration's callbacks may ask); nil after.
func (t *transport) LocalAddr() net.Addr {
	if hs := t.hs; hs != nil {
		return hs.local
	}
	return nil
}

// RemoteAddr implements net.Conn, like LocalAddr.
func (t *transport) RemoteAddr() net.Addr {
	if hs := t.hs; hs != nil {
		return hs.remote
	}
	return nil
}

// SetDeadline implements net.Conn: a no-op. The handshake's deadline is the
// session's; after it, nothing blocks. (crypto/tls calls SetWriteDeadline
// around close_notify.)
func (t *transport) SetDeadline(time.Time) error { return nil }

// SetReadDeadline implements net.Conn: a no-op, like SetDeadline.
func (t *transport) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline implements net.Conn: a no-op, like SetDeadline.
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

// cursor follows the record boundaries of the ciphertext handed to
// crypto/tls.
type cursor struct {
	hdr  [recordHeaderLen]byte
	hdrN uint8 // bytes of the current record's header handed over
	left int32 // bytes of the current record's body not yet handed over
}

// feed copies to p the next bytes of src, at most up to the end of the
// current record, and returns how many. It notes records crypto/tls will
// refuse for their length, and TLS 1.2 renegotiation attempts, to name the
// error crypto/tls then returns; it hands over nothing past the header of a
// record too long.
func (s *Session) feed(p, src []byte) int {
	c := &s.cur
	n := 0
	for n < len(p) && n < len(src) {
		if c.hdrN < recordHeaderLen {
			k := min(recordHeaderLen-int(c.hdrN), len(p)-n, len(src)-n)
			copy(c.hdr[c.hdrN:], src[n:n+k])
			copy(p[n:], src[n:n+k])
			c.hdrN += uint8(k)
			n += k
			if c.hdrN < recordHeaderLen {
				return n
			}
			c.left = int32(c.hdr[3])<<8 | int32(c.hdr[4])
			if s.noteHeader() || c.left == 0 {
				c.hdrN = 0
				return n
			}
			continue
		}
		k := min(int(c.left), len(p)-n, len(src)-n)
		copy(p[n:], src[n:n+k])
		n += k
		c.left -= int32(k)
		if c.left == 0 {
			c.hdrN = 0
			return n
		}
	}
	return n
}

// noteHeader looks at a whole record header and reports whether crypto/tls
// will refuse the record for its length (2^14+256 bytes in TLS 1.3,
// 2^14+2048 otherwise: crypto/tls's limits). During the handshake the
// version is not known yet: any record over the TLS 1.3 limit is noted, for
// crypto/tls refuses it once it has chosen TLS 1.3.
func (s *Session) noteHeader() (tooLong bool) {
	c := &s.cur
	n := int(c.left)
	if n > maxCiphertextTLS13 && (s.vers == 0 || s.vers == versionTLS13) || n > maxCiphertext {
		s.big = true
		return s.vers == versionTLS13 || n > maxCiphertext
	}
	if c.hdr[0] == recordHandshake && s.vers != 0 && s.vers < versionTLS13 {
		s.reneg = true
	}
	return false
}
