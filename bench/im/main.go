// Command im measures the chat example's server (example/im/imserver,
// exactly what go run ./example/im runs) under a chat load: -conns
// WebSocket connections, each a user logged in from its upgrade request
// (/ws?user=uN), spread over -rooms rooms, each sending -rate messages a
// second to its room. It prints the messages delivered per second (every
// message reaches the room's other members), the delivery latency (p50,
// p99, p99.9: from the send by one client to the receipt by another, on the
// client's clock) and the server's CPU. The server and the client are
// separate processes on 127.0.0.1. From bench/ (the benchmarks' own
// module):
//
//	go run ./im                                  # 5,000 connections, 100 rooms, 1 msg/s each
//	go run ./im -conns 2000 -rooms 40 -duration 20s
//	go run ./im -mode server -addr 127.0.0.1:8080
//	go run ./im -mode client -addr 127.0.0.1:8080 -server-pid PID
//
// See docs/benchmarks-im.md for the method and the numbers.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/tiogo/tio/example/im/imserver"
)

// config is the client's load.
type config struct {
	Addr      string
	Conns     int
	Rooms     int
	Rate      float64 // messages a second per connection
	Warmup    time.Duration
	Duration  time.Duration
	Workers   int
	ServerPID int
}

// result is what the client measured in its window.
type result struct {
	Conns      int     `json:"conns"`
	Rooms      int     `json:"rooms"`
	Rate       float64 `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Sent       uint64  `json:"sent"`       // say commands written in the window
	Acked      uint64  `json:"acked"`      // acks received in the window
	Deliveries uint64  `json:"deliveries"` // message events received in the window
	PerSecond  float64 `json:"per_second"` // deliveries a second
	Expected   float64 `json:"expected"`   // deliveries a second if every message reached every other member
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	P999       float64 `json:"p999_us"`
	Max        float64 `json:"max_us"`
	ServerCPU  float64 `json:"server_cpu"` // CPU seconds in the window (-1: unknown)
	ClientCPU  float64 `json:"client_cpu"`
	OtherCPU   float64 `json:"other_cpu"`  // CPU seconds of every other process and the kernel's interrupts (-1: unknown)
	ServerRSS  int64   `json:"server_rss"` // bytes, at the end (0: unknown)
	Errors     int     `json:"errors"`     // error events and failed connections
	FirstError string  `json:"first_error,omitempty"`
}

func main() {
	var (
		mode      = flag.String("mode", "run", "run (server and client as subprocesses), server or client")
		addr      = flag.String("addr", "127.0.0.1:0", "server: address to listen on; client: address to connect to")
		conns     = flag.Int("conns", 5000, "connections (one user each)")
		rooms     = flag.Int("rooms", 100, "rooms (connection i joins room i mod rooms)")
		rate      = flag.Float64("rate", 1, "messages a second per connection")
		warmup    = flag.Duration("warmup", 3*time.Second, "run before measuring")
		duration  = flag.Duration("duration", 10*time.Second, "measured window")
		rounds    = flag.Int("rounds", 1, "run: how many times")
		serverPID = flag.Int("server-pid", 0, "client: the server's pid, to read its CPU time")
		cpuProf   = flag.String("cpuprofile", "", "server: write a CPU profile here until SIGINT/SIGTERM")
	)
	flag.Parse()
	switch *mode {
	case "server":
		srv, err := serve(*addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "im:", err)
			os.Exit(1)
		}
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "im:", err)
				os.Exit(1)
			}
			defer pprof.StopCPUProfile()
		}
		fmt.Println("LISTEN", srv.Addr())
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
	case "client":
		res, err := runClient(config{Addr: *addr, Conns: *conns, Rooms: *rooms, Rate: *rate, Warmup: *warmup, Duration: *duration, ServerPID: *serverPID})
		if err != nil {
			fmt.Fprintln(os.Stderr, "im:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
	case "run":
		args := []string{fmt.Sprint("-conns=", *conns), fmt.Sprint("-rooms=", *rooms), fmt.Sprint("-rate=", *rate),
			fmt.Sprint("-warmup=", *warmup), fmt.Sprint("-duration=", *duration)}
		fmt.Printf("chat load: %s; GOMAXPROCS %d per process; %s\n", strings.Join(args, " "), runtime.GOMAXPROCS(0), time.Now().Format(time.RFC3339))
		for r := 1; r <= *rounds; r++ {
			res, err := runOne(args)
			if err != nil {
				fmt.Fprintln(os.Stderr, "im:", err)
				os.Exit(1)
			}
			fmt.Printf("round %d: %.0f messages delivered/s (%.1f%% of %.0f expected), %.0f sent/s, %.0f acked/s; latency p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, max %.0f µs; server CPU %.2f cores, client CPU %.2f cores, others %.2f cores; server RSS %.0f MB; errors %d %s\n",
				r, res.PerSecond, 100*res.PerSecond/res.Expected, res.Expected, float64(res.Sent)/res.Seconds, float64(res.Acked)/res.Seconds,
				res.P50, res.P99, res.P999, res.Max, res.ServerCPU/res.Seconds, res.ClientCPU/res.Seconds, res.OtherCPU/res.Seconds, float64(res.ServerRSS)/1e6, res.Errors, res.FirstError)
		}
	default:
		fmt.Fprintln(os.Stderr, "im: unknown -mode", *mode)
		os.Exit(2)
	}
}

// serve starts the chat server on addr, with the default limits: a
// message a second is far below them.
func serve(addr string) (*imserver.Server, error) {
	srv := imserver.New(addr, imserver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := srv.Start(); err != nil {
		return nil, err
	}
	return srv, nil
}

// runOne runs a server process and a client process against it.
func runOne(clientArgs []string) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	srv := exec.Command(exe, "-mode=server", "-addr=127.0.0.1:0")
	srv.Stderr = os.Stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := srv.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTEN ")
	if err != nil || !ok {
		return result{}, fmt.Errorf("server did not start: %q %v", line, err)
	}
	cli := exec.Command(exe, append([]string{"-mode=client", "-addr=" + addr, fmt.Sprint("-server-pid=", srv.Process.Pid)}, clientArgs...)...)
	cli.Stderr = os.Stderr
	b, err := cli.Output()
	if err != nil {
		return result{}, fmt.Errorf("client: %w", err)
	}
	var res result
	if err := json.Unmarshal(b, &res); err != nil {
		return result{}, fmt.Errorf("client output %q: %w", b, err)
	}
	return res, nil
}
