package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tiogo/tio/bench"
	"github.com/tiogo/tio/bench/internal/childproc"
)

// Scenario (e): memory per active connection. Each server runs alone, as
// a benchserver -broadcast subprocess driven through its stdin, with one
// benchclient -active subprocess, driven likewise; bench.RunActive runs the
// phases.

type activeConfig struct {
	conns     int
	plan      bench.ActivePlan
	broadcast time.Duration
	bsize     int
	echoEvery time.Duration
	esize     int
}

// activeImpl reports whether impl has the scenario: tio, gws, or another
// tio binary (NAME=PATH).
func activeImpl(impl string) bool {
	return impl == bench.ImplTio || impl == bench.ImplGws || strings.Contains(impl, "=")
}

func runActive(cfg config, impl string) (bench.ActiveResult, error) {
	ac := cfg.active
	name, _, _ := strings.Cut(impl, "=")
	s, err := startServer(cfg, impl, true, "-broadcast", ac.broadcast.String(), "-size", strconv.Itoa(ac.bsize))
	if err != nil {
		return bench.ActiveResult{Impl: name}, err
	}
	defer s.stop()
	time.Sleep(500 * time.Millisecond) // the server settles before its RSS is read
	cli := &procClient{cpus: cfg.clientCPUs, cmd: exec.Command(cfg.client, "-active", "-addr", s.addr, "-conns", strconv.Itoa(ac.conns),
		"-size", strconv.Itoa(ac.bsize), "-esize", strconv.Itoa(ac.esize), "-every", ac.echoEvery.String())}
	defer cli.kill()
	res, err := bench.RunActive(ac.plan, procServer{s}, cli)
	res.Impl = name
	if err == nil && (res.Errors > 0 || res.Dead > 0) {
		err = fmt.Errorf("%d errors, %d connections lost; first: %s", res.Errors, res.Dead, res.FirstError)
	}
	return res, err
}

// procServer drives a benchserver -broadcast through its stdin.
type procServer struct{ s *server }

func (p procServer) PID() int { return p.s.cmd.Process.Pid }

func (p procServer) command(cmd string) (string, error) {
	if _, err := io.WriteString(p.s.in, cmd+"\n"); err != nil {
		return "", err
	}
	line, err := readLine(p.s.out, 30*time.Second)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return "", fmt.Errorf("%s: %s", cmd, msg)
	}
	return line, nil
}

func (p procServer) ok(cmd string) error {
	line, err := p.command(cmd)
	if err == nil && line != "ok" {
		err = fmt.Errorf("%s: unexpected answer %q", cmd, line)
	}
	return err
}

func (p procServer) StartBroadcast() error { return p.ok("start") }
func (p procServer) StopBroadcast() error  { return p.ok("stop") }

func (p procServer) Stats() (bench.BroadcastStats, error) {
	var st bench.BroadcastStats
	line, err := p.command("stats")
	if err != nil {
		return st, err
	}
	js, ok := strings.CutPrefix(line, "stats ")
	if !ok {
		return st, fmt.Errorf("stats: unexpected answer %q", line)
	}
	return st, json.Unmarshal([]byte(js), &st)
}

// procClient drives a benchclient -active through its stdin.
type procClient struct {
	cpus []int
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
}

func (c *procClient) Connect() (int, error) {
	c.cmd.Stderr = os.Stderr
	var err error
	if c.in, err = c.cmd.StdinPipe(); err != nil {
		return 0, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := childproc.Start(c.cmd, c.cpus); err != nil {
		return 0, err
	}
	c.out = bufio.NewReader(stdout)
	line, err := readLine(c.out, 5*time.Minute)
	if err != nil {
		return 0, err
	}
	n, ok := strings.CutPrefix(line, "connected ")
	if !ok {
		return 0, fmt.Errorf("client: %q", line)
	}
	return strconv.Atoi(n)
}

func (c *procClient) command(cmd string, timeout time.Duration) (string, error) {
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		return "", err
	}
	line, err := readLine(c.out, timeout)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return "", fmt.Errorf("%s: %s", cmd, msg)
	}
	return line, nil
}

func (c *procClient) Phase(name string, echo bool) error {
	e := "0"
	if echo {
		e = "1"
	}
	line, err := c.command("phase "+name+" "+e, 30*time.Second)
	if err == nil && line != "ok" {
		err = fmt.Errorf("phase: unexpected answer %q", line)
	}
	return err
}

func (c *procClient) End(lastSeq uint64, drain time.Duration) (bench.ActiveClientResult, error) {
	var res bench.ActiveClientResult
	line, err := c.command(fmt.Sprintf("end %d %v", lastSeq, drain), drain+time.Minute)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return res, fmt.Errorf("client output %q: %w", line, err)
	}
	return res, nil
}

func (c *procClient) kill() {
	if c.in != nil {
		c.in.Close()
	}
	if c.cmd.Process != nil {
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
}

func logActive(r bench.ActiveResult) {
	logf("active %-4s %d conns, RSS before %d kB; load %s", r.Impl, r.Conns, r.RSSBefore>>10, r.Load)
	for _, p := range r.Phases {
		logf("active %-4s %-14s RSS %7d kB (max %7d) %7.0f B/conn  %6.0f bcast/s p99 %6.1f ms  %5.0f echoes/s p99 %6.1f ms  server CPU %.2fs (%.2f µs/msg)  heap %d kB  other %.2f CPUs",
			r.Impl, p.Name, p.RSS>>10, p.RSSMax>>10, p.BytesPerConn, float64(p.Deliveries)/p.Seconds, p.BP99/1e3,
			float64(p.Echoes)/p.Seconds, p.EP99/1e3, p.ServerCPU, p.CPUPerMsg, p.Server.HeapInuse>>10, p.OtherCPU)
	}
	logf("active %-4s lost %d, behind %d, unanswered %d, connections lost %d, errors %d %s", r.Impl, lostOf(r), r.Behind, r.Unanswered, r.Dead, r.Errors, r.FirstError)
}

func lostOf(r bench.ActiveResult) uint64 {
	var n uint64
	for _, p := range r.Phases {
		n += p.Lost
	}
	return n
}

// activeMarkdown reports scenario (e): a column per server, and the ratios
// of each to gws and of every other tio build to tio.
func activeMarkdown(cfg config, rs []bench.ActiveResult) string {
	if len(rs) == 0 {
		return ""
	}
	ac := cfg.active
	var b strings.Builder
	fmt.Fprintf(&b, "\n(e) Memory per active connection: %d WebSocket connections (%d CPUs, %s); idle %v, then %v with one %d-byte broadcast to every connection every %v (a ticker in the server), then %v of the same plus a %d-byte message from each connection every %v, echoed. A phase's RSS is the median of VmRSS read every %v over its last %v; bytes per active connection = (RSS of the phase − RSS idle) / connections.\n\n",
		ac.conns, runtime.NumCPU(), runtime.Version(), ac.plan.Idle, ac.plan.Phase, ac.bsize, ac.broadcast, ac.plan.Phase, ac.esize, ac.echoEvery,
		ac.plan.Sample, min(ac.plan.Tail, ac.plan.Phase/2))
	type ratio struct{ a, b int }
	var ratios []ratio
	tio, gws := -1, -1
	for i, r := range rs {
		switch r.Impl {
		case bench.ImplTio:
			tio = i
		case bench.ImplGws:
			gws = i
		}
	}
	for i, r := range rs {
		if gws >= 0 && i != gws {
			ratios = append(ratios, ratio{i, gws})
		}
		if tio >= 0 && r.Impl != bench.ImplTio && r.Impl != bench.ImplGws {
			ratios = append(ratios, ratio{i, tio})
		}
	}
	b.WriteString("| |")
	for _, r := range rs {
		b.WriteString(" " + r.Impl + " |")
	}
	for _, q := range ratios {
		fmt.Fprintf(&b, " %s / %s |", rs[q.a].Impl, rs[q.b].Impl)
	}
	b.WriteString("\n|---|")
	for range len(rs) + len(ratios) {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	// row writes a line: cell formats a server's value, val is the number
	// the ratios compare (nil: no ratios).
	row := func(label string, cell func(bench.ActiveResult) string, val func(bench.ActiveResult) float64) {
		b.WriteString("| " + label + " |")
		for _, r := range rs {
			b.WriteString(" " + cell(r) + " |")
		}
		for _, q := range ratios {
			if val == nil {
				b.WriteString(" |")
				continue
			}
			x, y := val(rs[q.a]), val(rs[q.b])
			if x <= 0 || y <= 0 {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(&b, " %.2f× |", x/y)
			}
		}
		b.WriteString("\n")
	}
	ph := func(r bench.ActiveResult, i int) bench.ActivePhaseResult {
		if i < len(r.Phases) {
			return r.Phases[i]
		}
		return bench.ActivePhaseResult{}
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	ms := func(us float64) string { return strconv.FormatFloat(us/1e3, 'f', 1, 64) }
	perConn := func(i int) (func(bench.ActiveResult) string, func(bench.ActiveResult) float64) {
		v := func(r bench.ActiveResult) float64 { return ph(r, i).BytesPerConn }
		return func(r bench.ActiveResult) string { return "**" + num(v(r)) + "**" }, v
	}
	c, v := perConn(1)
	row("broadcast: bytes per active connection", c, v)
	c, v = perConn(2)
	row("broadcast + echo: bytes per active connection", c, v)
	c, v = perConn(0)
	row("idle: bytes per connection, (RSS idle − RSS before) / connections", c, v)
	row("VmRSS before → idle → broadcast → broadcast + echo, MB", func(r bench.ActiveResult) string {
		return fmt.Sprintf("%.1f → %.1f → %.1f → %.1f", mb(r.RSSBefore), mb(ph(r, 0).RSS), mb(ph(r, 1).RSS), mb(ph(r, 2).RSS))
	}, nil)
	row("Go heap in use at the end of idle → broadcast → broadcast + echo, MB", func(r bench.ActiveResult) string {
		return fmt.Sprintf("%.1f → %.1f → %.1f", mb(int64(ph(r, 0).Server.HeapInuse)), mb(int64(ph(r, 1).Server.HeapInuse)), mb(int64(ph(r, 2).Server.HeapInuse)))
	}, nil)
	for _, i := range []int{1, 2} {
		label := map[int]string{1: "broadcast", 2: "broadcast + echo"}[i]
		row(label+": broadcasts delivered per second", func(r bench.ActiveResult) string {
			p := ph(r, i)
			return num(float64(p.Deliveries) / p.Seconds)
		}, func(r bench.ActiveResult) float64 { p := ph(r, i); return float64(p.Deliveries) / p.Seconds })
		row(label+": broadcast latency p50 / p99 / max, ms", func(r bench.ActiveResult) string {
			p := ph(r, i)
			return ms(p.BP50) + " / **" + ms(p.BP99) + "** / " + ms(p.BMax)
		}, func(r bench.ActiveResult) float64 { return ph(r, i).BP99 })
		if i == 2 {
			row(label+": echoes per second, round trip p50 / p99, ms", func(r bench.ActiveResult) string {
				p := ph(r, i)
				return num(float64(p.Echoes)/p.Seconds) + ", " + ms(p.EP50) + " / " + ms(p.EP99)
			}, func(r bench.ActiveResult) float64 { return ph(r, i).EP99 })
		}
		row(label+": server CPU µs per delivered message (broadcasts + echoes)", func(r bench.ActiveResult) string {
			return strconv.FormatFloat(ph(r, i).CPUPerMsg, 'f', 2, 64)
		}, func(r bench.ActiveResult) float64 { return ph(r, i).CPUPerMsg })
	}
	row("fan-out call (queueing for every connection), mean / max, ms", func(r bench.ActiveResult) string {
		st := ph(r, 2).Server
		if st.Broadcasts == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f / %.2f", float64(st.FanoutNs)/float64(st.Broadcasts)/1e6, float64(st.FanoutMaxNs)/1e6)
	}, nil)
	row("other processes, CPUs (idle, broadcast, broadcast + echo)", func(r bench.ActiveResult) string {
		return fmt.Sprintf("%.2f, %.2f, %.2f", ph(r, 0).OtherCPU, ph(r, 1).OtherCPU, ph(r, 2).OtherCPU)
	}, nil)
	row("broadcasts lost / behind at the end; messages unanswered at the end; connections lost", func(r bench.ActiveResult) string {
		return fmt.Sprintf("%d / %d; %d; %d", lostOf(r), r.Behind, r.Unanswered, r.Dead)
	}, nil)
	return b.String()
}

func mb(v int64) float64 { return float64(v) / (1 << 20) }
