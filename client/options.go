package client

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/codec/websocket"
)

// Option configures a Client; New takes them. Every ConnOption is an
// Option too: given to New, it sets the default of each connection the
// client dials.
type Option interface{ applyClient(*config) }

// DialOption configures one connection; Dial and Connect take them. Every
// ConnOption is one.
type DialOption interface{ applyConn(*connConfig) }

// ConnOption configures connections. Given to New it sets the default of
// every connection of the client; given to Dial or Connect it sets that
// connection's, over the client's default.
type ConnOption func(*connConfig)

func (f ConnOption) applyClient(c *config)   { f(&c.conn) }
func (f ConnOption) applyConn(c *connConfig) { f(c) }

// clientOption is an option of the client as a whole.
type clientOption func(*config)

func (f clientOption) applyClient(c *config) { f(c) }

type config struct {
	conn        connConfig
	loops       int
	workers     int
	depth       int
	maxQueued   int
	maxOutbound int
	linger      time.Duration
	logger      *slog.Logger
	ws          websocket.Config
	compression websocket.Compression
	bin         binary.Config
	tlsWorkers  int
	tlsQueued   int
	errs        []error
}

type connConfig struct {
	reconnect   *Reconnect // nil: no reconnecting
	queue       int        // sends waiting while disconnected; 0: fail fast
	queueBytes  int
	idle        time.Duration // heartbeat after this long without receiving; 0: none
	timeout     time.Duration // dead after this long without receiving; 0: never
	handshake   time.Duration
	dialTimeout time.Duration
	onConnected func(ch *channel.Channel, reconnect bool)
	onState     func(cn *Conn, s State, err error)
	header      http.Header
	protocols   []string
	tls         *tls.Config // WithTLS's; nil: the default
	errs        []error
}

// Defaults.
const (
	DefaultHeartbeatIdle    = 30 * time.Second
	DefaultHeartbeatTimeout = 90 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultQueueBytes       = 1 << 20
	DefaultMaxOutbound      = 4 << 20
	DefaultCloseTimeout     = 2 * time.Second
	DefaultTLSQueued        = 1 << 16
)

func defaultConfig() config {
	return config{
		conn: connConfig{
			idle:        DefaultHeartbeatIdle,
			timeout:     DefaultHeartbeatTimeout,
			handshake:   DefaultHandshakeTimeout,
			dialTimeout: DefaultDialTimeout,
		},
		loops:       runtime.GOMAXPROCS(0),
		workers:     4 * runtime.GOMAXPROCS(0),
		depth:       1024,
		maxQueued:   4 << 20,
		maxOutbound: DefaultMaxOutbound,
		linger:      DefaultCloseTimeout,
		logger:      slog.Default(),
		tlsQueued:   DefaultTLSQueued,
	}
}

func (c *config) check() error {
	switch {
	case c.loops < 1:
		return fmt.Errorf("%w: WithEventLoops(%d): at least 1", ErrConfig, c.loops)
	case c.workers < 1 || c.depth < 1:
		return fmt.Errorf("%w: WithWorkers(%d, %d): at least 1 each", ErrConfig, c.workers, c.depth)
	case c.logger == nil:
		return fmt.Errorf("%w: WithLogger(nil)", ErrConfig)
	}
	if len(c.errs) > 0 {
		return c.errs[0]
	}
	return c.conn.check(c)
}

func (c *connConfig) check(cl *config) error {
	if len(c.errs) > 0 {
		return c.errs[0]
	}
	if r := c.reconnect; r != nil {
		if err := r.check(); err != nil {
			return err
		}
	}
	switch {
	case c.idle > 0 && c.timeout > 0 && c.timeout <= c.idle:
		return fmt.Errorf("%w: WithHeartbeat(%v, %v): the timeout must be longer than the idle time", ErrConfig, c.idle, c.timeout)
	case c.queue < 0 || c.queueBytes < 0:
		return fmt.Errorf("%w: WithQueue(%d, %d): negative", ErrConfig, c.queue, c.queueBytes)
	case c.queue > 0 && cl.maxOutbound > 0 && c.queueBytes > cl.maxOutbound:
		// The queue is flushed into the connection's outbound buffer at
		// once: more than the outbound limit would close it as a slow
		// consumer.
		return fmt.Errorf("%w: WithQueue's %d bytes exceed WithMaxOutbound's %d", ErrConfig, c.queueBytes, cl.maxOutbound)
	case c.handshake <= 0 || c.dialTimeout <= 0:
		return fmt.Errorf("%w: dial and handshake timeouts must be positive", ErrConfig)
	case c.tls != nil && slices.Contains(c.tls.NextProtos, "h2"):
		return fmt.Errorf("%w: WithTLS: NextProtos offers \"h2\", and the client does not speak HTTP/2 (offer \"http/1.1\", or nothing)", ErrConfig)
	}
	return nil
}

// Reconnect is the policy of auto-reconnect (t-io's ReconnConf), enabled
// with WithReconnect. After a connection is lost (or an attempt fails) the
// next attempt waits a delay that starts at Initial and is multiplied by
// Multiplier after each failed attempt, up to Max; each delay is drawn at
// random in [d×(1−Jitter), d], so that many clients that lost their server
// at once do not come back at once. A connection that completes its
// handshake starts the series again.
//
// In the fields, zero keeps the default and a negative value means none
// (no jitter, no cap), as in tio.Limits.
type Reconnect struct {
	// Initial is the delay before the first attempt after a loss
	// (default 1 s).
	Initial time.Duration
	// Max caps the delay (default 30 s; negative: no cap).
	Max time.Duration
	// Multiplier is the growth of the delay per failed attempt (default
	// 2; at least 1).
	Multiplier float64
	// Jitter is the share of each delay drawn at random, in [0, 1]
	// (default 0.5: a delay d is uniform in [d/2, d]; negative: none).
	Jitter float64
	// MaxAttempts is how many attempts in a row may fail before the
	// connection gives up: it is then closed, and its error wraps
	// ErrGaveUp (0: try forever).
	MaxAttempts int
}

// Reconnect defaults.
const (
	DefaultReconnectInitial    = time.Second
	DefaultReconnectMax        = 30 * time.Second
	DefaultReconnectMultiplier = 2
	DefaultReconnectJitter     = 0.5
)

func (r *Reconnect) normalize() {
	if r.Initial == 0 {
		r.Initial = DefaultReconnectInitial
	}
	switch {
	case r.Max == 0:
		r.Max = max(DefaultReconnectMax, r.Initial)
	case r.Max < 0:
		r.Max = 1<<63 - 1
	}
	if r.Multiplier == 0 {
		r.Multiplier = DefaultReconnectMultiplier
	}
	switch {
	case r.Jitter == 0:
		r.Jitter = DefaultReconnectJitter
	case r.Jitter < 0:
		r.Jitter = 0
	}
}

func (r *Reconnect) check() error {
	switch {
	case r.Initial < 0:
		return fmt.Errorf("%w: Reconnect.Initial %v is negative", ErrConfig, r.Initial)
	case r.Max < r.Initial:
		return fmt.Errorf("%w: Reconnect.Max %v is below Initial %v", ErrConfig, r.Max, r.Initial)
	case r.Multiplier < 1:
		return fmt.Errorf("%w: Reconnect.Multiplier %v is below 1", ErrConfig, r.Multiplier)
	case r.Jitter > 1:
		return fmt.Errorf("%w: Reconnect.Jitter %v is over 1", ErrConfig, r.Jitter)
	case r.MaxAttempts < 0:
		return fmt.Errorf("%w: Reconnect.MaxAttempts %d is negative", ErrConfig, r.MaxAttempts)
	}
	return nil
}

// WithReconnect turns auto-reconnect on with policy r (see Reconnect for
// its defaults): a connection that is lost, or cannot be made, is dialled
// again after a delay, until it is closed or gives up. Default: off (a lost
// connection is closed, and its error wraps ErrConnLost).
func WithReconnect(r Reconnect) ConnOption {
	r.normalize()
	return func(c *connConfig) {
		r := r // each connection its own copy
		c.reconnect = &r
	}
}

// WithQueue makes sends made while the connection is down (connecting,
// reconnecting, or running its OnConnected hook) wait in a queue of at
// most packets packets and bytes bytes of bodies (bytes 0: 1 MiB), sent
// in order once the connection is up again, after its OnConnected hook.
// A send that does not fit fails with ErrQueueFull. Queued sends that
// never go out — the connection is closed, or gives up — are counted in
// Stats().Discarded and reported in the connection's error. Default (and
// packets 0): no queue, such sends fail at once with ErrNotConnected.
func WithQueue(packets, bytes int) ConnOption {
	return func(c *connConfig) {
		if bytes == 0 {
			bytes = DefaultQueueBytes
		}
		c.queue, c.queueBytes = packets, bytes
	}
}

// WithHeartbeat sets the heartbeat: once nothing has arrived from the
// server for idle, the client sends the protocol's heartbeat (the binary
// heartbeat byte, a WebSocket ping), again every idle while the silence
// lasts, and a server that sends nothing for timeout is taken for dead:
// the connection is closed (reason heartbeat_timeout) and, with
// WithReconnect, dialled again. Servers answer heartbeats (tio servers
// answer binary heartbeats by default, WebSocket servers pings), so a
// live idle server is never taken for dead. Default: 30 s and 90 s;
// idle 0 sends none, timeout 0 never gives up on a silent server.
func WithHeartbeat(idle, timeout time.Duration) ConnOption {
	return func(c *connConfig) { c.idle, c.timeout = max(idle, 0), max(timeout, 0) }
}

// WithHandshakeTimeout bounds the time from the TCP connection to the
// server's answer to the protocol's opening (the binary handshake byte,
// the WebSocket 101 answer): a server that accepts and never answers is
// abandoned after d (reason handshake_timeout). Default 10 s.
func WithHandshakeTimeout(d time.Duration) ConnOption {
	return func(c *connConfig) { c.handshake = d }
}

// WithDialTimeout bounds a TCP connect. Default 10 s.
func WithDialTimeout(d time.Duration) ConnOption {
	return func(c *connConfig) { c.dialTimeout = d }
}

// WithOnConnected sets the hook that runs each time a connection completes
// its handshake, before anything queued while it was down is sent:
// reconnect is false the first time and true after each reconnect. It is
// where the application logs in and joins its rooms again. It runs on the
// worker pool, in the connection's queue (packets from the server that
// arrive meanwhile wait for it), so it may block: sends and calls it makes
// on the connection — ch.Send, or the Conn's Send and Call from the hook's
// own goroutine — go out at once, ahead of the queue, while sends from
// other goroutines wait in the queue until it returns. A panic in it
// closes the connection (reason handler_panic), which reconnects.
func WithOnConnected(f func(ch *channel.Channel, reconnect bool)) ConnOption {
	return func(c *connConfig) { c.onConnected = f }
}

// WithOnStateChange sets a hook told of each change of a connection's
// State, with the error that caused it (nil for a connect and for a close
// asked by the application). A connection's changes are told one at a
// time, in order. It runs on whichever goroutine made the change — an
// event loop among them — so it must not block. A panic in it is
// recovered and counted.
func WithOnStateChange(f func(cn *Conn, s State, err error)) ConnOption {
	return func(c *connConfig) { c.onState = f }
}

// WithHeader adds header fields to a WebSocket connection's upgrade
// request (Origin, Authorization, Cookie…). The fields the handshake
// itself needs (Host, Upgrade, Connection, Sec-WebSocket-*) are refused:
// Dial and Connect return an error wrapping ErrConfig.
func WithHeader(h http.Header) ConnOption {
	return func(c *connConfig) { c.header = h.Clone() }
}

// WithSubprotocols offers WebSocket subprotocols, in order of preference;
// the one the server selects is websocket.ProtocolOf(ch). A server that
// selects one not offered fails the handshake.
func WithSubprotocols(p ...string) ConnOption {
	return func(c *connConfig) { c.protocols = append([]string(nil), p...) }
}

// WithTLS sets the TLS configuration of wss:// and tios:// (tls://)
// connections: RootCAs (default: the system's roots), Certificates or
// GetClientCertificate for servers that ask for a client certificate,
// ServerName (default: the URL's host; an IP address is verified against
// the certificate's IP addresses), MinVersion (default TLS 1.2),
// ClientSessionCache for session resumption across connections and
// reconnects (default none), InsecureSkipVerify for tests. cfg is cloned
// (and the clone again per URL, with its ServerName): later changes to it
// are not seen. A NextProtos offering "h2" is refused (ErrConfig): the client does
// not speak HTTP/2. Default: nil, which is &tls.Config{} — wss:// to a
// server with a publicly trusted certificate needs no option.
//
// TLS runs on the event loops, as on a tio server (internal/tlsconn):
// records are encrypted and decrypted in the connection's pass, with no
// goroutine per connection; only the handshake runs on a bounded pool of
// goroutines (WithTLSHandshakes), within the handshake timeout
// (WithHandshakeTimeout, which covers the TLS handshake and then the
// protocol's). A handshake that fails — a certificate the client does not
// trust among others — fails the attempt with an error wrapping ErrTLS and
// crypto/tls's error (errors.As(err, new(*tls.CertificateVerificationError))).
func WithTLS(cfg *tls.Config) ConnOption {
	return func(c *connConfig) { c.tls = cfg.Clone() }
}

// WithTLSHandshakes bounds the pool that runs TLS handshakes: at most
// workers at once (default 32×GOMAXPROCS, at least 64; a handshake holds
// its worker for round trips to the server) and at most queued waiting
// for one (default 65,536; past it an attempt fails, reason overloaded,
// and with WithReconnect is made again later). Zero keeps a default.
func WithTLSHandshakes(workers, queued int) Option {
	return clientOption(func(c *config) {
		if workers < 0 || queued < 0 {
			c.errs = append(c.errs, fmt.Errorf("%w: WithTLSHandshakes(%d, %d): negative", ErrConfig, workers, queued))
			return
		}
		c.tlsWorkers = workers
		if queued > 0 {
			c.tlsQueued = queued
		}
	})
}

// WithEventLoops sets the number of event loops that serve the client's
// connections (default GOMAXPROCS). Connections are spread over them.
func WithEventLoops(n int) Option {
	return clientOption(func(c *config) { c.loops = n })
}

// WithWorkers sets the worker pool that runs handlers not declared inline
// and the OnConnected hook: workers goroutines, each connection's queue
// holding at most depth packets (default 4 per CPU, and 1024). A full
// queue closes its connection (reason overloaded).
func WithWorkers(workers, depth int) Option {
	return clientOption(func(c *config) { c.workers, c.depth = workers, depth })
}

// WithMaxOutbound bounds the bytes waiting to go to one server (default 4
// MiB; negative: no limit): past it a send fails with
// channel.ErrSlowConsumer and the connection is closed.
func WithMaxOutbound(n int) Option {
	return clientOption(func(c *config) {
		switch {
		case n == 0:
			c.maxOutbound = DefaultMaxOutbound
		case n < 0:
			c.maxOutbound = 0 // link.Env: no limit
		default:
			c.maxOutbound = n
		}
	})
}

// WithCloseTimeout bounds how long a WebSocket connection the client
// closes waits for the server's answering close frame (default 2 s; 0:
// it does not wait), and how long bytes queued before a close have to
// reach the server.
func WithCloseTimeout(d time.Duration) Option {
	return clientOption(func(c *config) { c.linger = max(d, 0) })
}

// WithLogger sets where the client logs (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return clientOption(func(c *config) { c.logger = l })
}

// WithWebSocket configures the WebSocket codec of the client's ws:// and
// wss:// connections: limits on what the server sends (MaxFrame,
// MaxMessage, MaxHandshake for its 101 answer; a compressed message is
// inflated up to MaxMessage and no further, past which the connection
// closes with 1009), the Mapping between messages and packets (default
// websocket.TypePrefix{}), Subprotocols offered by default, and
// Compression, the permessage-deflate offered (see WithCompression).
// Client is set for you. A Compression whose Mode is
// websocket.CompressionOff (the zero value) keeps what WithCompression
// set, whichever option comes first.
func WithWebSocket(cfg websocket.Config) Option {
	return clientOption(func(c *config) {
		c.ws = cfg
		if cfg.Compression.Mode != websocket.CompressionOff {
			c.compression = cfg.Compression
		}
	})
}

// WithCompression makes WebSocket connections offer permessage-deflate
// (RFC 7692) and compress once a server accepts it. Default: off, nothing
// is offered (websocket.Compression{}), as on a tio server: compression
// costs CPU at both ends for every message and pays only for messages
// that are large and redundant or links that are slow, and compressing a
// secret together with bytes an attacker chooses leaks through the sizes
// (the CRIME and BREACH attacks), so it is the application's choice. The
// modes:
//
//   - websocket.CompressionNoContextTakeover: the offer is
//     "permessage-deflate; server_no_context_takeover;
//     client_no_context_takeover; client_max_window_bits", and each
//     message is compressed on its own both ways, so that a connection
//     keeps no window between messages — an idle compressed connection
//     costs what an uncompressed one does — at some cost in ratio for
//     small messages that repeat one another. The usual choice.
//   - websocket.CompressionContextTakeover: the offer is
//     "permessage-deflate; client_max_window_bits" (what browsers offer),
//     after one asking for server_max_window_bits=z.WindowBits when that
//     is under 15; the client keeps the context of what it sends (at most
//     2^WindowBits bytes, default 4 KiB) unless the server answers
//     client_no_context_takeover.
//
// Whatever the offer, a valid answer is honoured: a server that keeps its
// context (no server_no_context_takeover in its answer) is followed, with
// a window of the size it names (at most 32 KiB per connection), and the
// client compresses with the window the server allows it
// (client_max_window_bits). An answer that is not valid — an extension
// not offered, an unknown or repeated parameter, a bad value — fails the
// handshake with an error wrapping codec.ErrHandshake. Messages under
// z.Threshold bytes (default websocket.DefaultThreshold, 256) and those
// that compression would not shrink are sent uncompressed; z.Level sets
// the level (default 1, the fastest). Compressed frames are masked like
// every client frame; what the server sends compressed is inflated up to
// websocket.Config.MaxMessage (1009 past it), without ever holding more.
// Against a server that declines the offer (tio's default, gorilla's
// without EnableCompression) nothing changes.
func WithCompression(z websocket.Compression) Option {
	return clientOption(func(c *config) { c.compression = z })
}

// WithBinary configures the binary-protocol codec of the client's tio://
// and tcp:// connections (MaxBody bounds what the server sends). Client
// is set for you.
func WithBinary(cfg binary.Config) Option {
	return clientOption(func(c *config) { c.bin = cfg })
}
