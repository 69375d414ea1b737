package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tiogo/tio/tiotest"
)

// The command itself, with its stable flags -addr, -cert and -key: one
// port serves ws and wss, the binary protocol in clear and over TLS, and
// SIGHUP reloads the certificate files without a restart.
func TestCommandTLS(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the example")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "echo")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pki := tiotest.NewPKI(t)
	first := pki.Certificate()
	_, certFile, keyFile := pki.WriteFiles(dir, first)

	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-cert", certFile, "-key", keyFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	waitLog := func(re *regexp.Regexp) []string {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case line, ok := <-logs:
				if !ok {
					t.Fatalf("the command exited before logging %v", re)
				}
				if m := re.FindStringSubmatch(line); m != nil {
					return m
				}
			case <-deadline:
				t.Fatalf("no log line like %v", re)
			}
		}
	}
	addr := waitLog(regexp.MustCompile(`addr=(\S+) tls=true`))[1]

	cfg := pki.ClientConfig()
	d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: 5 * time.Second}
	for _, url := range []string{"wss://" + addr + "/", "ws://" + addr + "/"} {
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(url)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != url {
			t.Fatalf("%s echoed %q %v", url, got, err)
		}
		c.Close()
	}
	binaryEcho := func(c net.Conn) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		in := []byte{0xA1, 0xA2, 0xA3, 0, 7, 0, 0, 0, 2, 'h', 'i'}
		if _, err := c.Write(in); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(in))
		if _, err := io.ReadFull(c, got); err != nil || string(got[1:]) != string(in[1:]) {
			t.Fatalf("binary echo % x, %v", got, err)
		}
	}
	serial := func() string {
		t.Helper()
		ccfg := cfg.Clone()
		ccfg.ServerName = "localhost"
		c, err := tls.Dial("tcp", addr, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		binaryEcho(c)
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	binaryEcho(plain)
	plain.Close()
	if got := serial(); got != first.Leaf.SerialNumber.String() {
		t.Fatalf("serial %s, want %s", got, first.Leaf.SerialNumber)
	}

	second := pki.Certificate()
	pki.WriteFiles(dir, second)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(regexp.MustCompile(`certificate reloaded`))
	if got := serial(); got != second.Leaf.SerialNumber.String() {
		t.Fatalf("after SIGHUP: serial %s, want %s", got, second.Leaf.SerialNumber)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for line := range logs {
		rest = append(rest, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v %q", err, rest)
	}
}
