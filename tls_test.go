package tio_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/stats"
	"github.com/tiogo/tio/tiotest"
)

// typeTLSInfo asks the server what it knows of the connection's TLS.
const typeTLSInfo codec.Type = 9

// tlsMux echoes every packet, and answers typeTLSInfo with what
// Channel.TLS says: "tls" or "clear", the server name, the client
// certificate's common name and the server certificate's serial.
func tlsMux() *handler.Mux {
	mux := echoMux()
	mux.Handle(typeTLSInfo, handler.HandlerFunc(func(ch *channel.Channel, p *codec.Packet) {
		cs, ok := ch.TLS()
		info := "clear"
		if ok {
			var cn string
			if len(cs.PeerCertificates) > 0 {
				cn = cs.PeerCertificates[0].Subject.CommonName
			}
			info = fmt.Sprintf("tls %s %q %q", tls.VersionName(cs.Version), cs.ServerName, cn)
		}
		_ = ch.Send(&codec.Packet{Type: typeTLSInfo, Body: []byte(info)})
	}))
	return mux
}

// tlsHTTP answers plain HTTP requests with whether they came over TLS.
var tlsHTTP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "tls=%v", r.TLS != nil)
})

// closes records the reason each connection closed with, and its
// counters then.
type closes struct {
	mu  sync.Mutex
	got []closed
}

type closed struct {
	secure bool
	reason channel.Reason
	stats  channel.Stats
}

func (c *closes) hook(ch *channel.Channel, r channel.Reason, _ error) {
	_, secure := ch.TLS()
	c.mu.Lock()
	c.got = append(c.got, closed{secure, r, ch.Stats()})
	c.mu.Unlock()
}

func (c *closes) all() []closed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]closed(nil), c.got...)
}

func gorillaTLS(t *testing.T, cfg *tls.Config, url string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

func echoOver(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.ReadMessage()
	if err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q %v", msg, got, err)
	}
}

func httpGet(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// One port serves ws and wss, the binary protocol in clear and over TLS,
// HTTP and HTTPS. Handlers see the TLS state; every TLS connection's
// counters and close reason are a plain one's.
func TestTLSSamePort(t *testing.T) {
	pki := tiotest.NewPKI(t)
	var cl closes
	srv := tiotest.NewServer(t, tlsMux(), tio.WithTLS(pki.ServerConfig()), tio.WithHTTP(tlsHTTP), tio.WithOnClose(cl.hook))
	addr := srv.Addr().String()
	ccfg := pki.ClientConfig()

	wss := gorillaTLS(t, ccfg, "wss://"+addr+"/")
	echoOver(t, wss, "over wss")
	plain := dialWS(t, srv, "/")
	echoOver(t, plain, "over ws")

	bt := tiotest.DialBinaryTLS(t, srv, ccfg)
	bt.Send(1, []byte("binary over TLS"))
	if p := bt.Recv(); string(p.Body) != "binary over TLS" {
		t.Fatalf("binary TLS echo %q", p.Body)
	}
	bt.Send(typeTLSInfo, nil)
	if p := bt.Recv(); !strings.HasPrefix(string(p.Body), "tls TLS 1.3 ") {
		t.Fatalf("the handler saw %q", p.Body)
	}
	b := tiotest.DialBinary(t, srv)
	b.Send(typeTLSInfo, nil)
	if p := b.Recv(); string(p.Body) != "clear" {
		t.Fatalf("the handler saw %q on a cleartext connection", p.Body)
	}

	// A server name the client asks for reaches the handler.
	named := ccfg.Clone()
	named.ServerName = "localhost"
	bn := tiotest.DialBinaryTLS(t, srv, named)
	bn.Send(typeTLSInfo, nil)
	if p := bn.Recv(); string(p.Body) != `tls TLS 1.3 "localhost" ""` {
		t.Fatalf("the handler saw %q", p.Body)
	}

	tr := &http.Transport{TLSClientConfig: ccfg}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	if got := httpGet(t, client, "https://"+addr+"/"); got != "tls=true" {
		t.Fatalf("https: %q", got)
	}
	if got := httpGet(t, client, "http://"+addr+"/"); got != "tls=false" {
		t.Fatalf("http: %q", got)
	}
	tr.CloseIdleConnections()

	if s := srv.Stats().TLS; s.Handshakes != 4 || s.Failed != [stats.NumTLSFailures]uint64{} {
		t.Fatalf("TLS stats %+v, want 4 handshakes and no failure", s)
	}

	// Peers that leave: closed_by_peer, TLS or not, with their traffic
	// counted (a wss client says goodbye with a close frame).
	_ = wss.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = plain.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	for _, c := range []net.Conn{bt, b, bn} {
		c.Close()
	}
	tiotest.Eventually(t, "every connection closed", func() bool { return srv.Count(tio.All()) == 0 && len(cl.all()) == 7 })
	secure := 0
	for _, c := range cl.all() {
		if c.reason != channel.ReasonClosedByPeer {
			t.Errorf("a connection (tls %v) closed as %v", c.secure, c.reason)
		}
		if c.stats.BytesIn == 0 || c.stats.BytesOut == 0 || c.stats.PacketsIn == 0 {
			t.Errorf("a connection (tls %v) counted %+v", c.secure, c.stats)
		}
		if c.secure {
			secure++
		}
	}
	if secure != 4 {
		t.Fatalf("%d connections closed with a TLS state, want 4", secure)
	}
}

// Shutdown over TLS: a wss client gets the messages queued before it,
// then the going-away close, as in clear.
func TestTLSShutdown(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := tio.NewServer("127.0.0.1:0", echoMux(), tio.WithTLS(pki.ServerConfig()), tio.WithLogger(tiotest.Logger(t)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c := gorillaTLS(t, pki.ClientConfig(), "wss://"+srv.Addr().String()+"/")
	echoOver(t, c, "hello")
	big := strings.Repeat("x", 1<<20)
	for range 4 {
		if err := c.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
			t.Fatal(err)
		}
	}
	tiotest.Eventually(t, "the messages arrived", func() bool { return srv.Stats().Traffic.PacketsIn >= 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for i := range 4 {
		_, got, err := c.ReadMessage()
		if err != nil || len(got) != len(big) {
			t.Fatalf("echo %d before the close: %d bytes, %v", i, len(got), err)
		}
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after the echoes: %v, want close 1001", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Certificates reload without a restart: GetCertificate is asked at each
// handshake; connections made before keep theirs.
func TestTLSCertificateReload(t *testing.T) {
	pki := tiotest.NewPKI(t)
	var cert atomic.Pointer[tls.Certificate]
	first := pki.Certificate()
	cert.Store(&first)
	cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil }}
	srv := tiotest.NewServer(t, echoMux(), tio.WithTLS(cfg))
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }

	before := tiotest.DialBinaryTLS(t, srv, pki.ClientConfig())
	if got := serial(before.Conn.(*tls.Conn)); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("served serial %s, want %s", got, first.Leaf.SerialNumber)
	}
	second := pki.Certificate()
	cert.Store(&second)
	after := tiotest.DialBinaryTLS(t, srv, pki.ClientConfig())
	if got := serial(after.Conn.(*tls.Conn)); got != second.Leaf.SerialNumber.String() {
		t.Fatalf("after the reload: serial %s, want %s", got, second.Leaf.SerialNumber)
	}
	for _, c := range []*tiotest.BinaryConn{before, after} {
		c.Send(1, []byte("still here"))
		if p := c.Recv(); string(p.Body) != "still here" {
			t.Fatalf("echo %q", p.Body)
		}
	}
}

// Client certificates, when the configuration asks for them: the handler
// sees the client's; a client without one is refused and counted.
func TestTLSClientCertificates(t *testing.T) {
	pki := tiotest.NewPKI(t)
	cfg := pki.ServerConfig()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = pki.Pool
	srv := tiotest.NewServer(t, tlsMux(), tio.WithTLS(cfg))

	ccfg := pki.ClientConfig()
	ccfg.Certificates = []tls.Certificate{pki.ClientCertificate("alice")}
	c := tiotest.DialBinaryTLS(t, srv, ccfg)
	c.Send(typeTLSInfo, nil)
	if p := c.Recv(); string(p.Body) != `tls TLS 1.3 "" "alice"` {
		t.Fatalf("the handler saw %q", p.Body)
	}

	raw := tiotest.Dial(t, srv)
	noCert := pki.ClientConfig()
	noCert.ServerName = "localhost"
	tc := tls.Client(raw, noCert)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	err := tc.Handshake()
	if err == nil { // TLS 1.3: the client learns of the refusal at its first read
		_, err = tc.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
	tiotest.Eventually(t, "the refusal counted", func() bool {
		s := srv.Stats()
		return s.TLS.Failed[stats.TLSHandshakeFailed] == 1 && s.Closed[channel.ReasonHandshakeFailed] == 1
	})
}

// WithTLSRequired: cleartext is refused, an HTTP request with an answer.
func TestTLSRequired(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := tiotest.NewServer(t, echoMux(), tio.WithTLS(pki.ServerConfig()), tio.WithTLSRequired())
	addr := srv.Addr().String()

	c := tiotest.Dial(t, srv)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an HTTP request in clear: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "TLS") {
		t.Fatalf("answer %q", body)
	}
	tiotest.ExpectClosed(t, c)

	if _, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", nil); err == nil {
		t.Fatal("ws in clear upgraded")
	}
	b := tiotest.Dial(t, srv)
	_, _ = b.Write([]byte{0xA1}) // the binary handshake
	if got := tiotest.ExpectClosed(t, b); len(got) != 0 {
		t.Fatalf("the binary protocol in clear got %q", got)
	}
	tiotest.Eventually(t, "three refusals", func() bool { return srv.Stats().Closed[channel.ReasonHandshakeRefused] == 3 })

	echoOver(t, gorillaTLS(t, pki.ClientConfig(), "wss://"+addr+"/"), "secure")
}

// Bad TLS input: each case closes its connection with a counted reason and
// TLS failure, holds nothing unbounded, and the server serves on.
func TestTLSBadInput(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := tiotest.NewServer(t, echoMux(), tio.WithTLS(pki.ServerConfig()),
		tio.WithHandshakeTimeout(600*time.Millisecond), tio.WithPacketTimeout(600*time.Millisecond))
	hello := clientHello(t, pki.ClientConfig())

	// established returns a TLS connection of the given version, its
	// handshake done, and the raw socket under it.
	established := func(t *testing.T, v uint16) (*tls.Conn, net.Conn) {
		raw := tiotest.Dial(t, srv)
		cfg := pki.ClientConfig()
		cfg.ServerName = "localhost"
		cfg.MinVersion, cfg.MaxVersion = v, v
		c := tls.Client(raw, cfg)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		// Make sure the server has seen the client's Finished.
		if _, err := c.Write(append([]byte{0xA1}, tiotest.Packet(1, []byte("x"))...)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1+len(tiotest.Packet(1, []byte("x"))))); err != nil {
			t.Fatal(err)
		}
		return c, raw
	}

	for _, tc := range []struct {
		name    string
		reason  channel.Reason
		failure stats.TLSFailure
		peer    func(t *testing.T)
	}{
		{"garbage ClientHello", channel.ReasonHandshakeFailed, stats.TLSMalformedHello, func(t *testing.T) {
			c := tiotest.Dial(t, srv)
			_, _ = c.Write([]byte("\x16\x03\x01\x00\x08garbage!"))
			if got := tiotest.ExpectClosed(t, c); len(got) == 0 || got[0] != 0x15 {
				t.Fatalf("answered % x, want an alert", got)
			}
		}},
		{"truncated ClientHello", channel.ReasonHandshakeTimeout, stats.TLSHandshakeTimeout, func(t *testing.T) {
			c := tiotest.Dial(t, srv)
			_, _ = c.Write(hello[:len(hello)/2])
			tiotest.ExpectClosed(t, c)
		}},
		{"slowloris", channel.ReasonHandshakeTimeout, stats.TLSHandshakeTimeout, func(t *testing.T) {
			c := tiotest.Dial(t, srv)
			start := time.Now()
			for i := 0; i < len(hello)-1; i++ {
				if _, err := c.Write(hello[i : i+1]); err != nil {
					break // closed
				}
				time.Sleep(20 * time.Millisecond)
				if time.Since(start) > 3*time.Second {
					t.Fatal("the server took a trickled ClientHello for 3 s")
				}
			}
			tiotest.ExpectClosed(t, c)
		}},
		{"old version", channel.ReasonHandshakeFailed, stats.TLSUnsupportedVersion, func(t *testing.T) {
			cfg := pki.ClientConfig()
			cfg.ServerName = "localhost"
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
			c := tls.Client(tiotest.Dial(t, srv), cfg)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.Handshake(); err == nil || !strings.Contains(err.Error(), "protocol version") {
				t.Fatalf("a TLS 1.1 client: %v, want a protocol_version alert", err)
			}
		}},
		{"ClientHello record too large", channel.ReasonTooBig, stats.TLSTooLarge, func(t *testing.T) {
			c := tiotest.Dial(t, srv)
			_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x40, 0x01}) // 16385 bytes announced
			tiotest.ExpectClosed(t, c)
		}},
		{"record too large", channel.ReasonTooBig, stats.TLSTooLarge, func(t *testing.T) {
			_, raw := established(t, tls.VersionTLS13)
			_, _ = raw.Write([]byte{0x17, 0x03, 0x03, 0x41, 0x01}) // 16641 bytes announced
			tiotest.ExpectClosed(t, raw)
		}},
		{"renegotiation", channel.ReasonProtocolError, stats.TLSRenegotiation, func(t *testing.T) {
			_, raw := established(t, tls.VersionTLS12)
			rec := append([]byte{0x16, 0x03, 0x03, 0x00, 0x40}, make([]byte, 0x40)...) // a handshake record after the handshake
			_, _ = raw.Write(rec)
			tiotest.ExpectClosed(t, raw)
		}},
		{"record that does not decrypt", channel.ReasonProtocolError, stats.TLSProtocol, func(t *testing.T) {
			_, raw := established(t, tls.VersionTLS13)
			_, _ = raw.Write(append([]byte{0x17, 0x03, 0x03, 0x00, 0x20}, make([]byte, 0x20)...))
			tiotest.ExpectClosed(t, raw)
		}},
		{"record that never ends", channel.ReasonPacketTimeout, 0, func(t *testing.T) {
			_, raw := established(t, tls.VersionTLS13)
			_, _ = raw.Write([]byte{0x17, 0x03, 0x03, 0x01, 0x00, 1, 2, 3}) // 256 bytes announced, 3 sent
			tiotest.ExpectClosed(t, raw)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats()
			tc.peer(t)
			tiotest.Eventually(t, tc.reason.String()+" counted", func() bool {
				return srv.Stats().Closed[tc.reason] > before.Closed[tc.reason]
			})
			after := srv.Stats()
			if tc.reason == channel.ReasonPacketTimeout {
				if after.TLS.Failed != before.TLS.Failed {
					t.Fatalf("TLS failures %v, then %v: a packet timeout is not one", before.TLS.Failed, after.TLS.Failed)
				}
			} else if after.TLS.Failed[tc.failure] != before.TLS.Failed[tc.failure]+1 {
				t.Fatalf("TLS failure %v: %d, then %d", tc.failure, before.TLS.Failed[tc.failure], after.TLS.Failed[tc.failure])
			}
		})
	}
	tiotest.Eventually(t, "every bad connection closed", func() bool { return srv.Count(tio.All()) == 0 })
	echoOver(t, gorillaTLS(t, pki.ClientConfig(), "wss://"+srv.Addr().String()+"/"), "served on")
	if s := srv.Stats().TLS; s.Workers != 0 || s.Queued != 0 {
		t.Fatalf("handshake pool after the attacks: %+v", s)
	}
}

// clientHello returns the first flight of a Go TLS client with cfg.
func clientHello(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		cfg := cfg.Clone()
		cfg.ServerName = "localhost"
		c := tls.Client(a, cfg)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = c.Handshake()
	}()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 5)
	if _, err := io.ReadFull(b, head); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(head[3])<<8|int(head[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(head, body...)
}

// Configuration errors are Start's.
func TestTLSConfigErrors(t *testing.T) {
	pki := tiotest.NewPKI(t)
	h2 := pki.ServerConfig()
	h2.NextProtos = []string{"h2", "http/1.1"}
	for name, opts := range map[string][]tio.Option{
		"required without TLS":   {tio.WithTLSRequired()},
		"no certificate":         {tio.WithTLS(&tls.Config{})},
		"h2 offered":             {tio.WithTLS(h2)},
		"negative pool":          {tio.WithTLS(pki.ServerConfig()), tio.WithTLSHandshakes(-1, 0)},
		"handshakes without TLS": {tio.WithTLSHandshakes(8, 8)},
	} {
		srv := tio.NewServer("127.0.0.1:0", echoMux(), opts...)
		if err := srv.Start(); !errors.Is(err, tio.ErrConfig) {
			_ = srv.Shutdown(context.Background())
			t.Errorf("%s: Start: %v, want ErrConfig", name, err)
		}
	}
	alpn := pki.ServerConfig()
	alpn.NextProtos = []string{"http/1.1"}
	srv := tiotest.NewServer(t, echoMux(), tio.WithTLS(alpn))
	ccfg := pki.ClientConfig()
	ccfg.NextProtos = []string{"http/1.1"}
	if p := tiotest.DialTLS(t, srv, ccfg).ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN: %q", p)
	}
}

// Peers that send close_notify and reset at once: the server's answer
// (its close_notify) fails to write, which closes the connection from
// inside the write; every close is counted, nothing crashes.
func TestTLSPeerResets(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := tiotest.NewServer(t, echoMux(), tio.WithTLS(pki.ServerConfig()))
	const n = 40
	for i := range n {
		raw := tiotest.Dial(t, srv)
		cfg := pki.ClientConfig()
		cfg.ServerName = "localhost"
		c := tls.Client(raw, cfg)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		msg := append([]byte{0xA1}, tiotest.Packet(1, []byte("bye"))...)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		_ = raw.(*net.TCPConn).SetLinger(0)
		_ = c.Close() // close_notify, then a reset
	}
	tiotest.Eventually(t, "every reset counted", func() bool {
		s := srv.Stats()
		return s.Active == 0 && s.Closed[channel.ReasonClosedByPeer]+s.Closed[channel.ReasonIOError] == n
	})
}
