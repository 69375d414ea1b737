package tlsconn

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// clientLoop drives a client session over a TCP connection to a crypto/tls
// server as package client's event loop does: a reader goroutine plays the
// kernel and gnet (chunks of random sizes), the loop goroutine owns the
// driver, and a pass runs on each chunk and each wake-up.
type clientLoop struct {
	d     *driver
	c     net.Conn
	calls chan func(d *driver)
	done  chan struct{}
}

func dialClientSession(t *testing.T, e *Engine, addr string, cfg *tls.Config, app func(*Session, []byte) int) *clientLoop {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	wake := make(chan struct{}, 1)
	s, err := e.NewClientSession(cfg, time.Now().Add(testTimeout), func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}, c.LocalAddr(), c.RemoteAddr())
	if err != nil {
		t.Fatal(err)
	}
	cl := &clientLoop{c: c, calls: make(chan func(*driver)), done: make(chan struct{})}
	cl.d = &driver{s: s, app: app, out: func(b []byte) { _, _ = c.Write(b) }}
	chunks := make(chan []byte, 16)
	go func() {
		defer close(chunks)
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		for {
			b := make([]byte, 1+rnd.IntN(4096))
			n, err := c.Read(b)
			if n > 0 {
				chunks <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	stop := make(chan struct{})
	go func() {
		defer close(cl.done)
		d := cl.d
		for {
			select {
			case b, ok := <-chunks:
				if !ok {
					chunks = nil // the peer hung up: wake-ups may still come
					continue
				}
				d.raw = append(d.raw, b...)
			case <-wake:
			case f := <-cl.calls:
				f(d)
				continue
			case <-stop:
				return
			}
			d.pass()
			if d.err != nil && !errors.Is(d.err, io.EOF) {
				s.Close()
				d.flush()
				_ = c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.Close()
		close(stop)
		<-cl.done
		s.Close()
	})
	return cl
}

// on runs f on the loop and returns what it returned.
func (cl *clientLoop) on(f func(d *driver) bool) bool {
	res := make(chan bool, 1)
	cl.calls <- func(d *driver) { res <- f(d) }
	return <-res
}

// wait polls cond on the loop until it holds.
func (cl *clientLoop) wait(t *testing.T, what string, cond func(d *driver) bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cl.on(cond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// cryptoTLSEcho is a crypto/tls server on 127.0.0.1 that echoes every
// connection; errs gets each connection's handshake error.
func cryptoTLSEcho(t *testing.T, cfg *tls.Config) (addr string, errs chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	errs = make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				err := c.(*tls.Conn).Handshake()
				errs <- err
				if err == nil {
					_, _ = io.Copy(c, c)
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String(), errs
}

// TestClientSessionEcho: a client session against crypto/tls's server, in
// both versions, with a client certificate the server requires: the
// handshake runs on the pool, the loop takes the session over, and 300 KB
// sent in writes of every size come back whole through records read in
// chunks of random sizes.
func TestClientSessionEcho(t *testing.T) {
	p := pki(t)
	for _, vers := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		scfg := p.serverConfig()
		scfg.MaxVersion = vers
		scfg.ClientAuth = tls.RequireAndVerifyClientCert
		scfg.ClientCAs = p.roots
		addr, errs := cryptoTLSEcho(t, scfg)
		e := NewClientEngine(Options{})
		t.Cleanup(e.Close)
		ccfg := p.clientConfig()
		ccfg.Certificates = []tls.Certificate{p.client}
		cl := dialClientSession(t, e, addr, ccfg, nil)
		if err := <-errs; err != nil {
			t.Fatalf("version %#x: the server's handshake: %v", vers, err)
		}
		cl.wait(t, "the session to be established", func(d *driver) bool { return d.s.Established() })
		if cs := cl.d.s.ConnectionState(); cs.Version != vers || !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "localhost" {
			t.Fatalf("version %#x: connection state %+v", vers, cs)
		}
		var want []byte
		rnd := rand.New(rand.NewPCG(1, 2))
		for len(want) < 300<<10 {
			b := make([]byte, 1+rnd.IntN(40<<10))
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			want = append(want, b...)
			cl.on(func(d *driver) bool {
				if _, err := d.s.Write(b); err != nil {
					t.Errorf("Write: %v", err)
				}
				d.flush()
				return true
			})
		}
		cl.wait(t, "the echo", func(d *driver) bool {
			if d.err != nil {
				t.Fatalf("session: %v", d.err)
			}
			return len(d.got) >= len(want)
		})
		cl.on(func(d *driver) bool {
			if !bytes.Equal(d.got, want) {
				t.Errorf("version %#x: the echo differs (%d bytes)", vers, len(d.got))
			}
			if d.maxHeld > heldBound(cl.d.s.eng) {
				t.Errorf("the session held %d bytes", d.maxHeld)
			}
			return true
		})
	}
}

// TestClientSessionBadCertificate: a server whose certificate the client
// does not trust (another authority, or a name it was not issued for)
// fails the session with ErrHandshake wrapping crypto/tls's verification
// error, and the client's alert reaches the server.
func TestClientSessionBadCertificate(t *testing.T) {
	p := pki(t)
	for name, ccfg := range map[string]*tls.Config{
		"unknown authority": {RootCAs: x509.NewCertPool(), ServerName: "localhost"},
		"wrong name":        {RootCAs: p.roots, ServerName: "example.com"},
	} {
		addr, errs := cryptoTLSEcho(t, p.serverConfig())
		e := NewClientEngine(Options{})
		t.Cleanup(e.Close)
		cl := dialClientSession(t, e, addr, ccfg, nil)
		cl.wait(t, "the session to fail", func(d *driver) bool { return d.err != nil })
		err := cl.d.err
		var verr *tls.CertificateVerificationError
		if !errors.Is(err, ErrHandshake) || !errors.As(err, &verr) {
			t.Errorf("%s: %v, want ErrHandshake wrapping a CertificateVerificationError", name, err)
		}
		if serr := <-errs; serr == nil || !bytes.Contains([]byte(serr.Error()), []byte("bad certificate")) {
			t.Errorf("%s: the server's handshake error: %v, want the client's bad_certificate alert", name, serr)
		}
	}
}

// TestClientSessionHeldBack: with MaxHandshakeBytes smaller than the
// server's first flight (its certificate chain), the loop holds the rest
// back, and the worker, once it has read what the session holds, wakes the
// loop for more: the handshake completes rather than wait for bytes that
// are already there.
func TestClientSessionHeldBack(t *testing.T) {
	p := pki(t)
	scfg := p.serverConfig()
	scfg.MaxVersion = tls.VersionTLS12 // its flight is plaintext, and long
	addr, errs := cryptoTLSEcho(t, scfg)
	e := NewClientEngine(Options{MaxHandshakeBytes: 64})
	t.Cleanup(e.Close)
	cl := dialClientSession(t, e, addr, p.clientConfig(), nil)
	if err := <-errs; err != nil {
		t.Fatalf("the server's handshake: %v", err)
	}
	cl.wait(t, "the session to be established", func(d *driver) bool {
		if d.err != nil {
			t.Fatalf("session: %v", d.err)
		}
		return d.s.Established()
	})
}

// TestClientSessionOnServerEngine: a server engine makes no client
// sessions, and a closed client engine none either.
func TestClientSessionOnServerEngine(t *testing.T) {
	srv := newEngine(t, pki(t).serverConfig(), Options{})
	if _, err := srv.NewClientSession(&tls.Config{ServerName: "x"}, time.Time{}, nil, nil, nil); err == nil {
		t.Fatal("a client session from a server engine")
	}
	e := NewClientEngine(Options{})
	e.Close()
	if _, err := e.NewClientSession(&tls.Config{ServerName: "x"}, time.Time{}, nil, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed engine: %v", err)
	}
}
