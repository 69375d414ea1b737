//go:build linux

// Command cluster measures tio's cluster relay: one group spanning three
// nodes (three tio servers and a NATS server in one process, the nodes
// connected to NATS over TCP), against the same group on a single tio
// server, in the same run with the same client. The client (another
// process) holds the receivers — -per of them on each node, or all of them
// on the single server — and one sender on the first node that keeps
// -inflight group sends in flight (a new one when one has reached every
// receiver). It prints deliveries per second, delivery latency (p50, p99),
// the server process's CPU per million deliveries, NATS publishes per send
// (there must be exactly one, whatever the group's size) and NATS bytes
// per send, and the cluster/single ratios of each round.
//
//	go run ./cluster                          # 3×300 binary receivers, 2 rounds
//	go run ./cluster -proto ws -rounds 1
//	go run ./cluster -mode mem -conns 10000   # memory per connection, presence per user
//
// See docs/cluster.md for the numbers and the capacity math they feed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		mode     = flag.String("mode", "run", "run (server and client as subprocesses), server, client, mem, idle")
		scenario = flag.String("scenario", "", "server: single (one tio server) or cluster (-nodes nodes over NATS)")
		nodes    = flag.Int("nodes", 3, "cluster: nodes")
		addrs    = flag.String("addrs", "", "client, idle: the nodes' addresses, comma-separated")
		per      = flag.Int("per", 300, "receivers per node (the single server gets nodes×per)")
		inflight = flag.Int("inflight", 8, "group sends in flight")
		size     = flag.Int("size", 64, "message bytes")
		proto    = flag.String("proto", "binary", "receivers' protocol: binary or ws")
		warmup   = flag.Duration("warmup", time.Second, "run before measuring")
		duration = flag.Duration("duration", 4*time.Second, "measured window")
		rounds   = flag.Int("rounds", 2, "run: rounds (single and cluster, interleaved)")
		conns    = flag.Int("conns", 10000, "mem: idle connections, each bound to its own user")
		users    = flag.Int("users", 200000, "mem: users of another node in this node's presence")
		pid      = flag.Int("server-pid", 0, "client: the server's pid, to read its CPU time")
	)
	flag.Parse()
	raiseNoFile()
	var err error
	switch *mode {
	case "server":
		err = serve(*scenario, *nodes)
	case "client":
		var res result
		res, err = runClient(clientConfig{
			Addrs: strings.Split(*addrs, ","), Per: *per, Inflight: *inflight, Size: *size, Proto: *proto,
			Warmup: *warmup, Duration: *duration, ServerPID: *pid,
		})
		if err == nil {
			_ = json.NewEncoder(os.Stdout).Encode(res)
		}
	case "idle":
		err = idle(strings.Split(*addrs, ","), *conns)
	case "mem":
		err = measureMemory(*conns, *users)
	case "run":
		err = runAll(*rounds, *nodes, []string{
			fmt.Sprint("-per=", *per), fmt.Sprint("-inflight=", *inflight), fmt.Sprint("-size=", *size),
			"-proto=" + *proto, fmt.Sprint("-warmup=", *warmup), fmt.Sprint("-duration=", *duration),
		})
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// proc is a subprocess of this command that prints "LISTEN addrs" once
// ready and a JSON line of statistics when it reads "stats" on its input.
type proc struct {
	cmd   *exec.Cmd
	in    *os.File
	out   *bufio.Reader
	addrs string
}

func startProc(args ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = r
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.Close()
	p := &proc{cmd: cmd, in: w, out: bufio.NewReader(out)}
	line, err := p.out.ReadString('\n')
	addrs, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if err != nil || !ok {
		p.kill()
		return nil, fmt.Errorf("%v did not start: %q %v", args, line, err)
	}
	p.addrs = addrs
	return p, nil
}

// execOutput runs this command with args and returns its output.
func execOutput(args ...string) ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	return cmd.Output()
}

func (p *proc) stats(v any) error {
	if _, err := fmt.Fprintln(p.in, "stats"); err != nil {
		return err
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(line), v)
}

func (p *proc) kill() {
	p.in.Close()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// waitStats serves "stats" requests on stdin with f's answer until stdin
// closes.
func waitStats(f func() any) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "stats" {
			_ = json.NewEncoder(os.Stdout).Encode(f())
		}
	}
}

func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}
