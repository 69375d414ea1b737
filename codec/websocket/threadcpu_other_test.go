//go:build !linux

package websocket

import "time"

var threadClock = time.Now()

// threadCPU stands in for the calling thread's CPU time where Linux's
// thread clock is not at hand: wall time, which is the same on an idle
// machine and an overestimate on a busy one.
func threadCPU() int64 { return int64(time.Since(threadClock)) }
