//go:build !linux

package childproc

import (
	"errors"
	"os/exec"
)

// Start starts cmd; CPUs cannot be chosen here.
func Start(cmd *exec.Cmd, cpus []int) error {
	if len(cpus) > 0 {
		return errors.New("childproc: choosing CPUs needs Linux")
	}
	cmd.SysProcAttr = Attr()
	return cmd.Start()
}
