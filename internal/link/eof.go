package link

import (
	"errors"
	"io"
	"syscall"
)

// isEOF reports whether a gnet close error is the peer's orderly or abrupt
// hang-up rather than a failure on our side.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
