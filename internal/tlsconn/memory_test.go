package tlsconn

import (
	"crypto/tls"
	"io"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// memStats returns the live heap and the goroutine stacks in use, after two
// collections.
func memStats() (heap, stack uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// fieldCap returns the capacity of a bytes.Buffer field of a tls.Conn (0 if
// crypto/tls no longer has it).
func fieldCap(c *tls.Conn, name string) int {
	f := reflect.ValueOf(c).Elem().FieldByName(name)
	if !f.IsValid() {
		return 0
	}
	if b := f.FieldByName("buf"); b.IsValid() {
		return b.Cap()
	}
	return 0
}

// idleSessions establishes n sessions, each after a handshake and one small
// message echoed (size bytes), and returns them with the clients gone.
func idleSessions(t *testing.T, e *Engine, n, size int) []*Session {
	t.Helper()
	p := pki(t)
	out := make([]*Session, 0, n)
	msg := make([]byte, size)
	for range n {
		client, cc, d := establish(t, e, p.clientConfig())
		d.app = echo
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		d.raw = append(d.raw, cc.take()...)
		d.pass()
		if _, err := io.ReadFull(client, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		if d.err != nil || d.s.plain != nil || d.s.out != nil || d.s.hs != nil {
			t.Fatalf("idle session holds state: err %v plain %v out %v hs %v", d.err, d.s.plain != nil, d.s.out != nil, d.s.hs != nil)
		}
		out = append(out, d.s)
		_ = cc.Close()
	}
	return out
}

// TestIdleMemory measures what an idle established session retains: the
// Session and its tls.Conn, after a handshake (ECDSA P-256 certificate,
// X25519MLKEM768 or X25519 key exchange, crypto/tls's defaults) and a small
// message each way. It compares a goroutine-per-connection crypto/tls server
// (the tls.Conn, its goroutine blocked in Read, a 1 KiB read buffer, and the
// same in-memory conn under it).
func TestIdleMemory(t *testing.T) {
	n := 2000
	if raceEnabled || testing.Short() {
		n = 100
	}
	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{WorkerIdle: 10 * time.Millisecond})

	measure := func(size int) float64 {
		h0, s0 := memStats()
		sessions := idleSessions(t, e, n, size)
		waitFor(t, "the workers to exit", func() bool { return e.Stats().Workers == 0 })
		h1, s1 := memStats()
		in := fieldCap(sessions[0].conn, "rawInput")
		hand := fieldCap(sessions[0].conn, "hand")
		per := float64(int64(h1-h0)+int64(s1-s0)) / float64(n)
		t.Logf("idle after a %5d-byte message: %6.0f bytes per session (heap %+d, stacks %+d over %d); tls.Conn input buffer %d, handshake buffer %d",
			size, per, int64(h1-h0), int64(s1-s0), n, in, hand)
		for _, s := range sessions {
			s.Close()
		}
		runtime.KeepAlive(sessions)
		return per
	}
	t.Logf("sizes: Session %d, handshake state %d (dropped once established), tls.Conn %d", unsafe.Sizeof(Session{}), unsafe.Sizeof(handshake{}), unsafe.Sizeof(tls.Conn{}))
	small := measure(100)
	measure(16 << 10) // one full record: crypto/tls's input buffer grows

	// The goroutine-per-connection baseline.
	h0, s0 := memStats()
	var conns []*memConn
	var wg sync.WaitGroup
	for range n {
		a, b := memPipe()
		srv := tls.Server(b, p.serverConfig())
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1024)
			for {
				k, err := srv.Read(buf)
				if err != nil {
					return
				}
				if _, err := srv.Write(buf[:k]); err != nil {
					return
				}
			}
		}()
		client := tls.Client(a, p.clientConfig())
		_ = client.SetDeadline(time.Now().Add(testTimeout))
		if _, err := client.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		_ = client.SetDeadline(time.Time{}) // its timer would keep a alive
		a.mu.Lock()
		a.rbuf = nil
		a.mu.Unlock()
		conns = append(conns, b)
	}
	h1, s1 := memStats()
	base := float64(int64(h1-h0)+int64(s1-s0)) / float64(n)
	t.Logf("goroutine per connection: %6.0f bytes per connection (heap %+d, stacks %+d); the session costs %.2f of it", base, int64(h1-h0), int64(s1-s0), small/base)
	for _, b := range conns {
		_ = b.Close()
	}
	wg.Wait()
	if !raceEnabled && small > 13<<10 {
		t.Errorf("an idle session retains %.0f bytes: more than the prototype's 13 KiB", small)
	}
}

// memPipe returns the two ends of an in-memory connection.
func memPipe() (a, b *memConn) {
	a, b = newMemConn(nil), newMemConn(nil)
	a.notify = func() { b.deliver(a.take()) }
	b.notify = func() { a.deliver(b.take()) }
	return a, b
}

// TestHandshakeMemory measures what a handshake in flight costs: queued
// (the ClientHello has arrived, no worker yet), and running (the server has
// sent its flight and its worker waits for the client's Finished: the
// session, the tls.Conn with its handshake state, the worker's stack). The
// ClientHello is one real client's, replayed to every session.
func TestHandshakeMemory(t *testing.T) {
	n := 500
	if raceEnabled || testing.Short() {
		n = 50
	}
	p := pki(t)
	hello := captureHello(t, p.clientConfig())

	// Queued: the only worker is busy.
	e := newEngine(t, p.serverConfig(), Options{MaxWorkers: 1, MaxQueued: n})
	blocker := e.NewSession(time.Time{}, nil, nil, nil)
	if _, err := blocker.Input(hello); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to be busy", func() bool { st := e.Stats(); return st.Idle == 0 && st.Queued == 0 })
	h0, s0 := memStats()
	var queued []*Session
	for range n {
		s := e.NewSession(time.Time{}, nil, nil, nil)
		if _, err := s.Input(hello); err != nil {
			t.Fatal(err)
		}
		queued = append(queued, s)
	}
	h1, s1 := memStats()
	t.Logf("queued handshake: %6.0f bytes each (a %d-byte ClientHello)", float64(int64(h1-h0)+int64(s1-s0))/float64(n), len(hello))
	for _, s := range queued {
		s.Close()
	}
	blocker.Close()

	// Running, waiting for the client's second flight.
	e = newEngine(t, p.serverConfig(), Options{MaxWorkers: n + 1, MaxQueued: n})
	h0, s0 = memStats()
	var running []*Session
	for range n {
		s := e.NewSession(time.Time{}, nil, nil, nil)
		if _, err := s.Input(hello); err != nil {
			t.Fatal(err)
		}
		running = append(running, s)
	}
	for _, s := range running {
		waitFor(t, "the server's flight", func() bool { return s.Pending() > 0 })
		s.AppendOutput(nil)
	}
	waitFor(t, "every worker to wait", func() bool { st := e.Stats(); return st.Workers == n && st.Idle == 0 && st.Queued == 0 })
	h1, s1 = memStats()
	t.Logf("running handshake: %6.0f bytes each (heap %+d, worker stacks %+d over %d)", float64(int64(h1-h0)+int64(s1-s0))/float64(n), int64(h1-h0), int64(s1-s0), n)
	for _, s := range running {
		s.Close()
	}
	waitIdle(t, e)
}
