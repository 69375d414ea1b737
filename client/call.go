package client

import (
	"context"
	"sync/atomic"

	"github.com/tiogo/tio/codec"
)

// call is one Call waiting for its reply.
type call struct {
	done  chan struct{}
	resp  *codec.Packet
	err   error
	state atomic.Uint32           // callWaiting, callDone, callAbandoned
	s     atomic.Pointer[session] // where its request went (nil while queued)
	id    uint32
}

const (
	callWaiting uint32 = iota
	callDone
	callAbandoned
)

// finish answers the call, unless it was answered or abandoned already.
func (cl *call) finish(resp *codec.Packet, err error) bool {
	if !cl.state.CompareAndSwap(callWaiting, callDone) {
		return false
	}
	cl.resp, cl.err = resp, err
	close(cl.done)
	return true
}

func (cl *call) abandoned() bool { return cl.state.Load() == callAbandoned }

// Call sends p as a request (t-io's synSend) and waits for the server's
// reply to it: p goes out with a fresh id (codec.Packet.ID, unique among
// the connection's requests in flight; p itself is not modified), the
// server answers with ch.Reply(req, resp), and Call returns that reply —
// or ctx's error if ctx ends first, ErrConnLost (wrapped) if the TCP
// connection drops before the reply comes, ErrClosed if the connection is
// closed. A reply that comes after its Call gave up is counted
// (Stats().UnmatchedReplies) and dropped. While the connection is down,
// the request is queued like a Send (WithQueue) and its wait goes on
// until ctx ends; without a queue Call fails with ErrNotConnected.
//
// Replies are matched on the event loop, ahead of any handler, so a Call
// from a handler on the pool or from the OnConnected hook does not wait
// for itself; Call blocks, so on an event loop (an inline handler, a hook
// that runs there) it fails at once with ErrOnLoop. Requests need a
// protocol that carries ids: the binary protocol (version 2) and the
// WebSocket TypePrefix mapping do, for types up to 0xFF on WebSocket.
func (cn *Conn) Call(ctx context.Context, p *codec.Packet) (*codec.Packet, error) {
	if cn.c.env.OnLoop() {
		return nil, ErrOnLoop
	}
	cl := &call{done: make(chan struct{})}
	sent := false
	if State(cn.state.Load()) == StateConnected {
		if s := cn.cur.Load(); s != nil {
			err := cn.sendOn(s, p, cl)
			if err != nil && !gone(err) {
				return nil, err
			}
			sent = err == nil
		}
	}
	if !sent {
		if err := cn.send(p, cl); err != nil {
			return nil, err
		}
	}
	select {
	case <-cl.done:
		return cl.resp, cl.err
	case <-ctx.Done():
		if cn.abandon(cl) {
			return nil, ctx.Err()
		}
		<-cl.done // answered meanwhile
		return cl.resp, cl.err
	}
}

// abandon gives up on cl, unless it was answered already; a queued
// request is then skipped when the queue is sent.
func (cn *Conn) abandon(cl *call) bool {
	if !cl.state.CompareAndSwap(callWaiting, callAbandoned) {
		return false
	}
	if s := cl.s.Load(); s != nil {
		s.unregister(cl)
	}
	return true
}

// register takes a fresh id for cl on s (0 if s is closed).
func (s *session) register(cl *call) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	if s.calls == nil {
		s.calls = make(map[uint32]*call)
	}
	for {
		id := s.cn.ids.Add(1)
		if id == 0 {
			continue // 0 is no id
		}
		if _, taken := s.calls[id]; taken {
			continue // the counter wrapped onto a request still in flight
		}
		s.calls[id] = cl
		cl.id = id
		cl.s.Store(s)
		return id
	}
}

// unregister forgets cl's id.
func (s *session) unregister(cl *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[cl.id] == cl {
		delete(s.calls, cl.id)
	}
}

// reply matches a reply to its Call (on the loop: p's body is copied),
// counting it in answered before the Call returns.
func (s *session) reply(p *codec.Packet, answered *atomic.Uint64) bool {
	s.mu.Lock()
	cl := s.calls[p.ID]
	if cl != nil {
		delete(s.calls, p.ID)
	}
	s.mu.Unlock()
	if cl == nil {
		return false
	}
	resp := &codec.Packet{Type: p.Type, ID: p.ID, Reply: true, Body: append([]byte(nil), p.Body...)}
	answered.Add(1)
	if !cl.finish(resp, nil) {
		answered.Add(^uint64(0)) // abandoned meanwhile: a late reply
		return false
	}
	return true
}

// failCalls fails every Call waiting on s, which closed, counting each
// in lost before its Call returns.
func (s *session) failCalls(err error, lost *atomic.Uint64) {
	s.mu.Lock()
	calls := s.calls
	s.calls, s.closed = nil, true
	s.mu.Unlock()
	for _, cl := range calls {
		if cl.state.Load() == callWaiting {
			lost.Add(1)
			if !cl.finish(nil, err) {
				lost.Add(^uint64(0)) // abandoned meanwhile
			}
		}
	}
}
