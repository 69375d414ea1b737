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
//
// TLS: with -ca (the PEM file of the authority that signed the servers'
// certificate), the comparison and the idle mode speak wss instead, with
// crypto/tls's client (a goroutine per connection; TLS 1.3, X25519, no
// session cache: see bench.ClientTLS), and print bench.TLSResult. In idle
// mode each connection first sends one -size-byte message and reads its
// echo. (-blocking, without -ca, runs the same client over ws in clear,
// to tell what the client does to a comparison from what TLS does.)
// -handshakes runs the handshake scenario (bench.Handshakes) against
// -targets: -dialers goroutines dialing the active server over and over.
//
//	benchclient -ca ca.pem -targets tio=127.0.0.1:9001@PID,gws=127.0.0.1:9002@PID -conns 1000 -size 64
//	benchclient -ca ca.pem -addr 127.0.0.1:9001 -idle -conns 9000 -size 64
//	benchclient -ca ca.pem -handshakes -dialers 64 -targets tio=127.0.0.1:9001@PID,gws=127.0.0.1:9002@PID
//
// Compression (against benchserver -peer): every connection offers
// permessage-deflate (bench.DeflateOffer). -deflate with -targets is the
// comparison with text messages, JSON documents of -size bytes, compressed
// when the server accepted (CompareConfig.Deflate); -fanout -targets is the
// fan-out (bench.CompareFanout): -receivers connections per server that
// read, and a sender keeping -inflight broadcasts of -size bytes in flight;
// -deflate -idle is the idle mode, each connection first echoing one
// -size-byte JSON message, and prints "answer" and the server's extension
// answer (JSON-quoted) and how many echoes came compressed before
// "connected N".
//
//	benchclient -deflate -targets tio=127.0.0.1:9001@PID,gws=127.0.0.1:9002@PID -conns 1000 -size 1024
//	benchclient -fanout -targets tio=127.0.0.1:9001@PID,gws=127.0.0.1:9002@PID -receivers 2000 -inflight 8 -size 1024
//	benchclient -deflate -idle -addr 127.0.0.1:9001 -conns 5000 -size 1024
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
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
	caFile := flag.String("ca", "", "TLS: speak wss, trusting the certificates of this PEM file")
	handshakes := flag.Bool("handshakes", false, "TLS: the handshake scenario against -targets (needs -ca)")
	dialers := flag.Int("dialers", 64, "handshake scenario: concurrent dialers")
	deflate := flag.Bool("deflate", false, "compression: offer permessage-deflate and send JSON text messages (with -targets or -idle)")
	fanout := flag.Bool("fanout", false, "compression: the fan-out against -targets (bench.CompareFanout)")
	receivers := flag.Int("receivers", 2000, "fan-out: receiving connections per server")
	inflateEvery := flag.Bool("inflate-every", false, "compression: inflate every compressed message received, instead of each distinct one once")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the client to this file")
	blocking := flag.Bool("blocking", false, "comparison without -ca: use the TLS scenarios' client (a goroutine per connection) over ws in clear")
	flag.Parse()
	raiseNoFile()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		stopProfile = pprof.StopCPUProfile
		defer pprof.StopCPUProfile()
	}

	if *blocking && *caFile == "" && *targets != "" {
		res, err := bench.CompareTLS(bench.CompareConfig{
			Targets: parseTargets(*targets), Conns: *conns, Size: *size, Inflight: *inflight,
			Warmup: *warmup, Slice: *slice, Settle: *settle, Cycles: *cycles,
		}, nil)
		printTLS(res, err)
		return
	}

	if *caFile != "" {
		cfg, err := bench.LoadClientTLS(*caFile)
		if err != nil {
			fatal(err)
		}
		switch {
		case *idle:
			cs, err := bench.IdleTLS(*addr, cfg, *conns, *size)
			if err != nil {
				fatal(err)
			}
			holdIdle(cs, *hold)
			return
		case *targets != "" && *handshakes:
			res, err := bench.Handshakes(bench.HandshakeConfig{
				Targets: parseTargets(*targets), TLS: cfg, Dialers: *dialers,
				Warmup: *warmup, Slice: *slice, Settle: *settle, Cycles: *cycles,
			})
			printTLS(res, err)
			return
		case *targets != "":
			res, err := bench.CompareTLS(bench.CompareConfig{
				Targets: parseTargets(*targets), Conns: *conns, Size: *size, Inflight: *inflight,
				Warmup: *warmup, Slice: *slice, Settle: *settle, Cycles: *cycles,
			}, cfg)
			printTLS(res, err)
			return
		}
		fatal(fmt.Errorf("-ca: want -idle, -targets or -handshakes -targets"))
	}

	switch {
	case *fanout && *targets != "":
		res, err := bench.CompareFanout(bench.FanoutConfig{
			Targets: parseTargets(*targets), Receivers: *receivers, Inflight: *inflight, Size: *size,
			Warmup: *warmup, Slice: *slice, Settle: *settle, Cycles: *cycles, Workers: *workers, InflateEvery: *inflateEvery,
		})
		if err != nil {
			fatal(err)
		}
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		if len(res) > 0 && res[0].Errors > 0 {
			fmt.Fprintf(os.Stderr, "benchclient: %d connections failed; first: %s\n", res[0].Errors, res[0].FirstError)
			os.Exit(2)
		}
		return
	case *fanout:
		fatal(fmt.Errorf("-fanout needs -targets"))
	case *deflate && *idle:
		cs, answer, zipped, err := bench.IdleDeflate(*addr, *conns, *size)
		if err != nil {
			fatal(err)
		}
		q, _ := json.Marshal(answer)
		fmt.Printf("answer %s %d\n", q, zipped)
		holdIdle(cs, *hold)
		return
	case *deflate && *targets == "":
		fatal(fmt.Errorf("-deflate needs -targets or -idle"))
	}

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
		holdIdle(cs, *hold)
		return
	}

	if *targets != "" {
		res, err := bench.Compare(bench.CompareConfig{
			Targets: parseTargets(*targets), Conns: *conns, Size: *size, Inflight: *inflight,
			Warmup: *warmup, Slice: *slice, Settle: *settle, Cycles: *cycles, Workers: *workers,
			Deflate: *deflate, InflateEvery: *inflateEvery,
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

// parseTargets parses -targets: name=addr@pid,...
func parseTargets(spec string) []bench.Target {
	var ts []bench.Target
	for _, one := range strings.Split(spec, ",") {
		name, rest, ok := strings.Cut(one, "=")
		if !ok {
			fatal(fmt.Errorf("bad target %q: want name=addr@pid", one))
		}
		addr, pidStr, _ := strings.Cut(rest, "@")
		pid, _ := strconv.Atoi(pidStr)
		ts = append(ts, bench.Target{Name: name, Addr: addr, PID: pid})
	}
	return ts
}

// holdIdle prints "connected N", holds the connections until stdin closes
// or hold passes, then prints "alive N" and closes them.
func holdIdle(cs []net.Conn, hold time.Duration) {
	fmt.Printf("connected %d\n", len(cs))
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(hold):
	}
	fmt.Printf("alive %d\n", bench.Alive(cs))
	bench.CloseAll(cs)
}

// printTLS prints a TLS scenario's results as JSON, and fails if a
// connection did.
func printTLS(res []bench.TLSResult, err error) {
	if err != nil {
		fatal(err)
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	if len(res) > 0 && res[0].Errors > 0 {
		fmt.Fprintf(os.Stderr, "benchclient: %d connections failed; first: %s\n", res[0].Errors, res[0].FirstError)
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

// stopProfile ends -cpuprofile's profile.
var stopProfile = func() {}

func fatal(err error) {
	stopProfile()
	fmt.Fprintln(os.Stderr, "benchclient:", err)
	os.Exit(1)
}
