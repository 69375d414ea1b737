package cluster

import "sync"

// outbox is the bounded queue between Publish, which runs on the sending
// goroutine (an event loop, maybe) and must not block, and the node's
// publisher goroutine, which hands each message to nats.go (whose Publish
// may block: it writes to the socket when its buffer is full).
type outbox struct {
	mu     sync.Mutex
	q      []outMsg
	bytes  int // queued, with perMsg for each message
	limit  int
	closed bool
	wake   chan struct{} // capacity 1: something was queued, or closed
	free   sync.Pool     // *[]byte buffers for encoding
}

type outMsg struct {
	subj string
	b    *[]byte
}

// perMsg is what a queued message is charged beyond its bytes.
const perMsg = 64

// maxPooled: larger buffers are not kept for reuse.
const maxPooled = 64 << 10

func newOutbox(limit int) *outbox {
	return &outbox{limit: limit, wake: make(chan struct{}, 1)}
}

// buf returns an empty buffer to encode a message into.
func (o *outbox) buf() *[]byte {
	if b, _ := o.free.Get().(*[]byte); b != nil {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

// put returns a buffer that was not queued, or was published.
func (o *outbox) put(b *[]byte) {
	if cap(*b) <= maxPooled {
		*b = (*b)[:0]
		o.free.Put(b)
	}
}

// push queues b for subj and reports whether it fit (it never waits).
func (o *outbox) push(subj string, b *[]byte) bool {
	n := len(*b) + perMsg
	o.mu.Lock()
	if o.closed || o.bytes+n > o.limit {
		o.mu.Unlock()
		return false
	}
	o.q = append(o.q, outMsg{subj, b})
	o.bytes += n
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// take waits for queued messages and moves them into dst (emptied first),
// returning it; it returns false once the outbox is closed and empty.
func (o *outbox) take(dst []outMsg) ([]outMsg, bool) {
	for {
		o.mu.Lock()
		if len(o.q) > 0 {
			dst, o.q = o.q, dst[:0]
			o.mu.Unlock()
			return dst, true
		}
		closed := o.closed
		o.mu.Unlock()
		if closed {
			return dst[:0], false
		}
		<-o.wake
	}
}

// done releases the bytes of messages taken and published.
func (o *outbox) done(ms []outMsg) {
	n := 0
	for _, m := range ms {
		n += len(*m.b) + perMsg
		o.put(m.b)
	}
	clear(ms)
	o.mu.Lock()
	o.bytes -= n
	o.mu.Unlock()
}

// close refuses further messages; take returns what is queued, then false.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// drop discards what is queued (a node that stops without flushing) and
// returns how many messages it dropped.
func (o *outbox) drop() int {
	o.mu.Lock()
	q := o.q
	o.q = nil
	o.mu.Unlock()
	o.done(q)
	return len(q)
}
