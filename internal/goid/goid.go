// Package goid tells goroutines apart, for the one check that needs it: a
// blocking send must not run on an event loop, where it would wait for the
// loop it blocks. The runtime has no API for a goroutine's identity; the
// first line of the calling goroutine's stack trace ("goroutine 42
// [running]:") carries it. Reading it costs about a microsecond, which is
// nothing next to a send that waits for the network, and it is done nowhere
// else.
package goid

import "runtime"

// ID returns the calling goroutine's id, or 0 if it cannot be read.
func ID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0
	}
	var id uint64
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
