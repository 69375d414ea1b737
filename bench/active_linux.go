//go:build linux

package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The active scenario's client: Compare's workers (client_linux.go) with
// the scenario's traffic. The connections only read until the echo is
// turned on; then each sends a message every EchoEvery, the connections
// spread evenly over the period (the one dealt g'th sends at t0 +
// g × EchoEvery / Conns, then every EchoEvery), and every message comes
// back. Every frame received is checked: a broadcast's size, and its
// sequence number against the connection's last one (a gap counts as lost
// broadcasts, a step back fails the connection); an echo's size and bytes,
// and that it answers a message sent. Each phase keeps its own counts and
// latency histograms, per worker.

const maxActivePhases = 8

// activeShared is the state the client's controller shares with its
// workers.
type activeShared struct {
	phase  atomic.Int32 // the phase being counted
	echo   atomic.Bool  // connections send messages
	echoT0 atomic.Int64 // MonoNow when the echo was last turned on
	conns  int
	bsize  int
	esize  int
	period int64 // ns between two messages of a connection
}

type phaseStats struct {
	deliveries, lost, echoesSent, echoes uint64
	blat, elat                           Hist
}

// activeWorker is a worker's part of the scenario; only its worker's
// goroutine touches it while the client runs.
type activeWorker struct {
	sh      *activeShared
	ph      [maxActivePhases]phaseStats
	t0      int64 // the echo's start as last seen
	k       int   // the next message to send since t0, counted over this worker's connections
	payload []byte
	frame   []byte
}

// sendEchoes sends the messages that are due and returns how long, in ms,
// the loop may wait before the next one (at most 10).
func (w *worker) sendEchoes() int {
	a := w.act
	if !a.sh.echo.Load() || len(w.conns) == 0 {
		return 10
	}
	if t0 := a.sh.echoT0.Load(); t0 != a.t0 {
		a.t0, a.k = t0, 0
	}
	ps := &a.ph[a.sh.phase.Load()]
	n, now := len(w.conns), MonoNow()
	for {
		round, i := a.k/n, a.k%n
		g := int64(w.index + i*w.nworkers)
		due := a.t0 + int64(round)*a.sh.period + a.sh.period*g/int64(a.sh.conns)
		if due > now {
			return int(min((due-now+999_999)/1e6, 10))
		}
		a.k++
		c := w.conns[i]
		if c.dead {
			continue
		}
		binary.BigEndian.PutUint64(a.payload[1:], uint64(now))
		a.frame = AppendClientFrame(a.frame[:0], 2, a.payload, c.mask)
		c.sent++
		ps.echoesSent++
		w.writeOut(i, c, a.frame)
	}
}

// consumeActive checks and counts the whole frames buffered.
func (w *worker) consumeActive(c *loadConn) {
	a := w.act
	t := MonoNow()
	ps := &a.ph[a.sh.phase.Load()]
	off := 0
	for {
		b0, p, n, err := ParseServerFrame(c.rbuf[off:c.rlen])
		if err != nil {
			w.fail(c, err)
			return
		}
		if n == 0 {
			break
		}
		off += n
		if b0 != 0x82 || len(p) == 0 {
			w.fail(c, fmt.Errorf("unexpected frame: first byte %#x, %d bytes %q", b0, len(p), p[:min(len(p), 16)]))
			return
		}
		switch p[0] {
		case 'B':
			if len(p) != a.sh.bsize {
				w.fail(c, fmt.Errorf("broadcast of %d bytes, want %d", len(p), a.sh.bsize))
				return
			}
			ts, seq := int64(binary.BigEndian.Uint64(p[1:])), binary.BigEndian.Uint64(p[9:])
			if seq <= c.seq {
				w.fail(c, fmt.Errorf("broadcast %d after %d", seq, c.seq))
				return
			}
			ps.lost += seq - c.seq - 1
			c.seq = seq
			ps.deliveries++
			ps.blat.Add(uint64(max(t-ts, 0)))
		case 'E':
			if len(p) != a.sh.esize || !bytes.Equal(p[9:], a.payload[9:]) {
				w.fail(c, fmt.Errorf("bad echo: %d bytes (want %d)", len(p), a.sh.esize))
				return
			}
			if c.sent == 0 {
				w.fail(c, errors.New("an echo of no message"))
				return
			}
			c.sent--
			ps.echoes++
			ps.elat.Add(uint64(max(t-int64(binary.BigEndian.Uint64(p[1:])), 0)))
		default:
			w.fail(c, fmt.Errorf("unexpected message %q", p[:min(len(p), 16)]))
			return
		}
	}
	if off > 0 {
		c.rlen = copy(c.rbuf, c.rbuf[off:c.rlen])
	}
}

// ActiveClient is the scenario's client in this process.
type ActiveClient struct {
	cfg     ActiveClientConfig
	sh      activeShared
	workers []*worker
	stop    atomic.Bool
	errs    errorLog
	wg      sync.WaitGroup

	// The controller's side: when each phase began.
	names []string
	echo  []bool
	start []time.Time
	cpu   []float64
}

// NewActiveClient returns a client for cfg; Connect opens its connections.
func NewActiveClient(cfg ActiveClientConfig) *ActiveClient {
	return &ActiveClient{cfg: cfg}
}

// Connect opens the connections (64 handshakes at a time), hands them to
// the workers and starts them.
func (ac *ActiveClient) Connect() (int, error) {
	cfg := ac.cfg
	if cfg.Conns <= 0 || cfg.BroadcastSize < MinBroadcastSize || cfg.EchoSize < MinEchoSize || cfg.EchoEvery <= 0 {
		return 0, fmt.Errorf("bench: need connections, broadcasts of at least %d bytes, messages of at least %d and their period", MinBroadcastSize, MinEchoSize)
	}
	if ac.workers != nil {
		return 0, errors.New("bench: connected already")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	cfg.Workers = min(cfg.Workers, cfg.Conns)
	ac.sh = activeShared{conns: cfg.Conns, bsize: cfg.BroadcastSize, esize: cfg.EchoSize, period: int64(cfg.EchoEvery)}
	filler := randomPayload(cfg.EchoSize)
	filler[0] = 'E'
	workers, err := newWorkers(cfg.Workers, func(w *worker) {
		w.stop, w.errs = &ac.stop, &ac.errs
		w.act = &activeWorker{sh: &ac.sh, payload: bytes.Clone(filler)}
	})
	if err != nil {
		return 0, err
	}
	conns, rests, err := dialAll(cfg.Addr, cfg.Conns, 64, 10*time.Second)
	if err != nil {
		closeWorkers(workers)
		return 0, err
	}
	next := 0
	if err := attach(workers, &next, conns, rests, 4096, func(*loadConn) {}); err != nil {
		closeWorkers(workers)
		return 0, err
	}
	ac.workers = workers
	ac.mark("", false)
	for _, w := range workers {
		ac.wg.Add(1)
		go func() {
			defer ac.wg.Done()
			w.run()
		}()
	}
	return len(conns), nil
}

func (ac *ActiveClient) mark(name string, echo bool) {
	ac.names = append(ac.names, name)
	ac.echo = append(ac.echo, echo)
	ac.start = append(ac.start, time.Now())
	ac.cpu = append(ac.cpu, SelfCPU())
}

// Phase ends the current phase and starts the next.
func (ac *ActiveClient) Phase(name string, echo bool) error {
	if ac.workers == nil || ac.stop.Load() {
		return errors.New("bench: not connected")
	}
	if len(ac.names) >= maxActivePhases-1 { // the last one is the drain's
		return fmt.Errorf("bench: at most %d phases", maxActivePhases-2)
	}
	ac.mark(name, echo)
	ac.sh.phase.Store(int32(len(ac.names) - 1))
	if echo && !ac.sh.echo.Load() {
		ac.sh.echoT0.Store(MonoNow())
	}
	ac.sh.echo.Store(echo)
	return nil
}

// End stops the messages, counts what arrives for drain in a phase of its
// own (not reported), stops the workers, closes the connections and
// returns the results.
func (ac *ActiveClient) End(lastSeq uint64, drain time.Duration) (ActiveClientResult, error) {
	if ac.workers == nil || ac.stop.Load() {
		return ActiveClientResult{}, errors.New("bench: not connected")
	}
	ac.sh.echo.Store(false)
	ac.mark("drain", false)
	ac.sh.phase.Store(int32(len(ac.names) - 1))
	time.Sleep(drain)
	ac.stop.Store(true)
	ac.wg.Wait()

	var res ActiveClientResult
	for p := range len(ac.names) - 1 {
		ph := ActivePhase{
			Name: ac.names[p], Echo: ac.echo[p],
			Seconds:   ac.start[p+1].Sub(ac.start[p]).Seconds(),
			ClientCPU: ac.cpu[p+1] - ac.cpu[p],
		}
		var bl, el Hist
		for _, w := range ac.workers {
			s := &w.act.ph[p]
			ph.Deliveries += s.deliveries
			ph.Lost += s.lost
			ph.EchoesSent += s.echoesSent
			ph.Echoes += s.echoes
			bl.Merge(&s.blat)
			el.Merge(&s.elat)
		}
		ph.BP50, ph.BP99, ph.BP999, ph.BMax = bl.Quantile(0.5), bl.Quantile(0.99), bl.Quantile(0.999), bl.Quantile(1)
		ph.EP50, ph.EP99 = el.Quantile(0.5), el.Quantile(0.99)
		res.Phases = append(res.Phases, ph)
	}
	for _, w := range ac.workers {
		for _, c := range w.conns {
			if c.failed {
				res.Dead++
				continue
			}
			if c.seq < lastSeq {
				res.Behind += lastSeq - c.seq
			}
			res.Unanswered += uint64(c.sent)
		}
	}
	res.Errors, res.FirstError = ac.errs.get()
	return res, nil
}
