package link

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/tiogo/tio/codec"
)

// fakeConn is a gnet.Conn that records writes and wakes, and holds a
// settable number of bytes as if gnet's outbound buffer had them.
type fakeConn struct {
	gnet.Conn // nil: a method not implemented here panics
	mu        sync.Mutex
	written   bytes.Buffer
	writes    int
	wakes     int
	held      int // OutboundBuffered
	failWrite error
}

func (c *fakeConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failWrite != nil {
		return 0, c.failWrite
	}
	c.writes++
	return c.written.Write(b)
}
func (c *fakeConn) Wake(gnet.AsyncCallback) error { c.mu.Lock(); c.wakes++; c.mu.Unlock(); return nil }
func (c *fakeConn) OutboundBuffered() int         { c.mu.Lock(); defer c.mu.Unlock(); return c.held }
func (c *fakeConn) RemoteAddr() net.Addr          { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 4242} }
func (c *fakeConn) LocalAddr() net.Addr           { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9001} }

func (c *fakeConn) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.written.String()
	c.written.Reset()
	return s
}

// lineCodec encodes a packet as its body and a newline; its decoder is
// ready at once and says goodbye with "bye:<why>\n".
type lineCodec struct{}

func (lineCodec) Name() string              { return "line" }
func (lineCodec) NewDecoder() codec.Decoder { return &lineDecoder{} }
func (lineCodec) Encode(dst []byte, p *codec.Packet) ([]byte, error) {
	if p.Type == 99 {
		return dst, codec.ErrUnsupported
	}
	return append(append(dst, p.Body...), '\n'), nil
}

type lineDecoder struct{}

func (*lineDecoder) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	return 0, false, nil
}
func (*lineDecoder) Farewell(c codec.Conn, why error) {
	w := "normal"
	if why != nil {
		w = why.Error()
	}
	_ = c.WriteLast([]byte("bye:" + w + "\n"))
}

// ready returns a link on a fake conn, its codec set and handshake done.
func ready(t *testing.T, env *Env) (*Link, *fakeConn) {
	t.Helper()
	if env.Codecs == nil {
		env.Codecs = []codec.Codec{lineCodec{}}
	}
	fc := &fakeConn{}
	l := New(fc, MakeID(1, 7), env)
	l.SetCodec(0)
	l.Ready()
	return l, fc
}

func pk(body string) *codec.Packet { return &codec.Packet{Type: 1, Body: []byte(body)} }

// Sends from outside a pass are queued and wake the loop once; the pass's
// End writes them all in one write, in order.
func TestSendsCoalesceIntoOneWrite(t *testing.T) {
	l, fc := ready(t, &Env{})
	for _, s := range []string{"a", "b", "c"} {
		if err := l.Send(pk(s)); err != nil {
			t.Fatal(err)
		}
	}
	if fc.wakes != 1 {
		t.Fatalf("%d wakes for three sends, want 1", fc.wakes)
	}
	l.Begin(0)
	if err := l.Send(pk("d")); err != nil { // inside the pass: no wake
		t.Fatal(err)
	}
	if next := l.End(0, 0, 0); next != Keep {
		t.Fatalf("End = %v", next)
	}
	if got := fc.take(); got != "a\nb\nc\nd\n" || fc.writes != 1 || fc.wakes != 1 {
		t.Fatalf("wrote %q in %d writes with %d wakes", got, fc.writes, fc.wakes)
	}
	if st := l.Stats(); st.PacketsOut != 4 || st.BytesOut != 8 {
		t.Fatalf("stats %+v", st)
	}
	if err := l.Send(&codec.Packet{Type: 99}); !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("encode error %v", err)
	}
}

func TestSendStates(t *testing.T) {
	env := &Env{Codecs: []codec.Codec{lineCodec{}}}
	fc := &fakeConn{}
	l := New(fc, MakeID(1, 7), env)
	if err := l.Send(pk("x")); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before the codec: %v", err)
	}
	l.SetCodec(0)
	if err := l.Send(pk("x")); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before Ready: %v", err)
	}
	l.Ready()
	l.Close(ReasonClosedByApp)
	if err := l.Send(pk("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("closing: %v", err)
	}
	if r, _ := l.Reason(); r != ReasonClosedByApp {
		t.Fatalf("reason %v", r)
	}
}

// The outbound limit refuses bytes only when those already waiting exceed
// it: one packet of any size goes to a peer with nothing waiting; the next
// send past the limit is refused and closes the link, farewell included.
// Protocol answers (Write) obey it too; WriteLast does not.
func TestOutboundLimitBoundsTheBacklog(t *testing.T) {
	l, fc := ready(t, &Env{MaxOutbound: 10})
	big := string(make([]byte, 100))
	if err := l.Send(pk(big)); err != nil {
		t.Fatalf("one packet larger than the limit on an empty queue: %v", err)
	}
	if err := l.Send(pk("x")); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("a send past the limit: %v", err)
	}
	if r, _ := l.Reason(); r != ReasonSlowConsumer {
		t.Fatalf("reason %v", r)
	}
	if next := l.End(0, 0, 0); next != Close {
		t.Fatalf("End = %v, want Close", next)
	}
	if got := fc.take(); got != big+"\nbye:codec: policy violation: slow consumer\n" {
		t.Fatalf("wrote %q", got)
	}

	// gnet holding bytes counts too, and so do the decoder's answers.
	l2, fc2 := ready(t, &Env{MaxOutbound: 10})
	_ = l2.Send(pk("x"))
	fc2.held = 11 // what the kernel did not take of the write
	l2.Begin(0)
	l2.End(0, 0, 0) // reads the backlog
	if err := l2.Write([]byte("pong")); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("a pong past the limit: %v", err)
	}
	if err := l2.WriteLast([]byte("last")); err != nil {
		t.Fatalf("WriteLast past the limit: %v", err)
	}
}

// A close by the application drains: it waits while gnet holds bytes for
// the peer, up to the drain timeout; a close for a fault does not.
func TestCloseDrainsQueuedBytes(t *testing.T) {
	l, fc := ready(t, &Env{DrainTimeout: 50 * time.Millisecond})
	_ = l.Send(pk("last words"))
	l.Close(ReasonClosedByApp)
	fc.held = 100
	l.Begin(0)
	if next := l.End(0, 0, 0); next != Draining {
		t.Fatalf("End = %v, want Draining", next)
	}
	if got := fc.take(); got != "last words\nbye:normal\n" {
		t.Fatalf("wrote %q: the farewell must follow what was queued", got)
	}
	time.Sleep(60 * time.Millisecond)
	l.Begin(0)
	if next := l.End(0, 0, 0); next != Close {
		t.Fatalf("after the drain timeout End = %v, want Close", next)
	}

	l2, fc2 := ready(t, &Env{})
	fc2.held = 100
	l2.Fail(ReasonProtocolError, nil, true)
	l2.Begin(0)
	if next := l2.End(0, 0, 0); next != Close {
		t.Fatalf("a fault: End = %v, want Close at once", next)
	}
}

// SendPacketNotify's callback runs once the bytes are written, or with the
// error when the link closes first; a failed write closes as io_error.
func TestWaitersAreToldOnce(t *testing.T) {
	l, fc := ready(t, &Env{})
	var got []error
	done := func(err error) { got = append(got, err) }
	_ = l.SendPacketNotify(pk("a"), done)
	l.Begin(0)
	l.End(0, 0, 0)
	_ = l.SendPacketNotify(pk("b"), done)
	l.OnClosed(nil)
	if len(got) != 2 || got[0] != nil || !errors.Is(got[1], ErrClosed) {
		t.Fatalf("waiters told %v", got)
	}
	if r, _ := l.Reason(); r != ReasonClosedByPeer {
		t.Fatalf("reason %v", r)
	}

	l2, fc2 := ready(t, &Env{})
	fc2.failWrite = errors.New("boom")
	_ = l2.SendPacketNotify(pk("a"), done)
	l2.Begin(0)
	if next := l2.End(0, 0, 0); next != Close {
		t.Fatalf("End after a failed write = %v", next)
	}
	if got[len(got)-1] == nil {
		t.Fatal("the waiter of a failed write was told it succeeded")
	}
	_ = fc
}

// SendWait off a loop waits for the write; on a loop it fails at once.
func TestSendWait(t *testing.T) {
	env := &Env{}
	l, fc := ready(t, env)
	errc := make(chan error, 1)
	go func() { errc <- l.SendWait(context.Background(), pk("w")) }()
	for fc.wakesNow() == 0 {
		time.Sleep(time.Millisecond)
	}
	l.Begin(0)
	l.End(0, 0, 0)
	if err := <-errc; err != nil || fc.take() != "w\n" {
		t.Fatalf("SendWait = %v", err)
	}
	env.NoteLoop("this goroutine's loop")
	if err := l.SendWait(context.Background(), pk("x")); !errors.Is(err, ErrOnLoop) {
		t.Fatalf("SendWait on the loop = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	go func() { errc <- l.SendWait(ctx, pk("y")) }()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("SendWait with a dead context = %v", err)
	}
}

func (c *fakeConn) wakesNow() int { c.mu.Lock(); defer c.mu.Unlock(); return c.wakes }

// Values, heartbeat timeouts and the partial-packet clock.
func TestLinkState(t *testing.T) {
	l, _ := ready(t, &Env{})
	l.SetValue("k", 1)
	if l.Value("k") != 1 {
		t.Fatal("value")
	}
	l.SetValue("k", nil)
	if l.Value("k") != nil {
		t.Fatal("deleted value")
	}
	l.SetHeartbeatTimeout(time.Second)
	if l.HeartbeatTimeout() != time.Second {
		t.Fatal("heartbeat timeout")
	}
	now := time.Now()
	if _, ok := l.PartialFor(now); ok {
		t.Fatal("partial before any pass")
	}
	l.SetPartial(true, now.UnixNano())
	l.SetPartial(true, now.Add(time.Second).UnixNano()) // the clock started at the first
	if d, ok := l.PartialFor(now.Add(3 * time.Second)); !ok || d < 2900*time.Millisecond || d > 3100*time.Millisecond {
		t.Fatalf("partial for %v, %v", d, ok)
	}
	l.SetPartial(false, 0)
	if _, ok := l.PartialFor(now); ok {
		t.Fatal("partial after the packet completed")
	}
	if l.String() != "channel#16777223(10.0.0.9:4242)" {
		t.Fatalf("String = %q", l.String())
	}
}

// A shared encoding is held by reference by a channel with nothing queued,
// copied after what a channel has queued, copied before anything is
// appended after it, and released once written or closed.
func TestSharedEncodings(t *testing.T) {
	env := &Env{}
	a, fa := ready(t, env)
	b, fb := ready(t, env)
	_ = b.Send(pk("first"))
	sh := env.NewShared()
	*sh.Buf() = append(*sh.Buf(), "shared\n"...)
	for _, l := range []*Link{a, b} {
		if err := l.SendShared(sh); err != nil {
			t.Fatal(err)
		}
	}
	if n := sh.refs.Load(); n != 2 {
		t.Fatalf("%d references, want 2: the fan-out's and a's (b copied)", n)
	}
	if a.bits&bitShared == 0 || b.bits&bitShared != 0 {
		t.Fatal("a should hold the reference, b a copy")
	}
	sh.Release()            // the fan-out is done
	_ = a.Send(pk("after")) // copy-on-write, order kept
	if a.bits&bitShared != 0 || sh.refs.Load() != 0 {
		t.Fatalf("after an append: shared bit %v, refs %d", a.bits&bitShared != 0, sh.refs.Load())
	}
	for _, l := range []*Link{a, b} {
		l.Begin(0)
		l.End(0, 0, 0)
	}
	if got := fa.take(); got != "shared\nafter\n" {
		t.Fatalf("a got %q", got)
	}
	if got := fb.take(); got != "first\nshared\n" {
		t.Fatalf("b got %q", got)
	}

	// Written by reference: the reference goes when the loop has written it.
	sh2 := env.NewShared()
	*sh2.Buf() = append(*sh2.Buf(), "x\n"...)
	_ = a.SendShared(sh2)
	sh2.Release()
	if sh2.refs.Load() != 1 {
		t.Fatal("the target's reference is gone before the write")
	}
	a.Begin(0)
	a.End(0, 0, 0)
	if sh2.refs.Load() != 0 || fa.take() != "x\n" {
		t.Fatal("not written, or not released once written")
	}
	// Closed with a reference queued: released.
	sh3 := env.NewShared()
	*sh3.Buf() = append(*sh3.Buf(), "y\n"...)
	_ = a.SendShared(sh3)
	sh3.Release()
	a.OnClosed(nil)
	if sh3.refs.Load() != 0 {
		t.Fatal("a closed channel kept its reference")
	}
}
