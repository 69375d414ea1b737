package tlsconn

import "sync"

// bufSize is the capacity of the pooled buffers that hold a session's
// plaintext and output while it has some: one record and then some.
const bufSize = 16 << 10

// bufs holds buffers of bufSize bytes, shared by every session: an idle
// session holds none.
var bufs = sync.Pool{New: func() any {
	b := make([]byte, 0, bufSize)
	return &b
}}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

// putBuf returns b to the pool if it has the pool's size (a buffer grown
// for a large burst goes to the garbage collector).
func putBuf(b *[]byte) {
	if cap(*b) == bufSize {
		*b = (*b)[:0]
		bufs.Put(b)
	}
}
