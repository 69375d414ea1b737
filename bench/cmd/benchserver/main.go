// Command benchserver runs one of the benchmark's WebSocket echo servers:
// tio (built like example/echo), the minimal gnet+gobwas echo that is tio's
// overhead floor, or gws.
//
//	benchserver -impl tio|gnet|gws -addr 127.0.0.1:0
//
// With -broadcast it runs the server of the active-connection scenario
// (bench.StartActive; tio or gws): the same echo, plus a broadcast of a
// -size-byte message to every connection every -broadcast, from a
// server-side ticker, between the commands "start" and "stop" read on stdin
// (each answered "ok" or "error ..." on stdout); "stats" answers "stats"
// and the server's bench.BroadcastStats as JSON.
//
//	benchserver -impl tio -broadcast 1s -size 256
//
// With -cert and -key it runs the wss echo of the TLS scenarios
// (bench.StartTLS) with that certificate: tio with tio.WithTLS, or gws on
// net/http with crypto/tls. It then reads commands on stdin: "mem" answers
// "mem" and the bench.MemSnapshot after a garbage collection, as JSON.
//
//	benchserver -impl gws -cert cert.pem -key key.pem
//
// With -peer it runs a server of the compression scenarios
// (bench.StartDeflate): tio or gws with permessage-deflate without context
// takeover ("tio", "gws"), with it ("tio-ct", "gws-ct") or off ("tio-off",
// "gws-off"), each an echo that also broadcasts the text messages starting
// with "B:"; it answers "mem" on stdin as in the TLS mode, and "mem flush"
// the same after two collections instead of one (sync.Pool caches freed).
//
//	benchserver -peer gws-ct
//
// Once listening it prints "ready ADDR" on stdout. It runs until SIGTERM or
// SIGINT. SIGUSR1 prints the Go runtime's memory statistics on stderr (and,
// with -memprofile, collects garbage and writes a heap profile). With -cpuprofile it profiles the
// CPU from start to exit.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/tiogo/tio/bench"
)

func main() {
	impl := flag.String("impl", bench.ImplTio, "implementation: tio, gnet (the minimal gnet+gobwas floor) or gws")
	addr := flag.String("addr", "127.0.0.1:0", "TCP address to listen on (port 0: any free port)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file (until SIGTERM/SIGINT)")
	floorCopy := flag.Bool("floorcopy", false, "gnet floor: write the echo frames copied into one buffer instead of one Writev in place")
	memprofile := flag.String("memprofile", "", "record every allocation and write a heap profile to this file on SIGUSR1 (slow: diagnosis only)")
	broadcast := flag.Duration("broadcast", 0, "active-connection scenario (tio, gws): broadcast to every connection this often, between \"start\" and \"stop\" on stdin")
	size := flag.Int("size", 256, "with -broadcast: payload bytes of each broadcast")
	certFile := flag.String("cert", "", "TLS scenarios (tio, gws): serve wss with this certificate (PEM, with -key)")
	keyFile := flag.String("key", "", "with -cert: the certificate's private key (PEM)")
	peer := flag.String("peer", "", "compression scenarios: "+strings.Join(bench.DeflatePeers, ", ")+" (instead of -impl)")
	flag.Parse()

	raiseNoFile()
	bench.FloorCopy = *floorCopy
	if *memprofile != "" {
		runtime.MemProfileRate = 1 // exact per-connection figures, at a cost in speed
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
	}
	var (
		srv bench.Server
		as  bench.ActiveServer
		ctl func() // reads commands on stdin
		err error
	)
	switch {
	case *peer != "":
		srv, err = bench.StartDeflate(*peer, *addr, logger)
		ctl = memControl
	case *certFile != "" || *keyFile != "":
		cfg, lerr := bench.LoadServerTLS(*certFile, *keyFile)
		if lerr != nil {
			fatal(lerr)
		}
		srv, err = bench.StartTLS(*impl, *addr, cfg, logger)
		ctl = memControl
	case *broadcast > 0:
		as, err = bench.StartActive(*impl, *addr, logger, bench.BroadcastConfig{Interval: *broadcast, Size: *size})
		srv = as
	default:
		srv, err = bench.Start(*impl, *addr, logger)
	}
	if err != nil {
		fatal(err)
	}
	fmt.Printf("ready %s\n", srv.Addr())
	if as != nil {
		ctl = func() { control(as) }
	}
	if ctl != nil {
		go ctl()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	for s := range sig {
		if s == syscall.SIGUSR1 {
			memStats(*memprofile)
			continue
		}
		if *cpuprofile != "" {
			pprof.StopCPUProfile()
		}
		os.Exit(0) // the benchmark does not measure shutdown
	}
}

// memControl answers the TLS and compression modes' "mem" commands on stdin, until it
// closes.
func memControl() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd := sc.Text()
		switch cmd {
		case "mem":
		case "mem flush":
			// A first collection, so that the one ReadMem runs frees what
			// sync.Pools hold (their caches survive one collection): what
			// is left is what the connections hold, and what the process
			// keeps whatever their number.
			runtime.GC()
		default:
			fmt.Printf("error unknown command %q (want mem or mem flush)\n", cmd)
			continue
		}
		b, _ := json.Marshal(bench.ReadMem(true))
		fmt.Printf("mem %s\n", b)
	}
}

// control reads the active scenario's commands on stdin, until it closes.
func control(s bench.ActiveServer) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var err error
		switch cmd := sc.Text(); cmd {
		case "start":
			err = s.StartBroadcast()
		case "stop":
			err = s.StopBroadcast()
		case "stats":
			var st bench.BroadcastStats
			if st, err = s.Stats(); err == nil {
				b, _ := json.Marshal(st)
				fmt.Printf("stats %s\n", b)
				continue
			}
		default:
			err = fmt.Errorf("unknown command %q (want start, stop or stats)", cmd)
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
		} else {
			fmt.Println("ok")
		}
	}
}

func memStats(heapFile string) {
	print := func(when string) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(os.Stderr, "memstats %s: HeapAlloc=%d HeapInuse=%d HeapIdle=%d HeapReleased=%d StackInuse=%d Sys=%d NumGC=%d goroutines=%d\n",
			when, m.HeapAlloc, m.HeapInuse, m.HeapIdle, m.HeapReleased, m.StackInuse, m.Sys, m.NumGC, runtime.NumGoroutine())
	}
	print("now")
	if heapFile == "" {
		return
	}
	runtime.GC() // the profile shows the heap as of the last GC
	print("after GC")
	f, err := os.Create(heapFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		return
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
	}
}

// raiseNoFile raises the open-files soft limit to the hard limit.
func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchserver:", err)
	os.Exit(1)
}
