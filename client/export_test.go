package client

// SetAttemptHook makes c call f when a connection attempt begins (tests
// watch when reconnects hit the server).
func SetAttemptHook(c *Client, f func()) { c.onAttempt = f }
