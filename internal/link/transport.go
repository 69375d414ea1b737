package link

import (
	"crypto/tls"
	"io"
)

// Transport is a layer between a connection's codec and its socket: TLS
// (internal/tlsconn's Session). The loop gives it the plaintext a pass
// queued and writes what it produces; its methods are called on the loop
// only, except ConnectionState.
type Transport interface {
	// Write seals plaintext for the peer; it never blocks.
	Write(p []byte) (int, error)
	// Pending reports the sealed bytes waiting to be written.
	Pending() int
	// WriteTo writes every sealed byte waiting, in one write.
	WriteTo(w io.Writer) (int64, error)
	// Input takes ciphertext from the peer and returns how much of it it
	// consumed; io.EOF once the peer has closed it (close_notify).
	Input(ct []byte) (int, error)
	// Plaintext returns what Input decrypted and was not discarded yet.
	Plaintext() []byte
	// Discard drops the first n bytes of Plaintext.
	Discard(n int)
	// Close ends the transport, queueing its own farewell (close_notify)
	// if it has one.
	Close() error
	// ConnectionState describes the TLS connection; the zero value before
	// its handshake has succeeded. Safe from any goroutine.
	ConnectionState() tls.ConnectionState
}

// SetTransport puts t between the codec and the socket: from the next End
// on, the bytes queued for the peer are sealed by t. Call it on the loop,
// before anything is queued (when the first bytes are sniffed).
func (l *Link) SetTransport(t Transport) {
	l.mu.Lock()
	l.extLocked().transport = t
	l.mu.Unlock()
}

// Transport returns the link's transport, or nil. Call it on the loop.
func (l *Link) Transport() Transport { return l.loopTransport() }

// loopTransport is Transport for the loop, which alone sets it: no lock.
func (l *Link) loopTransport() Transport {
	if x := l.x.Load(); x != nil {
		return x.transport
	}
	return nil
}

// TLS returns the state of the connection's TLS session, and false if the
// connection does not use TLS or its handshake is not complete. A
// snapshot; safe from any goroutine.
func (l *Link) TLS() (tls.ConnectionState, bool) {
	var t Transport
	if x := l.x.Load(); x != nil {
		l.mu.Lock()
		t = x.transport
		l.mu.Unlock()
	}
	if t == nil {
		return tls.ConnectionState{}, false
	}
	cs := t.ConnectionState()
	return cs, cs.HandshakeComplete
}

// writeOut writes the bytes of a pass to the socket, through the
// transport if there is one. It returns the bytes that went to the socket.
// A transport that refuses to seal (a failed TLS session) still has its
// own bytes (an alert) written.
func (l *Link) writeOut(t Transport, p []byte) (int, error) {
	if t == nil {
		if len(p) == 0 {
			return 0, nil
		}
		return l.conn.Write(p)
	}
	var werr error
	if len(p) > 0 {
		_, werr = t.Write(p)
	}
	if t.Pending() == 0 {
		return 0, werr
	}
	n, err := t.WriteTo(l.conn)
	if werr == nil {
		werr = err
	}
	return int(n), werr
}
