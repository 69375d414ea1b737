package tio

import (
	"context"
	"errors"
	"fmt"

	"github.com/tiogo/tio/channel"
	"github.com/tiogo/tio/codec"
)

// Relay carries sends and closes to the other nodes of a cluster, so that a
// Send to a user reaches the user's connections on every node (t-io's
// TioClusterConfig). Package cluster implements it over NATS; set it with
// WithRelay. The server delivers to its own connections itself and hands
// the relay each Send, SendWait and Close whose target other nodes may share
// (not ID and IDs targets: channel ids belong to one server), once; the
// relay publishes it and, on the other nodes, delivers it through their
// Local. Filters are functions and stay on the node where they were given:
// other nodes deliver to every channel of the target (Exclude(sender) needs
// nothing more: the sender is on the origin node).
type Relay interface {
	// Start is called by the server's Start, before it listens, with the
	// server's local delivery, which the relay uses for what other nodes
	// publish. An error fails Start.
	Start(local Local) error
	// Publish hands the relay a send or close made on this node. It runs
	// on the goroutine that sent — an event loop, for an inline handler —
	// and must not block: queue and return, or fail fast. Its error is
	// returned by the Send or Close, wrapping ErrRelay, after the local
	// delivery (which it does not undo).
	Publish(m RelayMessage) error
	// Stop is called by Shutdown once the server's connections are closed.
	Stop(ctx context.Context) error
}

// Local delivers to one server's own connections only: what a Relay
// receives from other nodes goes through it, and never back to the relay.
type Local interface {
	Send(t Target, p *codec.Packet) (SendResult, error)
	Close(t Target, r channel.Reason, text string) (int, error)
}

// RelayOp is what a RelayMessage asks.
type RelayOp uint8

// Relayed operations.
const (
	RelaySend  RelayOp = 1 // send Packet to Target
	RelayClose RelayOp = 2 // close Target's channels for Reason
)

// RelayMessage is one send or close for the other nodes. Packet's Body
// belongs to the caller only during Publish: a relay that keeps it past
// Publish copies it (encoding it for the wire does).
type RelayMessage struct {
	Op     RelayOp
	Target Target
	Packet *codec.Packet  // for RelaySend
	Reason channel.Reason // for RelayClose
	Text   string         // for RelayClose: the farewell's words, if any (CloseText)
}

// ErrRelay is wrapped by the error of a Send or Close whose local delivery
// happened but whose relay to other nodes failed.
var ErrRelay = errors.New("tio: relay to other nodes failed")

// WithRelay makes the server a node of a cluster: r carries its sends and
// closes to the other nodes (see Relay and package cluster).
func WithRelay(r Relay) Option {
	return func(o *config) { o.relay = r }
}

// relays reports whether t's sends and closes go to other nodes.
func relays(t Target) bool { return t.kind != KindID && t.kind != KindIDs }

// publish hands m to the relay, if there is one and m's target is relayed.
func (s *Server) publish(m RelayMessage) error {
	r := s.cfg.relay
	if r == nil || !relays(m.Target) {
		return nil
	}
	if err := r.Publish(m); err != nil {
		return fmt.Errorf("%w: %w", ErrRelay, err)
	}
	return nil
}

// local is the server's Local: delivery to its own connections.
type local struct{ s *Server }

func (l local) Send(t Target, p *codec.Packet) (SendResult, error) {
	chs, err := l.s.members(t)
	if err != nil {
		return SendResult{}, err
	}
	return l.s.fanout(false, nil, chs, p, nil)
}

func (l local) Close(t Target, r channel.Reason, text string) (int, error) {
	return l.s.closeLocal(t, r, text, nil)
}
