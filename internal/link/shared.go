package link

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
)

// Shared is an encoding that a fan-out shares between its targets. A
// target with nothing queued holds a reference to it instead of a copy: its
// outbound queue is the Shared's bytes until its loop writes them (gnet then
// copies only what the kernel did not take), and the last reference
// released puts the Shared back in its pool. A target with bytes queued
// already copies the encoding after them, as any send does, so one
// connection's order always holds.
//
// So a broadcast to N idle connections takes no per-connection buffer at
// all: memory per active connection follows what actually waits (a partial
// write, a slow reader), not the number of receivers.
type Shared struct {
	buf  []byte // the first field: a queue's *[]byte into it finds the Shared (sharedOf)
	refs atomic.Int32
	env  *Env
}

// The *[]byte a queue holds for a shared encoding is &s.buf; sharedOf turns
// it back into s, which needs buf at offset 0.
var _ = [1]struct{}{}[unsafe.Offsetof(Shared{}.buf)]

func sharedOf(b *[]byte) *Shared { return (*Shared)(unsafe.Pointer(b)) }

const maxPooledShared = 64 << 10

// NewShared returns an empty shared encoding holding one reference, the
// caller's: append the encoding to *Buf(), hand it to SendShared for each
// target, then Release it.
func (e *Env) NewShared() *Shared {
	s, _ := e.shared.Get().(*Shared)
	if s == nil {
		s = &Shared{buf: make([]byte, 0, 256), env: e}
	}
	s.refs.Store(1)
	return s
}

// Buf returns the encoding's bytes, for the encoder to append to. Use it
// before handing the Shared to any target.
func (s *Shared) Buf() *[]byte { return &s.buf }

// Release drops one reference; the last puts s back in its pool.
func (s *Shared) Release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	if cap(s.buf) > maxPooledShared {
		return
	}
	s.buf = s.buf[:0]
	s.env.shared.Put(s)
}

// pools of an Env, kept apart from its other fields.
type pools struct {
	bufs   sync.Pool // of *[]byte: outbound buffers, taken while a channel has bytes of its own queued
	shared sync.Pool // of *Shared
}

// SendShared queues a shared encoding that this channel's codec (variant)
// produced: by reference when nothing else is queued, else copied after
// what is. It refuses and closes like Send.
func (ch *Link) SendShared(s *Shared) error {
	if err := ch.lockShared(s); err != nil {
		return err
	}
	return ch.queued(true)
}

// SendSharedBatch is SendShared for a fan-out that wakes the loops itself:
// instead of waking the connection's loop it reports whether the loop must
// run a pass over it (see Batch). Then the caller must make that pass
// happen, or the bytes wait.
func (ch *Link) SendSharedBatch(s *Shared) (wake bool, err error) {
	if err := ch.lockShared(s); err != nil {
		return false, err
	}
	ch.sends++
	wake = ch.bits&(bitInLoop|bitWoken) == 0
	if wake {
		ch.bits |= bitWoken
	}
	ch.mu.Unlock()
	return wake, nil
}

// EventLoop returns the gnet event loop that serves the connection.
func (ch *Link) EventLoop() gnet.EventLoop { return ch.conn.EventLoop() }

// Gone reports whether the connection has closed (OnClosed ran). Call it
// on the loop, where it is exact.
func (ch *Link) Gone() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.state == stClosed
}

// Conn returns the gnet connection. For the loop's own use: a pass run by
// a batch (see SendSharedBatch) hands it to the event handler.
func (ch *Link) Conn() gnet.Conn { return ch.conn }

// SendSharedNotify is SendShared that also reports when the bytes have been
// written, like SendNotify.
func (ch *Link) SendSharedNotify(s *Shared, done func(error)) error {
	if err := ch.lockShared(s); err != nil {
		return err
	}
	x := ch.extLocked()
	x.waiters = append(x.waiters, done)
	return ch.queued(true)
}

// lockShared locks the channel and queues s; on success mu stays held.
func (ch *Link) lockShared(s *Shared) error {
	if err := ch.lockForSendOnly(); err != nil {
		return err
	}
	if ch.out == nil {
		s.refs.Add(1)
		ch.out = &s.buf
		ch.bits |= bitShared
		return nil
	}
	buf := ch.buffer()
	*buf = append(*buf, s.buf...)
	return nil
}

// releaseOut gives back the queue's bytes: a reference to a shared encoding
// or a pooled buffer. Called with mu held, or with the queue already taken
// out of the channel (shared tells which it was).
func (e *Env) releaseOut(b *[]byte, shared bool) {
	if shared {
		sharedOf(b).Release()
		return
	}
	e.putBuf(b)
}
