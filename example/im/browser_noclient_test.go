//go:build !tioclient

package main

import (
	"testing"

	"github.com/tiogo/tio/example/im/imserver"
)

// termSays needs package client (see browser_cli_test.go): until it is
// in main, only during runs.
func termSays(t *testing.T, _ *imserver.Server, _ *page, during func()) {
	t.Log("the terminal client's part needs package client: go test -tags tioclient")
	during()
}
