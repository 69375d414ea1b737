package bench

import (
	"crypto/tls"
	"os"
	"testing"
	"time"
)

// startTLST starts impl's wss echo on a free port for the test, or skips
// the test if ImplsEnv leaves impl out.
func startTLST(t *testing.T, impl string, p *PKI) Server {
	t.Helper()
	if !Selected(impl) {
		t.Skipf("%s: not selected by %s", impl, ImplsEnv)
	}
	s, err := StartTLS(impl, "127.0.0.1:0", p.ServerConfig(), nil)
	if err != nil {
		t.Fatalf("start %s: %v", impl, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func pkiT(t *testing.T) *PKI {
	t.Helper()
	p, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLSFiles checks that the PEM files make the same configurations.
func TestTLSFiles(t *testing.T) {
	p := pkiT(t)
	ca, cert, key, err := p.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := LoadServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := LoadClientTLS(ca)
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartTLS(ImplTio, "127.0.0.1:0", scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, rest, err := DialWSS(s.Addr(), ccfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cs := c.(*tls.Conn).ConnectionState()
	if cs.Version != tls.VersionTLS13 || cs.CurveID != tls.X25519 || cs.DidResume {
		t.Fatalf("version %#x, curve %v, resumed %v: want TLS 1.3, X25519, a full handshake", cs.Version, cs.CurveID, cs.DidResume)
	}
	if err := echoOnce(c, rest, randomPayload(64), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestTLSSmoke runs the three TLS scenarios of benchrun (f, g, h) tiny, in
// this process, against the servers that ImplsEnv selects: it checks that
// they run and produce numbers, not what the numbers are.
func TestTLSSmoke(t *testing.T) {
	p := pkiT(t)
	var ts []Target
	for _, impl := range TLSImpls {
		if Selected(impl) {
			ts = append(ts, Target{Name: impl, Addr: startTLST(t, impl, p).Addr(), PID: os.Getpid()})
		}
	}
	if len(ts) == 0 {
		t.Skipf("%s selects no server", ImplsEnv)
	}

	t.Run("echo", func(t *testing.T) {
		res, err := CompareTLS(CompareConfig{
			Targets: ts, Conns: 4, Size: 64, Inflight: 1,
			Warmup: 50 * time.Millisecond, Slice: 150 * time.Millisecond, Settle: 20 * time.Millisecond, Cycles: 2,
		}, p.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Impl != ts[i].Name || len(r.Slices) != 2 || r.Errors > 0 || r.Msgs == 0 || r.P50 <= 0 || r.P99 < r.P50 {
				t.Fatalf("result %d: %+v", i, r)
			}
			t.Logf("%s: %d echoes, %.0f msg/s, p50 %.0f µs, p99 %.0f µs", r.Impl, r.Msgs, r.Rate, r.P50, r.P99)
		}
	})

	t.Run("idle", func(t *testing.T) {
		for _, tg := range ts {
			cs, err := IdleTLS(tg.Addr, p.ClientConfig(), 20, 64)
			if err != nil {
				t.Fatalf("%s: %v", tg.Name, err)
			}
			if n := Alive(cs); n != len(cs) {
				t.Errorf("%s: %d of %d idle connections alive", tg.Name, n, len(cs))
			}
			CloseAll(cs)
		}
	})

	t.Run("handshakes", func(t *testing.T) {
		res, err := Handshakes(HandshakeConfig{
			Targets: ts, TLS: p.ClientConfig(), Dialers: 4,
			Warmup: 50 * time.Millisecond, Slice: 200 * time.Millisecond, Settle: 20 * time.Millisecond, Cycles: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Impl != ts[i].Name || len(r.Slices) != 2 || r.Errors > 0 || r.Msgs == 0 || r.P50 <= 0 {
				t.Fatalf("result %d: %+v", i, r)
			}
			t.Logf("%s: %d handshakes, %.0f/s, p50 %.0f µs, p99 %.0f µs", r.Impl, r.Msgs, r.Rate, r.P50, r.P99)
		}
	})
}

// TestGate checks the gate's waits: before any target is active, a wait
// for any target blocks (it returned -1, "stopped", once, and the
// handshake scenario's dialers that started before the first slice quit).
func TestGate(t *testing.T) {
	g := newGate()
	got := make(chan int, 2)
	go func() { got <- g.wait(-1) }()
	go func() { got <- g.wait(1) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("a wait returned %d before any target was active", a)
	default:
	}
	g.set(0)
	if a := <-got; a != 0 {
		t.Fatalf("wait(-1) = %d with target 0 active, want 0", a)
	}
	g.set(1)
	if a := <-got; a != 1 {
		t.Fatalf("wait(1) = %d, want 1", a)
	}
	g.set(-1)
	go func() { got <- g.wait(-1) }()
	time.Sleep(10 * time.Millisecond)
	g.halt()
	if a := <-got; a != -1 {
		t.Fatalf("wait after halt = %d, want -1", a)
	}
}
