package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var versions = []struct {
	name string
	v    uint16
}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}}

// clientFor returns a client configuration pinned to one version.
func clientFor(p *testPKI, v uint16) *tls.Config {
	c := p.clientConfig()
	c.MinVersion, c.MaxVersion = v, v
	return c
}

// readFull reads len(want) bytes from c and compares them.
func expectRead(t testing.TB, c io.Reader, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got[:min(len(got), 64)], want[:min(len(want), 64)])
	}
}

// TestEchoInMemory drives a session exactly as the loop will, with the
// client's bytes arriving in chunks of every size from 1 byte up: the
// handshake and small and large messages both ways, for each version.
func TestEchoInMemory(t *testing.T) {
	p := pki(t)
	for _, v := range versions {
		for _, chunk := range []int{1, 7, 100, 3000, 0} {
			t.Run(fmt.Sprintf("%s/chunk%d", v.name, chunk), func(t *testing.T) {
				e := newEngine(t, p.serverConfig(), Options{})
				mp := newMemPair(t, e, clientFor(p, v.v), chunk, echo)
				mp.handshake()
				var st tls.ConnectionState
				mp.onLoop(func(d *driver) { st = d.s.ConnectionState() })
				if st.Version != v.v || !st.HandshakeComplete {
					t.Fatalf("version %x complete %v", st.Version, st.HandshakeComplete)
				}
				for _, size := range []int{1, 100, 16 << 10, 100 << 10} {
					if chunk == 1 && size > 16<<10 {
						continue // slow, and nothing new
					}
					msg := bytes.Repeat([]byte{byte(size)}, size)
					if _, err := mp.client.Write(msg); err != nil {
						t.Fatal(err)
					}
					expectRead(t, mp.client, msg)
				}
			})
		}
	}
}

// TestEchoTCP serves a crypto/tls client over a real socket on 127.0.0.1.
func TestEchoTCP(t *testing.T) {
	p := pki(t)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, p.serverConfig(), Options{})
			srv := newTCPServer(t, e, echo)
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", srv.addr(), clientFor(p, v.v))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if c.ConnectionState().Version != v.v {
				t.Fatalf("version %x", c.ConnectionState().Version)
			}
			for i := range 50 {
				msg := []byte(fmt.Sprintf("message %d", i))
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				expectRead(t, c, msg)
			}
		})
	}
}

// TestLargeTransfersTCP sends 8 MiB each way at once over a real socket:
// the client writes while it reads the echo.
func TestLargeTransfersTCP(t *testing.T) {
	p := pki(t)
	const total = 8 << 20
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, p.serverConfig(), Options{})
			srv := newTCPServer(t, e, echo)
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", srv.addr(), clientFor(p, v.v))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			data := make([]byte, total)
			for i := range data {
				data[i] = byte(i * 7 / 5)
			}
			werr := make(chan error, 1)
			go func() {
				for off := 0; off < total; off += 100_000 {
					if _, err := c.Write(data[off:min(off+100_000, total)]); err != nil {
						werr <- err
						return
					}
				}
				werr <- nil
			}()
			got := make([]byte, total)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("echo differs")
			}
		})
	}
}

// TestCloseNotifyFromClient: the client's close_notify ends Input with
// io.EOF, after the data before it; the server's Close answers with its own.
func TestCloseNotifyFromClient(t *testing.T) {
	p := pki(t)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, p.serverConfig(), Options{})
			mp := newMemPair(t, e, clientFor(p, v.v), 0, nil)
			mp.handshake()
			if _, err := mp.client.Write([]byte("last words")); err != nil {
				t.Fatal(err)
			}
			if err := mp.client.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			err := mp.sessionErr()
			if err != io.EOF {
				t.Fatalf("Input: %v, want io.EOF", err)
			}
			mp.onLoop(func(d *driver) {
				if string(d.got) != "last words" {
					t.Errorf("got %q", d.got)
				}
				// A peer that closed its side may still be written to.
				if _, err := d.s.Write([]byte("bye")); err != nil {
					t.Errorf("Write after close_notify: %v", err)
				}
				d.s.Close()
				d.flush()
				if _, err := d.s.Write([]byte("x")); !errors.Is(err, ErrClosed) {
					t.Errorf("Write after Close: %v", err)
				}
				if _, err := d.s.Input([]byte{1}); !errors.Is(err, ErrClosed) {
					t.Errorf("Input after Close: %v", err)
				}
			})
			mp.cc.hangUp()
			expectRead(t, mp.client, []byte("bye"))
			if n, err := mp.client.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("client read after the server's close_notify: %d, %v", n, err)
			}
		})
	}
}

// TestCloseNotifyFromServer: Close queues close_notify, which the client
// reads as EOF (not as a truncation).
func TestCloseNotifyFromServer(t *testing.T) {
	p := pki(t)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, p.serverConfig(), Options{})
			mp := newMemPair(t, e, clientFor(p, v.v), 0, echo)
			mp.handshake()
			mp.onLoop(func(d *driver) {
				if _, err := d.s.Write([]byte("goodbye")); err != nil {
					t.Fatal(err)
				}
				if err := d.s.Close(); err != nil {
					t.Fatal(err)
				}
				if d.s.Pending() == 0 {
					t.Fatal("no close_notify queued")
				}
				d.flush()
				_ = d.s.Close() // again: nothing
				if d.s.Pending() != 0 {
					t.Fatal("a second Close queued bytes")
				}
			})
			expectRead(t, mp.client, []byte("goodbye"))
			if _, err := mp.client.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("client read: %v, want io.EOF (close_notify)", err)
			}
		})
	}
}

// TestALPN negotiates an application protocol.
func TestALPN(t *testing.T) {
	p := pki(t)
	cfg := p.serverConfig()
	cfg.NextProtos = []string{"tio", "http/1.1"}
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, cfg, Options{})
			ccfg := clientFor(p, v.v)
			ccfg.NextProtos = []string{"x-unknown", "tio"}
			mp := newMemPair(t, e, ccfg, 50, echo)
			mp.handshake()
			var proto string
			mp.onLoop(func(d *driver) { proto = d.s.ConnectionState().NegotiatedProtocol })
			if proto != "tio" || mp.client.ConnectionState().NegotiatedProtocol != "tio" {
				t.Fatalf("server %q, client %q", proto, mp.client.ConnectionState().NegotiatedProtocol)
			}
		})
	}
	t.Run("no overlap", func(t *testing.T) {
		e := newEngine(t, cfg, Options{})
		ccfg := p.clientConfig()
		ccfg.NextProtos = []string{"h2"}
		mp := newMemPair(t, e, ccfg, 0, echo)
		if err := mp.client.Handshake(); err == nil {
			t.Fatal("handshake succeeded without a common protocol")
		}
		if err := mp.sessionErr(); !errors.Is(err, ErrHandshake) {
			t.Fatalf("session: %v, want ErrHandshake", err)
		}
	})
}

// TestClientCertificates requires and verifies client certificates.
func TestClientCertificates(t *testing.T) {
	p := pki(t)
	cfg := p.serverConfig()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = p.roots
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, cfg, Options{})
			ccfg := clientFor(p, v.v)
			ccfg.Certificates = []tls.Certificate{p.client}
			mp := newMemPair(t, e, ccfg, 200, echo)
			mp.handshake()
			var st tls.ConnectionState
			mp.onLoop(func(d *driver) { st = d.s.ConnectionState() })
			if len(st.PeerCertificates) != 1 || st.PeerCertificates[0].Subject.CommonName != "tio client" || len(st.VerifiedChains) != 1 {
				t.Fatalf("peer certificates %v, chains %d", st.PeerCertificates, len(st.VerifiedChains))
			}
			if _, err := mp.client.Write([]byte("authenticated")); err != nil {
				t.Fatal(err)
			}
			expectRead(t, mp.client, []byte("authenticated"))
		})
		for _, bad := range []struct {
			name  string
			certs []tls.Certificate
		}{{"none", nil}, {"unknown CA", []tls.Certificate{p.other}}} {
			t.Run(v.name+"/"+bad.name, func(t *testing.T) {
				e := newEngine(t, cfg, Options{})
				ccfg := clientFor(p, v.v)
				ccfg.Certificates = bad.certs
				mp := newMemPair(t, e, ccfg, 0, echo)
				// A TLS 1.3 client learns of the refusal only when it reads.
				if err := mp.client.Handshake(); err == nil {
					_, err = mp.client.Read(make([]byte, 1))
					if err == nil {
						t.Fatal("client read data from a server that should refuse it")
					}
				}
				if err := mp.sessionErr(); !errors.Is(err, ErrHandshake) {
					t.Fatalf("session: %v, want ErrHandshake", err)
				}
			})
		}
	}
}

// TestCertificateReload swaps the certificate GetCertificate returns: the
// next handshake presents the new one, with the engine unchanged.
func TestCertificateReload(t *testing.T) {
	p := pki(t)
	var current atomic.Pointer[tls.Certificate]
	current.Store(&p.server)
	var calls atomic.Int32
	cfg := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		calls.Add(1)
		if hello.Conn == nil || hello.Conn.RemoteAddr() == nil {
			return nil, errors.New("no connection in ClientHelloInfo")
		}
		return current.Load(), nil
	}}
	e := newEngine(t, cfg, Options{})
	serial := func() int64 {
		mp := newMemPair(t, e, p.clientConfig(), 0, echo)
		mp.handshake()
		defer mp.close()
		return mp.client.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 2 {
		t.Fatalf("serial %d, want 2", s)
	}
	current.Store(&p.server2)
	if s := serial(); s != 3 {
		t.Fatalf("after reload: serial %d, want 3", s)
	}
	if calls.Load() != 2 {
		t.Fatalf("GetCertificate called %d times", calls.Load())
	}
}

// TestDataWithFinished: a TLS 1.3 client's first application data arrives
// in the same read as its Finished, while the handshake is on a worker. The
// worker reads only the handshake's records; the loop, woken, decrypts the
// rest.
func TestDataWithFinished(t *testing.T) {
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	mp := newMemPair(t, e, clientFor(p, tls.VersionTLS13), 0, echo)
	var released atomic.Bool
	// Let the ClientHello through, then hold the client's bytes until its
	// second flight and its first data are all written. (hold runs on the
	// loop, before each chunk.)
	mp.hold = func() bool { return mp.d.outBytes > 0 && !released.Load() }
	done := make(chan error, 1)
	go func() { done <- mp.client.Handshake() }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := mp.client.Write([]byte("early bird")); err != nil {
		t.Fatal(err)
	}
	var passes int
	mp.onLoop(func(d *driver) {
		if d.s.Established() {
			t.Fatal("established before the client's Finished arrived")
		}
		passes = d.passes
	})
	released.Store(true)
	mp.notify()
	expectRead(t, mp.client, []byte("early bird"))
	mp.onLoop(func(d *driver) {
		// The data came in the chunk that carried the Finished: the pass
		// that delivered it took it whole (the handshake buffers it), and a
		// wake-up decrypted it.
		if d.passes-passes < 2 {
			t.Errorf("%d passes", d.passes-passes)
		}
	})
}

// TestStatesAndWrites checks what each method does before, during and after
// the handshake.
func TestStatesAndWrites(t *testing.T) {
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	s := e.NewSession(time.Time{}, nil, nil, nil)
	if !s.Handshaking() || s.Established() || s.Err() != nil {
		t.Fatal("a new session is not handshaking")
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrHandshaking) {
		t.Fatalf("Write: %v", err)
	}
	if n, err := s.Input(nil); n != 0 || err != nil {
		t.Fatalf("Input(nil): %d, %v", n, err)
	}
	if n, err := s.Input([]byte{22, 3}); n != 0 || err != nil {
		t.Fatalf("Input(partial header): %d, %v", n, err)
	}
	if st := s.ConnectionState(); st.HandshakeComplete {
		t.Fatal("ConnectionState complete")
	}
	s.Close()
	if _, err := s.Input([]byte{22}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Input after Close: %v", err)
	}
	if s.Handshaking() {
		t.Fatal("handshaking after Close")
	}
}

// TestNoGoroutinePerConnection: with many sessions established, only the
// loop's goroutines remain, and the workers exit once idle.
func TestNoGoroutinePerConnection(t *testing.T) {
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{WorkerIdle: 20 * time.Millisecond, MaxWorkers: 4})
	const n = 50
	var mu sync.Mutex
	var pairs []*memPair
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mp := newMemPair(t, e, p.clientConfig(), 0, echo)
			mp.handshake()
			mu.Lock()
			pairs = append(pairs, mp)
			mu.Unlock()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(testTimeout)
	for e.Stats().Workers > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("workers still running: %+v", e.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, mp := range pairs {
		if _, err := mp.client.Write([]byte("still there")); err != nil {
			t.Fatal(err)
		}
		expectRead(t, mp.client, []byte("still there"))
	}
}

// TestResumption: a client that kept a session ticket resumes on a second
// connection (the tickets' keys are the engine's).
func TestResumption(t *testing.T) {
	p := pki(t)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			e := newEngine(t, p.serverConfig(), Options{})
			ccfg := clientFor(p, v.v)
			ccfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i, want := range []bool{false, true} {
				mp := newMemPair(t, e, ccfg, 0, echo)
				mp.handshake()
				// A TLS 1.3 ticket comes after the handshake: read some data.
				if _, err := mp.client.Write([]byte("ticket?")); err != nil {
					t.Fatal(err)
				}
				expectRead(t, mp.client, []byte("ticket?"))
				var resumed bool
				mp.onLoop(func(d *driver) { resumed = d.s.ConnectionState().DidResume })
				if resumed != want || mp.client.ConnectionState().DidResume != want {
					t.Fatalf("connection %d: resumed %v, want %v", i, resumed, want)
				}
				mp.close()
			}
		})
	}
}

// reentrantWriter closes the session from inside Write, as gnet does when
// a write fails: it closes the connection and runs OnClose, which closes
// the session, before Write returns.
type reentrantWriter struct {
	s *Session
	n int
}

func (w *reentrantWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	_ = w.s.Close()
	_, _ = w.s.WriteTo(io.Discard)
	return 0, errors.New("write: broken pipe")
}

// WriteTo lets its writer call back into the session (no lock held, the
// bytes taken first): a failing gnet write closes the session from inside
// it.
func TestWriteToReentrant(t *testing.T) {
	e := newEngine(t, pki(t).serverConfig(), Options{})
	s := e.NewSession(time.Time{}, nil, nil, nil)
	if _, err := s.Input([]byte("\x16\x03\x01\x00\x08garbage!")); !errors.Is(err, ErrMalformedHello) {
		t.Fatalf("Input: %v", err)
	}
	if s.Pending() == 0 {
		t.Fatal("no alert queued")
	}
	done := make(chan struct{})
	w := &reentrantWriter{s: s}
	go func() {
		defer close(done)
		_, _ = s.WriteTo(w)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WriteTo deadlocked with a writer that closes the session")
	}
	if w.n == 0 || s.Pending() != 0 {
		t.Fatalf("wrote %d, %d pending", w.n, s.Pending())
	}
}
