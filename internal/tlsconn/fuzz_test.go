package tlsconn

import (
	"bytes"
	"crypto/tls"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fuzzEngine is shared by the fuzz target's runs (one pool, one config).
var fuzzEngine = sync.OnceValues(func() (*Engine, error) {
	p, err := pkiOnce()
	if err != nil {
		return nil, err
	}
	return NewEngine(p.serverConfig(), Options{MaxHandshakeBytes: 4 << 10, PlaintextLimit: 8 << 10})
})

// heldBound is the most a session of fuzzEngine may hold of the peer's
// bytes: the ClientHello (or what the handshake has not read), plus
// plaintext up to the limit and one read more.
func heldBound(e *Engine) int {
	return max(e.opts.MaxHelloBytes+preFlightSlack, e.opts.MaxHandshakeBytes) + e.opts.PlaintextLimit + 2*maxPlaintext
}

// establish runs a handshake with a crypto/tls client, the test's goroutine
// playing the event loop, and returns the client and the driver, owned by
// the caller from then on.
func establish(t testing.TB, e *Engine, ccfg *tls.Config) (*tls.Conn, *memConn, *driver) {
	t.Helper()
	ev := make(chan struct{}, 1)
	notify := func() {
		select {
		case ev <- struct{}{}:
		default:
		}
	}
	cc := newMemConn(notify)
	client := tls.Client(cc, ccfg)
	_ = client.SetDeadline(time.Now().Add(testTimeout))
	d := &driver{s: e.NewSession(time.Now().Add(testTimeout), notify, nil, nil), out: cc.deliver}
	done := make(chan error, 1)
	go func() { done <- client.Handshake() }()
	var cerr error
	clientDone := false
	timeout := time.After(testTimeout)
	for !clientDone || !d.s.Established() {
		select {
		case <-ev:
		case cerr = <-done:
			clientDone = true
		case <-timeout:
			t.Fatal("handshake timed out")
		}
		if cerr != nil {
			t.Fatalf("client handshake: %v", cerr)
		}
		d.raw = append(d.raw, cc.take()...)
		d.pass()
		if d.err != nil {
			t.Fatalf("session: %v", d.err)
		}
	}
	return client, cc, d
}

// feedChunks passes data to the driver in chunks whose sizes splits gives,
// each chunk a pass, checking the bound after each.
func feedChunks(t *testing.T, d *driver, data, splits []byte, bound int) {
	t.Helper()
	for i := 0; len(data) > 0 && d.err == nil; i++ {
		k := len(data)
		if len(splits) > 0 {
			k = min(k, 1+int(splits[i%len(splits)]))
		}
		d.raw = append(d.raw, data[:k]...)
		data = data[k:]
		d.pass()
		if h := d.s.held(); h > bound {
			t.Fatalf("the session holds %d bytes (bound %d)", h, bound)
		}
	}
}

// settle waits, briefly, until a handshake on a worker has read everything
// it was given and waits for more, or has ended.
func settle(s *Session) {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		st, hs := s.st, s.hs
		busy := (st == stQueued || st == stRunning) && hs != nil && !(hs.waiting && hs.inOff == len(hs.in))
		s.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// FuzzInput feeds a server session arbitrary bytes, in arbitrary splits:
// as a connection's first bytes, after a real ClientHello (the handshake
// runs on a worker), or after a real handshake (raw, or as the client's own
// records with one byte flipped). The session must never panic, never hold
// more than its bound, and end either with an error or waiting for more
// bytes, having taken every byte it was given once established.
func FuzzInput(f *testing.F) {
	p, err := pkiOnce()
	if err != nil {
		f.Fatal(err)
	}
	hello13 := captureHello(f, p.clientConfig())
	hello12 := captureHello(f, clientFor(p, tls.VersionTLS12))
	f.Add(uint8(0), hello13, []byte{0})
	f.Add(uint8(0), hello12, []byte{3, 200})
	f.Add(uint8(0), fragment(hello13, 7), []byte{1})
	f.Add(uint8(0), []byte{22, 3, 1, 0x40, 1}, []byte{})
	f.Add(uint8(0), []byte("GET / HTTP/1.1\r\n\r\n"), []byte{})
	f.Add(uint8(1), []byte{20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 20}, []byte{2})
	f.Add(uint8(2), []byte{23, 3, 3, 0x48, 0x01}, []byte{})
	f.Add(uint8(2), []byte{21, 3, 3, 0, 2, 1, 0}, []byte{1})
	f.Add(uint8(3), []byte("hello, fuzzer"), []byte{0, 4})
	f.Add(uint8(7), bytes.Repeat([]byte("big"), 20000), []byte{255, 17})
	f.Add(uint8(11), []byte("flip a byte"), []byte{9, 1})
	f.Fuzz(func(t *testing.T, mode uint8, data, splits []byte) {
		fuzzOne(t, p, hello13, hello12, mode, data, splits)
	})
}

// fuzzOne is FuzzInput's body.
func fuzzOne(t *testing.T, p *testPKI, hello13, hello12 []byte, mode uint8, data, splits []byte) {
	e, err := fuzzEngine()
	if err != nil {
		t.Fatal(err)
	}
	bound := heldBound(e)
	switch mode % 4 {
	case 0: // the connection's first bytes
		d := &driver{s: e.NewSession(time.Now().Add(testTimeout), nil, nil, nil)}
		defer d.s.Close()
		feedChunks(t, d, data, splits, bound)
		settle(d.s)
		d.pass()
		if d.err == nil && d.s.Handshaking() && len(d.raw) > e.opts.MaxHelloBytes {
			t.Fatalf("waiting with %d bytes held by the caller", len(d.raw))
		}
	case 1: // after a whole ClientHello
		hello := hello13
		if mode&4 != 0 {
			hello = hello12
		}
		d := &driver{s: e.NewSession(time.Now().Add(testTimeout), nil, nil, nil)}
		defer d.s.Close()
		feedChunks(t, d, append(append([]byte(nil), hello...), data...), splits, bound)
		settle(d.s)
		d.pass()
	case 2, 3: // after a real handshake
		ccfg := p.clientConfig()
		if mode&4 != 0 {
			ccfg = clientFor(p, tls.VersionTLS12)
		}
		client, cc, d := establish(t, e, ccfg)
		defer d.s.Close()
		defer cc.Close()
		raw := mode%4 == 2
		in, corrupt := data, false
		if !raw {
			if _, err := client.Write(data); err != nil {
				t.Fatal(err)
			}
			in = cc.take()
			if mode&8 != 0 && len(in) > 0 && len(splits) > 0 {
				// Corrupt one byte: what comes out must still be
				// what was sent, up to where it fails (or waits).
				in[int(splits[0])*131%len(in)] ^= 0x40
				corrupt = true
			}
		}
		feedChunks(t, d, in, splits, bound)
		if d.err == nil && len(d.raw) != 0 {
			t.Fatalf("established, no error, and %d bytes not taken", len(d.raw))
		}
		switch {
		case raw && len(d.got) > 0:
			t.Fatalf("plaintext out of nowhere: %q", d.got)
		case corrupt && !bytes.HasPrefix(data, d.got):
			t.Fatalf("a corrupted record decrypted to %q", d.got)
		case !raw && !corrupt && d.err != nil:
			t.Fatalf("the client's own records: %v", d.err)
		case !raw && !corrupt && !bytes.Equal(d.got, data):
			t.Fatalf("decrypted %d bytes, sent %d", len(d.got), len(data))
		}
	}
}

// TestInputRandom runs the fuzz target's checks on random inputs, a few
// hundred of them, in every test run.
func TestInputRandom(t *testing.T) {
	p := pki(t)
	hello13 := captureHello(t, p.clientConfig())
	hello12 := captureHello(t, clientFor(p, tls.VersionTLS12))
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		mode := uint8(rnd.IntN(256))
		data := make([]byte, rnd.IntN(300))
		for j := range data {
			data[j] = byte(rnd.IntN(256))
		}
		if rnd.IntN(2) == 0 && len(data) > 0 {
			data[0] = 22
		}
		splits := []byte{byte(rnd.IntN(256)), byte(rnd.IntN(256))}
		fuzzOne(t, p, hello13, hello12, mode, data, splits)
	}
}
