// Command benchrun runs the whole comparison: it builds benchserver and
// benchclient, then for every throughput scenario starts every server as a
// subprocess on a free port of 127.0.0.1, runs one client against all of
// them at once, interleaved in one-second slices (bench.Compare), and stops
// them; then, for the idle scenario, starts each server in turn and measures
// its memory. It prints markdown tables: echoes per second with the ratios
// tio/gnet-floor and tio/gws, the server CPU time per echo, and the server
// memory per idle WebSocket connection.
//
// Run it from bench/, the benchmarks' own module (it builds the two
// commands there):
//
//	go run ./cmd/benchrun                 # everything, about 2.5 minutes
//	go run ./cmd/benchrun -scenarios a,d -cycles 4
//
// Scenarios: (a) 1,000 connections × 64-byte messages, one in flight each;
// (b) the same with 4 KiB; (c) 100 connections × 64 bytes, 16 in flight
// (pipelined); (d) memory per idle connection: VmRSS of the server before and
// after -idle connections were upgraded and left idle for -idlewait.
//
// Scenario (e), not run unless asked for, is memory per active connection
// (bench.RunActive): for tio and gws in turn (the gnet floor has no
// broadcast, and is left out), -active connections, idle for -active-idle,
// then -active-phase of one -bsize-byte broadcast to all every -broadcast
// (a ticker in the server), then -active-phase of the same plus an
// -esize-byte message from each connection every -echo-every, echoed:
//
//	go run ./cmd/benchrun -scenarios e -impls tio,gws          # ≈ 6 minutes
//	go run ./cmd/benchrun -scenarios e -impls tio,gws -active 200 -active-idle 2s -active-phase 3s
//
// Scenarios (f), (g) and (h), not run unless asked for ("tls" names all
// three), compare tio's TLS (tio.WithTLS) with gws on net/http with
// crypto/tls (see tls.go): (f) the wss echo of (a), (g) memory per idle
// wss connection, (h) full TLS handshakes per second; each -rounds times:
//
//	go run ./cmd/benchrun -scenarios tls -rounds 3          # ≈ 6 minutes
//	go run ./cmd/benchrun -scenarios f,h -rounds 2 -cycles 4 -tls-idle 2000
//
// Scenarios (i), (j) and (k), not run unless asked for ("deflate" names all
// three), compare tio and gws with permessage-deflate (see deflate.go): (i)
// the fan-out of a 1 KiB JSON message to 2,000 receivers, (j) the echo of
// 1 KiB JSON messages, (k) memory per idle connection with compression
// without and with context takeover, and off; each -rounds times:
//
//	go run ./cmd/benchrun -scenarios deflate -rounds 3       # ≈ 6 minutes
//	go run ./cmd/benchrun -scenarios i -rounds 2 -fan-peers tio,gws,tio-ct,gws-ct
//
// On Linux, -server-cpus and -client-cpus pin the servers and the load
// clients to CPUs of their own, so that the client's work does not come
// out of the servers' CPUs (each child sizes GOMAXPROCS, and gnet its
// loops, to the CPUs it is given):
//
//	go run ./cmd/benchrun -scenarios i -rounds 3 -server-cpus 0 -client-cpus 1
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tiogo/tio/bench"
	"github.com/tiogo/tio/bench/internal/childproc"
)

type scenario struct {
	key                   string
	conns, size, inflight int
	label                 string
}

var throughput = []scenario{
	{"a", 1000, 64, 1, "(a) 1,000 conns × 64 B, 1 in flight"},
	{"b", 1000, 4096, 1, "(b) 1,000 conns × 4 KiB, 1 in flight"},
	{"c", 100, 64, 16, "(c) 100 conns × 64 B, 16 in flight"},
}

type idleResult struct {
	Impl        string `json:"impl"`
	Conns       int    `json:"conns"`
	Alive       int    `json:"alive"`
	RSSBefore   int64  `json:"rss_before"`
	RSSAfter    int64  `json:"rss_after"`
	BytesPerCon int64  `json:"bytes_per_conn"`
}

type config struct {
	active activeConfig
	// serverCPUs and clientCPUs pin the servers and the load clients
	// (-server-cpus, -client-cpus; empty: wherever the kernel runs them).
	serverCPUs, clientCPUs []int
	cycles                 int
	slice                  time.Duration
	settle                 time.Duration
	warmup                 time.Duration
	idle                   int
	idleWait               time.Duration
	impls                  []string
	scen                   map[string]bool
	server                 string
	client                 string
	tls                    tlsConfig
	deflate                deflateConfig
}

func main() {
	cycles := flag.Int("cycles", 12, "cycles of each throughput scenario; each gives every server one slice")
	slice := flag.Duration("slice", time.Second, "traffic time per server per cycle")
	settle := flag.Duration("settle", 150*time.Millisecond, "unmeasured start of each slice")
	warmup := flag.Duration("warmup", time.Second, "warm-up per server before the cycles, not measured")
	idle := flag.Int("idle", 9000, "connections of the idle-memory scenario (d)")
	idleWait := flag.Duration("idlewait", time.Second, "scenario (d): wait after the last handshake before reading VmRSS")
	scen := flag.String("scenarios", "a,b,c,d", "scenarios to run")
	impls := flag.String("impls", strings.Join(bench.Impls, ","), "servers to compare")
	out := flag.String("out", "", "also write the markdown report to this file")
	jsonOut := flag.String("json", "", "also write every raw result to this file (JSON)")
	var ac activeConfig
	flag.IntVar(&ac.conns, "active", 18000, "scenario (e): connections")
	flag.DurationVar(&ac.plan.Idle, "active-idle", 10*time.Second, "scenario (e): the idle phase")
	flag.DurationVar(&ac.plan.Phase, "active-phase", 60*time.Second, "scenario (e): each of the broadcast and broadcast+echo phases")
	flag.DurationVar(&ac.broadcast, "broadcast", time.Second, "scenario (e): the server broadcasts to every connection this often")
	flag.IntVar(&ac.bsize, "bsize", 256, "scenario (e): payload bytes of a broadcast")
	flag.DurationVar(&ac.echoEvery, "echo-every", 5*time.Second, "scenario (e), broadcast+echo phase: each connection sends a message this often")
	flag.IntVar(&ac.esize, "esize", 64, "scenario (e): payload bytes of a connection's message")
	flag.DurationVar(&ac.plan.Sample, "rss-sample", time.Second, "scenario (e): read the server's VmRSS this often")
	flag.DurationVar(&ac.plan.Tail, "rss-tail", 20*time.Second, "scenario (e): a phase's RSS is the median over its last rss-tail (at most half the phase)")
	flag.DurationVar(&ac.plan.Drain, "drain", 2*time.Second, "scenario (e): wait for the last broadcasts after the last phase")
	var tc tlsConfig
	flag.IntVar(&tc.rounds, "rounds", 3, "scenarios f to k: rounds, the servers' order rotating from round to round")
	flag.IntVar(&tc.idle, "tls-idle", 9000, "scenario (g): idle wss connections")
	flag.IntVar(&tc.dialers, "dialers", 64, "scenario (h): concurrent dialers")
	var dc deflateConfig
	fanPeers := flag.String("fan-peers", "tio,gws", "scenario (i): the peers (bench.DeflatePeers)")
	echoPeers := flag.String("echo-peers", "tio,gws,tio-ct,gws-ct", "scenario (j): the peers")
	idlePeers := flag.String("idle-peers", strings.Join(bench.DeflatePeers, ","), "scenario (k): the peers")
	flag.IntVar(&dc.receivers, "receivers", 2000, "scenario (i): receivers per server")
	flag.IntVar(&dc.fanInflight, "fan-inflight", 8, "scenario (i): broadcasts in flight")
	flag.IntVar(&dc.size, "dsize", 1024, "scenarios i, j, k: bytes of a JSON message before compression")
	flag.IntVar(&dc.conns, "deflate-conns", 1000, "scenario (j): connections per server")
	flag.IntVar(&dc.idle, "deflate-idle", 5000, "scenario (k): idle connections")
	serverCPUs := flag.String("server-cpus", "", "run every server on these CPUs only (a comma-separated list, e.g. 0; Linux): with -client-cpus, the load client does not take the servers' CPUs")
	clientCPUs := flag.String("client-cpus", "", "run every load client on these CPUs only (e.g. 1; Linux)")
	flag.Parse()
	dc.fanPeers, dc.echoPeers, dc.idlePeers = strings.Split(*fanPeers, ","), strings.Split(*echoPeers, ","), strings.Split(*idlePeers, ",")

	cfg := config{
		cycles: *cycles, slice: *slice, settle: *settle, warmup: *warmup, idle: *idle, idleWait: *idleWait,
		impls: strings.Split(*impls, ","), scen: map[string]bool{}, active: ac, tls: tc, deflate: dc,
	}
	var err error
	if cfg.serverCPUs, err = parseCPUs(*serverCPUs); err == nil {
		cfg.clientCPUs, err = parseCPUs(*clientCPUs)
	}
	if err != nil {
		fatal(err)
	}
	for _, s := range strings.Split(*scen, ",") {
		if s = strings.TrimSpace(s); s == "tls" {
			cfg.scen["f"], cfg.scen["g"], cfg.scen["h"] = true, true, true
		} else if s == "deflate" {
			cfg.scen["i"], cfg.scen["j"], cfg.scen["k"] = true, true, true
		}
		cfg.scen[s] = true
	}
	dir, err := os.MkdirTemp("", "tio-bench-")
	if err != nil {
		fatal(err)
	}
	tmpDir = dir
	defer os.RemoveAll(dir)
	cfg.server, cfg.client = filepath.Join(dir, "benchserver"), filepath.Join(dir, "benchclient")
	for bin, pkg := range map[string]string{cfg.server: "benchserver", cfg.client: "benchclient"} {
		cmd := exec.Command("go", "build", "-o", bin, "github.com/tiogo/tio/bench/cmd/"+pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fatal(fmt.Errorf("building %s (run benchrun from within bench/, the benchmarks' module): %w", pkg, err))
		}
	}

	if tlsScenarios(cfg) {
		pki, err := bench.NewPKI()
		if err != nil {
			fatal(err)
		}
		if cfg.tls.ca, cfg.tls.cert, cfg.tls.key, err = pki.WriteFiles(dir); err != nil {
			fatal(err)
		}
	}

	start := time.Now()
	var loads []bench.LoadResult
	for _, sc := range throughput {
		if !cfg.scen[sc.key] {
			continue
		}
		res, err := runCompare(cfg, sc)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", sc.label, err))
		}
		for _, r := range res {
			logf("%s %-4s %10.0f msg/s  cpu: server %.2fs client %.2fs softirq %.2fs other %.2fs over %.1fs",
				sc.key, r.Impl, r.Rate, r.ServerCPU, r.ClientCPU, r.SoftirqCPU, r.OtherCPU, r.Seconds)
		}
		loads = append(loads, res...)
	}
	var idles []idleResult
	if cfg.scen["d"] {
		for _, impl := range cfg.impls {
			res, err := runIdle(cfg, impl)
			if err != nil {
				fatal(fmt.Errorf("idle, %s: %w", impl, err))
			}
			logf("idle %-4s %6d B/conn (RSS %d → %d kB, %d/%d alive)",
				impl, res.BytesPerCon, res.RSSBefore>>10, res.RSSAfter>>10, res.Alive, res.Conns)
			idles = append(idles, res)
		}
	}
	var actives []bench.ActiveResult
	if cfg.scen["e"] {
		for _, impl := range cfg.impls {
			if !activeImpl(impl) {
				logf("active: %s has no broadcast; left out", impl)
				continue
			}
			res, err := runActive(cfg, impl)
			if err != nil {
				fatal(fmt.Errorf("active, %s: %w", impl, err))
			}
			logActive(res)
			actives = append(actives, res)
		}
	}
	var tlsRounds []tlsRound
	if tlsScenarios(cfg) {
		if tlsRounds, err = runTLS(cfg); err != nil {
			fatal(err)
		}
	}
	var deflateRounds []deflateRound
	if deflateScenarios(cfg) {
		if deflateRounds, err = runDeflate(cfg); err != nil {
			fatal(err)
		}
	}
	report := markdown(cfg, loads, idles, time.Since(start)) + activeMarkdown(cfg, actives) + tlsMarkdown(cfg, tlsRounds) + deflateMarkdown(cfg, deflateRounds)
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fatal(err)
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"load": loads, "idle": idles, "active": actives, "tls": tlsRounds, "deflate": deflateRounds}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fatal(err)
		}
	}
}

// server is a running benchserver.
type server struct {
	cmd  *exec.Cmd
	addr string
	in   io.WriteCloser // commands, for a server started with ctl
	out  *bufio.Reader  // their answers
}

// startServer starts benchserver -impl impl with the extra arguments; an
// impl written NAME=PATH runs the benchserver binary at PATH as tio instead
// (an earlier or later build of tio, to compare two in one run). With ctl
// the server's stdin and stdout are kept for commands (s.in, s.out);
// without, its stdin is empty and its stdout discarded.
func startServer(cfg config, impl string, ctl bool, extra ...string) (*server, error) {
	bin, as := cfg.server, impl
	if _, path, ok := strings.Cut(impl, "="); ok {
		bin, as = path, "tio"
	}
	cmd := exec.Command(bin, append([]string{"-impl", as, "-addr", "127.0.0.1:0"}, extra...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &server{cmd: cmd}
	if ctl {
		if s.in, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := childproc.Start(cmd, cfg.serverCPUs); err != nil {
		return nil, err
	}
	br := bufio.NewReader(stdout)
	line, err := readLine(br, 10*time.Second)
	if addr, ok := strings.CutPrefix(line, "ready "); err == nil && ok {
		s.addr = addr
		if ctl {
			s.out = br
		} else {
			go func() { _, _ = io.Copy(io.Discard, br) }()
		}
		return s, nil
	}
	s.stop()
	if err == nil {
		err = fmt.Errorf("unexpected first line %q", line)
	}
	return nil, fmt.Errorf("benchserver -impl %s: %w", impl, err)
}

// stop ends the server: SIGTERM, then SIGKILL after 3 s.
func (s *server) stop() {
	if s.in != nil {
		s.in.Close()
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	time.Sleep(300 * time.Millisecond) // let the sockets go before the next run
}

// runCompare starts every server and runs the client against all of them.
func runCompare(cfg config, sc scenario) ([]bench.LoadResult, error) {
	var targets []string
	for _, impl := range cfg.impls {
		s, err := startServer(cfg, impl, false)
		if err != nil {
			return nil, err
		}
		defer s.stop()
		name, _, _ := strings.Cut(impl, "=")
		targets = append(targets, fmt.Sprintf("%s=%s@%d", name, s.addr, s.cmd.Process.Pid))
	}
	cmd := exec.Command(cfg.client, "-targets", strings.Join(targets, ","),
		"-conns", strconv.Itoa(sc.conns), "-size", strconv.Itoa(sc.size), "-inflight", strconv.Itoa(sc.inflight),
		"-warmup", cfg.warmup.String(), "-cycles", strconv.Itoa(cfg.cycles),
		"-slice", cfg.slice.String(), "-settle", cfg.settle.String())
	cmd.Stderr = os.Stderr
	outb, runErr := childproc.Output(cmd, cfg.clientCPUs)
	var res []bench.LoadResult
	if err := json.Unmarshal(outb, &res); err != nil || len(res) != len(cfg.impls) {
		if runErr != nil {
			return nil, runErr
		}
		return nil, fmt.Errorf("client output %q: %v", outb, err)
	}
	if res[0].Errors > 0 {
		return res, fmt.Errorf("%d connections failed, first: %s", res[0].Errors, res[0].FirstError)
	}
	return res, nil
}

func runIdle(cfg config, impl string) (idleResult, error) {
	name, _, _ := strings.Cut(impl, "=")
	res := idleResult{Impl: name, Conns: cfg.idle}
	s, err := startServer(cfg, impl, false)
	if err != nil {
		return res, err
	}
	defer s.stop()
	pid := s.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	if res.RSSBefore, err = bench.ProcRSS(pid); err != nil {
		return res, err
	}
	cl, err := startIdleClient(cfg, "-addr", s.addr, "-idle", "-conns", strconv.Itoa(cfg.idle), "-hold", "120s")
	if err != nil {
		return res, err
	}
	defer cl.stop()
	br := cl.out
	line, err := readLine(br, 120*time.Second)
	if err != nil || line != "connected "+strconv.Itoa(cfg.idle) {
		return res, fmt.Errorf("idle client: %q, %v", line, err)
	}
	time.Sleep(cfg.idleWait)
	if res.RSSAfter, err = bench.ProcRSS(pid); err != nil {
		return res, err
	}
	cl.in.Close()
	line, err = readLine(br, 30*time.Second)
	if n, ok := strings.CutPrefix(line, "alive "); err == nil && ok {
		res.Alive, _ = strconv.Atoi(n)
	}
	res.BytesPerCon = (res.RSSAfter - res.RSSBefore) / int64(cfg.idle)
	if res.Alive != cfg.idle {
		return res, fmt.Errorf("only %d of %d idle connections still open", res.Alive, cfg.idle)
	}
	return res, nil
}

// readLine reads one line, or fails after timeout.
func readLine(br *bufio.Reader, timeout time.Duration) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := br.ReadString('\n')
		ch <- result{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		return "", errors.New("timed out waiting for output")
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cycleRatios returns a's slice rate over b's, cycle by cycle.
func cycleRatios(a, b bench.LoadResult) []float64 {
	var v []float64
	for i := range min(len(a.Slices), len(b.Slices)) {
		if b.Slices[i] > 0 {
			v = append(v, a.Slices[i]/b.Slices[i])
		}
	}
	return v
}

func markdown(cfg config, loads []bench.LoadResult, idles []idleResult, took time.Duration) string {
	var b strings.Builder
	name := map[string]string{bench.ImplTio: "tio", bench.ImplGnet: "gnet floor", bench.ImplGws: "gws"}
	if len(loads) == 0 {
		fmt.Fprintf(&b, "\n%d CPUs, %s, GOMAXPROCS default; took %v.\n", runtime.NumCPU(), runtime.Version(), took.Round(time.Second))
	} else {
		fmt.Fprintf(&b, "\n%d CPUs, %s, GOMAXPROCS default; %d cycles × %v per server (first %v of each not measured), %v warm-up per server; took %v.\n\n",
			runtime.NumCPU(), runtime.Version(), cfg.cycles, cfg.slice, cfg.settle, cfg.warmup, took.Round(time.Second))
	}
	if len(cfg.serverCPUs) > 0 || len(cfg.clientCPUs) > 0 {
		fmt.Fprintf(&b, "Servers pinned to CPUs %v, load clients to %v (empty: not pinned).\n\n", cfg.serverCPUs, cfg.clientCPUs)
	}

	find := func(sc scenario, impl string) (bench.LoadResult, bool) {
		for _, r := range loads {
			if r.Impl == impl && r.Conns == sc.conns && r.Size == sc.size && r.Inflight == sc.inflight {
				return r, true
			}
		}
		return bench.LoadResult{}, false
	}
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	spread := func(v []float64) string {
		if len(v) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f (%.2f–%.2f)", median(v), slices.Min(v), slices.Max(v))
	}
	var scens []scenario
	for _, sc := range throughput {
		if cfg.scen[sc.key] {
			if _, ok := find(sc, cfg.impls[0]); ok {
				scens = append(scens, sc)
			}
		}
	}
	header := func(first string, cols []string, tail ...string) {
		b.WriteString("| " + first + " |")
		for _, c := range cols {
			b.WriteString(" " + c + " |")
		}
		for _, c := range tail {
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n|---|")
		for range len(cols) + len(tail) {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
	}
	var cols []string
	for _, impl := range cfg.impls {
		cols = append(cols, name[impl])
	}
	if len(scens) > 0 {
		b.WriteString("Echoes per second (all measured slices):\n\n")
		header("scenario", cols, "tio / gnet floor", "tio / gws")
		for _, sc := range scens {
			fmt.Fprintf(&b, "| %s |", sc.label)
			for _, impl := range cfg.impls {
				r, _ := find(sc, impl)
				fmt.Fprintf(&b, " %.0f |", r.Rate)
			}
			t, _ := find(sc, bench.ImplTio)
			g, _ := find(sc, bench.ImplGnet)
			w, _ := find(sc, bench.ImplGws)
			fmt.Fprintf(&b, " %s | %s |\n", ratio(t.Rate, g.Rate), ratio(t.Rate, w.Rate))
		}

		b.WriteString("\nThe same ratios cycle by cycle (tio's slice over the other server's slice of the same cycle): median (min–max):\n\n")
		header("scenario", []string{"tio / gnet floor", "tio / gws"})
		for _, sc := range scens {
			t, _ := find(sc, bench.ImplTio)
			g, _ := find(sc, bench.ImplGnet)
			w, _ := find(sc, bench.ImplGws)
			fmt.Fprintf(&b, "| (%s) | %s | %s |\n", sc.key, spread(cycleRatios(t, g)), spread(cycleRatios(t, w)))
		}

		b.WriteString("\nServer CPU time per echo, µs (user+system of the server process over its measured slices), and the CPUs that other processes used meanwhile:\n\n")
		header("scenario", cols, "other processes, CPUs")
		for _, sc := range scens {
			fmt.Fprintf(&b, "| (%s) |", sc.key)
			other, secs := 0.0, 0.0
			for _, impl := range cfg.impls {
				r, _ := find(sc, impl)
				if r.ServerCPU >= 0 && r.Msgs > 0 {
					fmt.Fprintf(&b, " %.2f |", r.ServerCPU/float64(r.Msgs)*1e6)
				} else {
					b.WriteString(" – |")
				}
				if r.OtherCPU >= 0 {
					other += r.OtherCPU
					secs += r.Seconds
				}
			}
			if secs > 0 {
				fmt.Fprintf(&b, " %.2f |\n", other/secs)
			} else {
				b.WriteString(" – |\n")
			}
		}
	}
	if len(idles) > 0 {
		fmt.Fprintf(&b, "\n(d) Server memory per idle WebSocket connection: %d connections, (VmRSS after − before) / %d, read %v after the last handshake:\n\n", cfg.idle, cfg.idle, cfg.idleWait)
		m := map[string]idleResult{}
		for _, r := range idles {
			m[r.Impl] = r
		}
		header("", cols, "tio / gnet floor", "tio / gws")
		b.WriteString("| bytes per connection |")
		for _, impl := range cfg.impls {
			fmt.Fprintf(&b, " %d |", m[impl].BytesPerCon)
		}
		fmt.Fprintf(&b, " %s | %s |\n| VmRSS before → after, kB |",
			ratio(float64(m[bench.ImplTio].BytesPerCon), float64(m[bench.ImplGnet].BytesPerCon)),
			ratio(float64(m[bench.ImplTio].BytesPerCon), float64(m[bench.ImplGws].BytesPerCon)))
		for _, impl := range cfg.impls {
			fmt.Fprintf(&b, " %d → %d |", m[impl].RSSBefore>>10, m[impl].RSSAfter>>10)
		}
		b.WriteString(" | |\n")
	}
	return b.String()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// tmpDir holds the binaries; fatal removes it.
var tmpDir string

func fatal(err error) {
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}

// parseCPUs parses a comma-separated list of CPU numbers ("" is none).
func parseCPUs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n >= 1024 {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, f)
		}
		cpus = append(cpus, n)
	}
	return cpus, nil
}
