//go:build !linux

package main

import (
	"errors"
	"time"
)

type config struct {
	Addr      string
	Receivers int
	Inflight  int
	Size      int
	Warmup    time.Duration
	Duration  time.Duration
	Workers   int
	ServerPID int
}

type result struct {
	Impl                   string
	Seconds, Rate          float64
	P50, P99, P999, Max    float64
	Sent, Deliveries, Lost uint64
	Stalls                 uint64
	ServerCPU, ClientCPU   float64
	Errors                 int
	FirstError             string
}

func runClient(config) (result, error) {
	return result{}, errors.New("the broadcast client needs Linux (epoll)")
}
