package tio_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	tbin "github.com/tiogo/tio/codec/binary"
	"github.com/tiogo/tio/stats"
	"github.com/tiogo/tio/tiotest"
)

// proxied dials srv from the balancer's address 127.0.0.2, sends hdr and
// then the binary handshake, byte by byte if slow.
func proxied(t *testing.T, srv *tio.Server, hdr []byte, slow bool) *tiotest.BinaryConn {
	t.Helper()
	c := tiotest.DialFrom(t, srv, "127.0.0.2")
	msg := append(append([]byte(nil), hdr...), tbin.TagHandshake)
	if slow {
		for _, b := range msg {
			_, _ = c.Write([]byte{b})
			time.Sleep(time.Millisecond)
		}
	} else {
		_, _ = c.Write(msg)
	}
	return tiotest.AsBinary(t, c)
}

func v2(t *testing.T, client string) []byte {
	t.Helper()
	src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client))
	dst := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001}
	b, err := proxyproto.HeaderProxyFromAddrs(2, src, dst).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Behind a trusted load balancer, a connection's address is the client's
// from its PROXY header (v1 or v2, whole or byte by byte): limits, the
// blacklist, statistics and RemoteAddr all see it. Only trusted peers are
// read as PROXY; a bad or stalled header is closed and counted.
func TestProxyProtocol(t *testing.T) {
	srv := tiotest.NewServer(t, echoMux(),
		tio.WithTrustedProxies(netip.MustParsePrefix("127.0.0.2/32")),
		tio.WithLimits(tio.Limits{MaxConnectionsPerIP: 1}),
		tio.WithIPStats(stats.IPConfig{Windows: []time.Duration{time.Hour}}),
		tio.WithHandshakeTimeout(500*time.Millisecond))
	client := netip.MustParseAddr("203.0.113.7")
	check := func(c *tiotest.BinaryConn, want string) {
		t.Helper()
		if b := c.ReadN(1); b[0] != tbin.TagHandshake {
			t.Fatalf("handshake answered %#x", b[0])
		}
		tiotest.Eventually(t, "indexed by the client's address", func() bool {
			chs := srv.Channels(tio.IP(netip.MustParseAddrPort(want).Addr()))
			return len(chs) == 1 && chs[0].RemoteAddr().String() == want
		})
	}
	a := proxied(t, srv, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 9001\r\n"), false)
	check(a, "203.0.113.7:5555")
	if st, ok := srv.IPStats(client); !ok || st.Active != 1 {
		t.Fatalf("per-IP statistics of the client: %+v, %v", st, ok)
	}
	b := proxied(t, srv, v2(t, "198.51.100.9:6000"), true)
	check(b, "198.51.100.9:6000")
	// The per-IP limit counts the client, not the balancer.
	again := proxied(t, srv, []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5556 9001\r\n"), false)
	tiotest.ExpectClosed(t, again)
	// The blacklist too.
	if n := srv.Blacklist().Add(netip.MustParseAddr("198.51.100.9")); n != 1 {
		t.Fatalf("blacklisting the client closed %d", n)
	}
	tiotest.ExpectClosed(t, b)
	// A LOCAL header (the balancer's health check) keeps its own address.
	local := proxied(t, srv, []byte("PROXY UNKNOWN\r\n"), false)
	check(local, local.LocalAddr().String())

	// An untrusted peer's PROXY header is unknown bytes.
	u := tiotest.DialFrom(t, srv, "127.0.0.3")
	_, _ = u.Write([]byte("PROXY TCP4 203.0.113.8 127.0.0.1 1 2\r\n\xa1"))
	tiotest.ExpectClosed(t, u)
	// A trusted peer's garbage, and a header that never finishes.
	g := proxied(t, srv, []byte("PROXY TCP9 nonsense\r\n"), false)
	tiotest.ExpectClosed(t, g)
	stall := tiotest.DialFrom(t, srv, "127.0.0.2")
	_, _ = stall.Write([]byte("PROXY TCP4 203."))
	tiotest.ExpectClosed(t, stall)

	tiotest.Eventually(t, "closes counted", func() bool {
		s := srv.Stats()
		return s.Closed[channel.ReasonTooManyConnections] == 1 && s.Closed[channel.ReasonBlacklisted] == 1 &&
			s.Closed[channel.ReasonUnknownProtocol] == 1 && s.Closed[channel.ReasonHandshakeFailed] == 1 &&
			s.Closed[channel.ReasonHandshakeTimeout] == 1
	})
	a.Send(1, []byte("still here"))
	if p := a.Recv(); string(p.Body) != "still here" {
		t.Fatalf("echo %q", p.Body)
	}
}
