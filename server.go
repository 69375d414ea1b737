// Package tio is a t-io-style TCP and WebSocket server framework for Go, on an
// event-loop core (gnet v2: no goroutine per connection).
//
// A [Server] accepts connections, picks each one's codec from its first bytes
// (WebSocket and tio's binary protocol share a port by default), decodes
// packets, and routes them by type to handlers (see package handler). Handlers
// reply through the packet's channel (see package channel), which queues
// bytes that the event loop writes, coalesced, one write per pass.
//
//	mux := handler.NewMux()
//	mux.Handle(1, handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
//		ch.Send(p) // echo
//	}))
//	srv := tio.NewServer("127.0.0.1:9001", mux)
//	go srv.Serve()
//	defer srv.Shutdown(context.Background())
package tio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/internal/counters"
	"github.com/tiogo/tio/internal/gnetlog"
	"github.com/tiogo/tio/internal/link"
	"github.com/tiogo/tio/internal/pool"
	"github.com/tiogo/tio/internal/registry"
	"github.com/tiogo/tio/internal/tlsconn"
	"github.com/tiogo/tio/internal/wheel"
	"github.com/tiogo/tio/stats"
)

// Errors returned by a Server.
var (
	// ErrServerClosed is returned by Serve after Shutdown.
	ErrServerClosed = errors.New("tio: server closed")
	// ErrStarted is returned by Serve or Start on a server already started.
	ErrStarted = errors.New("tio: server already started")
)

// Server is a tio server. Create it with NewServer; it serves once (Start or
// Serve), until Shutdown. Its methods are safe for concurrent use, from any
// goroutine, handlers and hooks included — except the blocking SendWait,
// which refuses to run on an event loop. Everything it holds (connections,
// bindings, statistics, pools) is its own: servers in one process share
// nothing.
type Server struct {
	addr    string
	handler handler.Handler
	router  handler.Router // handler as a Router, if it is one
	cfg     config
	env     link.Env
	pool    *pool.Pool
	stats   counters.Server
	totals  link.Totals
	packets sync.Pool         // *codec.Packet scratch for onTraffic
	ipStats *counters.IPTable // per-IP statistics (metrics.go); nil when off
	tls     *tlsconn.Engine   // WithTLS; nil without

	metricsOnce sync.Once
	metrics     http.Handler // MetricsHandler's
	groups      *registry.Registry
	black       Blacklist // IPs refused at accept (blacklist.go)
	log         *slog.Logger

	wheel    *wheel.Wheel[uint64] // channel ids: a closed channel is not held
	slowLog  atomic.Int64         // when a slow handler was last logged, unix ns
	wakePool sync.Pool            // of *wakes: fan-outs' batches of wake-ups
	open     atomic.Int64         // open connections, for MaxConnections
	ips      perIP
	drainMu  sync.Mutex
	draining map[*link.Link]struct{}
	nextID   atomic.Uint64
	started  atomic.Bool
	closing  atomic.Bool
	eng      gnet.Engine
	boundTo  net.Addr
	booted   chan struct{}
	done     chan struct{}
	serveErr error
}

// NewServer returns a server that will listen on the TCP address addr
// ("127.0.0.1:9001", ":0" for any free port) and route packets to h (a
// handler.Mux routes by packet type; see package handler for where handlers
// run). It does not listen yet, and options are only checked by Start.
func NewServer(addr string, h handler.Handler, opts ...Option) *Server {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.codecOpt == "" {
		cfg.codecs = defaultCodecs(&cfg)
	}
	s := &Server{
		addr:    addr,
		handler: h,
		cfg:     cfg,
		env:     link.Env{MaxOutbound: cfg.maxOutbound, DrainTimeout: cfg.drain, LingerTimeout: cfg.linger, Codecs: cfg.codecs},
		log:     cfg.logger,
		booted:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	if f := cfg.hooks.OnSent; f != nil {
		s.env.OnSent = func(l *link.Link, n int) {
			defer s.recoverHook(l, "OnSent")
			f((*channel.Channel)(l), n)
		}
	}
	s.black.s = s
	s.groups = registry.New(s.bindListener(cfg.hooks))
	s.router, _ = h.(handler.Router)
	if cfg.stats {
		s.env.Totals = &s.totals
	}
	s.packets.New = func() any { return new(codec.Packet) }
	s.ips.m = make(map[netip.Addr]int32)
	s.draining = make(map[*link.Link]struct{})
	s.wheel = wheel.New(wheelTick(cfg), 512, s.checkID)
	s.initStats()
	return s
}

// Start checks the configuration (errors wrap ErrConfig), starts serving in
// the background, and returns once the server is listening — or the error
// that kept it from listening, which names the address. It fails with
// ErrStarted on a server started before.
func (s *Server) Start() error {
	if err := s.cfg.check(); err != nil {
		return err
	}
	if err := s.env.Init(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	if err := s.startTLS(); err != nil {
		s.started.Store(false)
		return err
	}
	if r := s.cfg.relay; r != nil {
		if err := r.Start(local{s}); err != nil {
			s.started.Store(false)
			if s.tls != nil {
				s.tls.Close()
			}
			return fmt.Errorf("tio: relay: %w", err)
		}
	}
	s.pool = pool.New(s.cfg.workers, s.cfg.depth, s.cfg.maxQueued)
	s.startStats()
	opts := []gnet.Option{
		gnet.WithMulticore(s.cfg.multicore),
		gnet.WithReusePort(s.cfg.reusePort),
		gnet.WithReuseAddr(s.cfg.reuseAddr),
		gnet.WithLogger(gnetlog.Logger{L: s.log}),
		gnet.WithTicker(true),
	}
	if s.cfg.loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(s.cfg.loops))
	}
	opts = append(opts, s.cfg.gnetOptions...)
	go func() {
		err := gnet.Run(&events{s: s}, "tcp://"+s.addr, opts...)
		switch {
		case err == nil && s.closing.Load():
			err = ErrServerClosed
		case err != nil:
			err = fmt.Errorf("tio: serve on %s: %w", s.addr, err)
		}
		s.serveErr = err
		if s.tls != nil {
			s.tls.Close() // idle handshake workers exit
		}
		// Stop taking tasks, without waiting for them: Shutdown waits, up
		// to its deadline, and a handler that never returns must not keep
		// Serve from returning.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.pool.Close(done)
		select {
		case <-s.booted:
		default:
			close(s.booted)
		}
		close(s.done)
	}()
	<-s.booted
	select {
	case <-s.done:
		if r := s.cfg.relay; r != nil {
			_ = r.Stop(context.Background())
		}
		return s.serveErr
	default:
		return nil
	}
}

// Serve is Start, then a wait until the server stops: it returns
// ErrServerClosed after Shutdown, or the error that stopped it.
func (s *Server) Serve() error {
	if err := s.Start(); err != nil {
		return err
	}
	<-s.done
	return s.serveErr
}

// Addr returns the address the server listens on (with the port chosen for
// ":0"), or nil before it listens.
func (s *Server) Addr() net.Addr {
	select {
	case <-s.booted:
		return s.boundTo
	default:
		return nil
	}
}

// Shutdown stops the server gracefully. It refuses new connections and
// closes every connection with its codec's going-away farewell (WebSocket
// close 1001, binary close code 1) after the bytes queued for it, once the
// packets it has on the worker pool are handled: a connection whose handler
// is stuck does not delay the others. It then stops the engine, waits for
// the worker pool, and returns nil, or ctx's error when ctx ends first:
// then the connections still open are closed at once, Serve returns all the
// same, and only the goroutines of handlers that never return stay behind.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.started.Load() {
		return nil
	}
	s.closing.Store(true)
	<-s.booted
	select {
	case <-s.done:
		return nil
	default:
	}
	s.groups.Each(func(ch *channel.Channel) bool {
		s.closeAfterQueued(ch, channel.ReasonServerShutdown)
		return true
	})
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.groups.Len() > 0 && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		// Out of time: close what is left (its queued bytes still go out
		// while the engine stops).
		s.groups.Each(func(ch *channel.Channel) bool {
			ch.Close(channel.ReasonServerShutdown)
			return true
		})
	}
	// Engine.Stop polls for the end every 500 ms; our own done channel tells
	// it sooner, so cancel Stop's wait as soon as the engine has returned.
	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-stopCtx.Done():
		}
	}()
	_ = s.eng.Stop(stopCtx)
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	var rerr error
	if r := s.cfg.relay; r != nil {
		rerr = r.Stop(ctx)
	}
	return errors.Join(s.pool.Close(ctx), rerr)
}

// closeAfterQueued closes ch for reason r once the packets it has on the
// worker pool are handled (at once if it has none).
func (s *Server) closeAfterQueued(ch *channel.Channel, r channel.Reason) {
	l := (*link.Link)(ch)
	q := l.Queued()
	if q == nil || !q.Busy() {
		ch.Close(r)
		return
	}
	if s.pool.Then(q, pool.Task{Run: func() { ch.Close(r) }}) != nil {
		ch.Close(r)
	}
}

// bindListener turns the binding hooks into the registry's listener, each
// guarded like the other hooks.
func (s *Server) bindListener(h Hooks) registry.Listener {
	var l registry.Listener
	if f := h.OnBind; f != nil {
		l.OnBind = func(ch *channel.Channel, k registry.Kind, key string) {
			defer s.recoverHook((*link.Link)(ch), "OnBind")
			f(ch, targetOf(k, key))
		}
	}
	if f := h.OnUnbind; f != nil {
		l.OnUnbind = func(ch *channel.Channel, k registry.Kind, key string) {
			defer s.recoverHook((*link.Link)(ch), "OnUnbind")
			f(ch, targetOf(k, key))
		}
	}
	return l
}

// Stats returns a snapshot of the server's counters. Each counter is read
// atomically; the snapshot as a whole is not (counts move while it is
// taken).
func (s *Server) Stats() stats.Snapshot {
	snap := s.stats.Snapshot()
	snap.Traffic = counters.Traffic(&s.totals)
	snap.Bindings = stats.Bindings(s.groups.Sizes())
	s.statsIPs(&snap)
	s.tlsStats(&snap)
	return snap
}

// Channel returns the open channel with the given id, or nil (an id is
// unique for the server's lifetime: the id of a closed channel names no
// one, even once its descriptor is reused).
func (s *Server) Channel(id uint64) *channel.Channel { return s.groups.Channel(id) }

// onBoot implements gnet.EventHandler.OnBoot.
func (s *Server) onBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.boundTo = boundAddr(eng)
	close(s.booted)
	return gnet.None
}

// events is the server as gnet sees it. Keeping gnet's callbacks on a type
// of their own keeps them out of the Server's API.
type events struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *events) OnBoot(eng gnet.Engine) gnet.Action           { return e.s.onBoot(eng) }
func (e *events) OnOpen(c gnet.Conn) ([]byte, gnet.Action)     { return e.s.onOpen(c) }
func (e *events) OnClose(c gnet.Conn, err error) gnet.Action   { return e.s.onClose(c, err) }
func (e *events) OnTraffic(c gnet.Conn) gnet.Action            { return e.s.onTraffic(c) }
func (e *events) OnTick() (delay time.Duration, a gnet.Action) { return e.s.onTick() }

// boundAddr reads the listener's address (so that ":0" can be resolved).
func boundAddr(eng gnet.Engine) net.Addr {
	fd, err := eng.Dup()
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)))
	case *unix.SockaddrInet6:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)))
	}
	return nil
}

// onOpen implements gnet.EventHandler.OnOpen.
func (s *Server) onOpen(c gnet.Conn) ([]byte, gnet.Action) {
	// A channel's id holds its descriptor, the slot of the registry's
	// table (see link.MakeID).
	s.env.NoteLoop(c.EventLoop()) // so that blocking sends can tell they are on a loop
	fd := c.Fd()
	l := link.New(c, link.MakeID(s.nextID.Add(1), fd), &s.env)
	c.SetContext(l)
	s.stats.Accepted()
	ch := (*channel.Channel)(l)
	proxied := len(s.cfg.proxies) > 0 && s.trustedProxy(ch.RemoteAddr().Addr())
	if proxied {
		l.AwaitProxy() // the client's address, for the checks by address, comes first
		ch.SetValue(untrackedIP{}, true)
	} else {
		s.trackIP(l)
	}
	s.open.Add(1)
	if fd > link.MaxSlot { // a process with over 16M descriptors open
		l.Fail(link.ReasonTooManyConnections, nil, false)
		return nil, gnet.Close
	}
	s.groups.Attach(ch)
	if r := s.admit(ch, !proxied); r != link.ReasonNone {
		l.Fail(r, nil, false)
		return nil, gnet.Close
	}
	if s.cfg.fixed {
		l.SetCodec(0)
	}
	if s.tls != nil {
		l.AwaitTLS()
	}
	if at, ok := s.firstCheck(ch); ok {
		s.wheel.Add(ch.ID(), at)
	}
	return nil, gnet.None
}

// onClose implements gnet.EventHandler.OnClose.
func (s *Server) onClose(c gnet.Conn, err error) gnet.Action {
	l, ok := c.Context().(*link.Link)
	if !ok {
		return gnet.None
	}
	ch := (*channel.Channel)(l)
	r := l.OnClosed(err)
	_, cerr := ch.Reason()
	if r != link.ReasonClosedByPeer && r != link.ReasonClosedByApp && r != link.ReasonServerShutdown {
		s.log.Debug("tio: connection closed", "channel", ch.ID(), "remote", ch.RemoteAddr(), "reason", r.String(), "err", cerr)
	}
	if s.tls != nil {
		s.tlsClosed(l, r)
	}
	if s.cfg.hooks.OnClose != nil {
		s.onCloseHook(l, channel.Reason(r), cerr)
	}
	s.groups.Detach(ch)
	s.release(ch)
	s.untrackIP(ch)
	s.drainMu.Lock()
	delete(s.draining, l)
	s.drainMu.Unlock()
	s.stats.Closed(r)
	return gnet.None
}

// onTraffic implements gnet.EventHandler.OnTraffic: it decodes every whole packet
// buffered for the connection, dispatches each, and flushes the replies in
// one write. A connection that speaks TLS has its records decrypted first
// (internal/tlsconn), one record at a time, and its codec sees the
// plaintext.
func (s *Server) onTraffic(c gnet.Conn) gnet.Action {
	l := c.Context().(*link.Link)
	raw, _ := c.Peek(-1)
	fresh, now := l.Begin(len(raw))
	if fresh > 0 && s.cfg.hooks.OnReceived != nil {
		s.onReceived(l, fresh)
	}
	if l.AwaitingProxy() && len(raw) > 0 {
		if n := s.readProxy(l, raw); n > 0 {
			_, _ = c.Discard(n)
			raw = raw[n:]
		}
	}
	pass := inlinePass{start: now}
	ready := true // the first bytes may be given to the codec
	if l.AwaitingTLS() && !l.AwaitingProxy() && !l.Closing() && len(raw) > 0 {
		ready = s.sniffTLS(l, c, raw)
	}
	var taken, decoded int
	var partial bool
	if t := l.Transport(); t != nil {
		taken, decoded, partial = s.decryptAndDecode(l, t.(*tlsconn.Session), raw, &pass, &now)
	} else if ready && !l.AwaitingTLS() {
		taken, decoded = s.decodeAll(l, raw, &pass, &now)
		partial = taken < len(raw)
	}
	if decoded > 0 {
		s.releaseDecoder(l) // the packets' bodies are no longer needed
	}
	var end int64
	if pass.n > 0 {
		end = time.Now().UnixNano()
		s.account(l, &pass, end)
	}
	if l.Closing() {
		// A closing connection reads no more, but what the peer sent before
		// it read the farewell, then its answer, are walked as they come
		// (the decoder holds none of it): Link.ReadClosing.
		taken += l.ReadClosing(raw[taken:])
	} else if s.cfg.packetTimeout > 0 && l.HasCodec() {
		l.SetPartial(partial || l.DecoderPartial(), end)
	}
	if taken > 0 {
		_, _ = c.Discard(taken)
	}
	next := l.End(len(raw)-taken, decoded, end)
	if taken < len(raw) && next != link.Close && l.Closing() {
		next = l.AfterFarewell(c, next, end)
	}
	switch next {
	case link.Close:
		return gnet.Close
	case link.Draining:
		s.drainMu.Lock()
		s.draining[l] = struct{}{}
		s.drainMu.Unlock()
	}
	return gnet.None
}

// decodeAll sniffs the connection's codec if needed and decodes every whole
// packet of buf, dispatching each. It returns the bytes consumed and the
// packets decoded.
func (s *Server) decodeAll(l *link.Link, buf []byte, pass *inlinePass, now *int64) (consumed, decoded int) {
	if !l.HasCodec() && len(buf) > 0 && !l.AwaitingProxy() && !l.Closing() {
		s.sniff(l, buf)
	}
	if !l.HasCodec() || l.AwaitingProxy() {
		return 0, 0
	}
	// The packet escapes through the codec and handler interfaces: take a
	// scratch one rather than allocate one per pass.
	p := s.packets.Get().(*codec.Packet)
	defer func() { *p = codec.Packet{}; s.packets.Put(p) }()
	for consumed < len(buf) && !l.Closing() {
		n, ok, err := s.decode(l, buf[consumed:], p)
		consumed += n
		if err != nil {
			s.decodeFailed(l, err)
			break
		}
		if l.TookReady() && s.cfg.hooks.OnConnected != nil {
			s.onConnected(l)
		}
		if l.TookControl() && s.cfg.rate > 0 {
			// A ping or a heartbeat takes a token like a packet.
			if *now == 0 {
				*now = time.Now().UnixNano()
			}
			if !l.Allow(*now, s.cfg.rate, s.cfg.burst) {
				s.stats.RateLimited()
				if !s.cfg.rateDrop {
					l.Fail(link.ReasonRateLimited, nil, true)
					break
				}
			}
		}
		if ok {
			decoded++
			if s.cfg.rate > 0 {
				if *now == 0 {
					*now = time.Now().UnixNano()
				}
				if !l.Allow(*now, s.cfg.rate, s.cfg.burst) {
					if s.cfg.rateDrop {
						s.stats.RateLimited()
						continue
					}
					l.Fail(link.ReasonRateLimited, nil, true)
					break
				}
			}
			if s.cfg.hooks.OnDecoded != nil {
				s.onDecoded(l, p)
			}
			s.dispatch(l, p, pass)
		} else if n == 0 {
			break
		}
	}
	return consumed, decoded
}

// inlinePass accounts for the packets handled inline during one pass of the
// event loop without reading the clock per packet: the pass's time from its
// first read to its last inline handler is shared among them. (The clock is
// read at those two points anyway, for the channel's last-received and
// last-sent times.)
type inlinePass struct {
	start int64 // when the packets not yet accounted for began, unix ns
	types [32]codec.Type
	n     int
}

// account records the inline packets of a pass as handled at time end.
func (s *Server) account(l *link.Link, pass *inlinePass, end int64) {
	if pass.n == 0 {
		return
	}
	if pass.start == 0 || end < pass.start {
		pass.start = end
	}
	total := time.Duration(end - pass.start)
	l.Handled(pass.n, total)
	if s.cfg.stats {
		each := total / time.Duration(pass.n)
		run := 0 // packets of one type in a row: one observation
		for i, t := range pass.types[:pass.n] {
			if i+1 == pass.n || pass.types[i+1] != t {
				s.stats.ObserveN(t, each, i+1-run)
				run = i + 1
			}
		}
	}
	pass.start, pass.n = end, 0
}

// sniff chooses the connection's codec from its first bytes.
func (s *Server) sniff(l *link.Link, first []byte) {
	more := false
	for i, cd := range s.cfg.codecs {
		sn, ok := cd.(codec.Sniffer)
		if !ok {
			continue
		}
		switch sn.Sniff(first) {
		case codec.Matched:
			l.SetCodec(i)
			return
		case codec.NeedMore:
			more = true
		}
	}
	if !more || len(first) >= s.cfg.sniffLimit {
		l.Fail(link.ReasonUnknownProtocol, fmt.Errorf("tio: first bytes %q match no codec", first[:min(len(first), 16)]), false)
	}
}

// dispatch routes one packet: inline on the loop, or copied to the pool.
func (s *Server) dispatch(l *link.Link, p *codec.Packet, pass *inlinePass) {
	if p.Type == websocket.TypeHTTP && s.cfg.http != nil {
		if _, ok := l.Codec().(*websocket.Codec); ok {
			s.serveHTTP(l, p)
			return
		}
	}
	h, inline := s.handler, handler.IsInline(s.handler)
	if s.router != nil {
		h, inline = s.router.Route(p)
	}
	if h == nil {
		s.stats.Dropped()
		return
	}
	if inline && !l.Busy() {
		if s.cfg.hooks.OnHandled != nil {
			s.serve(l, h, p) // the hook asked for each handler's own time
			return
		}
		if !s.serveInline(l, h, p) {
			return // a panic is counted as one, not as a handled packet
		}
		pass.types[pass.n] = p.Type
		if pass.n++; pass.n == len(pass.types) {
			s.account(l, pass, time.Now().UnixNano())
		}
		return
	}
	pk := &codec.Packet{Type: p.Type, ID: p.ID, Reply: p.Reply, Body: append([]byte(nil), p.Body...)}
	err := s.pool.Submit(l.Queue(), pool.Task{
		Run:   func() { s.serve(l, h, pk) },
		Label: uint32(p.Type),
		Size:  len(pk.Body),
	})
	if err != nil {
		l.Fail(link.ReasonOverloaded, err, true)
	}
}

// recoverHandler turns a handler's panic into a close of its channel alone.
func (s *Server) recoverHandler(ch *channel.Channel, p *codec.Packet) {
	if v := recover(); v != nil {
		closed := (*link.Link)(ch).CloseFor(link.ReasonHandlerPanic)
		s.stats.Panicked(closed)
		s.log.Error("tio: handler panicked", "channel", ch.ID(), "type", p.Type, "panic", v, "stack", string(debug.Stack()))
	}
}

// serveInline runs an inline handler; the pass accounts for its time.
// It reports whether the handler returned (false: it panicked).
func (s *Server) serveInline(l *link.Link, h handler.Handler, p *codec.Packet) (returned bool) {
	ch := (*channel.Channel)(l)
	defer s.recoverHandler(ch, p)
	h.ServePacket(ch, p)
	return true
}

// serve runs h and records the time it took.
func (s *Server) serve(l *link.Link, h handler.Handler, p *codec.Packet) {
	ch := (*channel.Channel)(l)
	defer s.recoverHandler(ch, p)
	begin := time.Now()
	h.ServePacket(ch, p)
	cost := time.Since(begin)
	l.Handled(1, cost)
	if s.cfg.stats {
		s.stats.Observe(p.Type, cost)
	}
	if f := s.cfg.hooks.OnHandled; f != nil {
		f(ch, p, cost)
	}
}

// Calls into user and codec code on a loop are guarded: a panic closes the
// connection it happened on (as channel.ReasonHandlerPanic, with the codec's
// internal-error farewell: HTTP 500 before a WebSocket upgrade, close 1011
// after, binary close code 5), is counted in Stats().HandlerPanics and
// logged with its stack, and the loop goes on serving its other
// connections.

// panicError is a panic recovered from a decoder (or a codec hook such as
// a WebSocket handshake hook, which runs inside it).
type panicError struct {
	v     any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("tio: codec panicked: %v", e.v) }

// Unwrap makes the panic an internal error for the codec's farewell.
func (e *panicError) Unwrap() error { return codec.ErrInternal }

// decode runs the connection's decoder, turning a panic into a panicError.
func (s *Server) decode(l *link.Link, in []byte, p *codec.Packet) (n int, ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, ok, err = 0, false, &panicError{v: v, stack: debug.Stack()}
		}
	}()
	return l.Decode(in, p)
}

// releaseDecoder tells the decoder its packets were handled
// (codec.Releaser), guarded like Decode.
func (s *Server) releaseDecoder(l *link.Link) {
	defer func() {
		if v := recover(); v != nil {
			s.decodeFailed(l, &panicError{v: v, stack: debug.Stack()})
		}
	}()
	l.ReleaseDecoder()
}

// decodeFailed closes a connection whose decoder failed (or panicked).
func (s *Server) decodeFailed(l *link.Link, err error) {
	var pe *panicError
	if errors.As(err, &pe) {
		s.stats.Panicked(l.CloseFor(link.ReasonHandlerPanic))
		s.log.Error("tio: codec or handshake hook panicked", "channel", l.ID(), "remote", l.RemoteAddr(), "panic", pe.v, "stack", string(pe.stack))
		return
	}
	r := link.ReasonOf(err)
	if r != link.ReasonClosedByPeer && r != link.ReasonHandshakeRefused {
		l.DecodeError()
	}
	l.Fail(r, err, false)
}

// recoverHook, deferred around a hook, closes l's connection if the hook
// panicked.
func (s *Server) recoverHook(l *link.Link, hook string) {
	if v := recover(); v != nil {
		s.stats.Panicked(l.CloseFor(link.ReasonHandlerPanic))
		s.log.Error("tio: hook panicked", "hook", hook, "channel", l.ID(), "panic", v, "stack", string(debug.Stack()))
	}
}

func (s *Server) onConnected(l *link.Link) {
	defer s.recoverHook(l, "OnConnected")
	s.cfg.hooks.OnConnected((*channel.Channel)(l))
}

func (s *Server) onReceived(l *link.Link, n int) {
	defer s.recoverHook(l, "OnReceived")
	s.cfg.hooks.OnReceived((*channel.Channel)(l), n)
}

func (s *Server) onDecoded(l *link.Link, p *codec.Packet) {
	defer s.recoverHook(l, "OnDecoded")
	s.cfg.hooks.OnDecoded((*channel.Channel)(l), p)
}

func (s *Server) onCloseHook(l *link.Link, r channel.Reason, err error) {
	defer s.recoverHook(l, "OnClose")
	s.cfg.hooks.OnClose((*channel.Channel)(l), r, err)
}
