package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiogo/tio/codec"
)

// captureHello returns the first flight of a crypto/tls client: its
// ClientHello record(s).
func captureHello(t testing.TB, ccfg *tls.Config) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	var once sync.Once
	var c *memConn
	c = newMemConn(func() {
		once.Do(func() { got <- c.take() })
	})
	cl := tls.Client(c, ccfg)
	_ = cl.SetDeadline(time.Now().Add(testTimeout))
	go func() { _ = cl.Handshake() }()
	defer c.Close()
	select {
	case b := <-got:
		return b
	case <-time.After(testTimeout):
		t.Fatal("no ClientHello")
		return nil
	}
}

// fragment rewrites a single-record ClientHello as records of at most n
// bytes of handshake data each.
func fragment(hello []byte, n int) []byte {
	body := hello[recordHeaderLen:]
	var out []byte
	for len(body) > 0 {
		k := min(n, len(body))
		out = append(out, recordHandshake, hello[1], hello[2], byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return out
}

func TestSniff(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	for _, c := range []struct {
		in   []byte
		want codec.Match
	}{
		{nil, codec.NeedMore},
		{[]byte{22}, codec.NeedMore},
		{[]byte{22, 3}, codec.NeedMore},
		{[]byte{22, 3, 1}, codec.Matched},
		{[]byte{22, 3, 3, 0}, codec.Matched},
		{[]byte{22, 3, 0}, codec.Matched},
		{hello, codec.Matched},
		{[]byte{22, 3, 5}, codec.NoMatch},
		{[]byte{22, 2}, codec.NoMatch},
		{[]byte{23, 3, 1}, codec.NoMatch},
		{[]byte("GET / HTTP/1.1\r\n"), codec.NoMatch},
		{[]byte("G"), codec.NoMatch},
		{[]byte{0xA1}, codec.NoMatch},             // tio's binary handshake
		{[]byte{0x80, 0x2e, 0x01}, codec.NoMatch}, // SSLv2-style hello
	} {
		if got := Sniff(c.in); got != c.want {
			t.Errorf("Sniff(% x) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestScanHello finds the end of real ClientHellos however they are
// fragmented into records and cut into reads, and reads their versions.
func TestScanHello(t *testing.T) {
	p := pki(t)
	tls12 := clientFor(p, tls.VersionTLS12)
	alpn := p.clientConfig()
	alpn.NextProtos = []string{"h2", "http/1.1"}
	old := p.clientConfig()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	for _, c := range []struct {
		name string
		cfg  *tls.Config
		max  uint16
	}{
		{"default", p.clientConfig(), tls.VersionTLS13},
		{"TLS1.2", tls12, tls.VersionTLS12},
		{"ALPN", alpn, tls.VersionTLS13},
		{"TLS1.1", old, tls.VersionTLS11},
	} {
		hello := captureHello(t, c.cfg)
		for _, frag := range []int{1, 2, 3, 4, 5, 100, 1 << 14} {
			in := fragment(hello, frag)
			if frag == 1 && len(in) > 16<<10 {
				continue
			}
			for cut := range in {
				h, err := scanHello(in[:cut], 1<<20)
				if err != nil || h.end != 0 {
					t.Fatalf("%s/%d: at %d of %d bytes: %+v, %v; want to wait", c.name, frag, cut, len(in), h, err)
				}
				if frag > 4 && cut > 50 {
					break // the short cuts are the interesting ones
				}
			}
			trailing := append(append([]byte(nil), in...), 20, 3, 3, 0, 1, 1)
			h, err := scanHello(trailing, 1<<20)
			if err != nil || h.end != len(in) || h.maxVersion != c.max {
				t.Fatalf("%s/%d: %+v, %v; want end %d, version %x", c.name, frag, h, err, len(in), c.max)
			}
		}
		if _, err := scanHello(hello, len(hello)-1); !errors.Is(err, ErrHelloTooLarge) {
			t.Fatalf("%s: a limit of one byte less: %v", c.name, err)
		}
	}
}

// TestBadHello feeds a session first bytes that are not a good ClientHello:
// each ends with its own error and an alert, on the loop, without a worker.
func TestBadHello(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	set := func(b []byte, i int, v ...byte) []byte {
		b = append([]byte(nil), b...)
		copy(b[i:], v)
		return b
	}
	const (
		hsType = recordHeaderLen     // the handshake message's type
		hsLen  = recordHeaderLen + 1 // its 24-bit length
		sidLen = recordHeaderLen + 4 + 2 + 32
	)
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"application data first", set(hello, 0, recordApplicationData), ErrMalformedHello},
		{"version 2.x", set(hello, 1, 2), ErrMalformedHello},
		{"empty record", []byte{22, 3, 1, 0, 0}, ErrMalformedHello},
		{"ServerHello", set(hello, hsType, 2), ErrMalformedHello},
		{"record over 2^14", []byte{22, 3, 1, 0x40, 0x01}, ErrRecordTooLarge},
		{"record of 64 KiB", []byte{22, 3, 1, 0xff, 0xff, 1}, ErrRecordTooLarge},
		{"hello of 16 MiB announced", set(hello[:10], hsLen, 0xff, 0xff, 0xff), ErrHelloTooLarge},
		{"session id overruns", set(hello, sidLen, 0xff), ErrMalformedHello},
		{"hello continued by another record type", append(set(hello, hsLen, 0, byte((len(hello)+100)>>8), byte(len(hello)+100)), 23, 3, 3, 0, 1, 0), ErrMalformedHello},
		{"hello cut short inside", set(hello, recordHeaderLen-2, 0, 44, typeClientHello, 0, 0, 40)[:recordHeaderLen+44], ErrMalformedHello},
	} {
		e := newEngine(t, p.serverConfig(), Options{})
		s := e.NewSession(time.Now().Add(testTimeout), nil, nil, nil)
		n, err := s.Input(c.in)
		if !errors.Is(err, c.want) || n != 0 {
			t.Errorf("%s: %d, %v; want %v", c.name, n, err, c.want)
			continue
		}
		if _, again := s.Input(c.in); again != err {
			t.Errorf("%s: the error is not kept: %v", c.name, again)
		}
		out := s.AppendOutput(nil)
		if len(out) != 7 || out[0] != recordAlert || out[5] != alertLevelFatal {
			t.Errorf("%s: no alert: % x", c.name, out)
		}
		if st := e.Stats(); st.Workers != 0 || st.Queued != 0 {
			t.Errorf("%s: the pool was involved: %+v", c.name, st)
		}
		s.Close()
	}
}

// TestMalformedHelloFromCryptoTLS: a ClientHello whose framing is sound but
// whose contents crypto/tls cannot decode reaches a worker, and the
// decode_error alert crypto/tls sends names the error.
func TestMalformedHelloFromCryptoTLS(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	// Find the supported_groups extension (10) and make its list's length odd.
	body := hello[recordHeaderLen+4:]
	off := 2 + 32
	off += 1 + int(body[off])
	off += 2 + (int(body[off])<<8 | int(body[off+1]))
	off += 1 + int(body[off])
	end := off + 2 + (int(body[off])<<8 | int(body[off+1]))
	bad := append([]byte(nil), hello...)
	found := false
	for off += 2; off < end; {
		typ, n := int(body[off])<<8|int(body[off+1]), int(body[off+2])<<8|int(body[off+3])
		if typ == 10 {
			bad[recordHeaderLen+4+off+5]-- // the list's length, inside the extension
			found = true
			break
		}
		off += 4 + n
	}
	if !found {
		t.Fatal("no supported_groups extension")
	}
	e := newEngine(t, p.serverConfig(), Options{})
	mp := newMemPair(t, e, p.clientConfig(), 0, nil)
	mp.cc.inject(bad)
	err := mp.sessionErr()
	t.Log(err)
	if !errors.Is(err, ErrMalformedHello) {
		t.Fatalf("session: %v, want ErrMalformedHello", err)
	}
}

// TestOldVersion: a client that offers only versions below MinVersion gets
// a protocol_version alert and the session ErrUnsupportedVersion: on the
// loop, or from crypto/tls when a GetConfigForClient may change the
// configuration.
func TestOldVersion(t *testing.T) {
	p := pki(t)
	old := p.clientConfig()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	tls12only := p.clientConfig()
	tls12only.MaxVersion = tls.VersionTLS12
	byCallback := p.serverConfig()
	byCallback.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }
	min13 := p.serverConfig()
	min13.MinVersion = tls.VersionTLS13
	for _, c := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
		loop   bool // refused on the loop, before a worker
	}{
		{"TLS1.1 client", p.serverConfig(), old, true},
		{"TLS1.1 client, GetConfigForClient", byCallback, old, false},
		{"TLS1.2 client, MinVersion 1.3", min13, tls12only, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, c.server, Options{})
			mp := newMemPair(t, e, c.client, 0, nil)
			err := mp.client.Handshake()
			if err == nil || !strings.Contains(err.Error(), "protocol version") {
				t.Fatalf("client: %v, want a protocol_version alert", err)
			}
			serr := mp.sessionErr()
			if !errors.Is(serr, ErrUnsupportedVersion) {
				t.Fatalf("session: %v, want ErrUnsupportedVersion", serr)
			}
			if c.loop && strings.Contains(serr.Error(), "tls: ") {
				t.Fatalf("session: %v: refused by crypto/tls, not on the loop", serr)
			}
		})
	}
}

// TestHandshakeTimeout: a handshake that stalls ends at its deadline,
// wherever it stalls, and frees its worker.
func TestHandshakeTimeout(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	const deadline = 150 * time.Millisecond

	t.Run("slowloris hello", func(t *testing.T) {
		e := newEngine(t, p.serverConfig(), Options{})
		s := e.NewSession(time.Now().Add(deadline), nil, nil, nil)
		var err error
		start := time.Now()
		for i := 1; i < len(hello) && err == nil; i++ {
			// One byte at a time, forever: the caller keeps the bytes.
			_, err = s.Input(hello[:i])
			time.Sleep(10 * time.Millisecond)
		}
		if !errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("%v", err)
		}
		if el := time.Since(start); el > deadline+time.Second {
			t.Fatalf("timed out after %v", el)
		}
	})

	t.Run("silent after the hello", func(t *testing.T) {
		e := newEngine(t, p.serverConfig(), Options{})
		woke := make(chan struct{}, 8)
		s := e.NewSession(time.Now().Add(deadline), func() { woke <- struct{}{} }, nil, nil)
		start := time.Now()
		if n, err := s.Input(hello); n != len(hello) || err != nil {
			t.Fatalf("%d, %v", n, err)
		}
		var err error
		for err == nil {
			select {
			case <-woke:
			case <-time.After(testTimeout):
				t.Fatal("no wake-up")
			}
			_, err = s.Input(nil)
			s.AppendOutput(nil) // the server's flight
		}
		if !errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("%v", err)
		}
		if el := time.Since(start); el < deadline || el > deadline+time.Second {
			t.Fatalf("timed out after %v", el)
		}
		waitIdle(t, e)
	})

	t.Run("queued", func(t *testing.T) {
		e := newEngine(t, p.serverConfig(), Options{MaxWorkers: 1})
		// The only worker waits for a silent client.
		blocker := e.NewSession(time.Now().Add(testTimeout), nil, nil, nil)
		if _, err := blocker.Input(hello); err != nil {
			t.Fatal(err)
		}
		defer blocker.Close()
		waitFor(t, "the worker to be busy", func() bool { st := e.Stats(); return st.Workers == 1 && st.Idle == 0 && st.Queued == 0 })
		woke := make(chan struct{}, 1)
		s := e.NewSession(time.Now().Add(deadline), func() { woke <- struct{}{} }, nil, nil)
		start := time.Now()
		if _, err := s.Input(hello); err != nil {
			t.Fatal(err)
		}
		if st := e.Stats(); st.Queued != 1 {
			t.Fatalf("%+v", st)
		}
		select {
		case <-woke:
		case <-time.After(testTimeout):
			t.Fatal("no wake-up")
		}
		_, err := s.Input(nil)
		if !errors.Is(err, ErrHandshakeTimeout) || !strings.Contains(err.Error(), "waiting for a worker") {
			t.Fatalf("%v", err)
		}
		if el := time.Since(start); el > deadline+time.Second {
			t.Fatalf("timed out after %v", el)
		}
		if st := e.Stats(); st.Queued != 0 {
			t.Fatalf("still queued: %+v", st)
		}
	})

	t.Run("closed while running", func(t *testing.T) {
		e := newEngine(t, p.serverConfig(), Options{})
		woke := 0
		var mu sync.Mutex
		s := e.NewSession(time.Now().Add(testTimeout), func() { mu.Lock(); woke++; mu.Unlock() }, nil, nil)
		if _, err := s.Input(hello); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the server's flight", func() bool { return s.Pending() > 0 })
		s.Close()
		mu.Lock()
		before := woke
		mu.Unlock()
		waitIdle(t, e)
		mu.Lock()
		defer mu.Unlock()
		if woke != before {
			t.Fatal("woken after Close")
		}
	})
}

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitIdle waits until no worker runs a handshake.
func waitIdle(t testing.TB, e *Engine) {
	t.Helper()
	waitFor(t, "idle workers", func() bool { st := e.Stats(); return st.Workers == st.Idle && st.Queued == 0 })
}

// TestHandshakeOverflow: bytes a client sends after its ClientHello before
// the server has answered are bounded (legitimate clients send at most a
// change_cipher_spec record).
func TestHandshakeOverflow(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	junk := bytes.Repeat([]byte{23, 3, 3, 0, 100}, 400)

	e := newEngine(t, p.serverConfig(), Options{})
	s := e.NewSession(time.Time{}, nil, nil, nil)
	if _, err := s.Input(append(append([]byte(nil), hello...), junk...)); !errors.Is(err, ErrHandshakeOverflow) {
		t.Fatalf("in the same read: %v", err)
	}

	// While queued (the only worker is busy).
	e = newEngine(t, p.serverConfig(), Options{MaxWorkers: 1})
	blocker := e.NewSession(time.Time{}, nil, nil, nil)
	defer blocker.Close()
	if _, err := blocker.Input(hello); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to be busy", func() bool { st := e.Stats(); return st.Workers == 1 && st.Idle == 0 && st.Queued == 0 })
	s = e.NewSession(time.Time{}, nil, nil, nil)
	if _, err := s.Input(hello); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Input(junk[:500]); err != nil {
		t.Fatal(err) // within the slack
	}
	if _, err := s.Input(junk); !errors.Is(err, ErrHandshakeOverflow) {
		t.Fatalf("while queued: %v", err)
	}
	if st := e.Stats(); st.Queued != 0 {
		t.Fatalf("still queued: %+v", st)
	}
}

// TestHandshakeBackPressure: once the server has answered, what arrives
// during the handshake beyond MaxHandshakeBytes waits in the caller's
// buffer, and flows once the handshake ends. The worker is held inside the
// handshake (in VerifyConnection) while a TLS 1.3 client, done on its side,
// sends 100 kB.
func TestHandshakeBackPressure(t *testing.T) {
	p := pki(t)
	cfg := p.serverConfig()
	cfg.ClientAuth = tls.RequireAnyClientCert
	release := make(chan struct{})
	cfg.VerifyConnection = func(tls.ConnectionState) error {
		<-release
		return nil
	}
	const limit = 400
	e := newEngine(t, cfg, Options{MaxHandshakeBytes: limit})
	ccfg := clientFor(p, tls.VersionTLS13)
	ccfg.Certificates = []tls.Certificate{p.client}
	mp := newMemPair(t, e, ccfg, 0, echo)
	if err := mp.client.Handshake(); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("z"), 100_000)
	if _, err := mp.client.Write(msg); err != nil {
		t.Fatal(err)
	}
	mp.waitLoop("the caller to hold the bytes back", func(d *driver) bool {
		return len(d.raw) > len(msg)-limit
	})
	mp.onLoop(func(d *driver) {
		if h := d.s.held(); h > limit {
			t.Errorf("the session holds %d bytes", h)
		}
	})
	close(release)
	expectRead(t, mp.client, msg)
	mp.onLoop(func(d *driver) {
		t.Logf("the session held at most %d bytes, the caller %d", d.maxHeld, d.maxRaw)
		if d.maxHeld > limit+e.opts.PlaintextLimit+maxPlaintext {
			t.Errorf("the session held %d bytes", d.maxHeld)
		}
	})
}

// TestBusy: beyond MaxQueued waiting handshakes, Input refuses with ErrBusy
// (and an alert); Close of the engine fails the queued ones with ErrClosed.
func TestBusy(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	e := newEngine(t, p.serverConfig(), Options{MaxWorkers: 1, MaxQueued: 1})
	blocker := e.NewSession(time.Time{}, nil, nil, nil)
	defer blocker.Close()
	if _, err := blocker.Input(hello); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to be busy", func() bool { st := e.Stats(); return st.Workers == 1 && st.Idle == 0 && st.Queued == 0 })
	woke := make(chan struct{}, 1)
	queued := e.NewSession(time.Time{}, func() { woke <- struct{}{} }, nil, nil)
	if _, err := queued.Input(hello); err != nil {
		t.Fatal(err)
	}
	s := e.NewSession(time.Time{}, nil, nil, nil)
	if _, err := s.Input(hello); !errors.Is(err, ErrBusy) {
		t.Fatalf("%v, want ErrBusy", err)
	}
	if out := s.AppendOutput(nil); len(out) != 7 {
		t.Fatalf("no alert: % x", out)
	}
	e.Close()
	select {
	case <-woke:
	case <-time.After(testTimeout):
		t.Fatal("the queued session was not woken")
	}
	if _, err := queued.Input(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("queued: %v, want ErrClosed", err)
	}
	s = e.NewSession(time.Time{}, nil, nil, nil)
	if _, err := s.Input(hello); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// TestPoolOnDemand: workers start as handshakes need them, never beyond
// the cap, and exit when idle.
func TestPoolOnDemand(t *testing.T) {
	p := pki(t)
	hello := captureHello(t, p.clientConfig())
	e := newEngine(t, p.serverConfig(), Options{MaxWorkers: 3, WorkerIdle: 30 * time.Millisecond})
	if st := e.Stats(); st.Workers != 0 {
		t.Fatalf("workers before any handshake: %+v", st)
	}
	var sessions []*Session
	for range 5 {
		s := e.NewSession(time.Time{}, nil, nil, nil)
		if _, err := s.Input(hello); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	waitFor(t, "three busy workers", func() bool { st := e.Stats(); return st.Workers == 3 && st.Queued == 2 })
	for _, s := range sessions {
		s.Close()
	}
	waitFor(t, "the workers to exit", func() bool { return e.Stats().Workers == 0 })
}
