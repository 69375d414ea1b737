package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load client speaks just enough WebSocket for the benchmark, the same
// bytes to every server: a fixed upgrade request, and binary frames masked
// with one random key per connection (the key is the same for every frame of
// a connection, so that the frames are built once; the servers cannot tell).

// Target is one server under load.
type Target struct {
	Name string // implementation, for the results
	Addr string
	PID  int // the server's process, to read its CPU time; 0 if unknown
}

// CompareConfig describes one throughput scenario run against several
// servers at once, in interleaved time slices: each server gets the same
// connections and traffic, but only one at a time is sent messages. A
// disturbance from outside (another process taking CPU) then falls on every
// server alike, instead of on whichever happened to be measured then.
type CompareConfig struct {
	Targets  []Target
	Conns    int // connections per server
	Size     int // payload bytes per message
	Inflight int // messages in flight per connection (1: ping-pong)
	// Warmup is run for each server in turn before measuring.
	Warmup time.Duration
	// Each cycle gives every server one Slice of traffic, in an order that
	// rotates from cycle to cycle; the first Settle of a slice (the previous
	// server's echoes draining, this one's first round trips) is not
	// measured.
	Slice, Settle time.Duration
	Cycles        int
	Workers       int // client event loops (default GOMAXPROCS)
	// Deflate makes the client offer permessage-deflate (DeflateOffer) and
	// send text messages of Size bytes, a JSON document of its own per
	// connection (AppendJSON), compressed on their own when the server
	// accepted compression, instead of random binary ones; each echo is
	// inflated (with the connection's window if the server keeps its
	// context) and compared with what was sent. Unless InflateEvery, a
	// compressed echo whose bytes are those of the connection's last one,
	// checked, is not inflated again while the server keeps no context.
	Deflate, InflateEvery bool
}

// LoadConfig describes one throughput scenario against one server.
type LoadConfig struct {
	Addr      string
	Conns     int           // connections
	Size      int           // payload bytes per message
	Inflight  int           // messages in flight per connection (1: ping-pong)
	Warmup    time.Duration // run before measuring
	Duration  time.Duration // measured
	Workers   int           // client event loops (default GOMAXPROCS)
	ServerPID int           // the server's process (CPU time), 0 if unknown
}

// LoadResult is what a scenario measured for one server. Msgs counts echoes
// received (and checked) during its measured windows.
type LoadResult struct {
	Impl      string    `json:"impl,omitempty"`
	Conns     int       `json:"conns"`
	Size      int       `json:"size"`
	Inflight  int       `json:"inflight"`
	Msgs      uint64    `json:"msgs"`
	Seconds   float64   `json:"seconds"`
	Rate      float64   `json:"rate"`             // Msgs per second
	Slices    []float64 `json:"slices,omitempty"` // the rate of each measured slice
	ServerCPU float64   `json:"server_cpu"`       // server CPU seconds in the windows, -1 unknown
	ClientCPU float64   `json:"client_cpu"`       // client CPU seconds in the windows
	// OtherCPU is the CPU time (user+system, all CPUs) that processes other
	// than the servers and the client used in the windows, and SoftirqCPU
	// the time in soft interrupts (loopback TCP receive work, mostly), both
	// from /proc/stat; -1 when unknown. A large OtherCPU means the run
	// competed with something else on the machine.
	OtherCPU   float64 `json:"other_cpu"`
	SoftirqCPU float64 `json:"softirq_cpu"`
	Errors     int     `json:"errors"` // connections that failed
	FirstError string  `json:"first_error,omitempty"`
	// The compression scenarios: the server's answer to the offer (its
	// Sec-WebSocket-Extensions header, "" for none), the share of what was
	// received that came compressed and its mean payload bytes (compressed
	// size) per message, over the whole run.
	Extensions      string  `json:"extensions,omitempty"`
	CompressedShare float64 `json:"compressed_share,omitempty"`
	WirePerMsg      float64 `json:"wire_per_msg,omitempty"`
}

// errorLog records connection failures.
type errorLog struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (e *errorLog) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err
		e.mu.Unlock()
	}
}

func (e *errorLog) get() (int, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first == nil {
		return int(e.n.Load()), ""
	}
	return int(e.n.Load()), e.first.Error()
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Handshake performs the client side of the opening handshake on c and
// returns any bytes read past the response (there should be none).
func Handshake(c net.Conn, host string) ([]byte, error) { return HandshakePath(c, host, "/") }

// HandshakePath is Handshake for a request target other than "/", and
// returns the bytes read past the response (a server may send a first
// message right after it).
func HandshakePath(c net.Conn, host, path string) ([]byte, error) {
	rest, _, err := handshake(c, host, path, "")
	return rest, err
}

// handshake is HandshakePath with extra header lines (each ending in CRLF)
// in the request; it also returns the response's Sec-WebSocket-Extensions.
func handshake(c net.Conn, host, path, extra string) (rest []byte, ext string, err error) {
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		return nil, "", err
	}
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= 16<<10 {
				return nil, "", errors.New("bench: handshake response too long")
			}
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if end := bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
			head, rest := buf[:end+2], buf[end+4:]
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
				line, _, _ := bytes.Cut(head, []byte("\r\n"))
				return nil, "", fmt.Errorf("bench: upgrade refused: %q", line)
			}
			sum := sha1.Sum([]byte(key + wsGUID))
			want := base64.StdEncoding.EncodeToString(sum[:])
			accepted := false
			for _, line := range strings.Split(string(head), "\r\n")[1:] {
				k, v, _ := strings.Cut(line, ":")
				switch k, v = strings.TrimSpace(k), strings.TrimSpace(v); {
				case strings.EqualFold(k, "Sec-WebSocket-Accept"):
					accepted = accepted || v == want
				case strings.EqualFold(k, "Sec-WebSocket-Extensions"):
					if ext != "" {
						ext += ", "
					}
					ext += v
				}
			}
			if !accepted {
				return nil, "", fmt.Errorf("bench: bad or missing Sec-WebSocket-Accept in %q", head)
			}
			return append([]byte(nil), rest...), ext, nil
		}
		if err != nil {
			return nil, "", err
		}
	}
}

// DialWS connects to addr and completes the handshake within timeout.
func DialWS(addr string, timeout time.Duration) (net.Conn, []byte, error) {
	return DialWSPath(addr, "/", timeout)
}

// DialWSPath is DialWS with a request target (a path and query).
func DialWSPath(addr, path string, timeout time.Duration) (net.Conn, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	rest, err := HandshakePath(c, addr, path)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, rest, nil
}

// AppendClientFrame appends a final, masked client frame.
func AppendClientFrame(dst []byte, op byte, payload []byte, mask [4]byte) []byte {
	n := len(payload)
	b0 := 0x80 | op
	switch {
	case n < 126:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

// ParseServerFrame parses one unmasked server frame at the start of b. It
// returns the frame's first byte, its payload and its length, or n == 0 if
// the frame is not all in b.
func ParseServerFrame(b []byte) (b0 byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	if b[1]&0x80 != 0 {
		return 0, nil, 0, errors.New("bench: masked server frame")
	}
	hlen, plen := 2, int(b[1]&0x7F)
	switch plen {
	case 126:
		if hlen = 4; len(b) < hlen {
			return 0, nil, 0, nil
		}
		plen = int(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if hlen = 10; len(b) < hlen {
			return 0, nil, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u > 1<<30 {
			return 0, nil, 0, errors.New("bench: server frame too long")
		}
		plen = int(u)
	}
	if len(b) < hlen+plen {
		return 0, nil, 0, nil
	}
	return b[0], b[hlen : hlen+plen], hlen + plen, nil
}

// randomPayload returns n random bytes.
func randomPayload(n int) []byte {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return p
}

// dialAll opens n WebSocket connections to addr, at most par at a time.
func dialAll(addr string, n, par int, timeout time.Duration) ([]net.Conn, [][]byte, error) {
	return dialAllWith(n, par, func() (net.Conn, []byte, error) { return DialWS(addr, timeout) })
}

// dialAllWith opens n connections with dial, at most par at a time. On the
// first failure it closes those it opened and returns the error.
func dialAllWith(n, par int, dial func() (net.Conn, []byte, error)) ([]net.Conn, [][]byte, error) {
	conns := make([]net.Conn, n)
	rests := make([][]byte, n)
	var (
		next atomic.Int64
		errs errorLog
		wg   sync.WaitGroup
	)
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for errs.n.Load() == 0 {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, rest, err := dial()
				if err != nil {
					errs.add(fmt.Errorf("connection %d: %w", i, err))
					return
				}
				conns[i], rests[i] = c, rest
			}
		}()
	}
	wg.Wait()
	if cnt, first := errs.get(); cnt > 0 {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, nil, errors.New(first)
	}
	return conns, rests, nil
}

// Idle opens n WebSocket connections to addr (at most 64 handshakes at a
// time) and leaves them idle; close them with CloseAll.
func Idle(addr string, n int) ([]net.Conn, error) {
	conns, _, err := dialAll(addr, n, 64, 10*time.Second)
	return conns, err
}

// Alive counts the connections that the server has not closed: a read with
// an expired deadline times out on a live idle connection.
func Alive(conns []net.Conn) int {
	alive := 0
	var b [1]byte
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			alive++
		}
	}
	return alive
}

// CloseAll closes conns.
func CloseAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// ReadServerFrame reads one whole server frame from r into buf (grown as
// needed) and returns its first byte and payload.
func ReadServerFrame(r io.Reader, buf []byte) (b0 byte, payload, grown []byte, err error) {
	buf = buf[:cap(buf)]
	if len(buf) < 14 {
		buf = make([]byte, 4096)
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return 0, nil, buf, err
	}
	hlen := 2
	switch buf[1] & 0x7F {
	case 126:
		hlen = 4
	case 127:
		hlen = 10
	}
	if _, err := io.ReadFull(r, buf[2:hlen]); err != nil {
		return 0, nil, buf, err
	}
	if buf[1]&0x80 != 0 {
		return 0, nil, buf, errors.New("bench: masked server frame")
	}
	b0, plen := buf[0], int(buf[1]&0x7F)
	switch hlen {
	case 4:
		plen = int(binary.BigEndian.Uint16(buf[2:]))
	case 10:
		u := binary.BigEndian.Uint64(buf[2:])
		if u > 1<<30 {
			return 0, nil, buf, errors.New("bench: server frame too long")
		}
		plen = int(u)
	}
	if plen > len(buf) {
		buf = make([]byte, plen)
	}
	if _, err := io.ReadFull(r, buf[:plen]); err != nil {
		return 0, nil, buf, err
	}
	return b0, buf[:plen], buf, nil
}
