// Command benchclient is the benchmark's load client, the same for every
// server. It speaks WebSocket over raw sockets (a hand-written client
// handshake, masked binary frames).
//
// Throughput: keep -inflight messages of -size bytes in flight on each of
// -conns connections, warm up, then count the echoes received (each one
// checked) for -duration; print the result as one JSON line.
//
//	benchclient -addr 127.0.0.1:9001 -conns 1000 -size 64 -inflight 1
//
// Comparison: the same against several servers at once, interleaved in
// slices (see bench.Compare); print a JSON array, one result per server.
//
//	benchclient -targets tio=127.0.0.1:9001@PID,gnet=127.0.0.1:9002@PID \
//		-conns 1000 -size 64 -inflight 1 -cycles 10 -slice 1s -settle 150ms
//
// Idle: open -conns connections, complete their handshakes, print
// "connected N", keep them idle until stdin is closed (or -hold passes),
// then print "alive N": how many the server had kept open.
//
//	benchclient -addr 127.0.0.1:9001 -idle -conns 9000
//
// Active: the client of the active-connection scenario (bench.ActiveClient)
// against a benchserver -broadcast: open -conns connections, print
// "connected N", then obey commands on stdin: "phase NAME ECHO" ends the
// current phase and starts NAME, with each connection sending a message of
// -esize bytes every -every if ECHO is 1 (answered "ok"); "end LASTSEQ
// DRAIN" stops the messages, waits DRAIN (a duration) for the broadcasts up
// to LASTSEQ and prints the bench.ActiveClientResult as JSON. A failed
// command is answered "error ...". -size is the size of the server's
// broadcasts.
//
//	benchclient -addr 127.0.0.1:9001 -active -conns 18000 -size 256 -esize 64 -every 5s
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tiogo/tio/bench"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "server address")
	conns := flag.Int("conns", 1000, "connections")
	size := flag.Int("size", 64, "payload bytes per message")
	inflight := flag.Int("inflight", 1, "messages in flight per connection")
	warmup := flag.Duration("warmup", 2*time.Second, "warm-up, not measured (per server in a comparison)")
	duration := flag.Duration("duration", 5*time.Second, "measured time")
	workers := flag.Int("workers", 0, "client event loops (0: GOMAXPROCS)")
	pid := flag.Int("serverpid", 0, "server process id, to report its CPU time over the measured window")
	targets := flag.String("targets", "", "comparison: name=addr@pid,... (the @pid is optional)")
	cycles := flag.Int("cycles", 10, "comparison: cycles of one slice per server")
	slice := flag.Duration("slice", time.Second, "comparison: traffic time per server per cycle")
	settle := flag.Duration("settle", 150*time.Millisecond, "comparison: unmeasured start of each slice")
	idle := flag.Bool("idle", false, "idle mode: open -conns connections and hold them until stdin closes")
	hold := flag.Duration("hold", 60*time.Second, "idle mode: longest time to hold the connections")
	active := flag.Bool("active", false, "active mode: the active-connection scenario's client, driven by commands on stdin")
	esize := flag.Int("esize", 64, "active mode: payload bytes of each connection's messages")
	every := flag.Duration("every", 5*time.Second, "active mode: each connection sends a message this often in the echo phases")
	flag.Parse()
	raiseNoFile()

	if *active {
		runActive(bench.ActiveClientConfig{
			Addr: *addr, Conns: *conns, BroadcastSize: *size, EchoSize: *esize, EchoEvery: *every, Workers: *workers,
		})
		return
	}

	if *idle {
		cs, err := bench.Idle(*addr, *conns)
		if err != nil {
			fatal(err)
		}
		fmt.Printf("connected %d\n", len(cs))
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
		select {
		case <-done:
		case <-time.After(*hold):
		}
		fmt.Printf("alive %d\n", bench.Alive(cs))
		bench.CloseAll(cs)
		return
	}

	if *targets != "" {
		var ts []bench.Target
		for _, spec := range strings.Split(*targets, ",") {
			name, rest, ok := strings.Cut(spec, "=")
			if !ok {
				fatal(fmt.Errorf("bad target %q: want name=addr@pid", spec))
			}
			addr, pidStr, _ := strings.Cut(rest, "@")
			pid, _ := strconv.Atoi(pidStr)
			ts = append(ts, bench.Target{Name: name, Addr: addr, PID: pid})
		}
		res, err := bench.Compare(bench.CompareConfig{
			Targets: ts, Conns: *conns, Size: *size, Inflight: *inflight,
			Warmup: *warmup, Slice: *slice, Settle: *settle, Cycles: *cycles, Workers: *workers,
		})
		if err != nil {
			fatal(err)
		}
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		if res[0].Errors > 0 {
			fmt.Fprintf(os.Stderr, "benchclient: %d connections failed; first: %s\n", res[0].Errors, res[0].FirstError)
			os.Exit(2)
		}
		return
	}

	res, err := bench.Load(bench.LoadConfig{
		Addr: *addr, Conns: *conns, Size: *size, Inflight: *inflight,
		Warmup: *warmup, Duration: *duration, Workers: *workers, ServerPID: *pid,
	})
	if err != nil {
		fatal(err)
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	if res.Errors > 0 {
		fmt.Fprintf(os.Stderr, "benchclient: %d connections failed; first: %s\n", res.Errors, res.FirstError)
		os.Exit(2)
	}
}

// runActive runs the active mode (see the package comment).
func runActive(cfg bench.ActiveClientConfig) {
	c := bench.NewActiveClient(cfg)
	n, err := c.Connect()
	if err != nil {
		fatal(err)
	}
	fmt.Printf("connected %d\n", n)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "phase":
			if err := c.Phase(f[1], f[2] == "1"); err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			fmt.Println("ok")
		case len(f) == 3 && f[0] == "end":
			last, err1 := strconv.ParseUint(f[1], 10, 64)
			drain, err2 := time.ParseDuration(f[2])
			if err1 != nil || err2 != nil {
				fmt.Printf("error bad end command %q\n", sc.Text())
				continue
			}
			res, err := c.End(last, drain)
			if err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(1)
			}
			b, _ := json.Marshal(res)
			fmt.Println(string(b))
			return
		default:
			fmt.Printf("error unknown command %q (want phase NAME 0|1 or end LASTSEQ DRAIN)\n", sc.Text())
		}
	}
	fatal(fmt.Errorf("stdin closed before \"end\""))
}

func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchclient:", err)
	os.Exit(1)
}
