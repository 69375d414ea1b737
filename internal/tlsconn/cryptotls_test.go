package tlsconn

import (
	"bytes"
	"crypto/tls"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"
)

// The tests in this file pin the behaviours of crypto/tls that the design
// depends on, on a bare tls.Conn (not through a Session), so that a change in
// crypto/tls shows up here with a name, not as a mystery elsewhere.

// pinConn is a net.Conn under a server tls.Conn, under the test's control.
type pinConn struct {
	mu        sync.Mutex
	cond      sync.Cond
	in        []byte
	block     bool  // Read waits for bytes (a handshake); else errAgain
	writeErr  error // returned once by the next Write
	out       func([]byte)
	deadlines int // SetWriteDeadline calls
	closed    bool
}

func (c *pinConn) push(b []byte) {
	c.mu.Lock()
	c.in = append(c.in, b...)
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *pinConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.in) == 0 {
		if !c.block || c.closed {
			return 0, errAgain
		}
		c.cond.Wait()
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *pinConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	err := c.writeErr
	c.writeErr = nil
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	c.out(append([]byte(nil), p...))
	return len(p), nil
}

func (c *pinConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}
func (c *pinConn) LocalAddr() net.Addr             { return nil }
func (c *pinConn) RemoteAddr() net.Addr            { return nil }
func (c *pinConn) SetDeadline(time.Time) error     { return nil }
func (c *pinConn) SetReadDeadline(time.Time) error { return nil }
func (c *pinConn) SetWriteDeadline(time.Time) error {
	c.mu.Lock()
	c.deadlines++
	c.mu.Unlock()
	return nil
}

// pinned is a crypto/tls client (over a memConn) and a crypto/tls server
// (over a pinConn). While capture is off, what the client writes reaches
// the server at once.
type pinned struct {
	client *tls.Conn
	cc     *memConn
	server *tls.Conn
	sc     *pinConn

	mu       sync.Mutex
	capture  bool
	captured []byte
}

func newPinned(t testing.TB, v uint16) *pinned {
	t.Helper()
	p := pki(t)
	pn := &pinned{sc: &pinConn{block: true}}
	pn.sc.cond.L = &pn.sc.mu
	pn.cc = newMemConn(func() {
		b := pn.cc.take()
		pn.mu.Lock()
		defer pn.mu.Unlock()
		if pn.capture {
			pn.captured = append(pn.captured, b...)
			return
		}
		pn.sc.push(b)
	})
	pn.sc.out = pn.cc.deliver
	pn.client = tls.Client(pn.cc, clientFor(p, v))
	_ = pn.client.SetDeadline(time.Now().Add(testTimeout))
	pn.server = tls.Server(pn.sc, p.serverConfig())
	t.Cleanup(func() { _ = pn.cc.Close(); _ = pn.sc.Close() })
	return pn
}

func (pn *pinned) handshake(t testing.TB) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- pn.server.Handshake() }()
	if err := pn.client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	pn.sc.mu.Lock()
	pn.sc.block = false
	pn.sc.mu.Unlock()
}

// record returns what the client writes for p, without delivering it.
func (pn *pinned) record(t testing.TB, p []byte) []byte {
	t.Helper()
	pn.mu.Lock()
	pn.capture, pn.captured = true, nil
	pn.mu.Unlock()
	if _, err := pn.client.Write(p); err != nil {
		t.Fatal(err)
	}
	pn.mu.Lock()
	defer pn.mu.Unlock()
	pn.capture = false
	return pn.captured
}

// TestCryptoTLSRetriesTemporaryReadErrors pins what loop mode rests on: after
// the handshake, a Read error whose Temporary() is true is returned but not
// stored, at a record boundary or in the middle of a record, and the next
// Read resumes. (net.Error.Temporary is deprecated; if crypto/tls stops
// honouring it, this test fails and the transport needs another way to say
// "no more bytes for now".)
func TestCryptoTLSRetriesTemporaryReadErrors(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			pn := newPinned(t, v.v)
			pn.handshake(t)
			buf := make([]byte, 100)
			if n, err := pn.server.Read(buf); n != 0 || err != errAgain {
				t.Fatalf("Read with nothing buffered: %d, %v; want errAgain itself", n, err)
			}
			rec := pn.record(t, []byte("hello, loop"))
			pn.sc.push(rec[:3]) // inside the header
			if n, err := pn.server.Read(buf); n != 0 || err != errAgain {
				t.Fatalf("Read of a partial header: %d, %v", n, err)
			}
			pn.sc.push(rec[3 : len(rec)-1]) // all but the last byte
			if n, err := pn.server.Read(buf); n != 0 || err != errAgain {
				t.Fatalf("Read of a partial record: %d, %v", n, err)
			}
			pn.sc.push(rec[len(rec)-1:])
			n, err := pn.server.Read(buf)
			if err != nil || string(buf[:n]) != "hello, loop" {
				t.Fatalf("Read after the rest arrived: %q, %v", buf[:n], err)
			}
		})
	}
}

// TestCryptoTLSHandshakeErrorsAreSticky pins why handshakes need blocking
// reads (and so a worker): the handshake keeps any error, even a Temporary
// one, and never reads again.
func TestCryptoTLSHandshakeErrorsAreSticky(t *testing.T) {
	pn := newPinned(t, tls.VersionTLS13)
	pn.sc.mu.Lock()
	pn.sc.block = false
	pn.sc.mu.Unlock()
	if err := pn.server.Handshake(); err != errAgain {
		t.Fatalf("first Handshake: %v, want errAgain", err)
	}
	pn.mu.Lock()
	pn.capture = true
	pn.mu.Unlock()
	go func() { _ = pn.client.Handshake() }() // writes its ClientHello, then waits
	deadline := time.Now().Add(testTimeout)
	for {
		pn.mu.Lock()
		n := len(pn.captured)
		pn.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no ClientHello")
		}
		time.Sleep(time.Millisecond)
	}
	pn.mu.Lock()
	pn.sc.push(pn.captured)
	pn.mu.Unlock()
	if err := pn.server.Handshake(); err != errAgain {
		t.Fatalf("second Handshake, with the ClientHello there: %v; want the first error again", err)
	}
}

// TestCryptoTLSWriteErrorsArePermanent pins why the transport's Write never
// fails: crypto/tls keeps a write error, Temporary or not, for good.
func TestCryptoTLSWriteErrorsArePermanent(t *testing.T) {
	pn := newPinned(t, tls.VersionTLS13)
	pn.handshake(t)
	pn.sc.mu.Lock()
	pn.sc.writeErr = errAgain
	pn.sc.mu.Unlock()
	if _, err := pn.server.Write([]byte("a")); err == nil {
		t.Fatal("Write succeeded over a failing conn")
	}
	if _, err := pn.server.Write([]byte("b")); err == nil {
		t.Fatal("the next Write succeeded: crypto/tls no longer keeps write errors (the transport could be simpler)")
	}
}

// TestCryptoTLSCloseNotify pins how crypto/tls closes: it sets a write
// deadline (which the transport ignores), writes close_notify through the
// conn, and closes it.
func TestCryptoTLSCloseNotify(t *testing.T) {
	pn := newPinned(t, tls.VersionTLS13)
	pn.handshake(t)
	var wrote []byte
	pn.sc.out = func(b []byte) { wrote = append(wrote, b...) }
	if err := pn.server.Close(); err != nil {
		t.Fatal(err)
	}
	if pn.sc.deadlines == 0 {
		t.Error("close_notify without SetWriteDeadline (the no-op is no longer needed)")
	}
	if len(wrote) == 0 || wrote[0] != recordApplicationData {
		t.Errorf("close wrote % x", wrote)
	}
	if !pn.sc.closed {
		t.Error("the conn was not closed")
	}
}

// rawInputCap returns the capacity of a tls.Conn's input buffer, by
// reflection, or skips the test if crypto/tls no longer has that field.
func rawInputCap(t *testing.T, c *tls.Conn) int {
	t.Helper()
	f := reflect.ValueOf(c).Elem().FieldByName("rawInput")
	if !f.IsValid() {
		t.Skip("tls.Conn has no rawInput any more: re-check how its input buffer grows")
	}
	b := f.FieldByName("buf")
	if !b.IsValid() {
		t.Skip("bytes.Buffer has no buf any more")
	}
	return b.Cap()
}

// TestCryptoTLSInputBufferReadsAhead pins why the transport hands crypto/tls
// one record at a time: given all it can take in each Read, crypto/tls reads
// ahead (to "predict" a close_notify) and its input buffer, which never
// shrinks, grows to hold several records (48 KiB after a 256 KiB burst of
// full records). Through a Session it holds one record, plus the slack of
// bytes.Buffer's doubling: at most 32 KiB.
func TestCryptoTLSInputBufferReadsAhead(t *testing.T) {
	const burst = 256 << 10
	data := bytes.Repeat([]byte("x"), burst)

	pn := newPinned(t, tls.VersionTLS13)
	pn.handshake(t)
	// Past crypto/tls's dynamic record sizing, so that records are full.
	pn.sc.push(pn.record(t, make([]byte, 200<<10)))
	for {
		if _, err := pn.server.Read(make([]byte, 64<<10)); err != nil {
			if err != errAgain {
				t.Fatal(err)
			}
			break
		}
	}
	pn.sc.push(pn.record(t, data))
	got := 0
	buf := make([]byte, 64<<10)
	for got < burst {
		n, err := pn.server.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	whole := rawInputCap(t, pn.server)

	p := pki(t)
	e := newEngine(t, p.serverConfig(), Options{})
	mp := newMemPair(t, e, clientFor(p, tls.VersionTLS13), 0, nil)
	mp.handshake()
	var hold sync.Mutex
	held := true
	mp.hold = func() bool { hold.Lock(); defer hold.Unlock(); return held }
	if _, err := mp.client.Write(make([]byte, 200<<10)); err != nil {
		t.Fatal(err)
	}
	if _, err := mp.client.Write(data); err != nil {
		t.Fatal(err)
	}
	hold.Lock()
	held = false
	hold.Unlock()
	mp.notify()
	mp.waitLoop("the burst", func(d *driver) bool { return len(d.got) == 200<<10+burst })
	var one int
	mp.onLoop(func(d *driver) { one = rawInputCap(t, d.s.conn) })
	t.Logf("input buffer after a %d KiB burst: %d bytes given in one read, %d through a session", burst>>10, whole, one)
	if whole <= 2*(maxCiphertextTLS13+recordHeaderLen) {
		t.Errorf("input buffer %d bytes after a burst in one Read: crypto/tls no longer reads ahead (the cursor is not needed)", whole)
	}
	if one > 32<<10 {
		t.Fatalf("input buffer %d bytes through a session: more than a record", one)
	}
}
