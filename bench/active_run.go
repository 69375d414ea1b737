package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// ActiveClientConfig is the client side of the scenario.
type ActiveClientConfig struct {
	Addr          string
	Conns         int
	BroadcastSize int           // the payload of the server's broadcasts
	EchoSize      int           // payload bytes of each connection's messages, at least MinEchoSize
	EchoEvery     time.Duration // in the echo phases, each connection sends a message this often (spread evenly)
	Workers       int           // client event loops (default GOMAXPROCS)
}

// ActivePhase is the client's view of one phase.
type ActivePhase struct {
	Name       string  `json:"name"`
	Echo       bool    `json:"echo"`
	Seconds    float64 `json:"seconds"`
	Deliveries uint64  `json:"deliveries"` // broadcasts received (every connection's)
	Lost       uint64  `json:"lost"`       // broadcasts a connection missed (sequence gaps)
	EchoesSent uint64  `json:"echoes_sent"`
	Echoes     uint64  `json:"echoes"` // echoes received
	// Latency of the broadcasts (from the server's stamp to the client's
	// read) and the echoes' round trip, µs.
	BP50  float64 `json:"bcast_p50_us"`
	BP99  float64 `json:"bcast_p99_us"`
	BP999 float64 `json:"bcast_p999_us"`
	BMax  float64 `json:"bcast_max_us"`
	EP50  float64 `json:"echo_p50_us"`
	EP99  float64 `json:"echo_p99_us"`
	// ClientCPU is the client's CPU seconds in the phase.
	ClientCPU float64 `json:"client_cpu"`
}

// ActiveClientResult is what the client measured, phase by phase (the
// first is what arrived before the first Phase call, normally nothing).
type ActiveClientResult struct {
	Phases []ActivePhase `json:"phases"`
	// Behind counts the broadcasts, up to the last one made, that had not
	// reached a live connection when the client stopped.
	Behind uint64 `json:"behind"`
	// Unanswered counts the messages of live connections that had not come
	// back when the client stopped.
	Unanswered uint64 `json:"unanswered"`
	Dead       int    `json:"dead"` // connections lost
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// ActiveServerCtl is how RunActive drives a server: ActiveServer in this
// process, or a benchserver subprocess (benchrun).
type ActiveServerCtl interface {
	PID() int
	StartBroadcast() error
	StopBroadcast() error
	Stats() (BroadcastStats, error)
}

// ActiveClientCtl is how RunActive drives the client: ActiveClient in this
// process, or a benchclient subprocess (benchrun).
type ActiveClientCtl interface {
	// Connect opens the connections and returns how many.
	Connect() (int, error)
	// Phase ends the current phase and starts another, with or without the
	// connections' own messages.
	Phase(name string, echo bool) error
	// End stops the connections' messages, waits drain for the last
	// broadcasts (lastSeq is the last one's sequence number), closes the
	// connections and returns the results.
	End(lastSeq uint64, drain time.Duration) (ActiveClientResult, error)
}

// ActivePlan is the scenario's timing.
type ActivePlan struct {
	Idle  time.Duration // connected, nothing sent (default 10 s)
	Phase time.Duration // each of the broadcast phases (default 60 s)
	// RSS is sampled every Sample (default 1 s); a phase's RSS is the
	// median of the samples over its last Tail (default 20 s, at most half
	// the phase).
	Sample, Tail time.Duration
	Drain        time.Duration // after the last broadcast (default 2 s)
}

func (p *ActivePlan) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&p.Idle, 10*time.Second)
	def(&p.Phase, 60*time.Second)
	def(&p.Sample, time.Second)
	def(&p.Tail, 20*time.Second)
	def(&p.Drain, 2*time.Second)
}

// ActivePhaseResult is one phase, measured from both sides.
type ActivePhaseResult struct {
	ActivePhase
	// RSS is the server's VmRSS, the median over the phase's tail, and
	// RSSMax the largest sample of the phase; Samples every sample.
	RSS     int64   `json:"rss"`
	RSSMax  int64   `json:"rss_max"`
	Samples []int64 `json:"rss_samples"`
	// BytesPerConn is (RSS − the idle phase's RSS) / connections for the
	// broadcast phases, (RSS − RSS before connecting) / connections for
	// the idle phase.
	BytesPerConn float64 `json:"bytes_per_conn"`
	ServerCPU    float64 `json:"server_cpu"` // seconds, -1 unknown
	// CPUPerMsg is the server's CPU µs per message delivered (broadcasts
	// received plus echoes received), 0 if none was.
	CPUPerMsg float64 `json:"cpu_per_msg_us"`
	// OtherCPU is the CPUs (CPU seconds per second) that processes other
	// than the server and the client used in the phase, -1 unknown.
	OtherCPU float64        `json:"other_cpus"`
	Server   BroadcastStats `json:"server"` // the server's stats at the phase's end
}

// ActiveResult is one server's run of the scenario.
type ActiveResult struct {
	Impl      string              `json:"impl"`
	Conns     int                 `json:"conns"`
	Load      string              `json:"loadavg,omitempty"` // /proc/loadavg when the run started
	RSSBefore int64               `json:"rss_before"`        // VmRSS before connecting
	Phases    []ActivePhaseResult `json:"phases"`            // idle, broadcast, broadcast+echo
	// Behind, Unanswered, Dead, Errors and FirstError: see
	// ActiveClientResult.
	Behind     uint64 `json:"behind"`
	Unanswered uint64 `json:"unanswered"`
	Dead       int    `json:"dead"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// The phases RunActive runs, in order.
const (
	PhaseIdle      = "idle"
	PhaseBroadcast = "broadcast"
	PhaseEcho      = "broadcast+echo"
)

// RunActive runs the scenario: it reads the server's VmRSS, has the client
// connect, samples VmRSS through the idle phase, starts the broadcasts for
// the broadcast phase, turns the connections' messages on for the
// broadcast + echo phase, then stops both and collects the results. Each
// phase's server CPU time is read at its edges. A client that lost
// connections is reported in the result, not as an error.
func RunActive(plan ActivePlan, srv ActiveServerCtl, cli ActiveClientCtl) (ActiveResult, error) {
	plan.defaults()
	pid := srv.PID()
	var res ActiveResult
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Load = strings.TrimSpace(string(b))
	}
	var err error
	if res.RSSBefore, err = ProcRSS(pid); err != nil {
		return res, err
	}
	if res.Conns, err = cli.Connect(); err != nil {
		return res, fmt.Errorf("connecting: %w", err)
	}
	if res.Conns <= 0 {
		return res, errors.New("bench: no connection")
	}
	type phase struct {
		name string
		echo bool
		d    time.Duration
	}
	phases := []phase{{PhaseIdle, false, plan.Idle}, {PhaseBroadcast, false, plan.Phase}, {PhaseEcho, true, plan.Phase}}
	for i, ph := range phases {
		if err := cli.Phase(ph.name, ph.echo); err != nil {
			return res, fmt.Errorf("client, phase %s: %w", ph.name, err)
		}
		sys0, cpu0 := systemCPU(), ProcCPU(pid)
		if ph.name == PhaseBroadcast {
			if err := srv.StartBroadcast(); err != nil {
				return res, fmt.Errorf("server: %w", err)
			}
		}
		var r ActivePhaseResult
		if r.Samples, err = sampleRSS(pid, ph.d, plan.Sample); err != nil {
			return res, err
		}
		sys1, cpu1 := systemCPU(), ProcCPU(pid)
		r.ServerCPU, r.OtherCPU = -1, -1
		if cpu0 >= 0 && cpu1 >= 0 {
			r.ServerCPU = cpu1 - cpu0
			if sys0.ok && sys1.ok {
				r.OtherCPU = sys1.tasks - sys0.tasks - r.ServerCPU // the client's time is taken off below
			}
		}
		if r.Server, err = srv.Stats(); err != nil {
			return res, fmt.Errorf("server stats: %w", err)
		}
		// The RSS over the last Tail of the phase, at most its second half.
		tail := min(plan.Tail, ph.d/2)
		k := max(1, int(tail/plan.Sample))
		k = min(k, len(r.Samples))
		r.RSS, r.RSSMax = medianInt(r.Samples[len(r.Samples)-k:]), slices.Max(r.Samples)
		base := res.RSSBefore
		if i > 0 {
			base = res.Phases[0].RSS
		}
		r.BytesPerConn = float64(r.RSS-base) / float64(res.Conns)
		r.Name, r.Echo = ph.name, ph.echo
		res.Phases = append(res.Phases, r)
	}
	if err := srv.StopBroadcast(); err != nil {
		return res, fmt.Errorf("server: %w", err)
	}
	st, err := srv.Stats()
	if err != nil {
		return res, fmt.Errorf("server stats: %w", err)
	}
	cr, err := cli.End(st.Broadcasts, plan.Drain)
	if err != nil {
		return res, fmt.Errorf("client: %w", err)
	}
	// The client's phases: what came before the first Phase call, then one
	// per Phase call.
	if len(cr.Phases) != len(phases)+1 {
		return res, fmt.Errorf("bench: the client reported %d phases, want %d", len(cr.Phases), len(phases)+1)
	}
	for i := range res.Phases {
		r := &res.Phases[i]
		r.ActivePhase = cr.Phases[i+1]
		if r.OtherCPU >= 0 && r.Seconds > 0 {
			r.OtherCPU = max(0, r.OtherCPU-r.ClientCPU) / r.Seconds
		}
		if n := r.Deliveries + r.Echoes; n > 0 && r.ServerCPU >= 0 {
			r.CPUPerMsg = r.ServerCPU / float64(n) * 1e6
		}
	}
	res.Behind, res.Unanswered, res.Dead = cr.Behind, cr.Unanswered, cr.Dead
	res.Errors, res.FirstError = cr.Errors, cr.FirstError
	return res, nil
}

// sampleRSS reads pid's VmRSS every `every` for d, the first read one
// period in.
func sampleRSS(pid int, d, every time.Duration) ([]int64, error) {
	var v []int64
	start := time.Now()
	for i := 1; ; i++ {
		next := start.Add(time.Duration(i) * every)
		if next.After(start.Add(d)) {
			break
		}
		time.Sleep(time.Until(next))
		rss, err := ProcRSS(pid)
		if err != nil {
			return v, err
		}
		v = append(v, rss)
	}
	if len(v) == 0 {
		rss, err := ProcRSS(pid)
		if err != nil {
			return v, err
		}
		v = append(v, rss)
	}
	return v, nil
}

func medianInt(v []int64) int64 {
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
