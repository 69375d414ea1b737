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

// The command listens where -addr says, logs where the page, the
// WebSocket, the binary protocol and the metrics are, serves them, and
// stops on SIGTERM.
func TestCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-addr", "127.0.0.1:0", "-admin-token", "t0ken")
	cmd.Env = append(os.Environ(), "TIO_IM_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	urls := map[string]string{}
	want := []string{"chat page", "WebSocket", "binary protocol", "Prometheus metrics"}
	re := regexp.MustCompile(`msg="im: ([^"]+)" (?:url|addr)=(\S+)`)
	sc := bufio.NewScanner(stderr)
	for len(urls) < len(want) && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			urls[m[1]] = m[2]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	for _, w := range want {
		if urls[w] == "" {
			t.Fatalf("the log does not say where the %s is: %v", w, urls)
		}
	}
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}
