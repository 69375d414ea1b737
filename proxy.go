package tio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/internal/link"
)

// WithTrustedProxies names the load balancers in front of the server that
// speak the PROXY protocol (v1 or v2, as HAProxy, AWS NLB and nginx send
// it): a connection from one of these prefixes must begin with a PROXY
// header, and from then on its remote address is the client's — for the
// connection limits, the blacklist, per-IP statistics and
// Channel.RemoteAddr alike. A connection from anywhere else is never read as
// PROXY (a header from an untrusted peer is just unknown bytes). The header
// is bounded (MaxProxyHeader bytes) and must arrive within the handshake
// deadline; a malformed one closes the connection as
// channel.ReasonHandshakeFailed. A PROXY LOCAL header (a health check of
// the balancer's own) keeps the balancer's address.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	return func(o *config) { o.proxies = append(o.proxies, prefixes...) }
}

// MaxProxyHeader bounds a PROXY protocol header, TLVs included.
const MaxProxyHeader = 1024

// trustedProxy reports whether connections from a must begin with a PROXY
// header.
func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// maxV1 is the longest a v1 header may be (its spec's 107 bytes).
const maxV1 = 107

var (
	sigV1 = []byte("PROXY")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// proxyHeader parses the PROXY header at the start of buf. It returns the
// number of bytes the header took and the client's address (invalid for a
// LOCAL header), 0 when more bytes are needed, or an error.
func proxyHeader(buf []byte) (int, netip.AddrPort, error) {
	switch {
	case len(buf) < len(sigV2) && (bytes.HasPrefix(sigV1, buf[:min(len(buf), len(sigV1))]) || bytes.HasPrefix(sigV2, buf)):
		return 0, netip.AddrPort{}, nil // too few bytes to tell
	case bytes.HasPrefix(buf, sigV1) && bytes.IndexByte(buf, '\n') < 0 && len(buf) < maxV1:
		return 0, netip.AddrPort{}, nil // a v1 line not ended yet
	case bytes.HasPrefix(buf, sigV2) && (len(buf) < 16 || len(buf) < 16+int(binary.BigEndian.Uint16(buf[14:16]))):
		if len(buf) >= 16 && 16+int(binary.BigEndian.Uint16(buf[14:16])) > MaxProxyHeader {
			return 0, netip.AddrPort{}, fmt.Errorf("tio: PROXY v2 header of %d bytes, over %d", 16+int(binary.BigEndian.Uint16(buf[14:16])), MaxProxyHeader)
		}
		return 0, netip.AddrPort{}, nil // a v2 header not whole yet
	}
	r := bytes.NewReader(buf[:min(len(buf), MaxProxyHeader)])
	br := bufio.NewReaderSize(r, MaxProxyHeader)
	h, err := proxyproto.Read(br)
	if err != nil {
		if (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && len(buf) < MaxProxyHeader {
			return 0, netip.AddrPort{}, nil
		}
		return 0, netip.AddrPort{}, fmt.Errorf("tio: PROXY header from a trusted proxy: %w", err)
	}
	n := len(buf[:min(len(buf), MaxProxyHeader)]) - r.Len() - br.Buffered()
	if h.Command.IsLocal() {
		return n, netip.AddrPort{}, nil
	}
	a, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok {
		return 0, netip.AddrPort{}, fmt.Errorf("tio: PROXY header for %v: not a TCP connection", h.SourceAddr)
	}
	return n, a.AddrPort(), nil
}

// readProxy consumes a trusted proxy's header from what the connection has
// sent, then admits the connection under the client's address. It returns
// the bytes it consumed (0: wait for more); on a bad header or a refusal the
// link is failed.
func (s *Server) readProxy(l *link.Link, buf []byte) int {
	n, client, err := proxyHeader(buf)
	switch {
	case err != nil:
		l.DecodeError()
		l.Fail(link.ReasonHandshakeFailed, err, false)
		return len(buf)
	case n == 0:
		if len(buf) >= MaxProxyHeader {
			l.Fail(link.ReasonTooBig, fmt.Errorf("tio: PROXY header over %d bytes", MaxProxyHeader), false)
			return len(buf)
		}
		return 0
	}
	l.ProxyDone()
	ch := (*channel.Channel)(l)
	if client.IsValid() {
		old := ch.RemoteAddr().Addr()
		l.SetRemoteAddr(netip.AddrPortFrom(client.Addr().Unmap(), client.Port()))
		s.groups.MoveIP(ch, old)
	}
	ch.SetValue(untrackedIP{}, nil)
	s.trackIP(l)
	if r := s.admitIP(ch); r != link.ReasonNone {
		l.Fail(r, nil, false)
	}
	return n
}
