package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"
	"github.com/lxzan/gws"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/example/echo/echoserver"
)

// The compression scenarios (benchrun's i, j and k) compare tio and gws
// with permessage-deflate (RFC 7692) negotiated: a fan-out of a 1 KiB JSON
// message, an echo of one, and the memory an idle compressed connection
// holds. Each server is a "peer": an implementation with its compression
// configured one way. Every peer's server echoes each message with its
// opcode and sends a text message starting with echoserver.BroadcastPrefix
// to every connection instead (its sender included), so that one server
// serves the three scenarios.
//
// The client is the harness's own (raw sockets on epoll loops for the
// fan-out and the echo; blocking sockets to set up the idle connections)
// with gobwas/ws's wsflate around klauspost/compress's flate for
// permessage-deflate: it offers "permessage-deflate;
// client_max_window_bits", Chrome's and Node ws's offer, to every peer, and
// honours the answer (see flateParams).

// The peers.
const (
	// PeerTio is example/echo's server as it is (echoserver.New):
	// websocket.CompressionNoContextTakeover, so a fan-out compresses a
	// message once for all its receivers.
	PeerTio = "tio"
	// PeerTioCT is the same with websocket.CompressionContextTakeover
	// (WindowBits 12: 4 KiB kept per connection and direction).
	PeerTioCT = "tio-ct"
	// PeerTioOff is the same with compression off: it declines the offer.
	PeerTioOff = "tio-off"
	// PeerGws is gws v1.8.9's own server (as in StartGws) with
	// PermessageDeflate{Enabled: true}, as gws's README enables it, which is
	// without context takeover in either direction (ServerContextTakeover
	// and ClientContextTakeover are false); a fan-out goes through a
	// gws.Broadcaster, which compresses once.
	PeerGws = "gws"
	// PeerGwsCT is the same with ServerContextTakeover and
	// ClientContextTakeover: gws then keeps windows of 2^12 bytes per
	// connection and direction (its default with context takeover) and
	// compresses every message, whatever its size; its Broadcaster still
	// compresses once, without the window.
	PeerGwsCT = "gws-ct"
	// PeerGwsOff is gws without compression.
	PeerGwsOff = "gws-off"
)

// DeflatePeers lists the peers.
var DeflatePeers = []string{PeerTio, PeerTioCT, PeerTioOff, PeerGws, PeerGwsCT, PeerGwsOff}

// PeerImpl returns the implementation a peer runs (ImplTio or ImplGws), or
// "" for an unknown peer.
func PeerImpl(peer string) string {
	impl, _, _ := strings.Cut(peer, "-")
	switch impl {
	case ImplTio, ImplGws:
		for _, p := range DeflatePeers {
			if p == peer {
				return impl
			}
		}
	}
	return ""
}

// StartDeflate starts peer's server on addr. logger may be nil.
func StartDeflate(peer, addr string, logger *slog.Logger) (Server, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch peer {
	case PeerTio, PeerTioCT, PeerTioOff:
		s := echoserver.NewWith(addr, echoserver.Config{NoDeflate: peer == PeerTioOff, ContextTakeover: peer == PeerTioCT}, tio.WithLogger(logger))
		if err := s.Start(); err != nil {
			return nil, err
		}
		if s.Addr() == nil {
			return nil, errors.New("bench: tio started without an address")
		}
		return tioServer{s}, nil
	case PeerGws, PeerGwsCT, PeerGwsOff:
		ct := peer == PeerGwsCT
		return startGwsHub(addr, gws.PermessageDeflate{Enabled: peer != PeerGwsOff, ServerContextTakeover: ct, ClientContextTakeover: ct})
	}
	return nil, fmt.Errorf("bench: unknown peer %q (want one of %s)", peer, strings.Join(DeflatePeers, ", "))
}

// gwsHub is a gws echo that broadcasts as bench/broadcast's gws server
// does: a text message starting with echoserver.BroadcastPrefix goes to
// every connection of a gws.ConcurrentMap through one gws.Broadcaster
// (which builds, and compresses, the frame once), anything else back to
// its sender.
type gwsHub struct {
	gws.BuiltinEventHandler
	conns *gws.ConcurrentMap[*gws.Conn, struct{}]
}

func (h *gwsHub) OnOpen(c *gws.Conn)                 { h.conns.Store(c, struct{}{}) }
func (h *gwsHub) OnClose(c *gws.Conn, _ error)       { h.conns.Delete(c) }
func (h *gwsHub) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }

func (h *gwsHub) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if m.Opcode != gws.OpcodeText || !bytes.HasPrefix(m.Bytes(), echoserver.BroadcastPrefix) {
		_ = c.WriteMessage(m.Opcode, m.Bytes())
		return
	}
	// The broadcaster writes asynchronously, after m is released: copy.
	b := gws.NewBroadcaster(gws.OpcodeText, bytes.Clone(m.Bytes()))
	h.conns.Range(func(c *gws.Conn, _ struct{}) bool {
		_ = b.Broadcast(c)
		return true
	})
	_ = b.Close()
}

// startGwsHub runs gws's own server (a goroutine per connection, messages
// handled in order) with pd, default options otherwise.
func startGwsHub(addr string, pd gws.PermessageDeflate) (Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	sl := &stopListener{Listener: ln, stop: make(chan struct{})}
	h := &gwsHub{conns: gws.NewConcurrentMap[*gws.Conn, struct{}](16)}
	srv := gws.NewServer(h, &gws.ServerOption{ParallelEnabled: false, PermessageDeflate: pd})
	srv.OnError = func(net.Conn, error) {}
	go func() { _ = srv.RunListener(sl) }()
	return gwsServer{sl}, nil
}

// AppendJSON appends a JSON document of exactly size bytes (at least 64):
// a list of stock quotes, its numbers drawn from seed, and a note of
// random letters that pads it to size. Level 1 compresses a 1 KiB one to
// about 38%.
func AppendJSON(dst []byte, size int, seed uint64) []byte {
	syms := [...]string{"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "AMD", "INTC", "ORCL", "IBM", "CSCO"}
	x := seed*0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D
	next := func() uint64 { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x }
	start := len(dst)
	b := append(dst, `{"type":"quotes","seq":`...)
	b = strconv.AppendUint(b, seed%1e9, 10)
	b = append(b, `,"items":[`...)
	const tail = `],"note":""}`
	var it [128]byte
	for i := 0; ; i++ {
		q := it[:0]
		if i > 0 {
			q = append(q, ',')
		}
		r := next()
		p := 1000 + r>>40%90000
		q = append(q, `{"symbol":"`...)
		q = append(q, syms[r%uint64(len(syms))]...)
		q = append(q, `","bid":`...)
		q = strconv.AppendFloat(q, float64(p)/100, 'f', 2, 64)
		q = append(q, `,"ask":`...)
		q = strconv.AppendFloat(q, float64(p+1+r>>20%9)/100, 'f', 2, 64)
		q = append(q, `,"volume":`...)
		q = strconv.AppendUint(q, r>>8%10000000, 10)
		q = append(q, `,"exchange":"XNAS"}`...)
		if len(b)-start+len(q)+len(tail) > size {
			break
		}
		b = append(b, q...)
	}
	b = append(b, `],"note":"`...)
	for len(b)-start < size-2 {
		b = append(b, "abcdefghijklmnopqrstuvwxyz"[next()%26])
	}
	return append(b, `"}`...)
}

// DeflateOffer is the client's permessage-deflate offer.
const DeflateOffer = "permessage-deflate; client_max_window_bits"

// flateParams is what a server answered the offer.
type flateParams struct {
	on bool // the server accepted: messages may be compressed both ways
	// serverTakeover: the server keeps its context, so the client keeps a
	// window of 2^serverBits bytes of what it inflated.
	serverTakeover bool
	serverBits     int
	// clientBits bounds the window of what the client compresses (its
	// messages are compressed on their own, which any answer allows).
	clientBits int
	answer     string // the Sec-WebSocket-Extensions header, "" if none
}

// parseAnswer reads a server's Sec-WebSocket-Extensions answer to
// DeflateOffer.
func parseAnswer(ext string) (flateParams, error) {
	p := flateParams{serverBits: 15, clientBits: 15, answer: ext}
	if ext == "" {
		return p, nil
	}
	opts, ok := httphead.ParseOptions([]byte(ext), nil)
	if !ok || len(opts) != 1 || string(opts[0].Name) != wsflate.ExtensionName {
		return p, fmt.Errorf("bench: unexpected extension answer %q", ext)
	}
	var wp wsflate.Parameters
	if err := wp.Parse(opts[0]); err != nil {
		return p, fmt.Errorf("bench: extension answer %q: %w", ext, err)
	}
	p.on, p.serverTakeover = true, !wp.ServerNoContextTakeover
	if wp.ServerMaxWindowBits.Defined() {
		p.serverBits = int(wp.ServerMaxWindowBits)
	}
	if b := int(wp.ClientMaxWindowBits); b >= 8 {
		p.clientBits = b
	}
	return p, nil
}

// flateRx is a client connection's receiving side: the window it keeps of
// what it inflated when the server keeps its context.
type flateRx struct {
	takeover bool
	size     int
	hist     []byte // the window is its last size bytes
}

func newFlateRx(p flateParams) *flateRx {
	return &flateRx{takeover: p.serverTakeover, size: 1 << p.serverBits}
}

// dict returns the window to inflate the next compressed message with.
func (r *flateRx) dict() []byte {
	if !r.takeover {
		return nil
	}
	return r.hist[max(0, len(r.hist)-r.size):]
}

// push adds an inflated message to the window.
func (r *flateRx) push(plain []byte) {
	if !r.takeover {
		return
	}
	if len(r.hist)+len(plain) > 2*r.size {
		keep := r.dict()
		r.hist = append(r.hist[:0], keep...)
	}
	if r.hist == nil {
		r.hist = make([]byte, 0, 2*r.size+len(plain))
	}
	r.hist = append(r.hist, plain...)
}

// dictReader lets gobwas's wsflate.Reader reset klauspost's decompressor
// with a window (its ReadResetter has no dictionary).
type dictReader struct {
	io.ReadCloser
	dict []byte
}

func (d *dictReader) Reset(r io.Reader) { _ = d.ReadCloser.(flate.Resetter).Reset(r, d.dict) }

// readOnly hides a source's ReadByte from wsflate.Reader: given an
// io.ByteReader, gobwas/ws v1.5.0's Reader returns a zero byte, and no
// error, where the source ends (suffixedReader.ReadByte), before the tail
// it appends, which corrupts any stream whose decoder reads up to the end
// of the payload byte by byte; without ReadByte, klauspost's decompressor
// reads it through a bufio.Reader (kept across resets).
type readOnly struct{ r *bytes.Reader }

func (o readOnly) Read(p []byte) (int, error) { return o.r.Read(p) }

// inflater inflates compressed messages. It is not safe for concurrent
// use: keep one per goroutine.
type inflater struct {
	src bytes.Reader
	d   *dictReader
	r   *wsflate.Reader
	out []byte
	n   uint64 // messages inflated
}

func newInflater() *inflater {
	f := &inflater{d: &dictReader{ReadCloser: flate.NewReader(nil)}}
	f.r = wsflate.NewReader(nil, func(io.Reader) wsflate.Decompressor { return f.d })
	return f
}

// errTooLong: a message inflates past the client's limit.
var errTooLong = errors.New("bench: compressed message inflates past 1 MiB")

// inflate returns the message that payload (a compressed message's
// payload, its tail removed) inflates to after dict; the result is valid
// until the next call.
func (f *inflater) inflate(payload, dict []byte) ([]byte, error) {
	f.n++
	f.src.Reset(payload)
	f.d.dict = dict
	f.r.Reset(readOnly{&f.src})
	f.out = f.out[:0]
	for {
		if len(f.out) == cap(f.out) {
			if len(f.out) >= 1<<20 {
				return nil, errTooLong
			}
			f.out = append(f.out, make([]byte, max(4096, len(f.out)))...)[:len(f.out)]
		}
		n, err := f.r.Read(f.out[len(f.out):cap(f.out)])
		f.out = f.out[:len(f.out)+n]
		if err == io.EOF {
			return f.out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// inflaters are for goroutines that inflate now and then.
var inflaters = sync.Pool{New: func() any { return newInflater() }}

// deflaters holds, per window bits, gobwas's wsflate.Writer around a
// klauspost level-1 compressor (its custom-window one below 15 bits).
var deflaters [16]sync.Pool

// compressMessage returns plain compressed on its own (no context) as a
// permessage-deflate payload, for a window of 2^bits bytes.
func compressMessage(plain []byte, bits int) []byte {
	bits = min(max(bits, 8), 15)
	var buf bytes.Buffer
	w, _ := deflaters[bits].Get().(*wsflate.Writer)
	if w == nil {
		w = wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
			if bits == 15 {
				f, _ := flate.NewWriter(w, flate.BestSpeed)
				return f
			}
			f, _ := flate.NewWriterWindow(w, 1<<bits)
			return f
		})
	}
	w.Reset(&buf)
	_, _ = w.Write(plain) // a bytes.Buffer never fails
	_ = w.Flush()
	deflaters[bits].Put(w)
	return buf.Bytes()
}

// appendClientMessage appends a client text frame carrying plain,
// compressed (RSV1 set) if p accepted compression.
func appendClientMessage(dst []byte, plain []byte, p flateParams, mask [4]byte) []byte {
	if !p.on {
		return AppendClientFrame(dst, 0x1, plain, mask)
	}
	return AppendClientFrame(dst, 0x40|0x1, compressMessage(plain, p.clientBits), mask)
}

// dialWSDeflate is DialWS offering permessage-deflate (DeflateOffer); it
// also returns the server's answer.
func dialWSDeflate(addr string, timeout time.Duration) (net.Conn, []byte, flateParams, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, flateParams{}, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	rest, ext, err := handshake(c, addr, "/", "Sec-WebSocket-Extensions: "+DeflateOffer+"\r\n")
	var p flateParams
	if err == nil {
		p, err = parseAnswer(ext)
	}
	if err != nil {
		c.Close()
		return nil, nil, p, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, rest, p, nil
}

// checkMessage checks a server frame (first byte b0, payload p) that
// should carry want as a text message, compressed or not, inflating with
// f and rx. It reports whether it came compressed.
func checkMessage(b0 byte, p, want []byte, f *inflater, rx *flateRx) (bool, error) {
	switch b0 {
	case 0x81:
		if !bytes.Equal(p, want) {
			return false, fmt.Errorf("bad echo: %d bytes (want %d)", len(p), len(want))
		}
		return false, nil
	case 0xC1:
		if rx == nil {
			return true, errors.New("compressed frame on a connection without compression")
		}
		plain, err := f.inflate(p, rx.dict())
		if err != nil {
			return true, fmt.Errorf("inflating an echo of %d bytes: %w", len(p), err)
		}
		if !bytes.Equal(plain, want) {
			return true, fmt.Errorf("bad compressed echo: %d bytes inflate to %d (want %d)", len(p), len(plain), len(want))
		}
		rx.push(plain)
		return true, nil
	}
	return false, fmt.Errorf("unexpected frame: first byte %#x, %d bytes", b0, len(p))
}

// echoMessages is the number of messages an echo connection sends in
// turn (CompareConfig.Deflate), so that a server keeping its context
// compresses each against earlier, different, messages.
const echoMessages = 8

// echoFlate is an echo connection's messages and compression state
// (CompareConfig.Deflate).
type echoFlate struct {
	msgs  [][]byte // the messages the connection sends in turn
	wire  [][]byte // their frames
	last  [][]byte // per message, its last compressed echo, checked
	next  int      // the message to send next
	head  int      // the message the next echo should carry
	out   []byte
	rx    *flateRx // nil: the server declined compression
	every bool     // inflate every echo
}

// newEchoFlate builds the messages of an echo connection (seeds seed to
// seed+echoMessages-1) and their frames, for the server's answer p.
func newEchoFlate(p flateParams, size int, seed uint64, mask [4]byte, every bool) *echoFlate {
	e := &echoFlate{every: every, last: make([][]byte, echoMessages)}
	if p.on {
		e.rx = newFlateRx(p)
	}
	for i := range uint64(echoMessages) {
		m := AppendJSON(nil, size, seed+i)
		e.msgs = append(e.msgs, m)
		e.wire = append(e.wire, appendClientMessage(nil, m, p, mask))
	}
	return e
}

// frames returns the frames of the next k messages, valid until the next
// call.
func (e *echoFlate) frames(k int) []byte {
	e.out = e.out[:0]
	for range k {
		e.out = append(e.out, e.wire[e.next]...)
		e.next = (e.next + 1) % len(e.wire)
	}
	return e.out
}

// check checks an echo (see CompareConfig.Deflate) and reports whether it
// came compressed.
func (e *echoFlate) check(b0 byte, p []byte, f *inflater) (bool, error) {
	i := e.head
	e.head = (e.head + 1) % len(e.msgs)
	memo := !e.every && e.rx != nil && !e.rx.takeover
	if b0 == 0xC1 && memo && e.last[i] != nil && bytes.Equal(p, e.last[i]) {
		return true, nil
	}
	z, err := checkMessage(b0, p, e.msgs[i], f, e.rx)
	if err == nil && z && memo {
		e.last[i] = append(e.last[i][:0], p...)
	}
	return z, err
}

// FanoutConfig describes the compressed fan-out scenario (benchrun's i;
// see CompareFanout).
type FanoutConfig struct {
	Targets   []Target
	Receivers int // receiving connections per server
	Inflight  int // broadcasts in flight per server
	Size      int // bytes of a message before compression (at least 100)
	// Warmup, Slice, Settle and Cycles are as in CompareConfig.
	Warmup, Slice, Settle time.Duration
	Cycles                int
	Workers               int // the receivers' epoll loops (default min(GOMAXPROCS, 4))
	// InflateEvery inflates every delivery, instead of each distinct
	// compressed payload once per loop (see CompareFanout).
	InflateEvery bool
}

// FanoutResult is what the fan-out measured for one server: LoadResult's
// figures count deliveries (Conns is the number of receivers, Inflight
// the broadcasts in flight), then the delivery latency in µs (receive
// time minus send time) of the deliveries in measured windows.
type FanoutResult struct {
	LoadResult
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Max      float64 `json:"max_us"`
	Mean     float64 `json:"mean_us"`
	Samples  uint64  `json:"latency_samples"`
	Sent     uint64  `json:"sent"`     // broadcasts sent in measured windows
	Total    uint64  `json:"total"`    // deliveries over the whole run
	Lost     uint64  `json:"lost"`     // sequence gaps seen by receivers (whole run)
	Stalls   uint64  `json:"stalls"`   // broadcasts that did not reach every receiver within 0.5 s
	Inflated uint64  `json:"inflated"` // inflations the receivers' loops did (whole run)
}

// IdleDeflate opens n connections to addr offering permessage-deflate (at
// most 64 handshakes at a time); each sends one text message, a JSON
// document of size bytes (compressed if the server accepted), and checks
// its echo, so that whatever compression state a server keeps for a
// connection is allocated; then they are left idle. It returns them (close
// them with CloseAll), the first one's extension answer, and how many
// echoes came compressed.
func IdleDeflate(addr string, n, size int) ([]net.Conn, string, int, error) {
	var (
		mu     sync.Mutex
		answer string
		zipped int
		seq    atomic.Uint64
	)
	conns, _, err := dialAllWith(n, 64, func() (net.Conn, []byte, error) {
		c, rest, p, err := dialWSDeflate(addr, 10*time.Second)
		if err != nil {
			return nil, nil, err
		}
		z, err := exchangeOnce(c, rest, p, size, seq.Add(1))
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		mu.Lock()
		if answer == "" {
			answer = p.answer
		}
		if z {
			zipped++
		}
		mu.Unlock()
		return c, nil, nil
	})
	return conns, answer, zipped, err
}

// exchangeOnce sends a size-byte JSON message on c and checks its echo.
func exchangeOnce(c net.Conn, rest []byte, p flateParams, size int, seed uint64) (bool, error) {
	if len(rest) != 0 {
		return false, fmt.Errorf("bench: %d unexpected bytes after the handshake", len(rest))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], uint32(seed*0x9E3779B1))
	plain := AppendJSON(nil, size, seed)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(appendClientMessage(nil, plain, p, mask)); err != nil {
		return false, err
	}
	b0, payload, _, err := ReadServerFrame(c, nil)
	if err != nil {
		return false, fmt.Errorf("reading the echo: %w", err)
	}
	var rx *flateRx
	if p.on {
		rx = newFlateRx(p)
	}
	f := inflaters.Get().(*inflater)
	z, err := checkMessage(b0, payload, plain, f, rx)
	inflaters.Put(f)
	_ = c.SetDeadline(time.Time{})
	return z, err
}
