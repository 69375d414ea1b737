package childproc

import (
	"bytes"
	"os/exec"
)

// Output runs cmd as Start does and returns its standard output, as
// exec.Cmd.Output does (cmd.Stderr is left as set).
func Output(cmd *exec.Cmd, cpus []int) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := Start(cmd, cpus); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return out.Bytes(), err
}
