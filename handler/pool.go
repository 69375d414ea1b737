package handler

import (
	"errors"
	"sync"
)

// ErrPoolFull is returned by Submit when the worker for a key has no room.
var ErrPoolFull = errors.New("handler: worker queue full")

// ErrPoolClosed is returned by Submit after Close.
var ErrPoolClosed = errors.New("handler: pool closed")

// Pool is a bounded worker pool that keeps order per key: tasks submitted
// with the same key run one after another, in submission order, on the same
// worker. Submit never blocks; a full queue is an error the caller turns into
// a counted close. The number of goroutines and queued tasks are both bounded.
type Pool struct {
	workers []chan func()
	wg      sync.WaitGroup
	mu      sync.RWMutex
	closed  bool
}

// NewPool starts workers goroutines, each with a queue of depth tasks.
func NewPool(workers, depth int) *Pool {
	workers, depth = max(workers, 1), max(depth, 1)
	p := &Pool{workers: make([]chan func(), workers)}
	for i := range p.workers {
		q := make(chan func(), depth)
		p.workers[i] = q
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for f := range q {
				f()
			}
		}()
	}
	return p
}

// Submit queues f on the worker for key, without blocking.
func (p *Pool) Submit(key uint64, f func()) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrPoolClosed
	}
	select {
	case p.workers[key%uint64(len(p.workers))] <- f:
		return nil
	default:
		return ErrPoolFull
	}
}

// Drain waits until every task queued so far has run, while still accepting
// new ones.
func (p *Pool) Drain() {
	var wg sync.WaitGroup
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return
	}
	for _, q := range p.workers {
		wg.Add(1)
		done := func() { wg.Done() }
		select {
		case q <- done:
		default:
			// A full queue: wait for room without holding up Submit.
			go func() {
				defer func() { _ = recover() }() // the pool closed meanwhile
				q <- done
			}()
		}
	}
	p.mu.RUnlock()
	wg.Wait()
}

// Close stops accepting tasks, runs those already queued, and waits for the
// workers to finish.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, q := range p.workers {
			close(q)
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}
