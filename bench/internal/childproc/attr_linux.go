// Package childproc holds what the benchmark runners need to start their
// servers and clients as child processes.
package childproc

import "syscall"

// Attr makes a child die with the runner that started it, even when the
// runner is killed (Linux's parent-death signal).
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
