//go:build !linux

package childproc

import "syscall"

// Attr returns nil where there is no parent-death signal: a killed runner
// may leave its children running.
func Attr() *syscall.SysProcAttr { return nil }
