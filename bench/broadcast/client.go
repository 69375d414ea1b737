package main

import "time"

// The client's configuration and result, shared by the Linux client and the
// stub elsewhere so that main and the tests build on every system.

type config struct {
	Addr      string
	Receivers int
	Inflight  int
	Size      int
	Warmup    time.Duration
	Duration  time.Duration
	Workers   int
	ServerPID int
	// PaceOnSender paces the sender on its own copies (a new broadcast when
	// one comes back to it) instead of on delivery to every receiver: a
	// server that serves the sender first can then let queues grow.
	PaceOnSender bool
}

type result struct {
	Impl       string  `json:"impl,omitempty"`
	Receivers  int     `json:"receivers"`
	Inflight   int     `json:"inflight"`
	Pace       string  `json:"pace"`
	Size       int     `json:"size"`
	Seconds    float64 `json:"seconds"`
	Sent       uint64  `json:"sent"`       // broadcasts sent in the window
	Deliveries uint64  `json:"deliveries"` // frames received by the receivers in the window
	Rate       float64 `json:"rate"`       // deliveries per second
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	P999       float64 `json:"p999_us"`
	Max        float64 `json:"max_us"`
	Lost       uint64  `json:"lost"`       // sequence gaps seen by receivers (whole run)
	Stalls     uint64  `json:"stalls"`     // broadcasts that did not reach every receiver within 0.5 s
	ServerCPU  float64 `json:"server_cpu"` // CPU seconds in the window, -1 unknown
	ClientCPU  float64 `json:"client_cpu"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}
