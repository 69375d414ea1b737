//go:build !linux

package bench

import (
	"errors"
	"time"
)

var errLinuxOnly = errors.New("bench: the load client and the memory probe need Linux (epoll, /proc)")

// Load needs Linux.
func Load(LoadConfig) (LoadResult, error) { return LoadResult{}, errLinuxOnly }

// Compare needs Linux.
func Compare(CompareConfig) ([]LoadResult, error) { return nil, errLinuxOnly }

// ProcRSS needs Linux.
func ProcRSS(int) (int64, error) { return 0, errLinuxOnly }

// ProcCPU needs Linux.
func ProcCPU(int) float64 { return -1 }

// SelfCPU needs Linux.
func SelfCPU() float64 { return -1 }

type sysCPU struct {
	tasks, softirq float64
	ok             bool
}

func systemCPU() sysCPU { return sysCPU{} }

// ActiveClient needs Linux.
type ActiveClient struct{}

// NewActiveClient returns a client that needs Linux.
func NewActiveClient(ActiveClientConfig) *ActiveClient { return &ActiveClient{} }

// Connect needs Linux.
func (*ActiveClient) Connect() (int, error) { return 0, errLinuxOnly }

// Phase needs Linux.
func (*ActiveClient) Phase(string, bool) error { return errLinuxOnly }

// End needs Linux.
func (*ActiveClient) End(uint64, time.Duration) (ActiveClientResult, error) {
	return ActiveClientResult{}, errLinuxOnly
}

// CompareFanout needs Linux.
func CompareFanout(FanoutConfig) ([]FanoutResult, error) { return nil, errLinuxOnly }
