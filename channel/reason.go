package channel

import "github.com/tiogo/tio/internal/link"

// Reason says why a channel was closed. The set is closed and documented
// (docs/operations.md lists each reason with the farewell it sends), so that
// statistics can count closes by reason: Stats().Closed is indexed by
// Reason, and Prometheus exports one series per reason.
type Reason uint8

// Close reasons.
const (
	ReasonNone               = Reason(link.ReasonNone)               // still open
	ReasonClosedByPeer       = Reason(link.ReasonClosedByPeer)       // the peer closed (TCP FIN/RST or a protocol close)
	ReasonClosedByApp        = Reason(link.ReasonClosedByApp)        // the application closed it
	ReasonServerShutdown     = Reason(link.ReasonServerShutdown)     // the server is shutting down
	ReasonHeartbeatTimeout   = Reason(link.ReasonHeartbeatTimeout)   // nothing received within the heartbeat timeout
	ReasonHandshakeTimeout   = Reason(link.ReasonHandshakeTimeout)   // the protocol handshake did not complete in time
	ReasonHandshakeFailed    = Reason(link.ReasonHandshakeFailed)    // the protocol handshake was malformed
	ReasonUnknownProtocol    = Reason(link.ReasonUnknownProtocol)    // the first bytes matched no codec
	ReasonDecodeError        = Reason(link.ReasonDecodeError)        // the bytes could not be decoded
	ReasonProtocolError      = Reason(link.ReasonProtocolError)      // the peer broke the protocol's rules
	ReasonTooBig             = Reason(link.ReasonTooBig)             // a frame, message or packet over the limits
	ReasonSlowConsumer       = Reason(link.ReasonSlowConsumer)       // outbound bytes over the high-water mark
	ReasonRateLimited        = Reason(link.ReasonRateLimited)        // inbound packets over the rate limit
	ReasonBlacklisted        = Reason(link.ReasonBlacklisted)        // the peer's IP is blacklisted
	ReasonTooManyConnections = Reason(link.ReasonTooManyConnections) // over the total or per-IP connection limit
	ReasonHandlerPanic       = Reason(link.ReasonHandlerPanic)       // a handler or hook panicked
	ReasonOverloaded         = Reason(link.ReasonOverloaded)         // the connection's queue for the worker pool was full
	ReasonIOError            = Reason(link.ReasonIOError)            // a read or write on the socket failed
	ReasonPacketTimeout      = Reason(link.ReasonPacketTimeout)      // a packet or message began and did not complete in time
	ReasonHandshakeRefused   = Reason(link.ReasonHandshakeRefused)   // the handshake was refused by policy (origin, host, the app's hook)
)

// NumReasons is the number of reasons, for arrays indexed by Reason.
const NumReasons = link.NumReasons

// String returns the reason's snake_case name ("slow_consumer"), usable as
// a metric label, or "unknown" for a value outside the set.
func (r Reason) String() string { return link.Reason(r).String() }
