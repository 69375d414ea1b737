package tio

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/stats"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	codecs        []codec.Codec
	fixed         bool
	codecOpt      string                                             // the option that set codecs, for error messages
	wsConfig      *websocket.Config                                  // WithWebSocket
	binConfig     *binary.Config                                     // WithBinary
	errs          []error                                            // options given wrong values, returned by Start
	relay         Relay                                              // WithRelay
	linger        time.Duration                                      // WithCloseTimeout
	http          http.Handler                                       // WithHTTP
	upgrade       []func(*channel.Channel, *websocket.Request) error // WithUpgrade
	proxies       []netip.Prefix                                     // WithTrustedProxies
	tls           *tls.Config                                        // WithTLS
	tlsRequired   bool                                               // WithTLSRequired
	tlsWorkers    int                                                // WithTLSHandshakes
	tlsQueued     int
	loops         int
	multicore     bool
	workers       int
	depth         int
	maxOutbound   int
	sniffLimit    int
	logger        *slog.Logger
	hooks         Hooks
	limits        Limits
	heartbeat     time.Duration
	handshake     time.Duration
	keepalive     time.Duration
	onHBTimeout   func(*channel.Channel) bool
	rate          float64
	burst         int
	rateDrop      bool
	drain         time.Duration
	stats         bool
	gnetOptions   []gnet.Option
	reusePort     bool
	reuseAddr     bool
	maxQueued     int
	packetTimeout time.Duration
	slowHandler   time.Duration
	ipStats       stats.IPConfig // WithIPStats (metrics.go)
}

func defaultConfig() config {
	return config{
		multicore:     true,
		workers:       8 * runtime.GOMAXPROCS(0),
		depth:         1024,
		maxOutbound:   4 << 20,
		heartbeat:     2 * time.Minute,
		handshake:     10 * time.Second,
		drain:         5 * time.Second,
		linger:        2 * time.Second,
		stats:         true,
		reuseAddr:     true,
		maxQueued:     4 << 20,
		packetTimeout: 30 * time.Second,
		slowHandler:   5 * time.Second,
		sniffLimit:    64,
		logger:        slog.Default(),
	}
}

// WithCodec fixes the server to one codec: every connection speaks it, and
// nothing is sniffed. It cannot be combined with WithCodecs, WithWebSocket,
// WithBinary or the codec fields of Limits (Start says so).
func WithCodec(c codec.Codec) Option {
	return func(o *config) { o.setCodecs("WithCodec", []codec.Codec{c}, true) }
}

// WithCodecs serves the protocols of cs on one port: each connection's codec
// is the first of cs whose Sniff matches the connection's first bytes, so
// each must implement codec.Sniffer (Start returns an error for one that
// does not). Without it a server speaks WebSocket and the binary protocol
// (see WithWebSocket and WithBinary to configure them); a codec given here
// carries its own limits, so it cannot be combined with the codec fields of
// Limits.
func WithCodecs(cs ...codec.Codec) Option {
	return func(o *config) { o.setCodecs("WithCodecs", cs, false) }
}

func (o *config) setCodecs(opt string, cs []codec.Codec, fixed bool) {
	if o.codecOpt != "" {
		o.errs = append(o.errs, fmt.Errorf("%w: %s and %s both choose the codecs", ErrConfig, o.codecOpt, opt))
	}
	o.codecs, o.fixed, o.codecOpt = cs, fixed, opt
}

// WithWebSocket configures the server's default WebSocket codec (the binary
// protocol keeps its place on the port). Limits' codec fields apply to the
// fields cfg leaves zero.
func WithWebSocket(cfg websocket.Config) Option {
	return func(o *config) { o.wsConfig = &cfg }
}

// WithUpgrade sets the hook of every WebSocket upgrade: it receives the
// connection's channel, already open (Bind works, and its values), and the
// upgrade request — path (Request.Match("/ws/{key}")), query, cookies
// (Request.Cookie), headers — and may refuse the upgrade by returning an
// error: websocket.Reject(status, reason) picks the HTTP status (4xx, 5xx),
// any other error gives 403. It runs on the event loop before the 101
// answer and must not block; a panic in it answers 500. Typical:
//
//	tio.WithUpgrade(func(ch *channel.Channel, r *websocket.Request) error {
//		user, err := sessions.Check(r.Cookie("session"))
//		if err != nil {
//			return websocket.Reject(http.StatusUnauthorized, "log in first")
//		}
//		return srv.Bind(ch, tio.User(user))
//	})
//
// Hooks given by several WithUpgrade options run in order; the
// configuration's own websocket.Config.OnHandshake runs first. It applies to
// the default WebSocket codec (with WithCodecs, set OnHandshake on the codec
// given and use channel.Of).
func WithUpgrade(hook func(ch *channel.Channel, r *websocket.Request) error) Option {
	return func(o *config) { o.upgrade = append(o.upgrade, hook) }
}

// WithBinary configures the server's default binary-protocol codec (the
// WebSocket codec keeps its place on the port). Limits.MaxPacket applies if
// cfg leaves MaxBody zero.
func WithBinary(cfg binary.Config) Option {
	return func(o *config) { o.binConfig = &cfg }
}

// WithEventLoops sets the number of event loops (default, or zero: one per
// CPU).
func WithEventLoops(n int) Option {
	return func(o *config) {
		if n < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithEventLoops(%d)", ErrConfig, n))
		}
		o.loops = n
	}
}

// WithWorkers sizes the worker pool that runs handlers not declared inline:
// workers goroutines (default 8 per CPU) serving per-connection queues of at
// most depth packets (default 1024). A connection's packets run in order,
// one at a time, on whichever worker is free: a handler that blocks holds
// its worker and its own connection, while the other connections go on on
// the other workers. A connection whose queue is full, or holds more than
// Limits.MaxQueued bytes, is closed as channel.ReasonOverloaded.
func WithWorkers(workers, depth int) Option {
	return func(o *config) {
		if workers < 0 || depth < 0 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithWorkers(%d, %d)", ErrConfig, workers, depth))
		}
		if workers > 0 {
			o.workers = workers
		}
		if depth > 0 {
			o.depth = depth
		}
	}
}

// WithSlowHandler sets how long a handler on the worker pool may run before
// it is reported (default 5 s; zero or less: never): each such handler is
// counted once (Stats().SlowHandlers) and a warning naming its packet type
// is logged, at most every 10 s. A handler that never returns stalls only
// its own connection, but it keeps a worker: this is how to find it.
func WithSlowHandler(threshold time.Duration) Option {
	return func(o *config) { o.slowHandler = threshold }
}

// WithPacketTimeout bounds how long a packet or message may take to arrive
// once it has begun (default 30 s; zero or less: no bound): a peer that
// announces a packet and sends it a byte at a time, or keeps a fragmented
// WebSocket message open, is closed as channel.ReasonPacketTimeout when a
// check finds it over the bound (checks come every half timeout, so at most
// 1.5 timeouts after the packet began). Bytes arriving do not reset it.
func WithPacketTimeout(d time.Duration) Option {
	return func(o *config) { o.packetTimeout = d }
}

// WithReuseAddr sets SO_REUSEADDR on the listener (default on), so that a
// restarted server binds its port at once although connections it closed
// itself still wait in TIME_WAIT on it.
func WithReuseAddr(on bool) Option {
	return func(o *config) { o.reuseAddr = on }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *config) { o.logger = l }
}

// WithReusePort sets SO_REUSEPORT on the listener.
func WithReusePort(on bool) Option {
	return func(o *config) { o.reusePort = on }
}

// WithGnetOptions passes extra options to the gnet engine. Options that tio
// sets itself (multicore, event loops, logger) may be overridden.
func WithGnetOptions(opts ...gnet.Option) Option {
	return func(o *config) { o.gnetOptions = append(o.gnetOptions, opts...) }
}

// Limits bound what one server accepts. In every field zero keeps the
// default and a negative value removes the limit (the same rule as in the
// codecs' own Configs), except MaxHandshake: an upgrade request is always
// bounded, and a negative MaxHandshake is an error.
type Limits struct {
	// MaxConnections bounds open connections (default: no limit). A
	// connection past it is closed at accept and counted as
	// channel.ReasonTooManyConnections.
	MaxConnections int
	// MaxConnectionsPerIP bounds open connections from one IP address
	// (default: no limit), refused and counted the same way.
	MaxConnectionsPerIP int
	// MaxOutbound is the per-connection high-water mark of bytes waiting to
	// be sent, queued by tio or held by gnet (default 4 MiB): packets and
	// the protocol's own answers (pongs, heartbeat answers, close frames)
	// alike. It bounds the backlog, not one packet: bytes are refused, and
	// the connection closed as channel.ReasonSlowConsumer, only when the
	// bytes already waiting exceed it, so one packet as large as the
	// largest message accepted always reaches a peer that reads. A peer
	// can make the server hold MaxOutbound plus one packet.
	MaxOutbound int
	// MaxQueued bounds the bytes of one connection's packets waiting for
	// the worker pool (default 4 MiB), by the same rule: a packet is refused,
	// and the connection closed as channel.ReasonOverloaded, when the bytes
	// already waiting exceed it.
	MaxQueued int
	// MaxHandshake bounds a WebSocket upgrade request (default 8 KiB: 431
	// past it); MaxFrame and MaxMessage bound a WebSocket frame's payload
	// and a reassembled message (default 16 MiB: close 1009 past it);
	// MaxPacket bounds a binary-protocol packet's body (default 16 MiB).
	// These four configure the default codecs (fields that WithWebSocket
	// or WithBinary leave zero); codecs passed to WithCodec or WithCodecs
	// carry their own limits, so setting these with them is an error.
	MaxHandshake int
	MaxFrame     int64
	MaxMessage   int64
	MaxPacket    int
}

// WithLimits sets the server's limits. Options compose: each WithLimits
// sets the fields it gives (non-zero), and keeps what earlier ones set in
// the fields it leaves zero.
func WithLimits(l Limits) Option {
	return func(o *config) {
		p := &o.limits
		p.MaxConnections = cmp.Or(l.MaxConnections, p.MaxConnections)
		p.MaxConnectionsPerIP = cmp.Or(l.MaxConnectionsPerIP, p.MaxConnectionsPerIP)
		p.MaxOutbound = cmp.Or(l.MaxOutbound, p.MaxOutbound)
		p.MaxQueued = cmp.Or(l.MaxQueued, p.MaxQueued)
		p.MaxHandshake = cmp.Or(l.MaxHandshake, p.MaxHandshake)
		p.MaxFrame = cmp.Or(l.MaxFrame, p.MaxFrame)
		p.MaxMessage = cmp.Or(l.MaxMessage, p.MaxMessage)
		p.MaxPacket = cmp.Or(l.MaxPacket, p.MaxPacket)
		if l.MaxOutbound != 0 {
			o.maxOutbound = l.MaxOutbound // negative: none (link.Env's rule: ≤ 0)
		}
		if l.MaxQueued != 0 {
			o.maxQueued = max(l.MaxQueued, 0) // 0: none, for the pool
		}
	}
}

// WithHeartbeat sets how long a connection may send nothing at all — no
// packet, no heartbeat byte, no WebSocket ping or pong — before it is closed
// as channel.ReasonHeartbeatTimeout (default 2 minutes; zero or less: never).
// A channel's own timeout (Channel.SetHeartbeatTimeout) overrides it.
// onTimeout, if not nil, runs first (off the event loop, like t-io's
// onHeartbeatTimeout): returning true keeps the connection for another
// timeout period.
func WithHeartbeat(timeout time.Duration, onTimeout func(ch *channel.Channel) (keep bool)) Option {
	return func(o *config) { o.heartbeat, o.onHBTimeout = timeout, onTimeout }
}

// WithHandshakeTimeout sets how long a connection has to complete its
// protocol handshake (default 10 s; zero or less: no limit). A connection
// still handshaking then — a slowloris — is closed as
// channel.ReasonHandshakeTimeout.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *config) { o.handshake = d }
}

// WithKeepalive makes the server send its codec's keepalive (a WebSocket
// ping, the binary heartbeat byte) to a connection that has sent nothing for
// interval, and again every interval while it stays silent (default: off).
// A pong or any other traffic counts as alive.
func WithKeepalive(interval time.Duration) Option {
	return func(o *config) { o.keepalive = interval }
}

// WithRateLimit limits each connection's inbound packets to rate a second
// with bursts of burst (at least 1; default: no limit; a rate of zero or
// less: no limit). Past it the connection is closed as
// channel.ReasonRateLimited, or, with drop, the packet is dropped and
// counted (Stats().RateLimited).
func WithRateLimit(rate float64, burst int, drop bool) Option {
	return func(o *config) {
		if rate > 0 && burst < 1 {
			o.errs = append(o.errs, fmt.Errorf("%w: WithRateLimit burst %d, want at least 1", ErrConfig, burst))
		}
		o.rate, o.burst, o.rateDrop = max(rate, 0), max(burst, 1), drop
	}
}

// WithDrainTimeout bounds how long a connection closed by the application,
// by its peer's protocol close or by Shutdown waits for its queued bytes to
// reach the peer before it is closed anyway (default 5 s; zero or less: it
// does not wait).
func WithDrainTimeout(d time.Duration) Option {
	return func(o *config) { o.drain = d }
}

// WithCloseTimeout bounds how long a connection the server closes waits,
// after its farewell, for the peer's answer when the protocol closes with a
// handshake (default 2 s; zero or less: it does not wait). WebSocket does:
// the server sends its close frame, waits for the browser's, then closes
// TCP, so that the browser reports CloseEvent.wasClean. Input that arrives
// meanwhile ends the wait and is not decoded.
func WithCloseTimeout(d time.Duration) Option {
	return func(o *config) { o.linger = d }
}

// WithStats turns the server's traffic statistics on or off (default on):
// the aggregate counters behind Stats().Traffic, the handler latency
// histogram and per-IP statistics (WithIPStats). Connection counts, close
// reasons and each channel's own counters are always kept.
func WithStats(on bool) Option {
	return func(o *config) { o.stats = on }
}

// ErrConfig is wrapped by the errors Start returns for a configuration that
// cannot work: options that conflict, or values out of range.
var ErrConfig = errors.New("tio: bad configuration")

// check returns the configuration's errors, joined.
func (o *config) check() error {
	errs := append([]error(nil), o.errs...)
	errs = append(errs, o.checkTLS())
	l := o.limits
	if o.codecOpt != "" {
		if o.http != nil || len(o.upgrade) > 0 {
			errs = append(errs, fmt.Errorf("%w: WithHTTP and WithUpgrade configure the default WebSocket codec, which %s replaces (set websocket.Config.HTTP or OnHandshake on the codec given)", ErrConfig, o.codecOpt))
		}
		if o.wsConfig != nil || o.binConfig != nil {
			errs = append(errs, fmt.Errorf("%w: WithWebSocket and WithBinary configure the default codecs, which %s replaces", ErrConfig, o.codecOpt))
		}
		for name, v := range map[string]int64{"MaxHandshake": int64(l.MaxHandshake), "MaxFrame": l.MaxFrame, "MaxMessage": l.MaxMessage, "MaxPacket": int64(l.MaxPacket)} {
			if v != 0 {
				errs = append(errs, fmt.Errorf("%w: Limits.%s configures the default codecs; the codecs given to %s carry their own limits in their Config", ErrConfig, name, o.codecOpt))
			}
		}
		if len(o.codecs) == 0 {
			errs = append(errs, fmt.Errorf("%w: %s with no codec", ErrConfig, o.codecOpt))
		}
		for i, cd := range o.codecs {
			if cd == nil {
				errs = append(errs, fmt.Errorf("%w: %s: codec %d is nil", ErrConfig, o.codecOpt, i))
			} else if _, ok := cd.(codec.Sniffer); !ok && !o.fixed {
				errs = append(errs, fmt.Errorf("%w: WithCodecs: %s (%T) cannot recognise its connections (it implements no codec.Sniffer); serve it alone with WithCodec", ErrConfig, cd.Name(), cd))
			}
		}
	}
	if l.MaxHandshake < 0 {
		errs = append(errs, fmt.Errorf("%w: Limits.MaxHandshake %d: the bound of an upgrade request cannot be removed", ErrConfig, l.MaxHandshake))
	}
	if c := o.wsConfig; c != nil {
		errs = append(errs, conflict("MaxHandshake", int64(c.MaxHandshake), int64(l.MaxHandshake)),
			conflict("MaxFrame", c.MaxFrame, l.MaxFrame), conflict("MaxMessage", c.MaxMessage, l.MaxMessage))
	}
	if c := o.binConfig; c != nil {
		errs = append(errs, conflict("MaxPacket", int64(c.MaxBody), int64(l.MaxPacket)))
	}
	return errors.Join(errs...)
}

// conflict reports a codec Config field and a Limits field both set, to
// different values.
func conflict(name string, cfg, lim int64) error {
	if cfg != 0 && lim != 0 && cfg != lim {
		return fmt.Errorf("%w: Limits.%s is %d but the codec's Config says %d", ErrConfig, name, lim, cfg)
	}
	return nil
}

// DefaultCodecs returns the codecs a server sniffs when none are given: a
// WebSocket codec and a binary protocol codec, default configurations.
func DefaultCodecs() []codec.Codec { return defaultCodecs(&config{}) }

// defaultCodecs builds the default codecs from WithWebSocket's and
// WithBinary's configurations and the codec fields of Limits.
func defaultCodecs(o *config) []codec.Codec {
	var ws websocket.Config
	if o.wsConfig != nil {
		ws = *o.wsConfig
	}
	var bin binary.Config
	if o.binConfig != nil {
		bin = *o.binConfig
	}
	l := o.limits
	ws.HTTP = ws.HTTP || o.http != nil
	if len(o.upgrade) > 0 {
		hooks, prev := o.upgrade, ws.OnHandshake
		ws.OnHandshake = func(c codec.Conn, r *websocket.Request) error {
			if prev != nil {
				if err := prev(c, r); err != nil {
					return err
				}
			}
			ch := channel.Of(c)
			for _, h := range hooks {
				if err := h(ch, r); err != nil {
					return err
				}
			}
			return nil
		}
	}
	ws.MaxHandshake = cmp.Or(ws.MaxHandshake, l.MaxHandshake)
	ws.MaxFrame = cmp.Or(ws.MaxFrame, l.MaxFrame)
	ws.MaxMessage = cmp.Or(ws.MaxMessage, l.MaxMessage)
	bin.MaxBody = cmp.Or(bin.MaxBody, l.MaxPacket)
	return []codec.Codec{websocket.New(ws), binary.New(bin)}
}
