// Command broadcast measures WebSocket fan-out: 2,000 receivers and one
// sender that keeps 8 broadcasts in flight, 64-byte text messages sent to
// every connected client, against tio (example/echo's "B:" broadcast),
// gws's Broadcaster and a gorilla/websocket hub, with the same client in the
// same run. It prints deliveries per second, delivery latency (p50, p99)
// and tio's ratios to the others. Everything runs on 127.0.0.1; each server
// and each client run is a separate process. From bench/ (the benchmarks'
// own module):
//
//	go run ./broadcast                    # all three, one round
//	go run ./broadcast -rounds 3 -duration 5s
//	go run ./broadcast -mode server -impl tio -addr 127.0.0.1:9001
//	go run ./broadcast -mode client -addr 127.0.0.1:9001
//
// See docs/benchmarks-broadcast.md for the method and the numbers.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	var (
		mode      = flag.String("mode", "run", "run (servers and clients as subprocesses), server or client")
		impl      = flag.String("impl", "", "server: the implementation (tio, gws, gorilla); run: a comma-separated subset")
		addr      = flag.String("addr", "127.0.0.1:0", "server: address to listen on; client: address to connect to")
		receivers = flag.Int("receivers", 2000, "receiving connections")
		inflight  = flag.Int("inflight", 8, "broadcasts in flight")
		size      = flag.Int("size", 64, "message bytes")
		warmup    = flag.Duration("warmup", 2*time.Second, "run before measuring")
		duration  = flag.Duration("duration", 5*time.Second, "measured window")
		rounds    = flag.Int("rounds", 1, "run: rounds over all implementations (interleaved)")
		pace      = flag.String("pace", "all", "all: a new broadcast when one has reached every receiver; sender: when the sender got its own copy")
		serverPID = flag.Int("server-pid", 0, "client: the server's pid, to read its CPU time")
		jsonOut   = flag.String("json", "", "run: also write the results to this file")
		cpuProf   = flag.String("cpuprofile", "", "server: write a CPU profile here until SIGINT/SIGTERM")
		writes    = flag.Bool("writes", false, "server tio: count socket writes (OnSent hook), print them on SIGINT/SIGTERM")
	)
	flag.Parse()
	switch *mode {
	case "server":
		if *writes {
			countWrites()
		}
		a, err := serve(*impl, *addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "broadcast:", err)
			os.Exit(1)
		}
		if *cpuProf != "" {
			f, err := os.Create(*cpuProf)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "broadcast:", err)
				os.Exit(1)
			}
			defer pprof.StopCPUProfile()
		}
		fmt.Println("LISTEN", a)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		if *writes {
			w, b := writeStats.writes.Load(), writeStats.bytes.Load()
			fmt.Fprintf(os.Stderr, "tio: %d writes, %d bytes, %.1f bytes per write\n", w, b, float64(b)/float64(max(w, 1)))
		}
	case "client":
		res, err := runClient(config{
			Addr: *addr, Receivers: *receivers, Inflight: *inflight, Size: *size,
			Warmup: *warmup, Duration: *duration, ServerPID: *serverPID, PaceOnSender: *pace == "sender",
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "broadcast:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
	case "run":
		list := impls
		if *impl != "" {
			list = strings.Split(*impl, ",")
		}
		args := []string{
			fmt.Sprint("-receivers=", *receivers), fmt.Sprint("-inflight=", *inflight), fmt.Sprint("-size=", *size),
			fmt.Sprint("-warmup=", *warmup), fmt.Sprint("-duration=", *duration), "-pace=" + *pace,
		}
		if err := runAll(list, *rounds, args, *jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "broadcast:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "broadcast: unknown -mode", *mode)
		os.Exit(2)
	}
}

// runAll runs every implementation once per round, each server in its own
// process and the client in another.
func runAll(list []string, rounds int, clientArgs []string, jsonOut string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("fan-out benchmark: %s; GOMAXPROCS per process: %d CPUs; %s\n", strings.Join(clientArgs, " "), numCPU(), time.Now().Format(time.RFC3339))
	all := map[string][]result{}
	for r := 1; r <= rounds; r++ {
		for _, impl := range list {
			res, err := runOne(exe, impl, clientArgs)
			if err != nil {
				return fmt.Errorf("%s: %w", impl, err)
			}
			res.Impl = impl
			all[impl] = append(all[impl], res)
			fmt.Printf("round %d %-8s %10.0f deliveries/s  p50 %7.0f µs  p99 %7.0f µs  p99.9 %7.0f µs  server CPU %5.2fs  client CPU %5.2fs  lost %d  stalls %d  errors %d %s\n",
				r, impl, res.Rate, res.P50, res.P99, res.P999, res.ServerCPU, res.ClientCPU, res.Lost, res.Stalls, res.Errors, res.FirstError)
		}
	}
	// Medians over the rounds.
	med := map[string]result{}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\nmedian of rounds\tdeliveries/s\tp50 µs\tp99 µs\tserver CPU s/M deliveries\t")
	for _, impl := range list {
		rs := all[impl]
		m := result{
			Impl: impl,
			Rate: median(rs, func(r result) float64 { return r.Rate }),
			P50:  median(rs, func(r result) float64 { return r.P50 }),
			P99:  median(rs, func(r result) float64 { return r.P99 }),
		}
		cpu := median(rs, func(r result) float64 { return r.ServerCPU / (float64(r.Deliveries) / 1e6) })
		med[impl] = m
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.2f\t\n", impl, m.Rate, m.P50, m.P99, cpu)
	}
	tw.Flush()
	if t, ok := med[implTio]; ok {
		for _, other := range list {
			if o, ok := med[other]; ok && other != implTio && o.Rate > 0 && o.P99 > 0 {
				fmt.Printf("tio / %s: deliveries/s %.2fx, p99 %.2fx (below 1: tio's is lower)\n", other, t.Rate/o.Rate, t.P99/o.P99)
			}
		}
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func runOne(exe, impl string, clientArgs []string) (result, error) {
	srv := exec.Command(exe, "-mode=server", "-impl="+impl, "-addr=127.0.0.1:0")
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

func numCPU() int { return runtime.NumCPU() }
