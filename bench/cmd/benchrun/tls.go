package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tiogo/tio/bench"
	"github.com/tiogo/tio/bench/internal/childproc"
)

// The TLS scenarios, not run unless asked for ("-scenarios tls" runs all
// three), each -rounds times, the servers' order rotating from round to
// round:
//
//   - (f) wss echo: 1,000 connections × 64 B, one in flight each, as (a)
//     but over TLS, tio (tio.WithTLS) and gws on net/http with crypto/tls
//     interleaved in slices (bench.CompareTLS);
//   - (g) memory per idle wss connection: each server alone, -tls-idle
//     connections that completed their handshake and echoed one 64-byte
//     message; VmRSS before and after, and the Go heap and stacks after a
//     GC (the server's "mem" command);
//   - (h) full TLS handshakes per second: -dialers goroutines connecting
//     over and over, each connection a TLS 1.3 handshake with X25519 and
//     the WebSocket upgrade, interleaved in slices (bench.Handshakes).
//
// The certificate comes from an authority made in memory for the run
// (bench.NewPKI), written to the run's temporary directory for the
// subprocesses.

type tlsConfig struct {
	rounds  int
	idle    int
	dialers int
	ca      string
	cert    string
	key     string
}

// tlsRound is what one round of the TLS scenarios measured.
type tlsRound struct {
	Round      int               `json:"round"`
	Order      []string          `json:"order"`
	Echo       []bench.TLSResult `json:"echo,omitempty"`
	Idle       []tlsIdleResult   `json:"idle,omitempty"`
	Handshakes []bench.TLSResult `json:"handshakes,omitempty"`
}

type tlsIdleResult struct {
	Impl       string            `json:"impl"`
	Conns      int               `json:"conns"`
	Alive      int               `json:"alive"`
	RSSBefore  int64             `json:"rss_before"`
	RSSAfter   int64             `json:"rss_after"`
	MemBefore  bench.MemSnapshot `json:"mem_before"` // after a GC
	MemAfter   bench.MemSnapshot `json:"mem_after"`  // after a GC, once RSSAfter was read
	RSSPerConn float64           `json:"rss_per_conn"`
	// HeapPerConn is the growth of the live heap after a GC (HeapAlloc),
	// StackPerConn that of the goroutine stacks (StackInuse), per
	// connection.
	HeapPerConn  float64 `json:"heap_per_conn"`
	StackPerConn float64 `json:"stack_per_conn"`
}

// tlsScenarios reports whether any TLS scenario is asked for.
func tlsScenarios(cfg config) bool { return cfg.scen["f"] || cfg.scen["g"] || cfg.scen["h"] }

// tlsImpls returns the servers of the TLS scenarios among cfg.impls (tio,
// gws, other tio builds), rotated by round.
func tlsImpls(cfg config, round int) []string {
	var v []string
	for _, impl := range cfg.impls {
		if impl == bench.ImplTio || impl == bench.ImplGws || strings.Contains(impl, "=") {
			v = append(v, impl)
		}
	}
	if len(v) == 0 {
		return v
	}
	k := round % len(v)
	return append(v[k:len(v):len(v)], v[:k]...)
}

func runTLS(cfg config) ([]tlsRound, error) {
	var rounds []tlsRound
	for r := range cfg.tls.rounds {
		impls := tlsImpls(cfg, r)
		if len(impls) == 0 {
			return nil, fmt.Errorf("the TLS scenarios need tio or gws among -impls")
		}
		round := tlsRound{Round: r + 1}
		for _, impl := range impls {
			name, _, _ := strings.Cut(impl, "=")
			round.Order = append(round.Order, name)
		}
		if cfg.scen["f"] {
			res, err := runTLSCompare(cfg, impls, false)
			if err != nil {
				return rounds, fmt.Errorf("round %d, wss echo: %w", r+1, err)
			}
			for _, x := range res {
				logf("round %d f %-4s %9.0f msg/s  p50 %.0f µs p99 %.0f µs mean %.0f µs (%.0f in flight)  cpu: server %.2fs (%.2f µs/msg) client %.2fs other %.2fs over %.1fs",
					r+1, x.Impl, x.Rate, x.P50, x.P99, x.Mean, x.Rate*x.Mean/1e6, x.ServerCPU, perMsg(x.ServerCPU, x.Msgs), x.ClientCPU, x.OtherCPU, x.Seconds)
			}
			round.Echo = res
		}
		if cfg.scen["g"] {
			for _, impl := range impls {
				res, err := runTLSIdle(cfg, impl)
				if err != nil {
					return rounds, fmt.Errorf("round %d, idle wss, %s: %w", r+1, impl, err)
				}
				logf("round %d g %-4s %6.0f B/conn RSS, %6.0f heap + %5.0f stacks after GC (RSS %d → %d kB, %d/%d alive, goroutines %d → %d)",
					r+1, res.Impl, res.RSSPerConn, res.HeapPerConn, res.StackPerConn, res.RSSBefore>>10, res.RSSAfter>>10,
					res.Alive, res.Conns, res.MemBefore.Goroutines, res.MemAfter.Goroutines)
				round.Idle = append(round.Idle, res)
			}
		}
		if cfg.scen["h"] {
			res, err := runTLSCompare(cfg, impls, true)
			if err != nil {
				return rounds, fmt.Errorf("round %d, handshakes: %w", r+1, err)
			}
			for _, x := range res {
				logf("round %d h %-4s %7.0f handshakes/s  p50 %.1f ms p99 %.1f ms mean %.1f ms (%.0f in flight)  cpu: server %.2fs (%.0f µs/handshake) client %.2fs other %.2fs over %.1fs",
					r+1, x.Impl, x.Rate, x.P50/1e3, x.P99/1e3, x.Mean/1e3, x.Rate*x.Mean/1e6, x.ServerCPU, perMsg(x.ServerCPU, x.Msgs), x.ClientCPU, x.OtherCPU, x.Seconds)
			}
			round.Handshakes = res
		}
		rounds = append(rounds, round)
	}
	return rounds, nil
}

func perMsg(cpu float64, n uint64) float64 {
	if cpu < 0 || n == 0 {
		return -1
	}
	return cpu / float64(n) * 1e6
}

// runTLSCompare starts every server with the certificate and runs the
// client's wss echo (f) or handshake scenario (h) against all of them.
func runTLSCompare(cfg config, impls []string, handshakes bool) ([]bench.TLSResult, error) {
	var targets []string
	for _, impl := range impls {
		s, err := startServer(cfg, impl, false, "-cert", cfg.tls.cert, "-key", cfg.tls.key)
		if err != nil {
			return nil, err
		}
		defer s.stop()
		name, _, _ := strings.Cut(impl, "=")
		targets = append(targets, fmt.Sprintf("%s=%s@%d", name, s.addr, s.cmd.Process.Pid))
	}
	args := []string{"-ca", cfg.tls.ca, "-targets", strings.Join(targets, ","),
		"-warmup", cfg.warmup.String(), "-cycles", strconv.Itoa(cfg.cycles),
		"-slice", cfg.slice.String(), "-settle", cfg.settle.String()}
	if handshakes {
		args = append(args, "-handshakes", "-dialers", strconv.Itoa(cfg.tls.dialers))
	} else {
		args = append(args, "-conns", "1000", "-size", "64", "-inflight", "1")
	}
	cmd := exec.Command(cfg.client, args...)
	cmd.Stderr = os.Stderr
	outb, runErr := childproc.Output(cmd, cfg.clientCPUs)
	var res []bench.TLSResult
	if err := json.Unmarshal(outb, &res); err != nil || len(res) != len(impls) {
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

// runTLSIdle measures impl's memory per idle wss connection (g).
func runTLSIdle(cfg config, impl string) (tlsIdleResult, error) {
	name, _, _ := strings.Cut(impl, "=")
	n := cfg.tls.idle
	res := tlsIdleResult{Impl: name, Conns: n}
	s, err := startServer(cfg, impl, true, "-cert", cfg.tls.cert, "-key", cfg.tls.key)
	if err != nil {
		return res, err
	}
	defer s.stop()
	pid := s.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	if res.RSSBefore, err = bench.ProcRSS(pid); err != nil {
		return res, err
	}
	if res.MemBefore, err = serverMem(s); err != nil {
		return res, err
	}
	cl, err := startIdleClient(cfg, "-ca", cfg.tls.ca, "-addr", s.addr, "-idle", "-conns", strconv.Itoa(n), "-size", "64", "-hold", "300s")
	if err != nil {
		return res, err
	}
	defer cl.stop()
	br := cl.out
	line, err := readLine(br, 240*time.Second)
	if err != nil || line != "connected "+strconv.Itoa(n) {
		return res, fmt.Errorf("idle client: %q, %v", line, err)
	}
	time.Sleep(cfg.idleWait)
	if res.RSSAfter, err = bench.ProcRSS(pid); err != nil {
		return res, err
	}
	if res.MemAfter, err = serverMem(s); err != nil {
		return res, err
	}
	cl.in.Close()
	line, err = readLine(br, 60*time.Second)
	if a, ok := strings.CutPrefix(line, "alive "); err == nil && ok {
		res.Alive, _ = strconv.Atoi(a)
	}
	res.RSSPerConn = float64(res.RSSAfter-res.RSSBefore) / float64(n)
	res.HeapPerConn = (float64(res.MemAfter.HeapAlloc) - float64(res.MemBefore.HeapAlloc)) / float64(n)
	res.StackPerConn = (float64(res.MemAfter.StackInuse) - float64(res.MemBefore.StackInuse)) / float64(n)
	if res.Alive != n {
		return res, fmt.Errorf("only %d of %d idle connections still open", res.Alive, n)
	}
	return res, nil
}

// serverMem asks a TLS benchserver for its memory after a GC.
func serverMem(s *server) (bench.MemSnapshot, error) { return serverMemCmd(s, "mem") }

// serverMemCmd asks a benchserver for its memory with cmd ("mem", or "mem
// flush": after two collections).
func serverMemCmd(s *server, cmd string) (bench.MemSnapshot, error) {
	var m bench.MemSnapshot
	if _, err := s.in.Write([]byte(cmd + "\n")); err != nil {
		return m, err
	}
	line, err := readLine(s.out, 30*time.Second)
	if err != nil {
		return m, fmt.Errorf("mem: %w", err)
	}
	js, ok := strings.CutPrefix(line, "mem ")
	if !ok {
		return m, fmt.Errorf("mem: unexpected answer %q", line)
	}
	return m, json.Unmarshal([]byte(js), &m)
}

// tlsMarkdown reports the TLS scenarios: a table per scenario, a row per
// round, tio's figures over gws's.
func tlsMarkdown(cfg config, rounds []tlsRound) string {
	if len(rounds) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nTLS (%d CPUs, %s): %d round(s), the servers' order rotating from round to round; tio with tio.WithTLS, gws on net/http with crypto/tls; TLS 1.3, X25519, ECDSA P-256, full handshakes.\n",
		runtime.NumCPU(), runtime.Version(), len(rounds))
	find := func(rs []bench.TLSResult, impl string) (bench.TLSResult, bool) {
		for _, r := range rs {
			if r.Impl == impl {
				return r, true
			}
		}
		return bench.TLSResult{}, false
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
	compare := func(title, unit string, cpuUnit string, get func(tlsRound) []bench.TLSResult, lat func(float64) string) {
		if len(get(rounds[0])) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n\n", title)
		fmt.Fprintf(&b, "| round (order) | tio %s | gws %s | **tio / gws** | per cycle, median (min–max) | p50 / p99 tio | p50 / p99 gws | server CPU %s tio | gws | tio / gws | other CPUs |\n", unit, unit, cpuUnit)
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, rd := range rounds {
			t, _ := find(get(rd), bench.ImplTio)
			g, _ := find(get(rd), bench.ImplGws)
			tc, gc := perMsg(t.ServerCPU, t.Msgs), perMsg(g.ServerCPU, g.Msgs)
			other := "–"
			if t.OtherCPU >= 0 && g.OtherCPU >= 0 && t.Seconds+g.Seconds > 0 {
				other = fmt.Sprintf("%.2f", (t.OtherCPU+g.OtherCPU)/(t.Seconds+g.Seconds))
			}
			fmt.Fprintf(&b, "| %d (%s) | %.0f | %.0f | **%s** | %s | %s / %s | %s / %s | %.2f | %.2f | %s | %s |\n",
				rd.Round, strings.Join(rd.Order, ", "), t.Rate, g.Rate, ratio(t.Rate, g.Rate), spread(cycleRatios(t.LoadResult, g.LoadResult)),
				lat(t.P50), lat(t.P99), lat(g.P50), lat(g.P99), tc, gc, ratio(tc, gc), other)
		}
	}
	us := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " µs" }
	ms := func(v float64) string { return strconv.FormatFloat(v/1e3, 'f', 1, 64) + " ms" }
	compare("(f) wss echo, 1,000 connections × 64 B, one in flight each: echoes per second, round trip, server CPU per echo.",
		"msg/s", "µs/msg", func(r tlsRound) []bench.TLSResult { return r.Echo }, us)
	if len(rounds[0].Idle) > 0 {
		fmt.Fprintf(&b, "\n(g) Server memory per idle wss connection: %d connections, each after its handshake and one 64-byte echo; VmRSS (after − before) / N read %v after the last handshake, no GC forced; and the live Go heap (HeapAlloc) and goroutine stacks (StackInuse) after a forced GC, (after − before) / N.\n\n",
			cfg.tls.idle, cfg.idleWait)
		b.WriteString("| round (order) | RSS B/conn tio | gws | **tio / gws** | heap + stacks B/conn tio | gws | **tio / gws** | heap, stacks tio | heap, stacks gws | VmRSS before → after, MB, tio; gws |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, rd := range rounds {
			var t, g tlsIdleResult
			for _, x := range rd.Idle {
				switch x.Impl {
				case bench.ImplTio:
					t = x
				case bench.ImplGws:
					g = x
				}
			}
			fmt.Fprintf(&b, "| %d (%s) | %.0f | %.0f | **%s** | %.0f | %.0f | **%s** | %.0f, %.0f | %.0f, %.0f | %.1f → %.1f; %.1f → %.1f |\n",
				rd.Round, strings.Join(rd.Order, ", "), t.RSSPerConn, g.RSSPerConn, ratio(t.RSSPerConn, g.RSSPerConn),
				t.HeapPerConn+t.StackPerConn, g.HeapPerConn+g.StackPerConn, ratio(t.HeapPerConn+t.StackPerConn, g.HeapPerConn+g.StackPerConn),
				t.HeapPerConn, t.StackPerConn, g.HeapPerConn, g.StackPerConn,
				mb(t.RSSBefore), mb(t.RSSAfter), mb(g.RSSBefore), mb(g.RSSAfter))
		}
	}
	compare(fmt.Sprintf("(h) Full TLS handshakes per second, %d concurrent dialers; each connection: TCP, TLS 1.3 handshake, WebSocket upgrade (101), close; latency is the whole setup.", cfg.tls.dialers),
		"handshakes/s", "µs/handshake", func(r tlsRound) []bench.TLSResult { return r.Handshakes }, ms)
	return b.String()
}
