//go:build race

package tlsconn

// raceEnabled: the race detector changes allocation sizes and slows
// handshakes; memory figures are only logged then.
const raceEnabled = true
