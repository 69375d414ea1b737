// Package link is the state of one connection, shared by its event loop and
// by the goroutines that send to it: its identity and addresses, its codec
// and decoding state, user values, counters, an outbound queue that is
// bounded and coalesced, and a close with a reason.
//
// A [Link] is both sides of a connection. Its user-facing methods (Send,
// Close, Value, …) are safe for concurrent use; package channel exposes
// them to applications as *channel.Channel, a type with the same layout
// (converting between the two costs nothing). Its loop-side methods (Begin,
// Decode, End, OnClosed, …) must be called on the connection's event loop,
// from gnet's event handlers, by a server or a client. Sends are queued and
// written to the socket by the connection's event loop, several frames in
// one write, so that a burst of sends (a group fan-out, a pipelined echo)
// costs one system call per connection, not one per frame.
package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/internal/goid"
	"github.com/tiogo/tio/internal/pool"
)

// Errors returned by Send.
var (
	// ErrClosed: the channel is closed or closing.
	ErrClosed = errors.New("channel: closed")
	// ErrNotReady: the connection's protocol handshake has not completed.
	ErrNotReady = errors.New("channel: handshake not complete")
	// ErrSlowConsumer: the peer reads too slowly; the channel is being closed.
	ErrSlowConsumer = errors.New("channel: slow consumer")
	// ErrOnLoop: a blocking send was called on an event loop.
	ErrOnLoop = errors.New("channel: blocking send on an event loop (an inline handler or a hook) would wait for itself")
)

func is(err, target error) bool { return errors.Is(err, target) }

// Env holds what the channels of one server (or client) share.
type Env struct {
	// MaxOutbound is the high-water mark of bytes waiting to be sent to one
	// peer (queued by tio plus buffered by gnet): every byte counts, packets
	// and the protocol's own answers (pongs, heartbeat answers) alike. It
	// bounds the backlog, not one packet: bytes are refused, and the
	// channel closed with ReasonSlowConsumer, when the bytes already waiting
	// exceed it, so a single packet of any size reaches a peer that reads.
	// A peer can make the server hold at most MaxOutbound plus the largest
	// packet sent to it. Zero means no limit.
	MaxOutbound int
	// OnSent, if set, runs on the event loop after it wrote n queued bytes.
	OnSent func(ch *Link, n int)
	// Totals, if set, aggregates the traffic of every channel of the server.
	Totals *Totals
	// Codecs lists the codecs the channels may use; a channel keeps its
	// codec and the codec's variant (codec.Variants) as an index into the
	// list of every variant of every codec (at most MaxCodecs in all).
	// Set it before the first channel is made, and do not change it.
	Codecs []codec.Codec

	loopMu sync.Mutex
	loops  atomic.Pointer[loopSet] // the event loops seen, and their goroutines

	slotsOnce sync.Once
	slots     []slot  // every variant of every codec; see Init
	base      []uint8 // index of each codec's first slot

	// locals interns local addresses (a server has few): an immutable
	// list, replaced under localsMu when an address is added.
	locals   atomic.Pointer[[]netip.AddrPort]
	localsMu sync.Mutex
	pools
	// DrainTimeout bounds how long a channel closed by the application or
	// by a shutdown waits for the bytes queued before its close to reach
	// the peer (zero or less: it does not wait).
	DrainTimeout time.Duration
	// LingerTimeout bounds how long a channel whose codec closes with a
	// handshake (codec.Lingerer) waits, after its farewell, for the peer's
	// answer (zero or less: it does not wait).
	LingerTimeout time.Duration
}

// channel states
const (
	stOpen uint8 = iota
	stClosing
	stClosed
)

// Link is one connection.
//
// Every idle connection holds one, so its size is watched (192 bytes, a
// size class of its own; see TestChannelSize): rarely used state is behind
// x, the codec and the local address are indexes into lists the server's
// channels share, the remote address is kept packed, and the flags that mu
// guards share a byte.
type Link struct {
	id      uint64
	conn    gnet.Conn
	env     *Env
	dec     codec.Decoder // loop only
	created int64
	cnt     counters
	backlog atomic.Int64          // bytes gnet held unsent after our last write
	x       atomic.Pointer[extra] // rarely used state, allocated on first use
	partial atomic.Uint32         // ms after created when the packet under way began (+1); 0: none
	flags   atomic.Uint32         // flagReady, flagClosing

	mu       sync.Mutex
	out      *[]byte // queued bytes, a pooled buffer; nil when empty
	sends    uint32  // packets queued since the last flush
	leftover int32   // loop only: bytes left buffered after the last pass

	remoteIP   [16]byte // the remote address, packed (see RemoteAddr)
	remotePort uint16   // with remoteIP all zeros: no address
	codecIdx   uint8    // 1 + the index of the codec's variant in env.slots; 0: none yet
	localIdx   uint8    // 1 + the local address's index in env's list; 0: in x
	state      uint8
	reason     Reason
	bits       uint8 // mu: bitInLoop, bitWoken, bitFarewell
	edges      uint8 // loop only: edgeReady, edgeControl
}

// Bits of Channel.bits, which mu guards.
const (
	bitInLoop   = 1 << iota // the loop is inside Begin/End and will flush
	bitWoken                // a Wake is scheduled and will flush
	bitFarewell             // say goodbye through the codec before closing
	bitShared               // out is a reference to a Shared encoding, not a buffer of our own
)

// Bits of Link.edges, which only the loop touches.
const (
	edgeReady    = 1 << iota // Ready was called during this pass
	edgeControl              // the decoder consumed a control message (Control)
	edgeProxy                // a trusted proxy's PROXY header is still to come
	edgeSniffTLS             // the first bytes may be a TLS ClientHello: not looked at yet
	edgeSecured              // the TLS handshake's success was counted
)

// AwaitTLS marks the link's first bytes as to be checked for a TLS
// ClientHello. Call it on the loop, in OnOpen.
func (l *Link) AwaitTLS() { l.edges |= edgeSniffTLS }

// AwaitingTLS reports whether the first bytes are still to be checked for
// a ClientHello.
func (l *Link) AwaitingTLS() bool { return l.edges&edgeSniffTLS != 0 }

// TLSSniffed records that the first bytes were checked.
func (l *Link) TLSSniffed() { l.edges &^= edgeSniffTLS }

// Secured reports, once, that the TLS handshake has succeeded: the first
// call after it returns true, later ones false. established is the
// transport's own say; call it on the loop.
func (l *Link) Secured(established bool) bool {
	if !established || l.edges&edgeSecured != 0 {
		return false
	}
	l.edges |= edgeSecured
	return true
}

// SecuredOnce reports whether Secured has returned true.
func (l *Link) SecuredOnce() bool { return l.edges&edgeSecured != 0 }

// AwaitProxy marks the link as waiting for a PROXY protocol header before
// its protocol's first bytes. Call it on the loop, in OnOpen.
func (l *Link) AwaitProxy() { l.edges |= edgeProxy }

// AwaitingProxy reports whether the PROXY header is still to come.
func (l *Link) AwaitingProxy() bool { return l.edges&edgeProxy != 0 }

// ProxyDone records that the PROXY header was read.
func (l *Link) ProxyDone() { l.edges &^= edgeProxy }

// SetRemoteAddr replaces the peer's address (with the client's, read from
// a trusted proxy's PROXY header). Call it on the loop, before the
// connection's codec is chosen.
func (l *Link) SetRemoteAddr(a netip.AddrPort) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remoteIP, l.remotePort = [16]byte{}, 0
	if x := l.x.Load(); x != nil {
		x.zoned = netip.AddrPort{}
	}
	l.setRemoteLocked(a)
}

// Control implements codec.Conn: the decoder consumed a control message
// that is not a packet (a ping, a heartbeat byte). The server counts it
// toward the connection's rate limit.
func (ch *Link) Control() { ch.edges |= edgeControl }

// Bits of Channel.flags.
const (
	flagReady   = 1 << iota // the handshake completed: sends are accepted
	flagClosing             // mirrors state != stOpen, for the loop's hot path
)

func (ch *Link) isReady() bool { return ch.flags.Load()&flagReady != 0 }

// extra is the part of a channel that most connections never use; keeping it
// behind a pointer keeps an idle connection small.
type extra struct {
	hbTimeout atomic.Int64   // per-connection heartbeat timeout, ns; 0: the server's
	pinged    atomic.Int64   // when the last keepalive was sent, unix ns
	ipTotals  *Totals        // aggregate of the channel's IP; set at accept
	drainEnd  int64          // loop only: when a draining close gives up, unix ns
	zoned     netip.AddrPort // a remote address with an IPv6 zone, which the packed form drops
	local     netip.AddrPort // the local address, when env's list of them is full
	rate      Limit          // loop only: the inbound rate limiter
	closeErr  error          // mu
	values    map[any]any    // mu
	waiters   []func(error)  // mu: told when the bytes queued before them are written
	closeText string         // mu: the words of the channel's farewell, if the app gave some
	lingerEnd int64          // loop only: until when a closing link waits for the peer's close, unix ns
	answered  bool           // loop only: the peer sent something after our farewell (its close)
	queue     *pool.Queue    // the channel's tasks for the worker pool; set on the loop, under mu
	encoder   codec.Encoder  // mu: the connection's own encoder, if its codec gave it one
	transport Transport      // mu (set once, on the loop): TLS between the codec and the socket
}

// extLocked returns the channel's extra state, allocating it. mu is held.
func (ch *Link) extLocked() *extra {
	x := ch.x.Load()
	if x == nil {
		x = new(extra)
		ch.x.Store(x)
	}
	return x
}

// ext returns the channel's extra state, allocating it.
func (ch *Link) ext() *extra {
	if x := ch.x.Load(); x != nil {
		return x
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.extLocked()
}

// ipTotals returns the aggregate of the channel's IP, or nil.
func (ch *Link) ipTotals() *Totals {
	if x := ch.x.Load(); x != nil {
		return x.ipTotals
	}
	return nil
}

// ID returns the channel's id, unique within its server. A server's ids
// grow with the order in which connections were accepted; see [MakeID].
func (ch *Link) ID() uint64 { return ch.id }

// Slot returns the low SlotBits bits of the channel's id: a number no other
// open channel of its server has (for a server's channels, the socket's file
// descriptor). Registries index channels by it.
func (ch *Link) Slot() int { return SlotOf(ch.id) }

// SlotBits is the number of low bits of an id that hold its slot.
const SlotBits = 24

// MaxSlot is the largest slot an id can hold.
const MaxSlot = 1<<SlotBits - 1

// MakeID returns the id of the seq-th channel, in slot: seq in the high
// bits, so that ids grow with seq, and slot in the low SlotBits bits. Slot
// must be at most MaxSlot and unique among open channels; seq must grow.
func MakeID(seq uint64, slot int) uint64 { return seq<<SlotBits | uint64(slot)&MaxSlot }

// SlotOf returns the slot of an id.
func SlotOf(id uint64) int { return int(id & MaxSlot) }

// RemoteAddr returns the peer's address.
func (ch *Link) RemoteAddr() netip.AddrPort {
	if ch.remotePort == 0 && ch.remoteIP == [16]byte{} {
		return netip.AddrPort{} // no TCP peer has port 0
	}
	if x := ch.x.Load(); x != nil && x.zoned.IsValid() {
		return x.zoned
	}
	// An IPv4 address is kept mapped and unmapped again: a real IPv6 peer's
	// address is never mapped here (it was unmapped at accept).
	return netip.AddrPortFrom(netip.AddrFrom16(ch.remoteIP).Unmap(), ch.remotePort)
}

// setRemote stores the remote address packed.
func (ch *Link) setRemote(a netip.AddrPort) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.setRemoteLocked(a)
}

// setRemoteLocked is setRemote with mu held.
func (ch *Link) setRemoteLocked(a netip.AddrPort) {
	if !a.Addr().IsValid() {
		return
	}
	ch.remoteIP, ch.remotePort = a.Addr().As16(), a.Port()
	if a.Addr().Zone() != "" {
		ch.extLocked().zoned = a
	}
}

// LocalAddr returns the local address the peer connected to.
func (ch *Link) LocalAddr() netip.AddrPort {
	if ch.localIdx > 0 {
		return (*ch.env.locals.Load())[ch.localIdx-1]
	}
	if x := ch.x.Load(); x != nil {
		return x.local
	}
	return netip.AddrPort{}
}

// setLocal stores the local address as an index into env's list.
func (ch *Link) setLocal(a netip.AddrPort) {
	if ch.localIdx = ch.env.intern(a); ch.localIdx == 0 {
		ch.ext().local = a
	}
}

// Codec returns the channel's codec, or nil while it is not yet chosen.
func (ch *Link) Codec() codec.Codec { return ch.env.codecAt(ch.codecIndex()) }

// CodecIndex returns the index of the channel's codec and variant in its
// server's list of every variant of every codec, or -1 while it is not yet
// chosen. Channels with the same index encode a packet into the same bytes:
// a fan-out encodes a packet once per index (channels with an encoder of
// their own, see HasOwnEncoder, excepted).
func (ch *Link) CodecIndex() int { return int(ch.codecIndex()) - 1 }

func (ch *Link) codecIndex() uint8 {
	if ch.isReady() {
		// The codec is set once, before the handshake completes; the
		// atomic ready flag publishes it, so no lock is needed (fan-outs
		// call this for every target).
		return ch.codecIdx
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.codecIdx
}

// IsReady reports whether the protocol handshake has completed, so that
// packets can be sent.
func (ch *Link) IsReady() bool { return ch.isReady() }

// Created returns when the connection was accepted.
func (ch *Link) Created() time.Time { return time.Unix(0, ch.created) }

// String returns a short description for logs.
func (ch *Link) String() string { return fmt.Sprintf("channel#%d(%s)", ch.id, ch.RemoteAddr()) }

// Stats returns a snapshot of the channel's counters.
func (ch *Link) Stats() Stats {
	return Stats{
		BytesIn:        ch.cnt.bytesIn.Load(),
		BytesOut:       ch.cnt.bytesOut.Load(),
		PacketsIn:      ch.cnt.packetsIn.Load(),
		PacketsOut:     ch.cnt.packetsOut.Load(),
		PacketsHandled: ch.cnt.handled.Load(),
		Reads:          ch.cnt.reads.Load(),
		Created:        time.Unix(0, ch.created),
		LastReceived:   unixTime(ch.cnt.lastRecv.Load()),
		LastSent:       unixTime(ch.cnt.lastSent.Load()),
	}
}

// SetValue stores a user value under key (any comparable key, as with
// context.WithValue). A nil value deletes the key.
func (ch *Link) SetValue(key, value any) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if value == nil {
		if x := ch.x.Load(); x != nil {
			delete(x.values, key)
		}
		return
	}
	x := ch.extLocked()
	if x.values == nil {
		x.values = make(map[any]any, 2)
	}
	x.values[key] = value
}

// Value returns the value stored under key, or nil.
func (ch *Link) Value(key any) any {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if x := ch.x.Load(); x != nil {
		return x.values[key]
	}
	return nil
}

// Closed reports whether the channel is closed or closing.
func (ch *Link) Closed() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.state != stOpen
}

// Reason returns why the channel was closed (ReasonNone while open) and the
// error behind it, if any.
func (ch *Link) Reason() (Reason, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if x := ch.x.Load(); x != nil {
		return ch.reason, x.closeErr
	}
	return ch.reason, nil
}

// lockForSend locks the channel if it can take a send and returns its
// outbound buffer; the caller finishes with queued, which unlocks. A
// channel whose backlog is over the high-water mark takes nothing more: it
// is closed as a slow consumer.
func (ch *Link) lockForSend() (*[]byte, error) {
	if err := ch.lockForSendOnly(); err != nil {
		return nil, err
	}
	return ch.buffer(), nil
}

// lockForSendOnly is lockForSend without taking a buffer.
func (ch *Link) lockForSendOnly() error {
	if !ch.isReady() {
		if ch.Closed() {
			return ErrClosed
		}
		return ErrNotReady
	}
	ch.mu.Lock()
	if ch.state != stOpen {
		ch.mu.Unlock()
		return ErrClosed
	}
	if ch.overLimit() {
		ch.requestClose(ReasonSlowConsumer, nil, true)
		ch.unlockAndWake()
		return ErrSlowConsumer
	}
	return nil
}

// overLimit reports whether the bytes waiting for the peer, queued here or
// held by gnet, are past the high-water mark. Called with mu held.
func (ch *Link) overLimit() bool {
	max := ch.env.MaxOutbound
	if max <= 0 {
		return false
	}
	n := int(ch.backlog.Load())
	if ch.out != nil {
		n += len(*ch.out)
	}
	return n > max
}

// Send encodes p with the channel's codec and queues it. It returns once the
// bytes are queued; the event loop writes them. It never blocks on the
// network. Send fails with ErrClosed on a closed channel, ErrNotReady before
// the handshake, and ErrSlowConsumer (closing the channel) when the peer has
// fallen too far behind.
func (ch *Link) Send(p *codec.Packet) error {
	buf, err := ch.lockForSend()
	if err != nil {
		return err
	}
	before := len(*buf)
	enc, err := ch.encode(*buf, p)
	if err != nil {
		*buf = (*buf)[:before]
		ch.mu.Unlock()
		return fmt.Errorf("channel: encode: %w", err)
	}
	*buf = enc
	return ch.queued(true)
}

// SendPacketNotify is Send that also reports when the bytes have been
// written to the connection by its event loop, like SendNotify.
func (ch *Link) SendPacketNotify(p *codec.Packet, done func(error)) error {
	buf, err := ch.lockForSend()
	if err != nil {
		return err
	}
	before := len(*buf)
	enc, err := ch.encode(*buf, p)
	if err != nil {
		*buf = (*buf)[:before]
		ch.mu.Unlock()
		return fmt.Errorf("channel: encode: %w", err)
	}
	*buf = enc
	x := ch.extLocked()
	x.waiters = append(x.waiters, done)
	return ch.queued(true)
}

// SendWait encodes p, queues it, and waits until the event loop has written
// it to the connection, the channel closes, or ctx ends.
func (ch *Link) SendWait(ctx context.Context, p *codec.Packet) error {
	if ch.env.OnLoop() {
		return ErrOnLoop
	}
	done := make(chan error, 1)
	if err := ch.SendPacketNotify(p, func(err error) { done <- err }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendHeartbeat queues the codec's keepalive (a WebSocket ping, the binary
// protocol's heartbeat byte). It returns codec.ErrUnsupported if the codec
// has none.
func (ch *Link) SendHeartbeat() error {
	cd := ch.Codec()
	hb, ok := cd.(codec.Heartbeater)
	if !ok {
		return fmt.Errorf("channel: %T has no heartbeat: %w", cd, codec.ErrUnsupported)
	}
	buf, err := ch.lockForSend()
	if err != nil {
		return err
	}
	*buf = hb.AppendHeartbeat(*buf)
	ch.extLocked().pinged.Store(time.Now().UnixNano())
	return ch.queued(false)
}

// SetHeartbeatTimeout sets this connection's heartbeat timeout, overriding
// the server's (zero restores the server's). It takes effect at the next
// check of the connection.
func (ch *Link) SetHeartbeatTimeout(d time.Duration) { ch.ext().hbTimeout.Store(int64(d)) }

// HeartbeatTimeout returns the timeout set by SetHeartbeatTimeout, or zero.
func (ch *Link) HeartbeatTimeout() time.Duration {
	if x := ch.x.Load(); x != nil {
		return time.Duration(x.hbTimeout.Load())
	}
	return 0
}

// LastReceived returns when bytes last arrived (the accept time if none has).
func (ch *Link) LastReceived() time.Time {
	if ns := ch.cnt.lastRecv.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Unix(0, ch.created)
}

// LastHeartbeatSent returns when SendHeartbeat last queued a keepalive, or
// the zero time.
func (ch *Link) LastHeartbeatSent() time.Time {
	if x := ch.x.Load(); x != nil {
		return unixTime(x.pinged.Load())
	}
	return time.Time{}
}

// queued finishes a send (of a packet, or of protocol bytes): it makes sure
// the loop will flush. Called with mu held; unlocks it.
func (ch *Link) queued(packet bool) error {
	if packet {
		ch.sends++
	}
	ch.unlockAndWake()
	return nil
}

// unlockAndWake unlocks mu and makes sure the event loop will run a pass over
// the connection (to flush, or to close): the loop is inside one already, or
// a wake-up is scheduled, or this call schedules one. Called with mu held.
func (ch *Link) unlockAndWake() {
	wake := ch.bits&(bitInLoop|bitWoken) == 0
	if wake {
		ch.bits |= bitWoken
	}
	ch.mu.Unlock()
	if wake {
		_ = ch.conn.Wake(nil)
	}
}

// Close closes the channel for reason r, from any goroutine. Bytes already
// queued are written first, then the codec says goodbye (a WebSocket close
// frame, for example), then the connection is closed. Closing a closed
// channel does nothing.
func (ch *Link) Close(r Reason) { ch.CloseWith(r, "") }

// CloseWith is Close with the words of the farewell (a WebSocket close
// frame's reason; the codec keeps what fits), instead of the reason's
// default text.
func (ch *Link) CloseWith(r Reason, text string) {
	if r == ReasonNone {
		r = ReasonClosedByApp
	}
	ch.mu.Lock()
	if ch.state != stOpen {
		ch.mu.Unlock()
		return
	}
	if text != "" {
		ch.extLocked().closeText = text
	}
	ch.requestClose(r, nil, true)
	ch.unlockAndWake()
}

// requestClose marks the channel closing. Called with mu held.
func (ch *Link) requestClose(r Reason, err error, farewell bool) {
	if ch.state != stOpen {
		return
	}
	ch.state, ch.reason = stClosing, r
	if farewell {
		ch.bits |= bitFarewell
	}
	if err != nil {
		ch.extLocked().closeErr = err
	}
	ch.flags.Or(flagClosing)
}

// buffer returns the outbound buffer to append to, taking one from the
// pool if needed; a queue that is a reference to a shared encoding is
// copied into a buffer of its own first. Called with mu held.
func (ch *Link) buffer() *[]byte {
	switch {
	case ch.out == nil:
		ch.out = ch.env.getBuf()
	case ch.bits&bitShared != 0:
		own := ch.env.getBuf()
		*own = append(*own, *ch.out...)
		sharedOf(ch.out).Release()
		ch.out = own
		ch.bits &^= bitShared
	}
	return ch.out
}

// Write implements codec.Conn: the decoder's protocol answers (a handshake
// response, pongs, heartbeat answers, close frames). They count toward the
// high-water mark like packets: past it the channel is closed as a slow
// consumer and b is dropped, whatever made the bytes. A closing channel
// still takes its farewell. The loop flushes at the end of its pass.
func (ch *Link) Write(b []byte) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	switch {
	case ch.state == stClosed:
		return ErrClosed
	case ch.state == stOpen && ch.overLimit():
		ch.requestClose(ReasonSlowConsumer, nil, true)
		return ErrSlowConsumer
	}
	buf := ch.buffer()
	*buf = append(*buf, b...)
	return nil
}

// SendRaw queues bytes already in the protocol's wire form (an HTTP
// response the server wrote for a plain HTTP request), from any goroutine,
// whether or not the protocol's handshake completed: the outbound limit
// applies as to any send.
func (ch *Link) SendRaw(b []byte) error {
	ch.mu.Lock()
	switch {
	case ch.state != stOpen:
		ch.mu.Unlock()
		return ErrClosed
	case ch.overLimit():
		ch.requestClose(ReasonSlowConsumer, nil, false)
		ch.unlockAndWake()
		return ErrSlowConsumer
	}
	buf := ch.buffer()
	*buf = append(*buf, b...)
	ch.unlockAndWake()
	return nil
}

// WriteLast implements codec.Conn: the decoder's last bytes (a close
// frame, an HTTP error response), queued whatever the backlog.
func (ch *Link) WriteLast(b []byte) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state == stClosed {
		return ErrClosed
	}
	buf := ch.buffer()
	*buf = append(*buf, b...)
	return nil
}

// Ready implements codec.Conn.
func (ch *Link) Ready() {
	ch.flags.Or(flagReady)
	ch.edges |= edgeReady
}

const maxPooledBuffer = 1 << 20

// getBuf returns an empty outbound buffer from the env's pool.
func (e *Env) getBuf() *[]byte {
	if b, _ := e.bufs.Get().(*[]byte); b != nil {
		return b
	}
	b := make([]byte, 0, 4096)
	return &b
}

// putBuf gives an outbound buffer back to the env's pool, unless it grew
// large.
func (e *Env) putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		*b = (*b)[:0]
		e.bufs.Put(b)
	}
}

// intern returns 1 + the index of a local address in the env's list, adding
// it; 0 once the list holds maxLocals addresses. The list only grows, and
// each version is a new slice, so an index stays valid for good.
func (e *Env) intern(a netip.AddrPort) uint8 {
	if i := indexOf(e.locals.Load(), a); i > 0 {
		return i
	}
	e.localsMu.Lock()
	defer e.localsMu.Unlock()
	old := e.locals.Load()
	if i := indexOf(old, a); i > 0 {
		return i
	}
	var list []netip.AddrPort
	if old != nil {
		list = *old
	}
	if len(list) >= maxLocals {
		return 0
	}
	list = append(list[:len(list):len(list)], a)
	e.locals.Store(&list)
	return uint8(len(list))
}

const maxLocals = 64

func indexOf(list *[]netip.AddrPort, a netip.AddrPort) uint8 {
	if list == nil {
		return 0
	}
	for i, b := range *list {
		if b == a {
			return uint8(i + 1)
		}
	}
	return 0
}

// addrPort converts a gnet address without allocating for TCP.
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		ip = ip.Unmap()
		if t.Zone != "" && ip.Is6() {
			ip = ip.WithZone(t.Zone)
		}
		return netip.AddrPortFrom(ip, uint16(t.Port))
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// loopSet is an immutable list of event loops and their goroutine ids.
type loopSet struct {
	keys []any
	ids  []uint64
}

// NoteLoop records that the calling goroutine runs the event loop el (a
// gnet.EventLoop). Call it in OnOpen: after the first call on each loop it
// costs a few comparisons.
func (e *Env) NoteLoop(el any) {
	if s := e.loops.Load(); s != nil {
		for _, k := range s.keys {
			if k == el {
				return
			}
		}
	}
	e.loopMu.Lock()
	defer e.loopMu.Unlock()
	old := e.loops.Load()
	next := &loopSet{}
	if old != nil {
		for _, k := range old.keys {
			if k == el {
				return
			}
		}
		next.keys, next.ids = append(next.keys, old.keys...), append(next.ids, old.ids...)
	}
	next.keys, next.ids = append(next.keys, el), append(next.ids, goid.ID())
	e.loops.Store(next)
}

// OnLoop reports whether the calling goroutine is one of the env's event
// loops (it reads the goroutine's id: about a microsecond).
func (e *Env) OnLoop() bool {
	s := e.loops.Load()
	if s == nil {
		return false
	}
	me := goid.ID()
	for _, id := range s.ids {
		if id == me {
			return true
		}
	}
	return false
}

// MaxCodecs is the most codec variants an Env lists, every variant of
// every codec counted.
const MaxCodecs = 255

// slot is one variant of one codec.
type slot struct {
	codec   codec.Codec
	vars    codec.Variants // codec's Variants, when variant > 0
	variant int
}

// Init lays out the variants of the env's codecs. It returns an error if
// there are more than MaxCodecs. Call it before the first channel is made;
// it runs once.
func (e *Env) Init() error {
	var err error
	e.slotsOnce.Do(func() {
		for _, cd := range e.Codecs {
			n := 1
			v, ok := cd.(codec.Variants)
			if ok {
				n = max(1, v.NumVariants())
			}
			e.base = append(e.base, uint8(min(len(e.slots), 255)))
			for i := range n {
				e.slots = append(e.slots, slot{codec: cd, vars: v, variant: i})
			}
		}
		if len(e.slots) > MaxCodecs {
			err = fmt.Errorf("channel: %d codec variants, at most %d", len(e.slots), MaxCodecs)
		}
	})
	return err
}

// codecAt returns the codec of a channel's codecIdx, or nil for none.
func (e *Env) codecAt(i uint8) codec.Codec {
	if i == 0 {
		return nil
	}
	return e.slots[i-1].codec
}

// EncodeAt appends p encoded by the codec variant with the given index (a
// CodecIndex) to dst.
//
// A panic in the codec's Encode is returned as an error wrapping
// codec.ErrInternal, with the panic's value and stack: a send holds the
// channel's lock while it encodes, and a panic must not leave it held.
func (e *Env) EncodeAt(i int, dst []byte, p *codec.Packet) (_ []byte, err error) {
	defer recoverEncode(&err)
	s := &e.slots[i]
	if s.variant == 0 {
		return s.codec.Encode(dst, p)
	}
	return s.vars.EncodeVariant(dst, p, s.variant)
}

// encode appends p encoded for the channel: by its own encoder if it has
// one, else by its codec's variant. Called with mu held.
func (ch *Link) encode(dst []byte, p *codec.Packet) (_ []byte, err error) {
	if x := ch.x.Load(); x != nil && x.encoder != nil {
		defer recoverEncode(&err)
		return x.encoder.Encode(dst, p)
	}
	return ch.env.EncodeAt(int(ch.codecIdx)-1, dst, p)
}

// recoverEncode, deferred around a call of an encoder, turns its panic into
// *err.
func recoverEncode(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: Encode panicked: %v\n%s", codec.ErrInternal, r, debug.Stack())
	}
}

// HasOwnEncoder reports whether packets to the channel are encoded by an
// encoder of its own (codec.Conn.SetEncoder), which a fan-out cannot share.
func (ch *Link) HasOwnEncoder() bool {
	x := ch.x.Load()
	if x == nil || !ch.isReady() {
		return false
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return x.encoder != nil
}

// SetVariant implements codec.Conn.
func (ch *Link) SetVariant(v int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.codecIdx == 0 {
		return
	}
	s := ch.env.slots[ch.codecIdx-1]
	n := 1
	if s.vars != nil {
		n = s.vars.NumVariants()
	}
	if v < 0 || v >= n {
		return
	}
	ch.codecIdx = ch.codecIdx - uint8(s.variant) + uint8(v)
}

// SetEncoder implements codec.Conn.
func (ch *Link) SetEncoder(e codec.Encoder) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.extLocked().encoder = e
}

// PartialFor reports how long the packet now arriving has been under way:
// since the end of the event loop's pass that first found it begun and not
// whole. ok is false when no packet is partly received. Safe from any
// goroutine.
func (ch *Link) PartialFor(now time.Time) (d time.Duration, ok bool) {
	p := ch.partial.Load()
	if p == 0 {
		return 0, false
	}
	// Milliseconds since created, modulo 2^32: the difference is right for
	// any packet under way for less than 49 days.
	nowMs := uint32((now.UnixNano() - ch.created) / 1e6)
	return time.Duration(nowMs-p) * time.Millisecond, true
}
