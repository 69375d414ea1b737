//go:build !linux

package bench

import "errors"

var errLinuxOnly = errors.New("bench: the load client and the memory probe need Linux (epoll, /proc)")

// Load needs Linux.
func Load(LoadConfig) (LoadResult, error) { return LoadResult{}, errLinuxOnly }

// Compare needs Linux.
func Compare(CompareConfig) ([]LoadResult, error) { return nil, errLinuxOnly }

// ProcRSS needs Linux.
func ProcRSS(int) (int64, error) { return 0, errLinuxOnly }
