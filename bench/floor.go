package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Floor is the overhead floor: the least a WebSocket echo on gnet v2 and
// gobwas/ws can do. The handshake is gobwas's ws.Upgrader run on exactly the
// bytes up to the blank line; client frames are parsed by hand from
// c.Peek(-1), unmasked in place with ws.Cipher, and every echo frame decoded
// in one OnTraffic is written back with a single c.Writev, without copying:
// each server frame header (2, 4 or 10 bytes) is written in place over the
// tail of the client's header (2, 4 or 10 bytes plus the 4-byte mask), right
// before the payload.
//
// It is correct for the benchmark's traffic and a little more: any data frame
// is echoed with its opcode and FIN bit (so fragmented messages are echoed
// fragment by fragment), pings are answered with pongs, pongs are ignored, and
// a close frame is answered with a close frame carrying the same body. It
// does not validate UTF-8 or the other rules of RFC 6455 that tio enforces.
type Floor struct {
	gnet.BuiltinEventEngine

	eng    gnet.Engine
	addr   string
	booted chan struct{}
	done   chan struct{}
	err    error
}

const (
	floorMaxHandshake = 8 << 10
	floorMaxFrame     = 16 << 20
	maxIovecs         = 1024 // IOV_MAX on Linux
)

// upgraded marks a connection whose handshake is done (gnet context).
type upgraded struct{}

// StartFloor starts the floor echo on addr, multicore (one event loop per
// CPU, like tio's default), and returns once it listens.
func StartFloor(addr string) (*Floor, error) {
	f := &Floor{booted: make(chan struct{}), done: make(chan struct{})}
	go func() {
		f.err = gnet.Run(f, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithLogger(stderrLogger{}))
		select {
		case <-f.booted:
		default:
			close(f.booted)
		}
		close(f.done)
	}()
	<-f.booted
	select {
	case <-f.done:
		if f.err == nil {
			f.err = errors.New("bench: gnet stopped at once")
		}
		return nil, f.err
	default:
	}
	return f, nil
}

// OnBoot implements gnet.EventHandler.
func (f *Floor) OnBoot(eng gnet.Engine) gnet.Action {
	f.eng = eng
	f.addr = engineAddr(eng)
	close(f.booted)
	return gnet.None
}

// Addr returns the address the floor listens on.
func (f *Floor) Addr() string { return f.addr }

// Close stops the engine.
func (f *Floor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := f.eng.Stop(ctx)
	<-f.done
	return err
}

var crlfcrlf = []byte("\r\n\r\n")

// iovPool holds the [][]byte handed to Writev, so that OnTraffic does not
// allocate one per pass.
var iovPool = sync.Pool{New: func() any {
	v := make([][]byte, 0, 64)
	return &v
}}

// OnTraffic implements gnet.EventHandler.
func (f *Floor) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	off := 0
	if c.Context() == nil {
		end := bytes.Index(buf, crlfcrlf)
		if end < 0 {
			if len(buf) > floorMaxHandshake {
				return gnet.Close
			}
			return gnet.None
		}
		off = end + len(crlfcrlf)
		var out bytes.Buffer
		_, err := ws.Upgrader{}.Upgrade(readWriter{bytes.NewReader(buf[:off]), &out})
		if _, werr := c.Write(out.Bytes()); err != nil || werr != nil {
			return gnet.Close
		}
		c.SetContext(upgraded{})
	}

	iov := iovPool.Get().(*[][]byte)
	vs := (*iov)[:0]
	action := gnet.None
frames:
	for action == gnet.None {
		in := buf[off:]
		if len(in) < 2 {
			break
		}
		b0, b1 := in[0], in[1]
		if b1&0x80 == 0 || b0&0x70 != 0 {
			action = gnet.Close // unmasked client frame, or reserved bits
			break
		}
		hlen, plen := 6, int(b1&0x7F)
		switch plen {
		case 126:
			if hlen = 8; len(in) < 4 {
				break frames
			}
			plen = int(binary.BigEndian.Uint16(in[2:]))
		case 127:
			if hlen = 14; len(in) < 10 {
				break frames
			}
			n := binary.BigEndian.Uint64(in[2:])
			if n > floorMaxFrame {
				action = gnet.Close
				break frames
			}
			plen = int(n)
		}
		if len(in) < hlen+plen {
			break
		}
		mask := [4]byte(in[hlen-4 : hlen])
		payload := in[hlen : hlen+plen]
		ws.Cipher(payload, mask, 0)
		off += hlen + plen

		op := ws.OpCode(b0 & 0x0F)
		switch op {
		case ws.OpPong:
			continue
		case ws.OpPing:
			b0 = 0x80 | byte(ws.OpPong)
		case ws.OpClose:
			action = gnet.Close // after the close frame is written below
		}
		// The server header ends where the payload starts: in[4:hlen].
		h := in[4:hlen]
		h[0] = b0
		switch len(h) {
		case 2:
			h[1] = byte(plen)
		case 4:
			h[1] = 126
			binary.BigEndian.PutUint16(h[2:], uint16(plen))
		default:
			h[1] = 127
			binary.BigEndian.PutUint64(h[2:], uint64(plen))
		}
		vs = append(vs, in[4:hlen+plen])
		if len(vs) == maxIovecs {
			if floorWrite(c, vs) != nil {
				action = gnet.Close
			}
			vs = vs[:0]
		}
	}
	if len(vs) > 0 {
		if floorWrite(c, vs) != nil {
			action = gnet.Close
		}
	}
	clear(vs)
	*iov = vs[:0]
	iovPool.Put(iov)
	if off > 0 {
		_, _ = c.Discard(off)
	}
	return action
}

// stderrLogger sends gnet's warnings and errors to stderr and drops the rest
// (gnet's default logger writes to stdout, where benchserver reports).
type stderrLogger struct{}

func (stderrLogger) Debugf(string, ...any)        {}
func (stderrLogger) Infof(string, ...any)         {}
func (stderrLogger) Warnf(f string, args ...any)  { fmt.Fprintf(os.Stderr, "gnet: "+f+"\n", args...) }
func (stderrLogger) Errorf(f string, args ...any) { fmt.Fprintf(os.Stderr, "gnet: "+f+"\n", args...) }
func (stderrLogger) Fatalf(f string, args ...any) { fmt.Fprintf(os.Stderr, "gnet: "+f+"\n", args...) }

// FloorCopy switches the floor from one Writev of the frames in place to one
// Write of the frames copied into a buffer (benchserver -floorcopy). On this
// benchmark's traffic neither was clearly cheaper; Writev is the default.
var FloorCopy = false

var outPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}

func floorWrite(c gnet.Conn, vs [][]byte) error {
	if !FloorCopy {
		_, err := c.Writev(vs)
		return err
	}
	bp := outPool.Get().(*[]byte)
	b := (*bp)[:0]
	for _, v := range vs {
		b = append(b, v...)
	}
	_, err := c.Write(b)
	*bp = b[:0]
	outPool.Put(bp)
	return err
}

type readWriter struct {
	io.Reader
	io.Writer
}

// engineAddr reads the address an engine listens on (to resolve port 0).
func engineAddr(eng gnet.Engine) string {
	fd, err := eng.Dup()
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return net.JoinHostPort(netip.AddrFrom16(a.Addr).String(), strconv.Itoa(a.Port))
	}
	return ""
}
