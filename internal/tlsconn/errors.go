package tlsconn

import (
	"errors"
	"fmt"
	"net"
)

// Errors a Session reports. Each names one reason a TLS connection ends, so
// that the server can count close reasons; most wrap the error crypto/tls
// returned as well (test them with errors.Is). A session that returned one
// returns it again from every later Input. A peer's close_notify is not an
// error of this list: Input returns io.EOF.
var (
	// ErrMalformedHello: the first bytes are not a well-formed ClientHello
	// (a first record that is not a handshake record, a first handshake
	// message that is not a ClientHello, a ClientHello whose fields overrun
	// it, or one that crypto/tls could not decode).
	ErrMalformedHello = errors.New("tlsconn: malformed ClientHello")
	// ErrHelloTooLarge: the records carrying the ClientHello, headers
	// included, exceed Options.MaxHelloBytes.
	ErrHelloTooLarge = errors.New("tlsconn: ClientHello too large")
	// ErrRecordTooLarge: a record is longer than TLS allows (2^14 bytes for
	// the plaintext ClientHello records, 2^14+256 of ciphertext in TLS 1.3,
	// 2^14+2048 in TLS 1.2).
	ErrRecordTooLarge = errors.New("tlsconn: record too large")
	// ErrUnsupportedVersion: the client offers no protocol version the
	// server accepts (all below the configuration's MinVersion, TLS 1.2 by
	// default).
	ErrUnsupportedVersion = errors.New("tlsconn: unsupported protocol version")
	// ErrHandshakeTimeout: the handshake did not complete by its deadline,
	// time spent waiting for a worker included.
	ErrHandshakeTimeout = errors.New("tlsconn: handshake timed out")
	// ErrHandshakeOverflow: the peer sent more bytes during the handshake
	// than the handshake can be waiting for (see Options.MaxHandshakeBytes).
	ErrHandshakeOverflow = errors.New("tlsconn: too many bytes during the handshake")
	// ErrBusy: the handshake pool's queue is full (Options.MaxQueued).
	ErrBusy = errors.New("tlsconn: handshake queue full")
	// ErrHandshake: crypto/tls refused the handshake for another reason (no
	// shared cipher suite, a missing or bad client certificate, an alert
	// from the client, an unknown server name...). It wraps crypto/tls's
	// error.
	ErrHandshake = errors.New("tlsconn: handshake failed")
	// ErrRenegotiation: a TLS 1.2 client tried to renegotiate. crypto/tls
	// servers never renegotiate; the connection ends with an alert.
	ErrRenegotiation = errors.New("tlsconn: renegotiation refused")
	// ErrAlert: the peer sent a fatal alert after the handshake. It wraps
	// crypto/tls's error, which names the alert.
	ErrAlert = errors.New("tlsconn: fatal alert from peer")
	// ErrProtocol: a record after the handshake broke the protocol (a
	// record that does not decrypt, an unexpected message, too many
	// useless records). It wraps crypto/tls's error.
	ErrProtocol = errors.New("tlsconn: protocol error")
	// ErrHandshaking: Write was called before the handshake completed.
	ErrHandshaking = errors.New("tlsconn: handshake not complete")
	// ErrClosed: the session or its engine is closed.
	ErrClosed = errors.New("tlsconn: closed")
)

// errAgain is what the transport's Read returns, on the event loop, when it
// has no more bytes: crypto/tls's record layer does not store an error whose
// Temporary method returns true, so a later Read resumes where it stopped
// (TestCryptoTLSRetriesTemporaryReadErrors pins this).
var errAgain net.Error = againError{}

type againError struct{}

func (againError) Error() string   { return "tlsconn: no more input buffered" }
func (againError) Timeout() bool   { return false }
func (againError) Temporary() bool { return true }

// errTimedOut is what a blocked handshake Read returns at the deadline.
var errTimedOut = fmt.Errorf("%w (waiting for the peer)", ErrHandshakeTimeout)

// wrap returns sentinel, or sentinel wrapping cause.
func wrap(sentinel, cause error) error {
	if cause == nil || errors.Is(cause, sentinel) {
		if cause != nil {
			return cause
		}
		return sentinel
	}
	return fmt.Errorf("%w: %w", sentinel, cause)
}
