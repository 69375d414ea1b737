//go:build linux

package bench

import "golang.org/x/sys/unix"

// MonoNow reads CLOCK_MONOTONIC, in nanoseconds. The clock is the
// machine's, the same in every process, so that a time stamped by a server
// can be compared with the time a client on the same machine received it.
func MonoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
