package cluster

// Crash stops n as a killed process would: no goodbye to the other nodes,
// nothing flushed.
func (n *Node) Crash() { n.crash() }
