// Command stats measures what tio's statistics and metrics cost: the same
// echo workload against servers that differ only in them, in one run,
// interleaved.
//
// It starts one echo server per mode as a child process (so that the
// server's CPU time can be read apart from the client's), then runs rounds:
// in each round every mode gets the same workload for -d, in an order that
// alternates from round to round (ABBA…), so that drift in the machine's load
// hits all modes alike. The workload is -conns connections of tio's binary
// protocol, each keeping -inflight packets of -size bytes in flight
// (pipelined echo). Modes:
//
//	off    tio.WithStats(false): no traffic totals, no latency histogram
//	on     the default: totals and the latency histogram, and /metrics
//	       scraped every -scrape while measured
//	on+ip  on, plus per-IP statistics (windows of 1 minute and 1 hour)
//
// It prints each round, then per mode the median messages per second and
// server CPU per message, and the overhead of each mode against off: the
// median of the per-round ratios, with their range.
//
// From bench/ (the benchmarks' own module):
//
//	go run ./stats                       # 10 rounds of 3 s, ~2 minutes
//	go run ./stats -rounds 20 -d 2s -modes off,on
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	serve := flag.String("serve", "", "internal: run the echo server in `MODE` and print its addresses")
	conns := flag.Int("conns", 100, "connections per run")
	inflight := flag.Int("inflight", 16, "packets in flight per connection")
	size := flag.Int("size", 64, "packet body bytes")
	rounds := flag.Int("rounds", 10, "measured rounds (after one warm-up round)")
	d := flag.Duration("d", 3*time.Second, "duration of each run")
	scrape := flag.Duration("scrape", time.Second, "scrape interval of /metrics in the modes with statistics (0: none)")
	modes := flag.String("modes", "off,on,on+ip", "comma-separated modes to compare (the first is the baseline)")
	together := flag.Bool("together", true, "load every mode's server at the same time (else one after the other, in alternating order)")
	flag.Parse()
	if *serve != "" {
		if err := runServer(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "stats bench server:", err)
			os.Exit(1)
		}
		return
	}
	cfg := Config{Conns: *conns, Inflight: *inflight, Size: *size, Duration: *d}
	if err := compare(cfg, strings.Split(*modes, ","), *rounds, *scrape, *together); err != nil {
		fmt.Fprintln(os.Stderr, "stats bench:", err)
		os.Exit(1)
	}
}

// child is one server process.
type child struct {
	mode        string
	cmd         *exec.Cmd
	addr, maddr string
	load        *Load
}

func startChild(mode string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve", mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var c = &child{mode: mode, cmd: cmd}
	if _, err := fmt.Fscan(bufio.NewReader(out), &c.addr, &c.maddr); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("server %s: %v", mode, err)
	}
	return c, nil
}

type result struct {
	mode   string
	rate   float64 // messages per second
	cpuMsg float64 // server CPU ns per message
}

// measure runs the workload against the servers at the same time.
func measure(cs []*child, scrapeEvery time.Duration) ([]result, error) {
	stop := make(chan struct{})
	defer close(stop)
	type run struct {
		n    uint64
		el   time.Duration
		err  error
		cpu0 int64
	}
	runs := make([]run, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		if c.mode != "off" && scrapeEvery > 0 {
			go scrapeLoop(c.maddr, scrapeEvery, stop)
		}
		runs[i].cpu0 = processCPU(c.cmd.Process.Pid)
	}
	for i, c := range cs {
		wg.Go(func() { runs[i].n, runs[i].el, runs[i].err = c.load.Run() })
	}
	wg.Wait()
	var out []result
	var err error
	for i, c := range cs {
		cpu := processCPU(c.cmd.Process.Pid) - runs[i].cpu0
		if runs[i].err != nil {
			err = errors.Join(err, fmt.Errorf("%s: %v", c.mode, runs[i].err))
			continue
		}
		n := float64(runs[i].n)
		out = append(out, result{mode: c.mode, rate: n / runs[i].el.Seconds(), cpuMsg: float64(cpu) / n})
	}
	return out, err
}

func compare(cfg Config, modes []string, rounds int, scrapeEvery time.Duration, together bool) error {
	var children []*child
	defer func() {
		for _, c := range children {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	}()
	for _, m := range modes {
		c, err := startChild(m)
		if err != nil {
			return err
		}
		children = append(children, c)
		c.load, err = Dial(c.addr, cfg)
		if err != nil {
			return fmt.Errorf("%s: %v", m, err)
		}
		defer c.load.Close()
	}
	fmt.Printf("# %d conns × %d in flight × %d-byte packets, %v per run, %d rounds + warm-up, modes %v, together %v\n",
		cfg.Conns, cfg.Inflight, cfg.Size, cfg.Duration, rounds, modes, together)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("# load average at start: %s", b)
	}
	res := map[string][]result{}
	for r := 0; r <= rounds; r++ {
		order := slices.Clone(children)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		line := fmt.Sprintf("round %2d:", r)
		var xs []result
		var err error
		if together {
			xs, err = measure(children, scrapeEvery)
		} else {
			for _, c := range order {
				x, e := measure([]*child{c}, scrapeEvery)
				xs, err = append(xs, x...), errors.Join(err, e)
			}
			slices.SortFunc(xs, func(a, b result) int { return strings.Compare(a.mode, b.mode) })
		}
		if err != nil {
			return err
		}
		for _, c := range order {
			for _, x := range xs {
				if x.mode == c.mode {
					line += fmt.Sprintf("  %s %8.0f msg/s %6.0f ns/msg", c.mode, x.rate, x.cpuMsg)
					if r > 0 {
						res[c.mode] = append(res[c.mode], x)
					}
				}
			}
		}
		if r == 0 {
			line += "  (warm-up)"
		}
		fmt.Println(line)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("# load average at end: %s", b)
	}
	for _, c := range children {
		if c.mode != "off" {
			if in, reads := metric(c.maddr, "tio_received_packets_total"), metric(c.maddr, "tio_socket_reads_total"); reads > 0 {
				fmt.Printf("# %s: %.1f packets per read (tio_received_packets_total / tio_socket_reads_total)\n", c.mode, in/reads)
			}
		}
	}
	fmt.Println()
	fmt.Println("| mode | msg/s (median) | server CPU ns/msg (median) | throughput vs " + modes[0] + ": median [p25, p75] (range) | server CPU/msg vs " + modes[0] + ": median [p25, p75] (range) |")
	fmt.Println("|---|---|---|---|---|")
	base := res[modes[0]]
	for _, m := range modes {
		rs := res[m]
		var thr, cpu []float64
		for i, x := range rs {
			thr = append(thr, x.rate/base[i].rate-1)
			cpu = append(cpu, x.cpuMsg/base[i].cpuMsg-1)
		}
		fmt.Printf("| %s | %.0f | %.0f | %s | %s |\n", m,
			median(field(rs, func(x result) float64 { return x.rate })),
			median(field(rs, func(x result) float64 { return x.cpuMsg })),
			spread(thr), spread(cpu))
	}
	return nil
}

func field(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile returns the q-quantile of xs, interpolated between ranks.
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	r := q * float64(len(s)-1)
	i := int(r)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (r-float64(i))*(s[i+1]-s[i])
}

// spread formats ratios minus one as percentages: median, quartiles, range.
func spread(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f %% [%+.1f, %+.1f] (%+.1f … %+.1f)", 100*median(xs),
		100*quantile(xs, 0.25), 100*quantile(xs, 0.75), 100*slices.Min(xs), 100*slices.Max(xs))
}

// scrapeLoop fetches /metrics every interval until stop, like a Prometheus
// server (more often than one would).
func scrapeLoop(addr string, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
}

// metric returns the value of an unlabelled sample of the server's metrics
// (0 if missing).
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
