// Command clientload is one load client of the client benchmark (see
// cmd/clientrun, which drives it): tio's client or a gorilla/websocket
// client, holding many WebSocket connections to an echo server. It reads
// commands on stdin, one a line, and answers each on stdout:
//
//	connect URL N PAR          → connected N SECONDS
//	run SLICE SETTLE SIZE K    → ran ECHOES SECONDS CPU   (K messages in flight per connection)
//	mem                        → mem HEAPINUSE STACKINUSE GOROUTINES   (after a GC that returns freed memory)
//	alive                      → alive N
//	quit
//
// It prints "ready" once it is set up (before any connection), so that
// the runner can read its resident memory with no connection open.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tiogo/tio/bench"
	"github.com/tiogo/tio/bench/clientload"
)

func main() {
	impl := flag.String("impl", clientload.ImplTio, "tio or gorilla")
	loops := flag.Int("loops", 0, "tio: event loops (0: GOMAXPROCS)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
	}
	raiseNoFile()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := clientload.New(*impl, *loops, logger)
	if err != nil {
		fatal(err)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "connect":
			n, _ := strconv.Atoi(f[2])
			par, _ := strconv.Atoi(f[3])
			start := time.Now()
			if err := l.Connect(f[1], n, par); err != nil {
				fatal(err)
			}
			fmt.Printf("connected %d %.3f\n", n, time.Since(start).Seconds())
		case "run":
			d, _ := time.ParseDuration(f[1])
			settle, _ := time.ParseDuration(f[2])
			size, _ := strconv.Atoi(f[3])
			k, _ := strconv.Atoi(f[4])
			cpu := bench.SelfCPU()
			n, took, err := l.Run(d, settle, size, k)
			if err != nil {
				fatal(err)
			}
			fmt.Printf("ran %d %.4f %.4f\n", n, took.Seconds(), bench.SelfCPU()-cpu)
		case "mem":
			debug.FreeOSMemory() // a GC, and the freed memory back to the system
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Printf("mem %d %d %d\n", m.HeapInuse, m.StackInuse, runtime.NumGoroutine())
		case "alive":
			fmt.Printf("alive %d\n", l.Alive())
		case "quit":
			l.Close()
			return // (the deferred calls end the profile)
		default:
			fatal(fmt.Errorf("unknown command %q", f[0]))
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

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "clientload:", err)
	os.Exit(1)
}
