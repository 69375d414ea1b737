package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/internal/counters"
	"github.com/tiogo/tio/internal/gnetlog"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/pool"
	"github.com/tiogo/tio/internal/tlsconn"
	"github.com/tiogo/tio/internal/wheel"
	"github.com/tiogo/tio/stats"
)

// Errors. Those of a connection's close and of a Call wrap one of them
// with %w; so do configuration errors (ErrConfig).
var (
	// ErrConfig: an option or a URL cannot work; New, Dial and Connect
	// return errors wrapping it.
	ErrConfig = errors.New("client: bad configuration")
	// ErrClosed: the connection (or the whole client) was closed by the
	// application.
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected: a send while the connection is down, on a
	// connection without a queue (see WithQueue).
	ErrNotConnected = errors.New("client: not connected")
	// ErrQueueFull: a send while the connection is down that its queue has
	// no room for (see WithQueue).
	ErrQueueFull = errors.New("client: send queue full")
	// ErrDiscarded: sends that were queued while the connection was down
	// never went out: the connection was closed, or gave up, first.
	ErrDiscarded = errors.New("client: queued sends discarded")
	// ErrConnLost: the connection was lost — the server closed it, it
	// broke, a heartbeat or handshake timed out. A Call whose connection
	// drops before its reply fails with it; so does a connection without
	// WithReconnect when it is lost.
	ErrConnLost = errors.New("client: connection lost")
	// ErrGaveUp: a connection with WithReconnect failed Reconnect.MaxAttempts
	// attempts in a row and was closed.
	ErrGaveUp = errors.New("client: gave up reconnecting")
	// ErrTLS: a TLS connection (wss://, tios://) failed: its handshake (a
	// certificate the client does not trust, a server name it was not
	// issued for, no common version or cipher suite...), or a record after
	// it. The error wraps crypto/tls's too, when there is one: errors.As
	// with a *tls.CertificateVerificationError, a tls.AlertError... tell
	// the cause.
	ErrTLS = errors.New("client: TLS failed")
	// ErrOnLoop: a blocking call (Dial, Call, SendWait) was made on one of
	// the client's event loops — from an inline handler or a hook that
	// runs there — where it would wait for the very loop it blocks.
	ErrOnLoop = channel.ErrOnLoop
)

// Indexes of the client's codecs in its link.Env.
const (
	codecWebSocket = iota
	codecBinary
)

// Client holds many connections to servers, served by a few event loops
// (see the package documentation). Create it with New; Shutdown ends it.
// Its methods are safe for concurrent use. Everything it holds is its own:
// clients in one process share nothing.
type Client struct {
	cfg     config
	handler handler.Handler
	router  handler.Router
	env     link.Env
	totals  link.Totals
	pool    *pool.Pool
	gc      *gnet.Client
	wheel   *wheel.Wheel[uint64]
	log     *slog.Logger
	ws      *websocket.Codec
	tls     *tlsconn.Engine // the TLS handshake pool of wss:// and tios:// connections
	dialer  net.Dialer
	packets sync.Pool // *codec.Packet scratch for onTraffic
	nextID  atomic.Uint64
	stats   clientStats

	onAttempt func() // tests: an attempt begins (set before any dial)

	mu       sync.Mutex
	closed   bool
	targets  map[string]*target // by URL, for connections dialled with the defaults
	conns    map[*Conn]struct{}
	live     map[uint64]*session // by link id: the connections open now
	draining map[*link.Link]struct{}
	inflight sync.WaitGroup // attempts under way (dialling, enrolling)
	done     chan struct{}
}

type clientStats struct {
	dials, dialErrors, connects, reconnects, disconnects atomic.Uint64
	heartbeatTimeouts, handshakeTimeouts                 atomic.Uint64
	panics, dropped                                      atomic.Uint64
	calls, callsLost, unmatched                          atomic.Uint64
	queueFull, discarded                                 atomic.Uint64
}

// Stats is a snapshot of a client's counters. Each is read atomically; the
// snapshot as a whole is not.
type Stats struct {
	Conns int // connections (Conns) not closed
	Open  int // of them, those with a TCP connection now
	// Dials counts connection attempts; DialErrors those that failed
	// before the handshake completed (TCP errors, handshakes refused or
	// timed out).
	Dials, DialErrors uint64
	// Connects counts completed handshakes; Reconnects those after a
	// loss; Disconnects connections lost after their handshake.
	Connects, Reconnects, Disconnects uint64
	HeartbeatTimeouts                 uint64 // servers taken for dead
	HandshakeTimeouts                 uint64 // servers that never answered the opening
	Panics                            uint64 // handler and hook panics recovered (each closed its connection)
	Dropped                           uint64 // packets with no handler
	Calls                             uint64 // Calls answered
	CallsLost                         uint64 // Calls whose connection dropped before the reply
	UnmatchedReplies                  uint64 // replies no Call waited for (late or unknown), dropped
	QueueFull                         uint64 // sends refused by a full queue
	Discarded                         uint64 // queued sends that never went out
	Traffic                           stats.Traffic
}

// New creates a client whose connections route the packets servers send
// them to h (a handler.Mux routes by type; a nil h drops them, counted in
// Stats().Dropped), and starts its event loops and worker pool. Handlers
// run as on a server: inline on the connection's event loop if declared
// with handler.Inline, else on the worker pool, in each connection's
// order. Options that configure connections (ConnOption) set the default
// of every connection. A configuration that cannot work is an error
// wrapping ErrConfig.
func New(h handler.Handler, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.applyClient(&cfg)
		}
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	wcfg, bcfg := cfg.ws, cfg.bin
	wcfg.Client, bcfg.Client = true, true
	wcfg.Compression = cfg.compression
	if wcfg.Logger == nil {
		wcfg.Logger = cfg.logger
	}
	c := &Client{
		cfg:      cfg,
		handler:  h,
		log:      cfg.logger,
		ws:       websocket.New(wcfg),
		tls:      tlsconn.NewClientEngine(tlsconn.Options{MaxWorkers: cfg.tlsWorkers, MaxQueued: cfg.tlsQueued, HandshakeTimeout: cfg.conn.handshake}),
		conns:    make(map[*Conn]struct{}),
		targets:  make(map[string]*target),
		live:     make(map[uint64]*session),
		draining: make(map[*link.Link]struct{}),
		done:     make(chan struct{}),
	}
	c.router, _ = h.(handler.Router)
	c.env = link.Env{
		MaxOutbound:   cfg.maxOutbound,
		DrainTimeout:  cfg.linger,
		LingerTimeout: cfg.linger,
		Codecs:        []codec.Codec{codecWebSocket: c.ws, codecBinary: binary.New(bcfg)},
		Totals:        &c.totals,
	}
	if err := c.env.Init(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.packets.New = func() any { return new(codec.Packet) }
	c.wheel = wheel.New(wheelTick(&cfg.conn), 512, c.checkID)
	gc, err := gnet.NewClient(&events{c: c},
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(cfg.loops),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetlog.Logger{L: cfg.logger}),
	)
	if err != nil {
		c.tls.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	c.pool = pool.New(cfg.workers, cfg.depth, cfg.maxQueued)
	if err := gc.Start(); err != nil {
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.pool.Close(done)
		c.tls.Close()
		return nil, fmt.Errorf("client: start: %w", err)
	}
	c.gc = gc
	return c, nil
}

// wheelTick picks the timing wheel's resolution: a tenth of the shortest
// timeout of the client's default connection configuration, between 5 ms
// and 100 ms. (A connection dialled with shorter timeouts is checked at
// this resolution.)
func wheelTick(cc *connConfig) time.Duration {
	tick := 100 * time.Millisecond
	for _, d := range []time.Duration{cc.idle, cc.timeout, cc.handshake} {
		if d > 0 {
			tick = min(tick, d/10)
		}
	}
	return max(tick, 5*time.Millisecond)
}

// Dial connects to the server at rawURL and returns once the connection's
// handshake has completed (its OnConnected hook may still be running), or
// with an error: ctx ended first (the connection is then closed), or the
// connection was closed before it connected — with WithReconnect, after
// Reconnect.MaxAttempts failed attempts (ErrGaveUp). URLs:
//
//	ws://host[:port]/path?query    WebSocket (RFC 6455), port 80 by default
//	wss://host[:port]/path?query   WebSocket over TLS, port 443 by default
//	tio://host:port                tio's binary protocol (tcp:// is the same)
//	tios://host:port               the binary protocol over TLS (tls:// is the same)
//
// TLS is configured by WithTLS (by default the system's roots, and the
// URL's host as the server name); a failed TLS handshake is an error
// wrapping ErrTLS. opts configure this connection over the client's
// defaults. Dial blocks: called on one of the client's event
// loops it fails at once with ErrOnLoop.
func (c *Client) Dial(ctx context.Context, rawURL string, opts ...DialOption) (*Conn, error) {
	if c.env.OnLoop() {
		return nil, ErrOnLoop
	}
	cn, err := c.newConn(rawURL, opts, true)
	if err != nil {
		return nil, err
	}
	first := cn.first
	cn.attempt(ctx)
	select {
	case <-first:
	case <-ctx.Done():
		_ = cn.Close()
		return nil, fmt.Errorf("client: dial %s: %w", rawURL, ctx.Err())
	}
	if cn.State() == StateClosed && !cn.wasConnected() {
		return nil, cn.Err()
	}
	return cn, nil
}

// Connect is Dial without the wait: it returns the connection at once, in
// StateConnecting, and the first attempt runs in the background (errors
// are only the URL's and the options'). Use it to open many connections
// quickly, and WithOnStateChange or Conn.State to follow them. Sends made
// before the connection is up fail or wait in its queue (WithQueue).
func (c *Client) Connect(rawURL string, opts ...DialOption) (*Conn, error) {
	cn, err := c.newConn(rawURL, opts, false)
	if err != nil {
		return nil, err
	}
	go cn.attempt(context.Background())
	return cn, nil
}

// target is where a connection dials and what it speaks.
type target struct {
	url   string
	addr  string // host:port
	codec int    // codecWebSocket or codecBinary
	req   *websocket.ClientRequest
	tls   *tls.Config // wss://, tios://: the configuration of tls.Client, ServerName set; nil: no TLS
}

// maxTargets bounds the cache of targets.
const maxTargets = 256

// target returns where a connection dials: one target serves every
// connection that dials a URL with the client's default options (a load
// generator's thousands of them), so that each need not hold its own copy
// of the URL and of the upgrade request.
func (c *Client) target(raw string, cc *connConfig) (*target, error) {
	shared := cc == &c.cfg.conn
	if shared {
		c.mu.Lock()
		t := c.targets[raw]
		c.mu.Unlock()
		if t != nil {
			return t, nil
		}
	}
	t, err := c.parse(raw, cc)
	if err != nil || !shared {
		return t, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.targets) < maxTargets {
		c.targets[raw] = t
	}
	return t, nil
}

func (c *Client) parse(raw string, cc *connConfig) (*target, error) {
	bad := func(why string) (*target, error) {
		return nil, fmt.Errorf("%w: URL %q: %s", ErrConfig, raw, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(err.Error())
	}
	t := &target{url: raw}
	port := u.Port()
	secure := false
	switch u.Scheme {
	case "ws", "wss":
		t.codec = codecWebSocket
		secure = u.Scheme == "wss"
		if port == "" {
			port = "80"
			if secure {
				port = "443"
			}
		}
	case "tio", "tcp", "tios", "tls":
		t.codec = codecBinary
		secure = u.Scheme == "tios" || u.Scheme == "tls"
		if port == "" {
			return bad("the binary protocol has no default port")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad("the binary protocol has no path or query")
		}
	default:
		return bad("the scheme is not ws, wss, tio, tcp, tios or tls")
	}
	switch {
	case u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("user information is not allowed")
	case u.Fragment != "":
		return bad("a WebSocket URL has no fragment")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return bad("bad port")
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if secure {
		t.tls = cc.tls.Clone() // WithTLS cloned it already; this copy is the target's
		if t.tls == nil {
			t.tls = &tls.Config{}
		}
		if t.tls.ServerName == "" {
			t.tls.ServerName = u.Hostname()
		}
		if t.tls.MinVersion == 0 {
			t.tls.MinVersion = tls.VersionTLS12
		}
	}
	if t.codec == codecWebSocket {
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		if u.RawQuery != "" {
			path += "?" + u.RawQuery
		}
		t.req, err = c.ws.NewClientRequest(u.Host, path, cc.header, cc.protocols)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return t, nil
}

// Conn returns the connection whose channel ch is, or nil: the way from a
// handler or a hook, which see a *channel.Channel, to the Conn's Send and
// Call.
func (c *Client) Conn(ch *channel.Channel) *Conn {
	if ch == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.live[ch.ID()]; s != nil && (*channel.Channel)(s.l) == ch {
		return s.cn
	}
	return nil
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	conns, open := len(c.conns), len(c.live)
	c.mu.Unlock()
	s := &c.stats
	return Stats{
		Conns: conns, Open: open,
		Dials: s.dials.Load(), DialErrors: s.dialErrors.Load(),
		Connects: s.connects.Load(), Reconnects: s.reconnects.Load(), Disconnects: s.disconnects.Load(),
		HeartbeatTimeouts: s.heartbeatTimeouts.Load(), HandshakeTimeouts: s.handshakeTimeouts.Load(),
		Panics: s.panics.Load(), Dropped: s.dropped.Load(),
		Calls: s.calls.Load(), CallsLost: s.callsLost.Load(), UnmatchedReplies: s.unmatched.Load(),
		QueueFull: s.queueFull.Load(), Discarded: s.discarded.Load(),
		Traffic: counters.Traffic(&c.totals),
	}
}

// Shutdown closes every connection (each says goodbye: a WebSocket close
// frame, the binary close frame; none reconnects), waits for them to close
// — after the bytes queued for them, and the server's answering close, up
// to WithCloseTimeout — and stops the event loops and the worker pool. It
// returns nil, or ctx's error if ctx ended first (the connections left are
// then dropped). Calls and Sends afterwards fail with ErrClosed. It blocks:
// called on one of the client's event loops it fails with ErrOnLoop.
func (c *Client) Shutdown(ctx context.Context) error {
	if c.env.OnLoop() {
		return ErrOnLoop
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		select {
		case <-c.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.closed = true
	conns := make([]*Conn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		_ = cn.Close()
	}
	// Attempts under way see the connections closed and stop; wait for
	// them, so that none enrolls a connection into a stopped engine.
	attempts := make(chan struct{})
	go func() { c.inflight.Wait(); close(attempts) }()
	select {
	case <-attempts:
	case <-ctx.Done():
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		c.mu.Lock()
		n := len(c.live)
		c.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	err := ctx.Err()
	c.tls.Close() // idle handshake workers exit; nothing is queued any more
	select {
	case <-attempts:
		_ = c.gc.Stop()
	default:
		// An attempt is stuck (in a dial the context did not end): the
		// engine is left running rather than risk a hang.
	}
	err = errors.Join(err, c.pool.Close(ctx))
	close(c.done)
	return err
}

// enter registers an attempt under way; false if the client is closed.
func (c *Client) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.inflight.Add(1)
	return true
}
