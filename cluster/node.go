package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Errors of Publish (the server returns them from Send, SendWait and Close
// wrapped in tio.ErrRelay, after delivering to its own connections) and of
// the node's lifecycle.
var (
	// ErrUnavailable: the connection to NATS is down (the node is
	// reconnecting); the send reached this node's connections only.
	ErrUnavailable = errors.New("cluster: NATS unavailable")
	// ErrBackpressure: more than Config.MaxOutbound bytes wait for NATS.
	ErrBackpressure = errors.New("cluster: outbound queue full")
	// ErrTooBig: the message is larger than the NATS server's max payload.
	// Messages are not chunked.
	ErrTooBig = errors.New("cluster: message over the NATS max payload")
	// ErrNotRunning: the node is not started, or stopped.
	ErrNotRunning = errors.New("cluster: node not running")
	// ErrStarted: Start was called on a node already started (one node
	// serves one tio.Server).
	ErrStarted = errors.New("cluster: node already started")
)

// fullEvery is how often a node sends its whole presence even when nobody
// asked (a safety net: lost updates are detected by their numbers, and
// at scale a full state is the largest presence traffic).
const fullEvery = 10 * time.Minute

// Node is one tio server's membership in a cluster: it implements
// tio.Relay (sends and closes to other nodes over NATS, and theirs to this
// node's connections) and keeps the cluster's presence (which users are
// online where). Make one with New, give its Options to tio.NewServer; the
// server starts and stops it. Every method is safe for concurrent use;
// nothing is shared between nodes (many may run in one process).
type Node struct {
	cfg        Config
	id         string
	idb        []byte
	log        *slog.Logger
	kinds      [9]bool
	subjects   [9]string
	presSubj   string
	rosterSubj string
	epoch      uint64

	mu    sync.Mutex   // Start and Stop
	gate  sync.RWMutex // held shared by subscription handlers; Stop waits for them
	state atomic.Int32
	local tio.Local
	ns    *server.Server
	nc    *nats.Conn
	subs  [3]atomic.Pointer[nats.Subscription] // relay, presence, rosters
	url   atomic.Pointer[string]               // ClientURL
	stop  chan struct{}
	wg    sync.WaitGroup

	connected  atomic.Bool
	maxPayload atomic.Int64
	out        *outbox

	self     selfPresence
	view     view
	seq      uint64 // presence updates sent (heartbeat goroutine)
	lastFull time.Time
	want     atomic.Bool // a full state was asked for
	syncAll  atomic.Bool // ask every node for its full state
	wake     chan struct{}
	presBuf  []byte

	rosters   selfRosters
	onRoster  atomic.Pointer[func(roster string)]
	onReceive atomic.Pointer[func(m tio.RelayMessage, local tio.Local) bool]
	rseq      uint64    // roster updates sent (heartbeat goroutine)
	rlast     time.Time // the last roster publication (heartbeat goroutine)
	rlastFull time.Time
	rents     []rosterEntry
	rwant     atomic.Bool // the full rosters were asked for
	rwake     chan struct{}

	st      counters
	lastLog [nLogKinds]atomic.Int64 // rate limits of repeated warnings
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// New checks cfg and returns a node; it does no I/O (the server's Start
// starts it). Errors wrap ErrConfig.
func New(cfg Config) (*Node, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, id: cfg.NodeID, log: cfg.Logger, wake: make(chan struct{}, 1), rwake: make(chan struct{}, 1)}
	if n.id == "" {
		n.id = nuid.Next()
	}
	n.idb = []byte(n.id)
	for _, k := range cfg.Kinds {
		n.kinds[k] = true
	}
	for _, k := range relayedKinds {
		n.subjects[k] = cfg.Prefix + ".relay." + k.String()
	}
	n.presSubj = cfg.Prefix + ".presence"
	n.rosterSubj = cfg.Prefix + ".rosters"
	var e [8]byte
	_, _ = rand.Read(e[:])
	n.epoch = binary.BigEndian.Uint64(e[:])
	n.out = newOutbox(cfg.MaxOutbound)
	n.self.init()
	n.rosters.init()
	n.view.init(cfg.MaxPresenceBytes, cfg.MaxNodes)
	n.log = n.log.With("node", n.id)
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Options returns the server options that make a tio.Server this node's:
// tio.WithRelay(n) and tio.WithHooks with the bind hooks that feed
// presence (bindings to tio.User targets). Give them to one server:
//
//	srv := tio.NewServer(addr, mux, node.Options()...)
func (n *Node) Options() []tio.Option {
	return []tio.Option{
		tio.WithRelay(n),
		tio.WithHooks(tio.Hooks{OnBind: n.onBind, OnUnbind: n.onUnbind}),
	}
}

func (n *Node) onBind(_ *channel.Channel, t tio.Target)   { n.bound(t, 1) }
func (n *Node) onUnbind(_ *channel.Channel, t tio.Target) { n.bound(t, -1) }

func (n *Node) bound(t tio.Target, d int32) {
	if t.Kind() != tio.KindUser {
		return
	}
	if k := t.Key(); len(k) <= MaxPresenceKey {
		n.self.add(k, d)
	} else {
		n.st.untracked.Add(1)
	}
}

// ClientURL returns the URL at which other nodes reach the embedded NATS
// server ("nats://127.0.0.1:4222", with the port chosen for Listen's port
// 0), for their Config.URL; "" if the node embeds no server, or one that
// does not listen, or before Start.
func (n *Node) ClientURL() string {
	if u := n.url.Load(); u != nil {
		return *u
	}
	return ""
}

// Start implements tio.Relay; the server's Start calls it. It starts the
// embedded NATS server (without Config.URL), connects, subscribes, and
// starts the node's two goroutines (one hands messages to NATS, one sends
// heartbeats); it returns once the subscriptions are registered with the
// server (at most Config.StartTimeout), or the error that kept it from
// starting.
func (n *Node) Start(local tio.Local) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state.Load() != stateNew {
		return ErrStarted
	}
	if local == nil {
		return fmt.Errorf("%w: Start without a Local", ErrConfig)
	}
	n.local = local
	if err := n.connect(); err != nil {
		n.teardown()
		return err
	}
	n.stop = make(chan struct{})
	n.state.Store(stateRunning)
	n.wg.Add(2)
	go n.publisher()
	go n.heartbeats()
	n.log.Info("cluster: node started", "nats", n.where(), "prefix", n.cfg.Prefix)
	return nil
}

func (n *Node) where() string {
	switch {
	case n.cfg.URL != "":
		return n.cfg.URL
	case n.cfg.Listen != "":
		return "embedded, listening on " + n.ns.ClientURL()
	}
	return "embedded, in process"
}

// connect starts the embedded server if there is one, connects and
// subscribes.
func (n *Node) connect() error {
	if n.cfg.URL == "" {
		ns, err := n.startEmbedded()
		if err != nil {
			return err
		}
		n.ns = ns
		if n.cfg.Listen != "" {
			u := ns.ClientURL()
			n.url.Store(&u)
		}
	}
	o := nats.GetDefaultOptions()
	o.Name = "tio-node-" + n.id
	o.MaxReconnect = -1 // a node keeps trying for as long as it runs
	for _, opt := range n.cfg.NATSOptions {
		if err := opt(&o); err != nil {
			return fmt.Errorf("%w: NATSOptions: %w", ErrConfig, err)
		}
	}
	o.NoEcho = true
	switch {
	case n.ns != nil && n.cfg.Listen == "":
		o.InProcessServer = n.ns
		o.Url, o.Servers = "", nil
	case n.ns != nil:
		o.Url, o.Servers = n.ns.ClientURL(), nil
	default:
		o.Url, o.Servers = "", nil
		for _, u := range strings.Split(n.cfg.URL, ",") {
			o.Servers = append(o.Servers, strings.TrimSpace(u))
		}
	}
	n.chainHandlers(&o)
	nc, err := o.Connect()
	if err != nil {
		return fmt.Errorf("cluster: connect to NATS (%s): %w", n.where(), err)
	}
	n.nc = nc
	if nc.IsConnected() {
		n.connected.Store(true)
		n.maxPayload.Store(nc.MaxPayload())
	}
	for i, s := range []struct {
		subj string
		f    nats.MsgHandler
	}{{n.cfg.Prefix + ".relay.*", n.onRelay}, {n.presSubj, n.onPresence}, {n.rosterSubj, n.onRosters}} {
		sub, err := nc.Subscribe(s.subj, s.f)
		if err != nil {
			return fmt.Errorf("cluster: subscribe to %s: %w", s.subj, err)
		}
		if err := sub.SetPendingLimits(n.cfg.PendingMsgs, n.cfg.PendingBytes); err != nil {
			return fmt.Errorf("%w: pending limits: %w", ErrConfig, err)
		}
		n.subs[i].Store(sub)
	}
	if nc.IsConnected() {
		if err := nc.FlushTimeout(n.cfg.StartTimeout); err != nil {
			return fmt.Errorf("cluster: subscribe: %w", err)
		}
	}
	n.syncAll.Store(true)
	return nil
}

// chainHandlers installs the node's connection handlers after those set
// by NATSOptions.
func (n *Node) chainHandlers(o *nats.Options) {
	disc, rec, conn, closed, async := o.DisconnectedErrCB, o.ReconnectedCB, o.ConnectedCB, o.ClosedCB, o.AsyncErrorCB
	o.DisconnectedErrCB = func(c *nats.Conn, err error) {
		if n.connected.Swap(false) && n.state.Load() == stateRunning {
			n.st.disconnects.Add(1)
			n.log.Warn("cluster: disconnected from NATS; sends reach this node only until it reconnects", "err", err)
		}
		if disc != nil {
			disc(c, err)
		}
	}
	o.ReconnectedCB = func(c *nats.Conn) {
		if n.state.Load() != stateStopped {
			n.maxPayload.Store(c.MaxPayload())
			n.connected.Store(true)
			n.st.reconnects.Add(1)
			n.want.Store(true)
			n.rwant.Store(true)
			n.syncAll.Store(true)
			n.kick()
			n.log.Info("cluster: reconnected to NATS", "url", c.ConnectedUrlRedacted())
		}
		if rec != nil {
			rec(c)
		}
	}
	o.ConnectedCB = func(c *nats.Conn) { // the first connection (later, with nats.RetryOnFailedConnect)
		if n.state.Load() != stateStopped {
			n.maxPayload.Store(c.MaxPayload())
			n.connected.Store(true)
		}
		if conn != nil {
			conn(c)
		}
	}
	o.ClosedCB = func(c *nats.Conn) {
		n.connected.Store(false)
		if closed != nil {
			closed(c)
		}
	}
	o.AsyncErrorCB = func(c *nats.Conn, s *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			n.warnf(logSlow, "cluster: slow consumer: NATS messages dropped (the pending limits were reached)", "subject", s.Subject)
		} else {
			n.warnf(logAsync, "cluster: NATS error", "err", err)
		}
		if async != nil {
			async(c, s, err)
		}
	}
}

// kick wakes the heartbeat goroutine.
func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Publish implements tio.Relay: it encodes m and queues it for NATS, on
// the sending goroutine (an event loop, for an inline handler), and never
// blocks. It fails fast with ErrUnavailable while the connection to NATS
// is down, ErrBackpressure when Config.MaxOutbound bytes already wait,
// ErrTooBig for a message over NATS's max payload, ErrNotRunning outside
// Start and Stop; each failure is counted (Stats.Failed). A send or
// close to a kind of target not in Config.Kinds stays on this node (nil).
// A message accepted may still be lost if the connection breaks before it
// is written: delivery to other nodes is at most once.
func (n *Node) Publish(m tio.RelayMessage) error {
	k := m.Target.Kind()
	if int(k) >= len(n.kinds) || !n.kinds[k] {
		return nil
	}
	if n.state.Load() != stateRunning {
		n.st.pubFailed.Add(1)
		return ErrNotRunning
	}
	if !n.connected.Load() {
		n.st.pubFailed.Add(1)
		return ErrUnavailable
	}
	b := n.out.buf()
	var err error
	if *b, err = appendMessage((*b)[:0], n.id, m); err != nil {
		n.out.put(b)
		n.st.pubFailed.Add(1)
		return err
	}
	if max := n.maxPayload.Load(); int64(len(*b)) > max {
		l := len(*b)
		n.out.put(b)
		n.st.pubFailed.Add(1)
		return fmt.Errorf("%w: %d bytes, over %d", ErrTooBig, l, max)
	}
	if !n.out.push(n.subjects[k], b) {
		n.out.put(b)
		n.st.pubFailed.Add(1)
		if n.state.Load() != stateRunning {
			return ErrNotRunning
		}
		return ErrBackpressure
	}
	return nil
}

// publisher hands queued messages to nats.go, which may block (a write
// to the socket when its buffer is full): only this goroutine waits.
func (n *Node) publisher() {
	defer n.wg.Done()
	var batch []outMsg
	for {
		var ok bool
		if batch, ok = n.out.take(batch); !ok {
			return
		}
		for _, m := range batch {
			if err := n.nc.Publish(m.subj, *m.b); err != nil {
				n.st.lost.Add(1)
				n.warnf(logPublish, "cluster: publish to NATS failed; the message is lost", "err", err)
			} else {
				n.st.published.Add(1)
			}
		}
		n.out.done(batch)
	}
}

// onRelay delivers what another node published to this node's
// connections. It runs on the relay subscription's goroutine (nats.go's);
// Local.Send and Local.Close only queue.
func (n *Node) onRelay(msg *nats.Msg) {
	if !n.enter() {
		return
	}
	defer n.gate.RUnlock()
	m, err := decodeMessage(msg.Data)
	switch {
	case errors.Is(err, ErrNewerVersion):
		n.st.newer.Add(1)
		n.warnf(logVersion, "cluster: dropped a message of a newer version (upgrade this node)", "err", err)
		return
	case err != nil:
		n.st.malformed.Add(1)
		n.warnf(logMalformed, "cluster: dropped a malformed message", "subject", msg.Subject, "err", err)
		return
	case bytes.Equal(m.origin, n.idb):
		n.st.own.Add(1)
		n.warnf(logOwn, "cluster: a message with this node's id from another node: two nodes share an id")
		return
	case !n.kinds[m.target.Kind()]:
		n.st.ignored.Add(1)
		return
	}
	n.st.received.Add(1)
	if f := n.onReceive.Load(); f != nil && !n.callReceive(*f, &m) {
		n.st.intercepted.Add(1)
		return
	}
	switch m.op {
	case tio.RelaySend:
		res, err := n.local.Send(m.target, &codec.Packet{Type: m.typ, Body: m.body})
		n.st.delivered.Add(uint64(res.OK))
		n.st.deliverFailed.Add(uint64(res.Failed))
		if err != nil {
			n.warnf(logDeliver, "cluster: delivery of a relayed send failed", "target", m.target, "err", err)
		}
	case tio.RelayClose:
		c, err := n.local.Close(m.target, m.reason, string(m.text))
		n.st.closed.Add(uint64(c))
		if err != nil {
			n.warnf(logDeliver, "cluster: relayed close failed", "target", m.target, "err", err)
		}
	}
}

// callReceive runs the OnReceive function on m and reports whether the
// node is to deliver m (true too if f panicked).
func (n *Node) callReceive(f func(tio.RelayMessage, tio.Local) bool, m *message) (deliver bool) {
	defer func() {
		if v := recover(); v != nil {
			n.log.Error("cluster: OnReceive panicked; the message is delivered", "target", m.target, "panic", v)
			deliver = true
		}
	}()
	rm := tio.RelayMessage{Op: m.op, Target: m.target}
	if m.op == tio.RelaySend {
		rm.Packet = &codec.Packet{Type: m.typ, Body: m.body}
	} else {
		rm.Reason, rm.Text = m.reason, string(m.text)
	}
	return f(rm, n.local)
}

// enter admits a subscription handler while the node runs (with the gate
// held shared: RUnlock it).
func (n *Node) enter() bool {
	n.gate.RLock()
	if n.state.Load() != stateRunning {
		n.gate.RUnlock()
		return false
	}
	return true
}

// onPresence applies another node's presence message. It runs on the
// presence subscription's goroutine.
func (n *Node) onPresence(msg *nats.Msg) {
	if !n.enter() {
		return
	}
	defer n.gate.RUnlock()
	m, err := decodePresence(msg.Data)
	switch {
	case errors.Is(err, ErrNewerVersion):
		n.st.newer.Add(1)
		n.warnf(logVersion, "cluster: dropped a presence message of a newer version (upgrade this node)", "err", err)
		return
	case err != nil:
		n.st.malformed.Add(1)
		n.warnf(logMalformed, "cluster: dropped a malformed presence message", "err", err)
		return
	case bytes.Equal(m.origin, n.idb):
		n.st.own.Add(1)
		n.warnf(logOwn, "cluster: presence with this node's id from another node: two nodes share an id")
		return
	}
	switch m.typ {
	case presUpdate:
		changed, joined, dropped, ok := n.view.applyUpdate(&m, time.Now(), nil)
		n.rostersChanged(changed)
		switch {
		case !ok:
			n.st.presDropped.Add(1)
			n.warnf(logNodes, "cluster: too many nodes (MaxNodes): presence of a node ignored", "from", string(m.origin))
		case dropped:
			n.st.presDropped.Add(1)
			n.warnf(logPresMem, "cluster: presence over MaxPresenceBytes: entries dropped", "from", string(m.origin))
		}
		if joined && n.state.Load() == stateRunning {
			n.log.Info("cluster: node joined", "peer", string(m.origin))
		}
	case presBye:
		changed, ok := n.view.bye(m.origin, m.epoch, nil)
		if ok {
			n.log.Info("cluster: node left", "peer", string(m.origin))
		}
		n.rostersChanged(changed)
	case presSync:
		if len(m.want) == 0 || bytes.Equal(m.want, n.idb) {
			n.want.Store(true)
			n.kick()
		}
	}
}

// onRosters applies another node's roster message. It runs on the roster
// subscription's goroutine.
func (n *Node) onRosters(msg *nats.Msg) {
	if !n.enter() {
		return
	}
	defer n.gate.RUnlock()
	m, err := decodeRosters(msg.Data)
	switch {
	case errors.Is(err, ErrNewerVersion):
		n.st.newer.Add(1)
		n.warnf(logVersion, "cluster: dropped a roster message of a newer version (upgrade this node)", "err", err)
		return
	case err != nil:
		n.st.malformed.Add(1)
		n.warnf(logMalformed, "cluster: dropped a malformed roster message", "err", err)
		return
	case bytes.Equal(m.origin, n.idb):
		n.st.own.Add(1)
		n.warnf(logOwn, "cluster: rosters with this node's id from another node: two nodes share an id")
		return
	}
	switch m.typ {
	case presUpdate:
		changed, dropped, _ := n.view.applyRosters(&m, time.Now(), nil)
		if dropped {
			n.st.presDropped.Add(1)
			n.warnf(logPresMem, "cluster: rosters over MaxPresenceBytes: entries dropped", "from", string(m.origin))
		}
		n.rostersChanged(changed)
	case presSync:
		if len(m.want) == 0 || bytes.Equal(m.want, n.idb) {
			n.rwant.Store(true)
			n.kick()
		}
	}
}

// rostersChanged calls the OnRosterChange function for each roster named.
func (n *Node) rostersChanged(changed []string) {
	f := n.onRoster.Load()
	if f == nil || len(changed) == 0 {
		return
	}
	for _, r := range distinct(changed) {
		n.callRoster(*f, r)
	}
}

func (n *Node) callRoster(f func(string), roster string) {
	defer func() {
		if v := recover(); v != nil {
			n.log.Error("cluster: OnRosterChange panicked", "roster", roster, "panic", v)
		}
	}()
	f(roster)
}

// heartbeats publishes this node's presence every Heartbeat (a full state
// first, when asked, and every ten minutes; what changed otherwise) and forgets
// the nodes not heard of within their TTL. Roster changes go out sooner:
// at once, or at most every Heartbeat/8.
func (n *Node) heartbeats() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	rt := time.NewTimer(time.Hour)
	rt.Stop()
	defer rt.Stop()
	armed := false
	every := n.cfg.Heartbeat / 8
	var out, agg []entry
	var last time.Time
	for full := true; ; full = false {
		out, agg = n.beat(full, out[:0], agg[:0])
		last = time.Now()
	wait:
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
				break wait
			case <-n.wake:
				// Asked for a full state, or reconnected: beat now, but
				// not more than four times a Heartbeat.
				if time.Since(last) >= n.cfg.Heartbeat/4 {
					break wait
				}
			case <-n.rwake:
				// A roster changed: publish it now, or, if rosters went
				// out less than Heartbeat/8 ago, then.
				if d := every - time.Since(n.rlast); d > 0 {
					if !armed {
						rt.Reset(d)
						armed = true
					}
				} else {
					n.publishRosters(false)
				}
			case <-rt.C:
				armed = false
				n.publishRosters(false)
			}
		}
	}
}

// beat is one heartbeat.
func (n *Node) beat(full bool, out, agg []entry) ([]entry, []entry) {
	now := time.Now()
	if n.want.Load() && now.Sub(n.lastFull) >= n.cfg.Heartbeat {
		// A full state asked for, at most one a Heartbeat: a flood of
		// requests costs one full state a Heartbeat, not one each.
		full = n.want.Swap(false) || full
	}
	fullR := full || now.Sub(n.rlastFull) >= fullEvery
	if n.rwant.Load() && now.Sub(n.rlastFull) >= n.cfg.Heartbeat {
		fullR = n.rwant.Swap(false) || fullR
	}
	full = full || now.Sub(n.lastFull) >= fullEvery
	out, agg = n.self.collect(full, out, agg)
	up := n.connected.Load()
	if up {
		if err := n.publishUpdate(full, out); err != nil {
			n.want.Store(true)
			n.warnf(logPublish, "cluster: presence heartbeat not published", "err", err)
		} else if full {
			n.lastFull = now
		}
	} else if len(out) > 0 || full {
		n.want.Store(true) // whatever changed goes out in full once connected
	}
	n.publishRosters(fullR)
	sw := n.view.sweep(now, agg, n.cfg.Heartbeat)
	for _, id := range sw.expired {
		n.st.expired.Add(1)
		n.log.Warn("cluster: node expired (no heartbeat within its TTL)", "peer", id)
	}
	n.rostersChanged(sw.changed)
	if up {
		if n.syncAll.Swap(false) {
			sw.ask, sw.askR = []string{""}, []string{""}
		}
		for i, ids := range [][]string{sw.ask, sw.askR} {
			subj := n.presSubj
			if i == 1 {
				subj = n.rosterSubj
			}
			for _, id := range ids {
				b := appendPresHeader(n.presBuf[:0], presSync, n.id)
				b = binary.AppendUvarint(b, uint64(len(id)))
				n.presBuf = append(b, id...)
				_ = n.nc.Publish(subj, n.presBuf)
			}
		}
	}
	clear(out)
	clear(agg)
	return out, agg
}

// publishUpdate publishes entries as one or more updates (a full state:
// the first one resets), each under the max payload.
func (n *Node) publishUpdate(full bool, entries []entry) error {
	return n.publishSplit(n.presSubj, &n.seq, full, len(entries),
		func(i int) int { return entrySize(entries[i].key) },
		func(b []byte, i int) []byte { return appendEntry(b, entries[i].key, entries[i].n) })
}

// publishRosters publishes what changed in this node's rosters (all of
// them, for a full state). It runs on the heartbeat goroutine.
func (n *Node) publishRosters(full bool) {
	now := time.Now()
	n.rlast = now
	n.rents = n.rosters.collect(full, n.rents[:0])
	defer func() {
		clear(n.rents)
		if cap(n.rents) > 4096 {
			n.rents = nil
		}
	}()
	switch {
	case !n.connected.Load():
		if full || len(n.rents) > 0 {
			n.rwant.Store(true) // in full once connected
		}
		return
	case !full && len(n.rents) == 0:
		return
	}
	es := n.rents
	err := n.publishSplit(n.rosterSubj, &n.rseq, full, len(es),
		func(i int) int { return rosterEntrySize(es[i].roster, es[i].member) },
		func(b []byte, i int) []byte { return appendRosterEntry(b, es[i].roster, es[i].member, es[i].n) })
	if err != nil {
		n.rwant.Store(true)
		n.warnf(logPublish, "cluster: rosters not published", "err", err)
	} else if full {
		n.rlastFull = now
	}
}

// publishSplit publishes count entries on subj as one or more updates
// numbered by *seq (a full state: the first one resets), each under the
// max payload. size bounds an entry's length; put appends it.
func (n *Node) publishSplit(subj string, seq *uint64, full bool, count int, size func(int) int, put func([]byte, int) []byte) error {
	limit := int(min(n.maxPayload.Load(), 256<<10))
	flags := byte(0)
	if full {
		flags = flagReset
	}
	var errs error
	begin := func() {
		*seq++
		n.presBuf = appendUpdateHeader(n.presBuf[:0], n.id, n.epoch, *seq, flags, n.cfg.TTL)
		flags = 0
	}
	flush := func() {
		errs = errors.Join(errs, n.nc.Publish(subj, n.presBuf))
	}
	begin()
	header := len(n.presBuf)
	for i := range count {
		sz := size(i)
		if header+sz > limit {
			continue // an entry that no message can carry (a max payload of about 1 KiB)
		}
		if len(n.presBuf) > header && len(n.presBuf)+sz > limit {
			flush()
			begin()
		}
		n.presBuf = put(n.presBuf, i)
	}
	flush()
	if cap(n.presBuf) > 1<<20 {
		n.presBuf = nil
	}
	return errs
}

// Stop implements tio.Relay; the server's Shutdown calls it once its
// connections are closed. It refuses further Publishes, hands NATS what is
// queued, says goodbye (other nodes forget this node's presence at once),
// flushes, closes the connection and shuts the embedded server down, each
// until ctx ends. Other nodes connected to the embedded server lose it.
// Stopping a stopped node does nothing.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state.Load() != stateRunning {
		n.state.Store(stateStopped)
		return nil
	}
	n.state.Store(stateStopped)
	n.quiesce()
	close(n.stop)
	n.out.close()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		if n.connected.Load() {
			b := appendPresHeader(nil, presBye, n.id)
			b = binary.BigEndian.AppendUint64(b, n.epoch)
			err = n.nc.Publish(n.presSubj, b)
			err = errors.Join(err, n.nc.FlushWithContext(ctx))
		}
	case <-ctx.Done():
		err = fmt.Errorf("cluster: stop: %w", ctx.Err())
		if d := n.out.drop(); d > 0 {
			n.st.lost.Add(uint64(d))
		}
	}
	n.connected.Store(false)
	n.keepDropped()
	n.nc.Close()
	if n.ns != nil {
		err = errors.Join(err, stopEmbedded(ctx, n.ns))
	}
	n.log.Info("cluster: node stopped")
	return err
}

// quiesce waits for the subscription handlers under way (the state is
// stopped: later ones return at once).
func (n *Node) quiesce() {
	n.gate.Lock()
	//lint:ignore SA2001 an empty critical section is the barrier
	n.gate.Unlock()
}

// keepDropped moves the subscriptions' drop counts into the node's before
// they close.
func (n *Node) keepDropped() {
	for i := range n.subs {
		if sub := n.subs[i].Swap(nil); sub != nil {
			if d, err := sub.Dropped(); err == nil {
				n.st.dropped.Add(uint64(d))
			}
		}
	}
}

// crash stops the node as a killed process would: no goodbye, no flush.
func (n *Node) crash() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state.Load() != stateRunning {
		return
	}
	n.state.Store(stateStopped)
	n.quiesce()
	n.connected.Store(false)
	close(n.stop)
	n.out.close()
	n.keepDropped()
	n.nc.Close()
	n.wg.Wait()
	n.out.drop()
	if n.ns != nil {
		n.ns.Shutdown()
	}
}

// teardown undoes a Start that failed.
func (n *Node) teardown() {
	if n.nc != nil {
		n.nc.Close()
		n.nc = nil
	}
	for i := range n.subs {
		n.subs[i].Store(nil)
	}
	n.url.Store(nil)
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns = nil
	}
	n.connected.Store(false)
}

// Online reports whether user has a connection on any node alive. It reads
// this node's memory (the cluster's presence as heartbeats told it), never
// the network, and may be called from any goroutine, an event loop too.
func (n *Node) Online(user string) bool {
	return n.self.count(user) > 0 || len(n.view.user(user, time.Now(), nil)) > 0
}

// Presence returns where user is online: the nodes alive where the user has
// connections (by node id), and how many. Other nodes' part is as of their
// last heartbeat. Like Online it reads memory only.
func (n *Node) Presence(user string) Presence {
	var p Presence
	if c := n.self.count(user); c > 0 {
		p.Nodes = append(p.Nodes, NodeConns{n.id, c})
	}
	p.Nodes = n.view.user(user, time.Now(), p.Nodes)
	sortNodes(p.Nodes, func(c NodeConns) string { return c.Node })
	for _, c := range p.Nodes {
		p.Conns += c.Conns
	}
	return p
}

// Nodes returns the nodes alive, this one included, by id.
func (n *Node) Nodes() []NodeInfo {
	now := time.Now()
	ns := []NodeInfo{{ID: n.id, Self: true, Users: int(n.self.users.Load()), Conns: int(max(n.self.conns.Load(), 0)),
		Rosters: n.rosters.count(), Seen: now, Synced: true, RostersSynced: true}}
	ns = n.view.nodes(now, ns)
	sortNodes(ns, func(i NodeInfo) string { return i.ID })
	return ns
}

// Counts returns the cluster's totals: nodes alive, distinct users online
// and their connections. Users counts this node's as of its last
// heartbeat (like every other node's), so it lags a bind by up to a
// Heartbeat.
func (n *Node) Counts() Counts {
	nodes, users, conns := n.view.counts(time.Now())
	return Counts{Nodes: nodes + 1, Users: users, Conns: conns + int(max(n.self.conns.Load(), 0))}
}

// Enter counts member in roster on this node once more (a chat server
// calls it when a connection of user joins room): other nodes learn it
// at once, or within Heartbeat/8 when rosters change faster. Counted: a
// member stays in the roster here until as many Exits. Names are 1 to
// MaxPresenceKey bytes; others are not tracked (Stats.Untracked). Like
// the bind hooks, it takes a lock for a map update, never the network:
// safe on an event loop.
func (n *Node) Enter(roster, member string) { n.roster(roster, member, 1) }

// Exit undoes one Enter of member in roster on this node; an Exit without
// an Enter does nothing.
func (n *Node) Exit(roster, member string) { n.roster(roster, member, -1) }

func (n *Node) roster(roster, member string, d int32) {
	if roster == "" || member == "" || len(roster) > MaxPresenceKey || len(member) > MaxPresenceKey {
		n.st.untracked.Add(1)
		return
	}
	if n.rosters.add(roster, member, d) {
		select {
		case n.rwake <- struct{}{}:
		default:
		}
	}
}

// Roster returns the members of roster on every node alive, sorted, each
// once (a member entered on two nodes is listed once): this node's
// exactly, other nodes' as their last roster messages told. Like Online
// it reads memory only, from any goroutine.
func (n *Node) Roster(roster string) []string {
	set := make(map[string]struct{})
	n.rosters.members(roster, set)
	n.view.rosterMembers(roster, time.Now(), set)
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// InRoster reports whether member is in roster on any node alive.
func (n *Node) InRoster(roster, member string) bool {
	return n.rosters.has(roster, member) || n.view.inRoster(roster, member, time.Now())
}

// OnRosterChange sets f to run when the members of a roster on other nodes
// may have changed: a member appeared or disappeared in another node's
// roster, or a node holding members of the roster was forgotten (goodbye,
// restart, TTL). It is not called for this node's own Enter and Exit. f
// runs on the node's goroutines (NATS deliveries, heartbeats), after the
// change is visible to Roster; it must not block, and its panics are
// logged. Set it before Start; nil removes it.
func (n *Node) OnRosterChange(f func(roster string)) {
	if f == nil {
		n.onRoster.Store(nil)
		return
	}
	n.onRoster.Store(&f)
}

// OnReceive sets f to run for each send and close another node relays to
// this one, before this node delivers it: the application's look at what
// crosses the cluster (a chat server keeps relayed room messages in its
// history, and bans a user kicked on another node). f returns true to have
// the node deliver m to its connections as usual; false when f delivered m
// itself through local (under a lock of its own, to the target's channels
// less some) or dropped it (Stats.Intercepted counts these). f runs on the
// relay subscription's goroutine, one message at a time, in the order each
// origin sent them; it must not block, since every relayed message after it
// waits. m.Packet's Body is valid during the call only: copy what is kept.
// A panic in f is logged and m delivered. It may be set at any time (before
// Start, to see every message); nil removes it.
func (n *Node) OnReceive(f func(m tio.RelayMessage, local tio.Local) bool) {
	if f == nil {
		n.onReceive.Store(nil)
		return
	}
	n.onReceive.Store(&f)
}

// Stats are a node's counters since New.
type Stats struct {
	Connected       bool   // the connection to NATS is up
	Published       uint64 // relay messages handed to NATS (one per send or close, whatever the target's size)
	Failed          uint64 // Publishes refused: unavailable, backpressure, too big, not running
	Lost            uint64 // messages accepted by Publish that NATS refused, or dropped by a Stop cut short
	Queued          int    // bytes waiting for NATS (Config.MaxOutbound bounds them)
	Received        uint64 // relay messages from other nodes, delivered (or intercepted)
	Intercepted     uint64 // of them, those the OnReceive function took (delivered or dropped itself)
	Delivered       uint64 // channels that took a relayed send
	Undelivered     uint64 // channels that did not (closing, over their outbound limit)
	Closed          uint64 // channels closed by relayed closes
	Dropped         uint64 // messages NATS dropped for this node (over the pending limits: a slow consumer)
	NewerVersion    uint64 // messages of a newer version, dropped
	Malformed       uint64 // messages that could not be decoded, dropped
	Own             uint64 // messages carrying this node's id from elsewhere (two nodes share an id), dropped
	Ignored         uint64 // relayed messages of a kind not in Config.Kinds, dropped
	Disconnects     uint64 // times the connection to NATS went down
	Reconnects      uint64 // times it came back
	Expired         uint64 // nodes forgotten for want of heartbeats
	PresenceDropped uint64 // presence updates (partly) dropped: over MaxPresenceBytes or MaxNodes
	Untracked       uint64 // user bindings not in presence (a user id over MaxPresenceKey bytes)
	PresenceBytes   int64  // memory charged to other nodes' presence
}

type counters struct {
	published, pubFailed, lost, received, delivered, deliverFailed, closed,
	newer, malformed, own, ignored, disconnects, reconnects, expired,
	presDropped, untracked, intercepted, dropped atomic.Uint64 // dropped: by subscriptions closed
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := Stats{
		Connected:       n.connected.Load(),
		Published:       n.st.published.Load(),
		Failed:          n.st.pubFailed.Load(),
		Lost:            n.st.lost.Load(),
		Received:        n.st.received.Load(),
		Intercepted:     n.st.intercepted.Load(),
		Delivered:       n.st.delivered.Load(),
		Undelivered:     n.st.deliverFailed.Load(),
		Closed:          n.st.closed.Load(),
		NewerVersion:    n.st.newer.Load(),
		Malformed:       n.st.malformed.Load(),
		Own:             n.st.own.Load(),
		Ignored:         n.st.ignored.Load(),
		Disconnects:     n.st.disconnects.Load(),
		Reconnects:      n.st.reconnects.Load(),
		Expired:         n.st.expired.Load(),
		PresenceDropped: n.st.presDropped.Load(),
		Untracked:       n.st.untracked.Load(),
		Dropped:         n.st.dropped.Load(),
	}
	n.out.mu.Lock()
	s.Queued = n.out.bytes
	n.out.mu.Unlock()
	n.view.mu.RLock()
	s.PresenceBytes = n.view.bytes
	n.view.mu.RUnlock()
	for i := range n.subs {
		if sub := n.subs[i].Load(); sub != nil {
			if d, err := sub.Dropped(); err == nil {
				s.Dropped += uint64(d)
			}
		}
	}
	return s
}

// Repeated warnings are logged at most once per logEvery each.
const logEvery = 10 * time.Second

const (
	logSlow = iota
	logAsync
	logPublish
	logVersion
	logMalformed
	logOwn
	logDeliver
	logNodes
	logPresMem
	nLogKinds
)

func (n *Node) warnf(kind int, msg string, args ...any) {
	if n.state.Load() == stateStopped {
		return
	}
	now := time.Now().UnixNano()
	last := n.lastLog[kind].Load()
	if now-last < int64(logEvery) || !n.lastLog[kind].CompareAndSwap(last, now) {
		return
	}
	n.log.Warn(msg, args...)
}

var _ tio.Relay = (*Node)(nil)
