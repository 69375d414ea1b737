package stats

// TLS counts a server's TLS connections; all zero without tio.WithTLS.
type TLS struct {
	// Handshakes counts TLS handshakes that succeeded.
	Handshakes uint64
	// Failed counts the connections that their TLS layer ended, by what
	// went wrong (indexed by TLSFailure). Each is also counted in
	// Snapshot.Closed under its close reason (handshake_failed,
	// handshake_timeout, too_big, protocol_error, closed_by_peer for a
	// fatal alert, overloaded for a full handshake queue), which says what
	// happened in terms common to every protocol; Failed says it in TLS's.
	Failed [NumTLSFailures]uint64
	// Workers is the number of goroutines running handshakes, Queued the
	// handshakes waiting for one (gauges).
	Workers, Queued int
}

// TLSFailure names one way a TLS connection ends badly.
type TLSFailure uint8

// TLS failures.
const (
	TLSMalformedHello     TLSFailure = iota // the first bytes were not a well-formed ClientHello
	TLSUnsupportedVersion                   // the client offered only versions below the minimum
	TLSHandshakeTimeout                     // the handshake did not complete by the handshake deadline
	TLSTooLarge                             // a record, the ClientHello or the bytes sent during the handshake over their bound
	TLSHandshakeFailed                      // crypto/tls refused the handshake (no shared cipher, a bad client certificate, an unknown name...)
	TLSRenegotiation                        // a TLS 1.2 client tried to renegotiate
	TLSAlert                                // the peer sent a fatal alert after the handshake
	TLSProtocol                             // a record did not decrypt, or broke the protocol otherwise
	TLSBusy                                 // the handshake queue was full
	NumTLSFailures                          // the number of failures, for arrays indexed by TLSFailure
)

var tlsFailureNames = [NumTLSFailures]string{
	TLSMalformedHello:     "malformed_hello",
	TLSUnsupportedVersion: "unsupported_version",
	TLSHandshakeTimeout:   "handshake_timeout",
	TLSTooLarge:           "too_large",
	TLSHandshakeFailed:    "handshake_failed",
	TLSRenegotiation:      "renegotiation",
	TLSAlert:              "alert",
	TLSProtocol:           "protocol_error",
	TLSBusy:               "busy",
}

// String returns the failure's snake_case name, usable as a metric label.
func (f TLSFailure) String() string {
	if f < NumTLSFailures {
		return tlsFailureNames[f]
	}
	return "unknown"
}
