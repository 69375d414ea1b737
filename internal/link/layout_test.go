package link

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
)

// Every idle connection holds a Channel: it must stay within the 192-byte
// size class (the next one is 208).
func TestChannelSize(t *testing.T) {
	if n := unsafe.Sizeof(Link{}); n > 192 {
		t.Fatalf("Link is %d bytes, want at most 192", n)
	}
}

type addrConn struct {
	gnet.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001} }

// The packed remote address gives back what gnet reported: IPv4 as IPv4
// (also when the socket reported it IPv4-mapped), IPv6 as IPv6, with its
// zone, and no address for a connection without one.
func TestRemoteAddrPacked(t *testing.T) {
	var env Env
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}, "10.1.2.3:40000"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}, "10.1.2.3:1"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}, "[2001:db8::1]:443"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 7, Zone: "eth0"}, "[fe80::1%eth0]:7"},
		{&net.TCPAddr{IP: net.ParseIP("::"), Port: 8}, "[::]:8"},
		{nil, "invalid AddrPort"},
	} {
		ch := New(addrConn{remote: tc.addr}, 1, &env)
		if got := ch.RemoteAddr().String(); got != tc.want {
			t.Errorf("%v: RemoteAddr %s, want %s", tc.addr, got, tc.want)
		}
		if tc.addr != nil {
			want := netip.MustParseAddrPort(tc.want)
			if ch.RemoteAddr() != want {
				t.Errorf("%v: RemoteAddr %#v, want %#v", tc.addr, ch.RemoteAddr(), want)
			}
		}
	}
}

type nopCodec struct{ name string }

func (c *nopCodec) Name() string                                     { return c.name }
func (*nopCodec) NewDecoder() codec.Decoder                          { return nil }
func (*nopCodec) Encode(dst []byte, _ *codec.Packet) ([]byte, error) { return dst, nil }

// Channels keep their codec as an index into their Env's list.
func TestCodecIndex(t *testing.T) {
	a, b := &nopCodec{"a"}, &nopCodec{"b"}
	env := Env{Codecs: []codec.Codec{a, b}}
	chs := make([]*Link, 4)
	for i, idx := range []int{0, 1, 0, 1} {
		l := New(addrConn{}, uint64(i), &env)
		if l.Codec() != nil || l.CodecIndex() != -1 {
			t.Fatal("codec before SetCodec")
		}
		l.SetCodec(idx)
		chs[i] = l
	}
	if chs[0].Codec() != a || chs[1].Codec() != b || chs[2].Codec() != a || chs[3].Codec() != b {
		t.Fatal("wrong codec back")
	}
	if chs[1].CodecIndex() != 1 || chs[2].CodecIndex() != 0 {
		t.Fatal("wrong codec index back")
	}
}

type localConn struct {
	gnet.Conn
	local net.Addr
}

func (c localConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5} }
func (c localConn) LocalAddr() net.Addr  { return c.local }

// Local addresses are kept as indexes into a list the channels of an Env
// share; past its 64 entries, a channel keeps its own copy.
func TestLocalAddrInterned(t *testing.T) {
	var env Env
	for round := range 2 {
		for i := range 70 {
			a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i)), Port: 9001}
			ch := New(localConn{local: a}, uint64(i), &env)
			if got, want := ch.LocalAddr(), netip.MustParseAddrPort(a.String()); got != want {
				t.Fatalf("round %d, address %d: LocalAddr %v, want %v", round, i, got, want)
			}
			if (ch.localIdx == 0) != (i >= maxLocals) {
				t.Fatalf("address %d: index %d", i, ch.localIdx)
			}
		}
	}
	if n := len(*env.locals.Load()); n != maxLocals {
		t.Fatalf("%d addresses listed, want %d", n, maxLocals)
	}
}
