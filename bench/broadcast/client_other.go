//go:build !linux

package main

import "errors"

func runClient(config) (result, error) {
	return result{}, errors.New("the broadcast client needs Linux (epoll)")
}
