package bench

import "time"

// interleaver runs the interleaved time slices of a comparison (see
// CompareConfig) for a client that counts what it completes per target:
// a warm-up per target in turn, then cycles giving every target one slice,
// in an order that rotates from cycle to cycle, the first settle of each
// slice not measured. It reads the CPU times at the edges of every
// measured window and fills one LoadResult per target (Msgs, Seconds,
// Slices, the CPU fields and Rate; the caller sets the rest).
type interleaver struct {
	targets       []Target
	warmup        time.Duration
	slice, settle time.Duration
	cycles        int
	// activate makes target t the one the client works for (-1: none);
	// measure marks a measured window of target t (-1: none), for the
	// client's latency figures.
	activate, measure func(t int)
	count             func(t int) uint64 // completed so far for target t
}

func (s interleaver) run() []LoadResult {
	nt := len(s.targets)
	serversCPU := func() float64 {
		sum := 0.0
		for _, tg := range s.targets {
			if c := ProcCPU(tg.PID); c > 0 {
				sum += c
			}
		}
		return sum
	}
	measure := s.measure
	if measure == nil {
		measure = func(int) {}
	}
	res := make([]LoadResult, nt)
	for t, tg := range s.targets {
		res[t].Impl = tg.Name
		s.activate(t)
		time.Sleep(s.warmup)
	}
	for cyc := range s.cycles {
		for j := range nt {
			t := (cyc + j) % nt
			s.activate(t)
			time.Sleep(s.settle)
			measure(t)
			sys0, srv0, all0, cli0 := systemCPU(), ProcCPU(s.targets[t].PID), serversCPU(), SelfCPU()
			n0, t0 := s.count(t), time.Now()
			time.Sleep(s.slice - s.settle)
			n1, t1 := s.count(t), time.Now()
			sys1, srv1, all1, cli1 := systemCPU(), ProcCPU(s.targets[t].PID), serversCPU(), SelfCPU()
			measure(-1)

			r := &res[t]
			secs := t1.Sub(t0).Seconds()
			r.Msgs += n1 - n0
			r.Seconds += secs
			r.Slices = append(r.Slices, float64(n1-n0)/secs)
			r.ServerCPU += srv1 - srv0
			r.ClientCPU += cli1 - cli0
			if sys0.ok && sys1.ok {
				r.OtherCPU += max(0, sys1.tasks-sys0.tasks-(all1-all0)-(cli1-cli0))
				r.SoftirqCPU += sys1.softirq - sys0.softirq
			} else {
				r.OtherCPU, r.SoftirqCPU = -1, -1
			}
		}
	}
	s.activate(-1)
	for t, tg := range s.targets {
		r := &res[t]
		if r.Seconds > 0 {
			r.Rate = float64(r.Msgs) / r.Seconds
		}
		if tg.PID <= 0 {
			r.ServerCPU = -1
		}
	}
	return res
}
