package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the command itself when the test binary is started by
// TestCommand.
func TestMain(m *testing.M) {
	if os.Getenv("TIO_IM_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// command is a run of the command (the test binary, as main).
type command struct {
	cmd  *exec.Cmd
	urls map[string]string // what the log says is where: "WebSocket" → ws://…
}

// run starts the command with args and reads its log until it has said
// where each of want is.
func run(t *testing.T, ctx context.Context, want []string, args ...string) *command {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TIO_IM_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &command{cmd: cmd, urls: map[string]string{}}
	re := regexp.MustCompile(`msg="im: ([^"]+)" (?:url|addr)=(\S+)`)
	sc := bufio.NewScanner(stderr)
	for len(c.urls) < len(want) && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			c.urls[m[1]] = m[2]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	for _, w := range want {
		if c.urls[w] == "" {
			t.Fatalf("the log does not say where the %s is: %v", w, c.urls)
		}
	}
	return c
}

// stop sends SIGTERM and waits for a clean exit.
func (c *command) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}

var listens = []string{"chat page", "WebSocket", "binary protocol", "Prometheus metrics"}

// The command listens where -addr says, logs where the page, the
// WebSocket, the binary protocol and the metrics are, serves them, and
// stops on SIGTERM.
func TestCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := run(t, ctx, listens, "-addr", "127.0.0.1:0", "-admin-token", "t0ken")
	urls := c.urls
	if !strings.HasPrefix(urls["WebSocket"], "ws://127.0.0.1:") || !strings.HasSuffix(urls["WebSocket"], "/ws") {
		t.Fatalf("WebSocket at %s", urls["WebSocket"])
	}
	for _, u := range []string{urls["chat page"], urls["Prometheus metrics"]} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
	}
	c.stop(t)
}
