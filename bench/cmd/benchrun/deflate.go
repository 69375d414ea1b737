package main

import (
	"encoding/json"
	"fmt"
	"math"
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

// The compression scenarios, not run unless asked for ("-scenarios
// deflate" runs all three), each -rounds times, the peers' order rotating
// from round to round. Every server is a "peer" (bench.StartDeflate): tio
// or gws with permessage-deflate without context takeover (tio, gws), with
// it (tio-ct, gws-ct) or off (tio-off, gws-off); every client connection
// offers permessage-deflate:
//
//   - (i) fan-out: -receivers connections per peer that only read, and a
//     sender keeping -fan-inflight broadcasts in flight, each a -dsize-byte
//     JSON text message compressed by the sender, that the server sends to
//     every connection; the peers interleaved in slices
//     (bench.CompareFanout);
//   - (j) echo: -deflate-conns connections per peer × one -dsize-byte JSON
//     text message in flight each, compressed by the client, echoed (and
//     compressed) by the server, interleaved in slices (bench.Compare with
//     Deflate);
//   - (k) memory per idle connection: each peer alone, -deflate-idle
//     connections that negotiated (or were refused) compression and echoed
//     one -dsize-byte JSON message, then idle; VmRSS, and the Go heap and
//     stacks after a GC, as in (g).

type deflateConfig struct {
	fanPeers, echoPeers, idlePeers []string
	receivers, fanInflight         int
	size, conns, idle              int
}

// deflateRound is what one round of the compression scenarios measured.
type deflateRound struct {
	Round     int                  `json:"round"`
	FanOrder  []string             `json:"fanout_order,omitempty"`
	Fanout    []bench.FanoutResult `json:"fanout,omitempty"`
	EchoOrder []string             `json:"echo_order,omitempty"`
	Echo      []bench.LoadResult   `json:"echo,omitempty"`
	IdleOrder []string             `json:"idle_order,omitempty"`
	Idle      []deflateIdleResult  `json:"idle,omitempty"`
}

// deflateIdleResult is (k)'s figure for one peer: (g)'s, plus the
// server's answer to the offer and how many echoes came compressed.
type deflateIdleResult struct {
	tlsIdleResult
	Answer     string `json:"answer"`
	Compressed int    `json:"compressed"`
}

// deflateScenarios reports whether any compression scenario is asked for.
func deflateScenarios(cfg config) bool { return cfg.scen["i"] || cfg.scen["j"] || cfg.scen["k"] }

// rotate returns v rotated left by r.
func rotate(v []string, r int) []string {
	if len(v) == 0 {
		return nil
	}
	k := r % len(v)
	return append(slices.Clone(v[k:]), v[:k]...)
}

func runDeflate(cfg config) ([]deflateRound, error) {
	dc := cfg.deflate
	for _, peers := range [][]string{dc.fanPeers, dc.echoPeers, dc.idlePeers} {
		for _, p := range peers {
			if bench.PeerImpl(p) == "" {
				return nil, fmt.Errorf("unknown peer %q (want one of %s)", p, strings.Join(bench.DeflatePeers, ", "))
			}
		}
	}
	var rounds []deflateRound
	for r := range cfg.tls.rounds {
		round := deflateRound{Round: r + 1}
		if cfg.scen["i"] {
			round.FanOrder = rotate(dc.fanPeers, r)
			res, err := runFanout(cfg, round.FanOrder)
			if err != nil {
				return rounds, fmt.Errorf("round %d, fan-out: %w", r+1, err)
			}
			for _, x := range res {
				logf("round %d i %-7s %9.0f deliveries/s  p50 %.1f ms p99 %.1f ms  %.0f B/delivery, %.0f%% compressed, %d stalls, %d lost  cpu: server %.2fs (%.2f µs/delivery) client %.2fs other %.2fs over %.1fs",
					r+1, x.Impl, x.Rate, x.P50/1e3, x.P99/1e3, x.WirePerMsg, 100*x.CompressedShare, x.Stalls, x.Lost,
					x.ServerCPU, perMsg(x.ServerCPU, x.Msgs), x.ClientCPU, x.OtherCPU, x.Seconds)
			}
			round.Fanout = res
		}
		if cfg.scen["j"] {
			round.EchoOrder = rotate(dc.echoPeers, r)
			res, err := runDeflateEcho(cfg, round.EchoOrder)
			if err != nil {
				return rounds, fmt.Errorf("round %d, echo: %w", r+1, err)
			}
			for _, x := range res {
				logf("round %d j %-7s %9.0f msg/s  %.0f B/echo, %.0f%% compressed  cpu: server %.2fs (%.2f µs/msg) client %.2fs other %.2fs over %.1fs",
					r+1, x.Impl, x.Rate, x.WirePerMsg, 100*x.CompressedShare, x.ServerCPU, perMsg(x.ServerCPU, x.Msgs), x.ClientCPU, x.OtherCPU, x.Seconds)
			}
			round.Echo = res
		}
		if cfg.scen["k"] {
			round.IdleOrder = rotate(dc.idlePeers, r)
			for _, peer := range round.IdleOrder {
				res, err := runDeflateIdle(cfg, peer)
				if err != nil {
					return rounds, fmt.Errorf("round %d, idle, %s: %w", r+1, peer, err)
				}
				logf("round %d k %-7s %6.0f B/conn RSS, %6.0f heap + %5.0f stacks after GC (%d/%d compressed, answer %q)",
					r+1, peer, res.RSSPerConn, res.HeapPerConn, res.StackPerConn, res.Compressed, res.Conns, res.Answer)
				round.Idle = append(round.Idle, res)
			}
		}
		rounds = append(rounds, round)
	}
	return rounds, nil
}

// startPeers starts a benchserver per peer and returns the client's
// -targets and a function that stops them.
func startPeers(cfg config, peers []string) (string, func(), error) {
	var (
		servers []*server
		targets []string
	)
	stop := func() {
		for _, s := range servers {
			s.stop()
		}
	}
	for _, p := range peers {
		s, err := startServer(cfg, bench.PeerImpl(p), false, "-peer", p)
		if err != nil {
			stop()
			return "", nil, err
		}
		servers = append(servers, s)
		targets = append(targets, fmt.Sprintf("%s=%s@%d", p, s.addr, s.cmd.Process.Pid))
	}
	return strings.Join(targets, ","), stop, nil
}

// runClient runs benchclient with args and decodes its JSON answer, one
// result per peer, into res.
func runClient(cfg config, args []string, res any) error {
	cmd := exec.Command(cfg.client, args...)
	cmd.Stderr = os.Stderr
	outb, runErr := childproc.Output(cmd, cfg.clientCPUs)
	if err := json.Unmarshal(outb, res); err != nil {
		if runErr != nil {
			return runErr
		}
		return fmt.Errorf("client output %q: %v", outb, err)
	}
	return runErr
}

func (c config) sliceArgs() []string {
	return []string{"-warmup", c.warmup.String(), "-cycles", strconv.Itoa(c.cycles), "-slice", c.slice.String(), "-settle", c.settle.String()}
}

func runFanout(cfg config, peers []string) ([]bench.FanoutResult, error) {
	targets, stop, err := startPeers(cfg, peers)
	if err != nil {
		return nil, err
	}
	defer stop()
	dc := cfg.deflate
	args := append([]string{"-fanout", "-targets", targets, "-receivers", strconv.Itoa(dc.receivers),
		"-inflight", strconv.Itoa(dc.fanInflight), "-size", strconv.Itoa(dc.size)}, cfg.sliceArgs()...)
	var res []bench.FanoutResult
	err = runClient(cfg, args, &res)
	if err == nil && len(res) != len(peers) {
		err = fmt.Errorf("%d results for %d peers", len(res), len(peers))
	}
	if err == nil && res[0].Errors > 0 {
		err = fmt.Errorf("%d connections failed, first: %s", res[0].Errors, res[0].FirstError)
	}
	return res, err
}

func runDeflateEcho(cfg config, peers []string) ([]bench.LoadResult, error) {
	targets, stop, err := startPeers(cfg, peers)
	if err != nil {
		return nil, err
	}
	defer stop()
	dc := cfg.deflate
	args := append([]string{"-deflate", "-targets", targets, "-conns", strconv.Itoa(dc.conns),
		"-inflight", "1", "-size", strconv.Itoa(dc.size)}, cfg.sliceArgs()...)
	var res []bench.LoadResult
	err = runClient(cfg, args, &res)
	if err == nil && len(res) != len(peers) {
		err = fmt.Errorf("%d results for %d peers", len(res), len(peers))
	}
	if err == nil && res[0].Errors > 0 {
		err = fmt.Errorf("%d connections failed, first: %s", res[0].Errors, res[0].FirstError)
	}
	return res, err
}

// runDeflateIdle measures peer's memory per idle connection (k).
func runDeflateIdle(cfg config, peer string) (deflateIdleResult, error) {
	n := cfg.deflate.idle
	res := deflateIdleResult{tlsIdleResult: tlsIdleResult{Impl: peer, Conns: n}}
	s, err := startServer(cfg, bench.PeerImpl(peer), true, "-peer", peer)
	if err != nil {
		return res, err
	}
	defer s.stop()
	pid := s.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	if res.RSSBefore, err = bench.ProcRSS(pid); err != nil {
		return res, err
	}
	if res.MemBefore, err = serverMemCmd(s, "mem flush"); err != nil {
		return res, err
	}
	cl, err := startIdleClient(cfg, "-deflate", "-idle", "-addr", s.addr, "-conns", strconv.Itoa(n), "-size", strconv.Itoa(cfg.deflate.size), "-hold", "300s")
	if err != nil {
		return res, err
	}
	defer cl.stop()
	br := cl.out
	line, err := readLine(br, 240*time.Second)
	rest, ok := strings.CutPrefix(line, "answer ")
	if err != nil || !ok {
		return res, fmt.Errorf("idle client: %q, %v", line, err)
	}
	k := strings.LastIndexByte(rest, ' ')
	if k < 0 {
		return res, fmt.Errorf("idle client: %q", line)
	}
	q, z := rest[:k], rest[k+1:]
	if err := json.Unmarshal([]byte(q), &res.Answer); err != nil {
		return res, fmt.Errorf("idle client: %q: %v", line, err)
	}
	res.Compressed, _ = strconv.Atoi(z)
	if line, err = readLine(br, 30*time.Second); err != nil || line != "connected "+strconv.Itoa(n) {
		return res, fmt.Errorf("idle client: %q, %v", line, err)
	}
	time.Sleep(cfg.idleWait)
	if res.RSSAfter, err = bench.ProcRSS(pid); err != nil {
		return res, err
	}
	if res.MemAfter, err = serverMemCmd(s, "mem flush"); err != nil {
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

// deflatePairs are the peers compared, tio's first.
var deflatePairs = [][2]string{
	{bench.PeerTio, bench.PeerGws}, {bench.PeerTioCT, bench.PeerGwsCT}, {bench.PeerTioOff, bench.PeerGwsOff},
}

// deflateMarkdown reports the compression scenarios: per scenario, a table
// with a row per round and pair of peers (tio's over gws's).
func deflateMarkdown(cfg config, rounds []deflateRound) string {
	if len(rounds) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nCompression (%d CPUs, %s): %d round(s), the peers' order rotating from round to round; permessage-deflate offered by every client connection; tio, gws: without context takeover; -ct: with it (4 KiB windows); -off: declined.\n",
		runtime.NumCPU(), runtime.Version(), len(rounds))
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
	other := func(a, b bench.LoadResult) string {
		if a.OtherCPU < 0 || b.OtherCPU < 0 || a.Seconds+b.Seconds <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", (a.OtherCPU+b.OtherCPU)/(a.Seconds+b.Seconds))
	}
	if len(rounds[0].Fanout) > 0 {
		fmt.Fprintf(&b, "\n(i) Fan-out of a %d-byte JSON text message to %d receivers per server, %d broadcasts in flight: deliveries per second, delivery latency, server CPU per delivery, payload bytes per delivery.\n\n",
			cfg.deflate.size, cfg.deflate.receivers, cfg.deflate.fanInflight)
		b.WriteString("| round (order) | peers | deliveries/s | **tio / gws** | per cycle, median (min–max) | p50 / p99 ms | **p99 tio / gws** | server CPU µs/delivery | **CPU tio / gws** | B/delivery | stalls, lost | other CPUs |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, rd := range rounds {
			find := func(p string) (bench.FanoutResult, bool) {
				for _, r := range rd.Fanout {
					if r.Impl == p {
						return r, true
					}
				}
				return bench.FanoutResult{}, false
			}
			for _, pr := range deflatePairs {
				t, ok1 := find(pr[0])
				g, ok2 := find(pr[1])
				if !ok1 || !ok2 {
					continue
				}
				tc, gc := perMsg(t.ServerCPU, t.Msgs), perMsg(g.ServerCPU, g.Msgs)
				fmt.Fprintf(&b, "| %d (%s) | %s, %s | %.0f, %.0f | **%s** | %s | %.1f / %.1f, %.1f / %.1f | **%s** | %.2f, %.2f | **%s** | %.0f, %.0f | %d, %d; %d, %d | %s |\n",
					rd.Round, strings.Join(rd.FanOrder, ", "), pr[0], pr[1], t.Rate, g.Rate, ratio(t.Rate, g.Rate),
					spread(cycleRatios(t.LoadResult, g.LoadResult)), t.P50/1e3, t.P99/1e3, g.P50/1e3, g.P99/1e3, ratio(t.P99, g.P99),
					tc, gc, ratio(tc, gc), t.WirePerMsg, g.WirePerMsg, t.Stalls, t.Lost, g.Stalls, g.Lost, other(t.LoadResult, g.LoadResult))
			}
		}
	}
	if len(rounds[0].Echo) > 0 {
		fmt.Fprintf(&b, "\n(j) Echo of %d-byte JSON text messages, %d connections per server, one in flight each: echoes per second, server CPU per echo, payload bytes per echo.\n\n",
			cfg.deflate.size, cfg.deflate.conns)
		b.WriteString("| round (order) | peers | msg/s | **tio / gws** | per cycle, median (min–max) | server CPU µs/msg | **CPU tio / gws** | B/echo | other CPUs |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, rd := range rounds {
			find := func(p string) (bench.LoadResult, bool) {
				for _, r := range rd.Echo {
					if r.Impl == p {
						return r, true
					}
				}
				return bench.LoadResult{}, false
			}
			for _, pr := range deflatePairs {
				t, ok1 := find(pr[0])
				g, ok2 := find(pr[1])
				if !ok1 || !ok2 {
					continue
				}
				tc, gc := perMsg(t.ServerCPU, t.Msgs), perMsg(g.ServerCPU, g.Msgs)
				fmt.Fprintf(&b, "| %d (%s) | %s, %s | %.0f, %.0f | **%s** | %s | %.2f, %.2f | **%s** | %.0f, %.0f | %s |\n",
					rd.Round, strings.Join(rd.EchoOrder, ", "), pr[0], pr[1], t.Rate, g.Rate, ratio(t.Rate, g.Rate),
					spread(cycleRatios(t, g)), tc, gc, ratio(tc, gc), t.WirePerMsg, g.WirePerMsg, other(t, g))
			}
		}
	}
	if len(rounds[0].Idle) > 0 {
		fmt.Fprintf(&b, "\n(k) Server memory per idle connection: %d connections per peer, each after its handshake and one %d-byte JSON echo; VmRSS (after − before) / N read %v after the last handshake, and the live heap + goroutine stacks after a forced GC, (after − before) / N; each compressed peer's excess over the same server with compression off.\n\n",
			cfg.deflate.idle, cfg.deflate.size, cfg.idleWait)
		b.WriteString("| round (order) | peer | answer | RSS B/conn | heap + stacks B/conn | **heap + stacks − off** | RSS − off |\n")
		b.WriteString("|---|---|---|---:|---:|---:|---:|\n")
		for _, rd := range rounds {
			m := map[string]deflateIdleResult{}
			for _, x := range rd.Idle {
				m[x.Impl] = x
			}
			for _, x := range rd.Idle {
				live := x.HeapPerConn + x.StackPerConn
				dl, dr := "–", "–"
				if off, ok := m[bench.PeerImpl(x.Impl)+"-off"]; ok && off.Impl != x.Impl {
					dl = fmt.Sprintf("%+d", int64(math.Round(live-off.HeapPerConn-off.StackPerConn)))
					dr = fmt.Sprintf("%+d", int64(math.Round(x.RSSPerConn-off.RSSPerConn)))
				}
				answer := x.Answer
				if answer == "" {
					answer = "(none)"
				}
				fmt.Fprintf(&b, "| %d (%s) | %s | `%s` | %.0f | %.0f | **%s** | %s |\n",
					rd.Round, strings.Join(rd.IdleOrder, ", "), x.Impl, answer, x.RSSPerConn, live, dl, dr)
			}
		}
	}
	return b.String()
}
