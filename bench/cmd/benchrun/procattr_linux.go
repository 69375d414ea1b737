package main

import "syscall"

// childAttr makes the servers and clients die with the runner, even when the
// runner is killed.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
