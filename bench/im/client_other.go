//go:build !linux

package main

import "errors"

func runClient(config) (result, error) {
	return result{}, errors.New("the chat load client needs Linux (epoll)")
}
