package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"

	"github.com/tiogo/tio/bench/internal/childproc"
)

// idleClient is a benchclient process holding idle connections for a
// memory measurement: it reports on stdout, and lets its connections go
// when its stdin closes.
type idleClient struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startIdleClient starts the client cfg.client with args.
func startIdleClient(cfg config, args ...string) (*idleClient, error) {
	cmd := exec.Command(cfg.client, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := childproc.Start(cmd, cfg.clientCPUs); err != nil {
		return nil, err
	}
	return &idleClient{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// stop ends the client, whatever it is doing.
func (c *idleClient) stop() { c.in.Close(); _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() }
