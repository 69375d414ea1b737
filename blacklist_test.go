package tio_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/tiotest"
)

// Blacklisting an IP closes its live connections and refuses new ones at
// accept, counting both; other IPs are untouched; removing it lets the IP in
// again.
func TestBlacklist(t *testing.T) {
	p := newPeers(t, echoMux(), tio.Hooks{})
	srv := p.srv
	bad := netip.MustParseAddr("127.0.0.2")
	b1, _ := p.binFrom("127.0.0.2")
	b2, _ := p.binFrom("127.0.0.2")
	good, _ := p.bin()

	if srv.Blacklist().Has(bad) || len(srv.Blacklist().List()) != 0 {
		t.Fatal("blacklisted from the start")
	}
	if n := srv.Blacklist().Add(bad); n != 2 {
		t.Fatalf("Blacklist closed %d connections, want 2", n)
	}
	tiotest.ExpectClosed(t, b1)
	tiotest.ExpectClosed(t, b2)
	// A new connection from the IP is refused at accept, before any byte.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rest := tiotest.ExpectClosed(t, c); len(rest) != 0 {
		t.Fatalf("refused connection got %q", rest)
	}
	tiotest.Eventually(t, "blacklist closes counted", func() bool { return srv.Stats().Closed[channel.ReasonBlacklisted] == 3 })
	if srv.Count(tio.IP(bad)) != 0 {
		t.Fatal("refused connection still indexed")
	}
	// Other IPs keep working.
	good.Send(1, []byte("ok"))
	if p := good.Recv(); string(p.Body) != "ok" {
		t.Fatalf("got %q", p.Body)
	}

	// An IPv4-mapped IPv6 address is the same IP.
	srv.Blacklist().Add(netip.MustParseAddr("::ffff:10.0.0.1"))
	if !srv.Blacklist().Has(netip.MustParseAddr("10.0.0.1")) || !srv.Blacklist().Has(bad) {
		t.Fatal("IsBlacklisted")
	}
	if got := srv.Blacklist().List(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("10.0.0.1"), bad}) {
		t.Fatalf("Blacklisted = %v", got)
	}
	if !srv.Blacklist().Remove(bad) || srv.Blacklist().Remove(bad) || srv.Blacklist().Has(bad) {
		t.Fatal("Unblacklist")
	}
	again, _ := p.binFrom("127.0.0.2")
	again.Send(1, []byte("back"))
	if p := again.Recv(); string(p.Body) != "back" {
		t.Fatalf("got %q", p.Body)
	}
	if n := srv.Stats().Closed[channel.ReasonBlacklisted]; n != 3 {
		t.Fatalf("blacklisted closes = %d", n)
	}
}
