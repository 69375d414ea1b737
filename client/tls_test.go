package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/client"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
	"github.com/tiogo/tio/handler"
	"github.com/tiogo/tio/tiotest"
)

// tlsEcho echoes what arrives over TLS, and only that: a packet that came
// in clear is dropped. A packet of type 9 is answered with the common name
// of the client's certificate.
func tlsEcho() handler.Handler {
	return handler.InlineFunc(func(ch *channel.Channel, p *codec.Packet) {
		cs, ok := ch.TLS()
		if !ok {
			return
		}
		if p.Type == 9 {
			cn := "none"
			if len(cs.PeerCertificates) > 0 {
				cn = cs.PeerCertificates[0].Subject.CommonName
			}
			_ = ch.Send(&codec.Packet{Type: 9, Body: []byte(cn)})
			return
		}
		_ = ch.Send(p)
	})
}

// echoed sends bodies on cn as packets of type typ and checks that rec got
// them back, in order, after the n it had.
func echoed(t *testing.T, cn *client.Conn, rec *recorder, typ codec.Type, bodies [][]byte) {
	t.Helper()
	n := len(rec.packets())
	for _, b := range bodies {
		if err := cn.Send(&codec.Packet{Type: typ, Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.wait(t, n+len(bodies))[n:]
	for i, p := range got {
		if p.Type != typ || !bytes.Equal(p.Body, bodies[i]) {
			t.Fatalf("echo %d: type %d, %d bytes; sent type %d, %d bytes", i, p.Type, len(p.Body), typ, len(bodies[i]))
		}
	}
}

// someBodies returns messages from empty to 300 KB: many TLS records, and
// records that end inside a frame.
func someBodies() [][]byte {
	var bodies [][]byte
	for i, n := range []int{0, 1, 100, 5000, 16 << 10, 70 << 10, 300 << 10} {
		bodies = append(bodies, text(n, uint32(i+1)))
	}
	return bodies
}

// TestTLSTioServer: the client over wss:// (with permessage-deflate) and
// tios:// to a tio server with WithTLS, which serves both on one port: the
// handshake runs, the protocol's opening goes out through TLS, messages of
// every size echo, the channel reports its TLS state, and the close is
// clean. A host name and an IP address both verify.
func TestTLSTioServer(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := tiotest.NewServer(t, tlsEcho(), tio.WithTLS(pki.ServerConfig()),
		tio.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}, Compression: shared}))
	port := srv.Addr().(*net.TCPAddr).Port
	rec := newRecorder()
	c := newClient(t, handler.Inline(rec), client.WithTLS(pki.ClientConfig()),
		client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}), client.WithCompression(shared))
	for _, tc := range []struct {
		url string
		typ codec.Type
	}{
		{"wss://localhost:" + strconv.Itoa(port) + "/echo?x=1", websocket.TypeText},
		{"wss://127.0.0.1:" + strconv.Itoa(port) + "/", websocket.TypeBinary},
		{"tios://localhost:" + strconv.Itoa(port), 1},
		{"tls://127.0.0.1:" + strconv.Itoa(port), 1},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cn, err := c.Dial(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			cs, ok := cn.Channel().TLS()
			if !ok || cs.Version != tls.VersionTLS13 || len(cs.PeerCertificates) == 0 {
				t.Fatalf("TLS state: %v %+v", ok, cs)
			}
			before := c.Stats().Traffic
			bodies := someBodies()
			echoed(t, cn, rec, tc.typ, bodies)
			if strings.HasPrefix(tc.url, "wss") {
				// Compressed inside TLS: the text shrinks.
				total := 0
				for _, b := range bodies {
					total += len(b)
				}
				if tr := c.Stats().Traffic.Sub(before); tr.BytesOut > uint64(total)*2/3 {
					t.Errorf("%d bytes out for %d of text: not compressed", tr.BytesOut, total)
				}
			}
			if err := cn.Close(); err != nil {
				t.Fatal(err)
			}
			<-cn.Done()
			if err := cn.Err(); err != nil {
				t.Fatalf("closed with %v", err)
			}
		})
	}
}

// TestTLSGorillaServer: the client over wss:// to gorilla on net/http's
// TLS server (crypto/tls with a goroutine per connection), permessage-
// deflate negotiated: every message echoes, compressed both ways.
func TestTLSGorillaServer(t *testing.T) {
	pki := tiotest.NewPKI(t)
	up := gorilla.Upgrader{EnableCompression: true}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "TLS only", http.StatusBadRequest)
			return
		}
		gorillaEcho(up, w, r)
	}))
	srv.TLS = pki.ServerConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rec := newRecorder()
	c := newClient(t, handler.Inline(rec), client.WithTLS(pki.ClientConfig()),
		client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}), client.WithCompression(shared))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cn, err := c.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+"/")
	if err != nil {
		t.Fatal(err)
	}
	before := c.Stats().Traffic
	bodies := someBodies()
	echoed(t, cn, rec, websocket.TypeText, bodies)
	total := 0
	for _, b := range bodies {
		total += len(b)
	}
	if tr := c.Stats().Traffic.Sub(before); tr.BytesOut > uint64(total)*2/3 || tr.BytesIn > uint64(total)*2/3 {
		t.Errorf("%d bytes out, %d in, for %d of text: not compressed", tr.BytesOut, tr.BytesIn, total)
	}
	if err := cn.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTLSBadCertificate: a server the client cannot trust — a certificate
// from an authority it does not know (the system's roots, by default, do
// not know the test's), or issued for another name — fails the dial with
// an error wrapping ErrTLS, ErrConnLost and crypto/tls's verification
// error; nothing is sent in clear. A server that requires a client
// certificate refuses a client without one (ErrTLS again) and sees the
// certificate of a client that has one.
func TestTLSBadCertificate(t *testing.T) {
	pki := tiotest.NewPKI(t)
	scfg := pki.ServerConfig()
	srv := tiotest.NewServer(t, tlsEcho(), tio.WithTLS(scfg), tio.WithTLSRequired())
	addr := srv.Addr().String()
	c := newClient(t, nil)
	for name, opts := range map[string][]client.DialOption{
		"system roots":      nil,
		"another authority": {client.WithTLS(&tls.Config{RootCAs: x509.NewCertPool()})},
		"another name":      {client.WithTLS(&tls.Config{RootCAs: pki.Pool, ServerName: "tio.example"})},
	} {
		for _, url := range []string{"wss://" + addr + "/", "tios://" + addr} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := c.Dial(ctx, url, opts...)
			cancel()
			var verr *tls.CertificateVerificationError
			if !errors.Is(err, client.ErrTLS) || !errors.Is(err, client.ErrConnLost) || !errors.As(err, &verr) {
				t.Errorf("%s, %s: %v, want ErrTLS wrapping a certificate verification error", name, url, err)
			}
		}
	}
	if st := c.Stats(); st.DialErrors != 6 || st.Connects != 0 {
		t.Errorf("stats %+v", st)
	}

	// Client certificates.
	mcfg := pki.ServerConfig()
	mcfg.ClientAuth, mcfg.ClientCAs = tls.RequireAndVerifyClientCert, pki.Pool
	msrv := tiotest.NewServer(t, tlsEcho(), tio.WithTLS(mcfg))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Dial(ctx, "tios://"+msrv.Addr().String(), client.WithTLS(pki.ClientConfig())); !errors.Is(err, client.ErrTLS) {
		t.Errorf("without a client certificate: %v, want ErrTLS", err)
	}
	ccfg := pki.ClientConfig()
	ccfg.Certificates = []tls.Certificate{pki.ClientCertificate("tio client 7")}
	rec := newRecorder()
	cc := newClient(t, handler.Inline(rec), client.WithTLS(ccfg))
	for _, url := range []string{"tios://" + msrv.Addr().String(), "wss://" + msrv.Addr().String() + "/"} {
		cn, err := cc.Dial(ctx, url)
		if err != nil {
			t.Fatalf("%s with a client certificate: %v", url, err)
		}
		n := len(rec.packets())
		if err := cn.Send(&codec.Packet{Type: 9}); err != nil {
			t.Fatal(err)
		}
		if got := rec.wait(t, n+1)[n]; string(got.Body) != "tio client 7" {
			t.Fatalf("%s: the server saw the client certificate %q", url, got.Body)
		}
		_ = cn.Close()
	}
}

// TestTLSReconnect: a tio TLS server that stops and starts again on its
// port: the client's wss:// and tios:// connections reconnect, each with a
// new TLS handshake, and echo again.
func TestTLSReconnect(t *testing.T) {
	pki := tiotest.NewPKI(t)
	srv := newRestartable(t, tlsEcho(), tio.WithTLS(pki.ServerConfig()), tio.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}))
	rec := newRecorder()
	c := newClient(t, handler.Inline(rec), client.WithTLS(pki.ClientConfig()), client.WithWebSocket(websocket.Config{Mapping: websocket.Raw{}}),
		client.WithReconnect(client.Reconnect{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, err := c.Dial(ctx, "wss://"+srv.addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := c.Dial(ctx, "tios://"+srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	first := []*channel.Channel{ws.Channel(), bin.Channel()}
	echoed(t, ws, rec, websocket.TypeText, [][]byte{[]byte("before")})
	echoed(t, bin, rec, 1, [][]byte{[]byte("before")})
	srv.stop()
	tiotest.Eventually(t, "both reconnecting", func() bool {
		return ws.State() == client.StateReconnecting && bin.State() == client.StateReconnecting
	})
	srv.start()
	tiotest.Eventually(t, "both connected again", func() bool {
		return ws.State() == client.StateConnected && bin.State() == client.StateConnected
	})
	if ws.Channel() == first[0] || bin.Channel() == first[1] {
		t.Fatal("the same channels after a reconnect")
	}
	for _, cn := range []*client.Conn{ws, bin} {
		if _, ok := cn.Channel().TLS(); !ok {
			t.Fatalf("%s: no TLS after the reconnect", cn.URL())
		}
	}
	echoed(t, ws, rec, websocket.TypeText, [][]byte{[]byte("after"), text(100<<10, 3)})
	echoed(t, bin, rec, 1, [][]byte{[]byte("after"), text(100<<10, 4)})
	if st := c.Stats(); st.Reconnects != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTLSSilentServer: a server that accepts the TCP connection and never
// answers the ClientHello is abandoned at the handshake timeout, which
// covers the TLS handshake.
func TestTLSSilentServer(t *testing.T) {
	raw := newRawServer(t, func(r *rawServer, c net.Conn) { r.reads(c) })
	c := newClient(t, nil, client.WithHandshakeTimeout(200*time.Millisecond), client.WithHeartbeat(0, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Dial(ctx, "wss://"+raw.ln.Addr().String()+"/")
	if !errors.Is(err, client.ErrConnLost) || !strings.Contains(err.Error(), "handshake_timeout") {
		t.Fatalf("Dial: %v", err)
	}
	if got := <-raw.read; len(got) < 5 || got[0] != 0x16 {
		t.Fatalf("the server got %q, not a ClientHello", got[:min(len(got), 16)])
	}
	if st := c.Stats(); st.HandshakeTimeouts != 1 {
		t.Fatalf("stats %+v", st)
	}
}
