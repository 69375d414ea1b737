//go:build !linux

package bench

import "time"

// MonoNow reads the wall clock, in nanoseconds (the load client, which
// compares the servers' stamps with its own clock, runs on Linux only,
// where MonoNow reads CLOCK_MONOTONIC).
func MonoNow() int64 { return time.Now().UnixNano() }
