package tio

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/tlsconn"
	"github.com/tiogo/tio/stats"
)

// WithTLS makes the server speak TLS, with Go's crypto/tls and cfg, on its
// one port: a connection whose first bytes are a TLS ClientHello is
// decrypted and its codec chosen from the plaintext, so that ws and wss,
// the binary protocol and the binary protocol over TLS, HTTP and HTTPS, are
// served side by side (WithTLSRequired refuses cleartext).
//
// cfg is cloned when the server starts; it must give a certificate
// (Certificates, GetCertificate — which reloads a renewed certificate
// without a restart — or GetConfigForClient), and its MinVersion, when
// zero, becomes TLS 1.2. Client certificates are asked for as cfg's
// ClientAuth says; Channel.TLS shows what the client presented. ALPN
// works as in crypto/tls, but tio does not speak HTTP/2: a NextProtos
// naming "h2" is a configuration error.
//
// Established connections are decrypted and encrypted on their event loop,
// with no goroutine of their own. Handshakes run on a bounded pool of
// goroutines (WithTLSHandshakes); a connection takes a worker only once its
// whole ClientHello has arrived, and the whole handshake, queueing
// included, must end within the handshake timeout (WithHandshakeTimeout;
// 10 s when it is off). Failures close the connection with a reason (see
// stats.TLS for the TLS-specific count); docs/tls.md has the details.
func WithTLS(cfg *tls.Config) Option {
	return func(o *config) { o.tls = cfg }
}

// WithTLSRequired makes a server with WithTLS refuse cleartext: a
// connection whose first bytes are not a ClientHello is closed as
// channel.ReasonHandshakeRefused, after an answer of 400 if it sent an
// HTTP request.
func WithTLSRequired() Option {
	return func(o *config) { o.tlsRequired = true }
}

// WithTLSHandshakes bounds the TLS handshake pool: at most workers
// handshakes run at once (default 32×GOMAXPROCS, at least 64; a handshake
// holds its worker for a round trip to the client), and at most queued
// wait for a worker (default 1024; past it, a connection is closed as
// channel.ReasonOverloaded). Zero keeps a default.
func WithTLSHandshakes(workers, queued int) Option {
	return func(o *config) {
		if workers < 0 || queued < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithTLSHandshakes(%d, %d): negative", ErrConfig, workers, queued))
			return
		}
		o.tlsWorkers, o.tlsQueued = workers, queued
	}
}

// checkTLS returns the TLS configuration's errors.
func (o *config) checkTLS() error {
	switch {
	case o.tls == nil && o.tlsRequired:
		return fmt.Errorf("%w: WithTLSRequired without WithTLS", ErrConfig)
	case o.tls == nil && (o.tlsWorkers != 0 || o.tlsQueued != 0):
		return fmt.Errorf("%w: WithTLSHandshakes without WithTLS", ErrConfig)
	case o.tls == nil:
		return nil
	case slices.Contains(o.tls.NextProtos, "h2"):
		return fmt.Errorf("%w: WithTLS: NextProtos offers \"h2\", and tio does not speak HTTP/2 (offer \"http/1.1\", or nothing)", ErrConfig)
	}
	return nil
}

// startTLS makes the server's TLS engine, if it has TLS.
func (s *Server) startTLS() error {
	if s.cfg.tls == nil {
		return nil
	}
	opts := tlsconn.Options{MaxWorkers: s.cfg.tlsWorkers, MaxQueued: s.cfg.tlsQueued}
	if s.cfg.handshake > 0 {
		opts.HandshakeTimeout = s.cfg.handshake
	}
	e, err := tlsconn.NewEngine(s.cfg.tls, opts)
	if err != nil {
		return fmt.Errorf("%w: WithTLS: %w", ErrConfig, err)
	}
	s.tls = e
	return nil
}

// sniffTLS looks at a connection's first bytes: a ClientHello gets the
// connection a TLS session. It reports false while too few bytes have
// arrived to tell (the codecs must not sniff them yet).
func (s *Server) sniffTLS(l *link.Link, c gnet.Conn, first []byte) bool {
	switch tlsconn.Sniff(first) {
	case codec.NeedMore:
		return false
	case codec.Matched:
		l.TLSSniffed()
		var deadline time.Time
		if s.cfg.handshake > 0 {
			deadline = l.Created().Add(s.cfg.handshake)
		}
		remote := net.TCPAddrFromAddrPort(l.RemoteAddr()) // the client's, behind a PROXY header
		l.SetTransport(s.tls.NewSession(deadline, func() { _ = c.Wake(nil) }, c.LocalAddr(), remote))
		return true
	}
	l.TLSSniffed()
	if s.cfg.tlsRequired {
		if looksLikeHTTP(first) {
			_ = l.WriteLast([]byte(httpToTLSPort))
		}
		l.Fail(link.ReasonHandshakeRefused, fmt.Errorf("tio: cleartext on a TLS-only server (first bytes %q)", first[:min(len(first), 16)]), false)
	}
	return true
}

// httpToTLSPort answers an HTTP request sent in clear to a server that
// requires TLS.
const httpToTLSPort = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 46\r\n\r\nThis server speaks TLS only: use https or wss.\n"

// looksLikeHTTP reports whether b begins like an HTTP request line: an
// upper-case method and a space.
func looksLikeHTTP(b []byte) bool {
	for i, c := range b {
		switch {
		case c == ' ':
			return i >= 3
		case c < 'A' || c > 'Z' || i >= 10:
			return false
		}
	}
	return false
}

// maxHeldDuringHandshake bounds the bytes a connection may send while its
// TLS handshake is under way beyond what the session takes (it holds
// tlsconn.Options.MaxHandshakeBytes): gnet's buffer would hold the rest.
const maxHeldDuringHandshake = 64 << 10

// decryptAndDecode runs a TLS connection's pass: it feeds the ciphertext
// buffered for it to its session, one batch of records at a time, and
// decodes the plaintext with the connection's codec. It returns the
// ciphertext bytes taken (for c.Discard), the packets decoded, and the
// bytes left undecoded (ciphertext and plaintext).
func (s *Server) decryptAndDecode(l *link.Link, sess *tlsconn.Session, raw []byte, pass *inlinePass, now *int64) (taken, decoded int, partial bool) {
	for !l.Closing() {
		n, err := sess.Input(raw[taken:])
		taken += n
		if plain := sess.Plaintext(); len(plain) > 0 {
			m, d := s.decodeAll(l, plain, pass, now)
			decoded += d
			sess.Discard(m)
		}
		if err != nil {
			s.tlsFailed(l, err)
			break
		}
		if n == 0 || taken == len(raw) {
			break
		}
	}
	if l.Secured(!l.SecuredOnce() && sess.Established()) {
		s.stats.TLSHandshake()
	}
	if !l.Closing() && !l.SecuredOnce() && len(raw)-taken > maxHeldDuringHandshake {
		s.stats.TLSFailed(stats.TLSTooLarge)
		l.Fail(link.ReasonTooBig, fmt.Errorf("tio: over %d bytes sent during the TLS handshake", maxHeldDuringHandshake), false)
	}
	return taken, decoded, taken < len(raw) || len(sess.Plaintext()) > 0 || sess.Partial()
}

// tlsFailed closes a connection whose TLS session returned err, with the
// close reason and the TLS failure it counts as.
func (s *Server) tlsFailed(l *link.Link, err error) {
	if errors.Is(err, io.EOF) { // close_notify
		l.Fail(link.ReasonClosedByPeer, nil, false)
		return
	}
	if errors.Is(err, tlsconn.ErrClosed) {
		return // closed by us (or a stopping engine: the link is closing)
	}
	r, _ := tlsReason(err)
	l.Fail(r, err, false) // counted as the connection closes (tlsClosed)
}

// tlsReason maps a session's error to a close reason and a TLS failure.
func tlsReason(err error) (link.Reason, stats.TLSFailure) {
	switch {
	case errors.Is(err, tlsconn.ErrMalformedHello):
		return link.ReasonHandshakeFailed, stats.TLSMalformedHello
	case errors.Is(err, tlsconn.ErrUnsupportedVersion):
		return link.ReasonHandshakeFailed, stats.TLSUnsupportedVersion
	case errors.Is(err, tlsconn.ErrHandshakeTimeout):
		return link.ReasonHandshakeTimeout, stats.TLSHandshakeTimeout
	case errors.Is(err, tlsconn.ErrHelloTooLarge), errors.Is(err, tlsconn.ErrRecordTooLarge), errors.Is(err, tlsconn.ErrHandshakeOverflow):
		return link.ReasonTooBig, stats.TLSTooLarge
	case errors.Is(err, tlsconn.ErrBusy):
		return link.ReasonOverloaded, stats.TLSBusy
	case errors.Is(err, tlsconn.ErrRenegotiation):
		return link.ReasonProtocolError, stats.TLSRenegotiation
	case errors.Is(err, tlsconn.ErrAlert):
		return link.ReasonClosedByPeer, stats.TLSAlert
	case errors.Is(err, tlsconn.ErrHandshake):
		return link.ReasonHandshakeFailed, stats.TLSHandshakeFailed
	}
	return link.ReasonProtocolError, stats.TLSProtocol
}

// tlsClosed counts, as a connection closes, how its TLS session failed:
// its own error, or a handshake that the server's timer cut.
func (s *Server) tlsClosed(l *link.Link, r link.Reason) {
	t := l.Transport()
	if t == nil {
		return
	}
	sess, ok := t.(*tlsconn.Session)
	if !ok {
		return
	}
	switch err := sess.Err(); {
	case err != nil && !errors.Is(err, io.EOF):
		_, f := tlsReason(err)
		s.stats.TLSFailed(f)
	case r == link.ReasonHandshakeTimeout && !l.SecuredOnce():
		s.stats.TLSFailed(stats.TLSHandshakeTimeout)
	}
}

// tlsStats adds the handshake pool's gauges to a snapshot.
func (s *Server) tlsStats(snap *stats.Snapshot) {
	if e := s.tls; e != nil {
		st := e.Stats()
		snap.TLS.Workers, snap.TLS.Queued = st.Workers-st.Idle, st.Queued
	}
}
