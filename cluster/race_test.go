//go:build race

package cluster

// raceEnabled: the race detector changes allocation counts.
const raceEnabled = true
