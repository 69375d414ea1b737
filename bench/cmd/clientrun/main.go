// Command clientrun compares tio's client with a gorilla/websocket client
// as load generators: each, in a process of its own, opens -conns
// WebSocket connections to an echo server of its own (benchserver -impl
// tio: example/echo's server, in its own process too), and the runner
// reads each client's resident memory per connection, then runs echo
// traffic on them in interleaved slices (one client at a time, the order
// alternating), so that a disturbance from outside falls on both alike. It
// prints a markdown report. Run it from bench/ (the benchmarks' module):
//
//	go run ./cmd/clientrun                   # 10,000 connections each
//	go run ./cmd/clientrun -conns 2000 -cycles 4 -inflight 4
//
// Each process holds at most -conns files (and a few): the machine may
// allow 20,000 per process.
package main

import (
	"bufio"
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
	"github.com/tiogo/tio/bench/clientload"
	"github.com/tiogo/tio/bench/internal/childproc"
)

func main() {
	conns := flag.Int("conns", 10000, "connections per client")
	size := flag.Int("size", 64, "payload bytes per message")
	inflights := flag.String("inflight", "1,4", "messages in flight per connection: one scenario for each")
	cycles := flag.Int("cycles", 6, "cycles; each gives each client one slice of traffic")
	slice := flag.Duration("slice", 2*time.Second, "traffic time per client per cycle")
	settle := flag.Duration("settle", 300*time.Millisecond, "unmeasured start of each slice")
	par := flag.Int("par", 64, "connections dialled at once")
	loops := flag.Int("loops", 0, "tio client event loops (0: GOMAXPROCS)")
	idle := flag.Duration("idle", 2*time.Second, "wait after the last connection before reading memory")
	profile := flag.String("cpuprofile", "", "profile the clients: write IMPL.FILE for each")
	flag.Parse()

	dir, err := os.MkdirTemp("", "tio-clientrun-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	serverBin, clientBin := filepath.Join(dir, "benchserver"), filepath.Join(dir, "clientload")
	for bin, pkg := range map[string]string{serverBin: "benchserver", clientBin: "clientload"} {
		cmd := exec.Command("go", "build", "-o", bin, "github.com/tiogo/tio/bench/cmd/"+pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fatal(fmt.Errorf("building %s (run clientrun from within bench/): %w", pkg, err))
		}
	}

	impls := []string{clientload.ImplTio, clientload.ImplGorilla}
	servers := map[string]*proc{}
	clients := map[string]*proc{}
	for _, impl := range impls {
		s, err := start(serverBin, "-impl", bench.ImplTio, "-addr", "127.0.0.1:0")
		if err != nil {
			fatal(err)
		}
		defer s.stop()
		line, err := s.line(10 * time.Second)
		addr, ok := strings.CutPrefix(line, "ready ")
		if err != nil || !ok {
			fatal(fmt.Errorf("echo server: %q %v", line, err))
		}
		s.addr = addr
		servers[impl] = s
		args := []string{"-impl", impl}
		if impl == clientload.ImplTio && *loops > 0 {
			args = append(args, "-loops", strconv.Itoa(*loops))
		}
		if *profile != "" {
			args = append(args, "-cpuprofile", impl+"."+*profile)
		}
		c, err := start(clientBin, args...)
		if err != nil {
			fatal(err)
		}
		defer c.stop()
		if line, err := c.line(10 * time.Second); err != nil || line != "ready" {
			fatal(fmt.Errorf("%s client: %q %v", impl, line, err))
		}
		clients[impl] = c
	}

	type memory struct {
		before, after, afterGC, heap, stack int64
		goroutines                          int
		connect                             float64
	}
	mem := map[string]*memory{}
	time.Sleep(500 * time.Millisecond)
	for _, impl := range impls {
		c := clients[impl]
		m := &memory{}
		mem[impl] = m
		if m.before, err = bench.ProcRSS(c.cmd.Process.Pid); err != nil {
			fatal(err)
		}
		reply := c.ask(fmt.Sprintf("connect ws://%s/ %d %d", servers[impl].addr, *conns, *par), 5*time.Minute, "connected")
		m.connect, _ = strconv.ParseFloat(reply[2], 64)
		logf("%s: %d connections in %.1fs", impl, *conns, m.connect)
	}
	time.Sleep(*idle)
	for _, impl := range impls {
		c, m := clients[impl], mem[impl]
		if m.after, err = bench.ProcRSS(c.cmd.Process.Pid); err != nil {
			fatal(err)
		}
		reply := c.ask("mem", time.Minute, "mem")
		if m.afterGC, err = bench.ProcRSS(c.cmd.Process.Pid); err != nil {
			fatal(err)
		}
		m.heap, _ = strconv.ParseInt(reply[1], 10, 64)
		m.stack, _ = strconv.ParseInt(reply[2], 10, 64)
		m.goroutines, _ = strconv.Atoi(reply[3])
		logf("%s: RSS %d → %d kB (%d kB after a GC), %d B/conn; heap %d kB, stacks %d kB, %d goroutines",
			impl, m.before>>10, m.after>>10, m.afterGC>>10, (m.after-m.before)/int64(*conns), m.heap>>10, m.stack>>10, m.goroutines)
	}

	var scenarios []scenario
	for _, v := range strings.Split(*inflights, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || k < 1 {
			fatal(fmt.Errorf("-inflight %q", *inflights))
		}
		sc := scenario{inflight: k, runs: map[string][]slice1{}}
		for cycle := range *cycles {
			order := slices.Clone(impls)
			if cycle%2 == 1 {
				slices.Reverse(order)
			}
			for _, impl := range order {
				srvPID := servers[impl].cmd.Process.Pid
				ours := func() float64 {
					t := 0.0
					for _, impl := range impls {
						t += bench.ProcCPU(clients[impl].cmd.Process.Pid) + bench.ProcCPU(servers[impl].cmd.Process.Pid)
					}
					return t
				}
				wall0, sys0, own0, srv0 := time.Now(), machineCPU(), ours(), bench.ProcCPU(srvPID)
				reply := clients[impl].ask(fmt.Sprintf("run %v %v %d %d", *slice, *settle, *size, k), time.Minute, "ran")
				wall, sys1, own1, srv1 := time.Since(wall0).Seconds(), machineCPU(), ours(), bench.ProcCPU(srvPID)
				var s slice1
				s.echoes, _ = strconv.ParseUint(reply[1], 10, 64)
				s.secs, _ = strconv.ParseFloat(reply[2], 64)
				s.clientCPU, _ = strconv.ParseFloat(reply[3], 64)
				s.srvCPU = srv1 - srv0
				s.otherCPU = (sys1.busy - sys0.busy) - (own1 - own0)
				s.wall = wall
				sc.runs[impl] = append(sc.runs[impl], s)
				logf("%d in flight, cycle %d %-7s %9.0f echoes/s  client cpu %.2fs  server cpu %.2fs  other %.2fs over %.2fs",
					k, cycle, impl, float64(s.echoes)/s.secs, s.clientCPU, s.srvCPU, s.otherCPU, wall)
			}
		}
		scenarios = append(scenarios, sc)
	}
	for _, impl := range impls {
		reply := clients[impl].ask("alive", time.Minute, "alive")
		if n, _ := strconv.Atoi(reply[1]); n != *conns {
			fatal(fmt.Errorf("%s: only %d of %d connections still open", impl, n, *conns))
		}
	}

	// The report.
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Client as a load generator: tio vs gorilla/websocket\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs (GOMAXPROCS %d), %s/%s, %s, on %s; shared with other work (see the other-CPU column).\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), host)
	fmt.Fprintf(&b, "Each client holds %d WebSocket connections to its own echo server process (example/echo's server); %d-byte binary messages; for each number of messages in flight per connection, %d cycles of one %v slice per client (first %v not counted), order alternating. The CPU times are per echo counted, over each whole slice (the client's CPU includes its uncounted start and drain).\n\n",
		*conns, *size, *cycles, *slice, *settle)
	fmt.Fprintf(&b, "| client | RSS per connection | RSS per connection after a GC | Go heap + stacks per connection | goroutines | connect time |\n|---|---:|---:|---:|---:|---:|\n")
	per := func(v int64) int64 { return v / int64(*conns) }
	for _, impl := range impls {
		m := mem[impl]
		fmt.Fprintf(&b, "| %s | %d B | %d B | %d B | %d | %.1f s |\n", impl, per(m.after-m.before), per(m.afterGC-m.before), per(m.heap+m.stack), m.goroutines, m.connect)
	}
	rt, rg := mem[clientload.ImplTio], mem[clientload.ImplGorilla]
	fmt.Fprintf(&b, "\nMemory ratio tio/gorilla: %.3f (RSS), %.3f (RSS after a GC), %.3f (heap + stacks).\n\n",
		float64(rt.after-rt.before)/float64(rg.after-rg.before), float64(rt.afterGC-rt.before)/float64(rg.afterGC-rg.before),
		float64(rt.heap+rt.stack)/float64(rg.heap+rg.stack))
	for _, sc := range scenarios {
		fmt.Fprintf(&b, "%d message(s) in flight per connection:\n\n", sc.inflight)
		fmt.Fprintf(&b, "| client | echoes/s | slices min–max | client CPU µs/echo | server CPU µs/echo | other processes' CPU (share of %d CPUs) |\n|---|---:|---:|---:|---:|---:|\n", runtime.NumCPU())
		rates := map[string]float64{}
		for _, impl := range impls {
			var e uint64
			var secs, ccpu, scpu, other, wall float64
			var rate []float64
			for _, s := range sc.runs[impl] {
				e += s.echoes
				secs += s.secs
				ccpu += s.clientCPU
				scpu += s.srvCPU
				other += s.otherCPU
				wall += s.wall
				rate = append(rate, float64(s.echoes)/s.secs)
			}
			rates[impl] = float64(e) / secs
			fmt.Fprintf(&b, "| %s | %.0f | %.0f–%.0f | %.2f | %.2f | %.0f%% |\n", impl, rates[impl], slices.Min(rate), slices.Max(rate),
				1e6*ccpu/float64(e), 1e6*scpu/float64(e), 100*other/(wall*float64(runtime.NumCPU())))
		}
		fmt.Fprintf(&b, "\nMessage-rate ratio tio/gorilla: %.2f.\n\n", rates[clientload.ImplTio]/rates[clientload.ImplGorilla])
	}
	fmt.Print(b.String())
	for _, impl := range impls {
		clients[impl].send("quit")
		_ = clients[impl].cmd.Wait()
	}
}

type proc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	addr string
}

type slice1 struct {
	echoes            uint64
	secs, wall        float64
	clientCPU, srvCPU float64
	otherCPU          float64
}

type scenario struct {
	inflight int
	runs     map[string][]slice1
}

func start(bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := childproc.Start(cmd, nil); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

func (p *proc) send(line string) { _, _ = io.WriteString(p.in, line+"\n") }

// line reads one line of output within timeout.
func (p *proc) line(timeout time.Duration) (string, error) {
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		ch <- result{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no answer within %v", timeout)
	}
}

// ask sends a command and returns the fields of its answer, which must
// start with want.
func (p *proc) ask(cmd string, timeout time.Duration, want string) []string {
	p.send(cmd)
	line, err := p.line(timeout)
	f := strings.Fields(line)
	if err != nil || len(f) == 0 || f[0] != want {
		fatal(fmt.Errorf("%s: answered %q, %v", cmd, line, err))
	}
	return f
}

func (p *proc) stop() {
	_ = p.in.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

type sysCPU struct{ busy float64 }

// machineCPU reads the machine's busy CPU seconds (user, nice, system,
// irq, softirq: all CPUs) from /proc/stat.
func machineCPU() sysCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return sysCPU{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 {
		return sysCPU{}
	}
	var v [8]float64
	for i := 1; i < 8; i++ {
		n, _ := strconv.ParseUint(f[i], 10, 64)
		v[i] = float64(n) / 100 // USER_HZ
	}
	return sysCPU{busy: v[1] + v[2] + v[3] + v[6] + v[7]}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "clientrun:", err)
	os.Exit(1)
}
