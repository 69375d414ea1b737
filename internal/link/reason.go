package link

import "github.com/tiogo/tio/codec"

// Reason says why a connection was closed; package channel exports it as
// channel.Reason, with the same values.
type Reason uint8

// Close reasons.
const (
	ReasonNone               Reason = iota // still open
	ReasonClosedByPeer                     // the peer closed (TCP FIN/RST or a protocol close)
	ReasonClosedByApp                      // the application closed it
	ReasonServerShutdown                   // the server is shutting down
	ReasonHeartbeatTimeout                 // nothing received within the heartbeat timeout
	ReasonHandshakeTimeout                 // the protocol handshake did not complete in time
	ReasonHandshakeFailed                  // the protocol handshake was bad or refused
	ReasonUnknownProtocol                  // the first bytes matched no codec
	ReasonDecodeError                      // the bytes could not be decoded
	ReasonProtocolError                    // the peer broke the protocol's rules
	ReasonTooBig                           // a frame, message or packet over the limits
	ReasonSlowConsumer                     // outbound bytes over the high-water mark
	ReasonRateLimited                      // inbound packets over the rate limit
	ReasonBlacklisted                      // the peer's IP is blacklisted
	ReasonTooManyConnections               // over the total or per-IP connection limit
	ReasonHandlerPanic                     // a handler panicked
	ReasonOverloaded                       // the handler queue for the connection was full
	ReasonIOError                          // a read or write on the socket failed
	ReasonPacketTimeout                    // a packet or message began and did not complete in time
	ReasonHandshakeRefused                 // the handshake was refused by policy (origin, host, the app's hook)
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:               "none",
	ReasonClosedByPeer:       "closed_by_peer",
	ReasonClosedByApp:        "closed_by_app",
	ReasonServerShutdown:     "server_shutdown",
	ReasonHeartbeatTimeout:   "heartbeat_timeout",
	ReasonHandshakeTimeout:   "handshake_timeout",
	ReasonHandshakeFailed:    "handshake_failed",
	ReasonUnknownProtocol:    "unknown_protocol",
	ReasonDecodeError:        "decode_error",
	ReasonProtocolError:      "protocol_error",
	ReasonTooBig:             "too_big",
	ReasonSlowConsumer:       "slow_consumer",
	ReasonRateLimited:        "rate_limited",
	ReasonBlacklisted:        "blacklisted",
	ReasonTooManyConnections: "too_many_connections",
	ReasonHandlerPanic:       "handler_panic",
	ReasonOverloaded:         "overloaded",
	ReasonIOError:            "io_error",
	ReasonPacketTimeout:      "packet_timeout",
	ReasonHandshakeRefused:   "handshake_refused",
}

// NumReasons is the number of reasons, for arrays indexed by Reason.
const NumReasons = int(numReasons)

// String returns the reason's snake_case name, usable as a metric label.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Farewell returns the codec sentinel that tells a codec how to say goodbye
// for this reason (nil for a normal close).
func (r Reason) Farewell() error {
	switch r {
	case ReasonClosedByApp, ReasonNone, ReasonClosedByPeer:
		return nil
	case ReasonServerShutdown:
		return codec.ErrGoingAway
	case ReasonTooBig:
		return codec.ErrTooBig
	case ReasonProtocolError, ReasonDecodeError:
		return codec.ErrProtocol
	case ReasonHandlerPanic:
		return codec.ErrInternal
	}
	return codec.ErrPolicy
}

// Text returns the words a farewell says for r by default ("heartbeat
// timeout"), or "" for none.
func (r Reason) Text() string {
	switch r {
	case ReasonServerShutdown:
		return "server shutting down"
	case ReasonHeartbeatTimeout:
		return "heartbeat timeout"
	case ReasonSlowConsumer:
		return "slow consumer"
	case ReasonRateLimited:
		return "rate limited"
	case ReasonHandlerPanic:
		return "internal error"
	case ReasonOverloaded:
		return "overloaded"
	case ReasonPacketTimeout:
		return "packet took too long"
	case ReasonTooBig:
		return "too big"
	}
	return ""
}

// ReasonOf maps a decoder's error to a close reason.
func ReasonOf(err error) Reason {
	switch {
	case err == nil:
		return ReasonNone
	case is(err, codec.ErrPeerClosed):
		return ReasonClosedByPeer
	case is(err, codec.ErrRefused):
		return ReasonHandshakeRefused
	case is(err, codec.ErrHandshake):
		return ReasonHandshakeFailed
	case is(err, codec.ErrTooBig):
		return ReasonTooBig
	case is(err, codec.ErrProtocol):
		return ReasonProtocolError
	}
	return ReasonDecodeError
}
