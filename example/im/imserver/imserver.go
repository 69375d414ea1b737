// Package imserver is the chat server of example/im: users, rooms with
// presence and history, direct messages to every tab of a user, typing
// notices, acknowledgements and an admin kick, over one port that also
// serves the chat page, /metrics and tio's binary protocol. The protocol is
// JSON, one object per WebSocket text message (or binary-protocol packet of
// type websocket.TypeText), documented in docs/im-protocol.md.
//
//	srv := imserver.New("127.0.0.1:8080", imserver.WithAdminToken(token))
//	if err := srv.Start(); err != nil { … }
//	defer srv.Shutdown(ctx)
//
// WithCluster makes the server one node of several (package cluster): a
// room spans the nodes, DMs reach every tab on every node, online lists are
// the cluster's, a kick closes the user's connections everywhere, and
// message ids are unique across nodes. docs/im-protocol.md says how.
//
// Every piece of state hangs off the *Server: tests run many in one process.
package imserver

import (
	"cmp"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/cluster"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
)

// Limits bound what a peer can make the server hold or do. In every field
// zero keeps the default.
type Limits struct {
	// MaxText bounds a message's text, in bytes of UTF-8 (default 2,000).
	MaxText int
	// History is how many messages of a room are kept and sent on join
	// (default 50).
	History int
	// MaxRooms bounds the rooms the server keeps (default 256). When a new
	// room is needed, the empty room idle longest is forgotten with its
	// history; if none is empty the join fails with too_many_rooms.
	MaxRooms int
	// MaxRoomsPerUser bounds the rooms one user is in, over all their
	// connections (default 20).
	MaxRoomsPerUser int
	// MaxUsersPerRoom bounds a room's users (default 1,000).
	MaxUsersPerRoom int
	// MaxConnsPerUser bounds the connections (tabs, devices) of one user
	// (default 8).
	MaxConnsPerUser int
	// Rate and Burst are each user's message budget over all their
	// connections (say and dm): Rate a second sustained, bursts of Burst
	// (defaults 5 and 10). Past it a message is refused with rate_limited.
	Rate  float64
	Burst int
	// ConnRate and ConnBurst bound each connection's inbound frames of any
	// kind, pings included (defaults 30 and 60): past it the connection is
	// closed as rate_limited (tio.WithRateLimit).
	ConnRate  float64
	ConnBurst int
	// MaxFrame bounds one inbound frame or packet, in bytes (default
	// 16 KiB): past it the connection is closed (WebSocket 1009).
	MaxFrame int
	// MaxOutbound bounds the bytes waiting for one slow peer (default
	// 1 MiB): past it the connection is closed as slow_consumer.
	MaxOutbound int
	// KickBan is how long a kicked user cannot log in again (default 1
	// minute).
	KickBan time.Duration
	// MaxConnsPerIP bounds the connections from one IP address (default:
	// none; the benchmark opens thousands from 127.0.0.1). Past it a
	// connection is refused at accept (tio.Limits.MaxConnectionsPerIP).
	MaxConnsPerIP int
}

func (l Limits) withDefaults() Limits {
	l.MaxText = cmp.Or(l.MaxText, 2000)
	l.History = cmp.Or(l.History, 50)
	l.MaxRooms = cmp.Or(l.MaxRooms, 256)
	l.MaxRoomsPerUser = cmp.Or(l.MaxRoomsPerUser, 20)
	l.MaxUsersPerRoom = cmp.Or(l.MaxUsersPerRoom, 1000)
	l.MaxConnsPerUser = cmp.Or(l.MaxConnsPerUser, 8)
	l.Rate = cmp.Or(l.Rate, 5)
	l.Burst = cmp.Or(l.Burst, 10)
	l.ConnRate = cmp.Or(l.ConnRate, 30)
	l.ConnBurst = cmp.Or(l.ConnBurst, 60)
	l.MaxFrame = cmp.Or(l.MaxFrame, 16<<10)
	l.MaxOutbound = cmp.Or(l.MaxOutbound, 1<<20)
	l.KickBan = cmp.Or(l.KickBan, time.Minute)
	return l
}

// Name lengths.
const (
	maxUserName = 24
	maxRoomName = 32
	maxRef      = 64
	maxReason   = 80
)

// Option configures a Server.
type Option func(*config)

type config struct {
	adminToken string
	logger     *slog.Logger
	limits     Limits
	heartbeat  time.Duration
	tioOpts    []tio.Option
	web        fs.FS
	node       *cluster.Node
}

// WithAdminToken sets the token that makes a login an admin's
// ({"cmd":"login","user":U,"token":T}); admins may kick. Without it (or
// with an empty token) nobody is an admin.
func WithAdminToken(token string) Option { return func(c *config) { c.adminToken = token } }

// WithLogger sets the logger of the server and of tio underneath (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithLimits sets the server's limits (see Limits; zero fields keep their
// defaults).
func WithLimits(l Limits) Option { return func(c *config) { c.limits = l } }

// WithHeartbeat sets how long a connection may stay silent before it is
// closed (default 60 s). The welcome event tells clients to ping every
// third of it.
func WithHeartbeat(d time.Duration) Option { return func(c *config) { c.heartbeat = d } }

// WithServerOptions passes options to the tio.Server underneath, after the
// server's own (so they override them): a relay to other nodes, event
// loops, trusted proxies.
func WithServerOptions(opts ...tio.Option) Option {
	return func(c *config) { c.tioOpts = append(c.tioOpts, opts...) }
}

// WithCluster makes the server a node of a cluster: node's options
// (cluster.Node.Options: the relay and the presence hooks) are added to the
// server's, and the chat uses the cluster for what spans nodes — a room's
// online list and its joined and left notices come from node's rosters
// (Enter and Exit per room and user), the offline check of a DM from its
// presence, other nodes' room messages are kept in this node's history
// and kicks on other nodes ban here too (node.OnReceive), and message ids
// carry a tag drawn from node.ID(). The server sets node's OnRosterChange
// and OnReceive: give it a node of its own, not started (the server's Start
// starts it, Shutdown stops it).
func WithCluster(node *cluster.Node) Option { return func(c *config) { c.node = node } }

// Server is the chat server: a *tio.Server (Start, Serve, Shutdown, Addr,
// Stats, MetricsHandler…) and the chat's state.
type Server struct {
	*tio.Server
	hub *hub
}

// New returns the chat server for addr. Start it with Start or Serve.
func New(addr string, opts ...Option) *Server {
	c := config{logger: slog.Default(), heartbeat: 60 * time.Second, web: webFS()}
	for _, o := range opts {
		o(&c)
	}
	c.limits = c.limits.withDefaults()
	h := newHub(c)

	cmds := handler.NewJSONMux("cmd")
	h.routes(cmds)
	mux := handler.NewMux()
	mux.Handle(websocket.TypeText, cmds)
	mux.NotFound(handler.InlineFunc(h.notJSON))

	l := c.limits
	// Every tio option of the chat server is here, in one list: the
	// cluster's options are appended by WithServerOptions.
	tioOpts := []tio.Option{
		tio.WithLogger(c.logger),
		tio.WithHTTP(h.httpHandler(c.web)),
		tio.WithUpgrade(h.upgrade),
		tio.WithHooks(tio.Hooks{OnConnected: h.connected, OnClose: h.closed}),
		tio.WithHeartbeat(c.heartbeat, nil),
		tio.WithRateLimit(l.ConnRate, l.ConnBurst, false),
		tio.WithLimits(tio.Limits{
			MaxConnectionsPerIP: l.MaxConnsPerIP,
			MaxFrame:            int64(l.MaxFrame),
			MaxMessage:          int64(l.MaxFrame),
			MaxPacket:           l.MaxFrame,
			MaxOutbound:         l.MaxOutbound,
			MaxQueued:           64 * l.MaxFrame,
		}),
		tio.WithWorkers(0, 64), // 64 commands queued per connection, at most
	}
	if c.node != nil {
		tioOpts = append(tioOpts, c.node.Options()...)
		c.node.OnRosterChange(h.rosterChanged)
		c.node.OnReceive(h.received)
	}
	srv := &Server{Server: tio.NewServer(addr, mux, append(tioOpts, c.tioOpts...)...), hub: h}
	h.srv = srv.Server
	h.metrics = srv.MetricsHandler()
	return srv
}

// Online returns the users in room, sorted: on every node of the cluster
// (other nodes' as their last roster messages told), with WithCluster.
func (s *Server) Online(room string) []string { return s.hub.online(room) }

// History returns the ids of the messages room keeps on this server,
// oldest first.
func (s *Server) History(room string) []uint64 { return s.hub.historyIDs(room) }

// Rooms returns the number of rooms the server keeps (with WithCluster,
// those with members here and those kept for the history of other nodes'
// messages).
func (s *Server) Rooms() int { return s.hub.roomCount() }

// httpHandler serves the page, /metrics and /healthz.
func (h *hub) httpHandler(web fs.FS) http.Handler {
	mux := http.NewServeMux()
	files := http.FileServerFS(web)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// The page loads its own script and style and talks to its own
		// WebSocket; nothing else. Even a text that got into the DOM as
		// HTML could not run a script.
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /metrics", metricsHandler{h})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "this is the chat's WebSocket endpoint: connect with a WebSocket client", http.StatusUpgradeRequired)
	})
	return mux
}

// metricsHandler serves the tio server's metrics, looked up at request
// time (the hub is built before the server).
type metricsHandler struct{ h *hub }

func (m metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.h.metrics.ServeHTTP(w, r)
}

// upgrade accepts WebSocket upgrades at /ws only, and logs in from
// /ws?user=U.
func (h *hub) upgrade(ch *channel.Channel, r *websocket.Request) error {
	if r.Path != "/ws" {
		return websocket.Reject(http.StatusNotFound, "the chat's WebSocket endpoint is /ws")
	}
	s := h.newSession(ch)
	if u := r.Query().Get("user"); u != "" {
		// Errors are told once the connection is open (connected).
		s.pending = h.login(ch, s, u, "", "")
	}
	return nil
}
