//go:build linux

package childproc

import (
	"fmt"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Start starts cmd with Attr, on the given CPUs when cpus is not empty. A
// child inherits the CPU affinity of the thread that forks it (and the Go
// runtime sizes GOMAXPROCS, gnet its event loops, by that affinity), so
// Start forks from a locked thread whose affinity it narrows for the fork
// and restores after. The thread lives on: the parent-death signal follows
// the thread that forked, not the process.
func Start(cmd *exec.Cmd, cpus []int) error {
	cmd.SysProcAttr = Attr()
	if len(cpus) == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return fmt.Errorf("childproc: %w", err)
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("childproc: CPUs %v: %w", cpus, err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = fmt.Errorf("childproc: restoring the affinity: %w", rerr)
	}
	return err
}
