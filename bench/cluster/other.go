//go:build !linux

// Command cluster measures tio's cluster relay; it runs on Linux.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "cluster: the benchmark runs on Linux")
	os.Exit(1)
}
