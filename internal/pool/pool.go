// Package pool runs handlers off the event loops: per-connection queues of
// tasks served by a bounded set of worker goroutines.
//
// Each connection that hands work to the pool has a [Queue]. A queue's tasks
// run one after another, in the order they were submitted, but a queue is not
// tied to a worker: a worker takes a queue that has work, runs a few of its
// tasks and moves on, so a handler that never returns holds only its own
// worker and its own connection. Other connections keep running on the
// other workers. (A fixed connection→worker hash would starve every
// connection that hashes to a stuck worker.)
//
// Submit never blocks: a queue past its bounds is an error that the caller
// turns into a counted close. Workers report, through [Pool.Scan], a task that
// has run longer than a threshold.
package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Submit.
var (
	// ErrFull: the queue holds as many tasks or bytes as its bounds allow.
	ErrFull = errors.New("pool: queue full")
	// ErrClosed: the pool is closed.
	ErrClosed = errors.New("pool: closed")
)

// Task is one unit of work.
type Task struct {
	Run   func()
	Label uint32 // what the task is (a packet type), for Scan's reports
	Size  int    // bytes the task holds, counted against the queue's bound
}

// batch is how many tasks a worker runs from one queue before it lets the
// other queues with work have their turn.
const batch = 16

// Pool is a set of workers serving queues. Create it with New.
type Pool struct {
	depth    int // tasks a queue may hold
	maxBytes int // bytes a queue may hold before a new task (a task alone may be larger)

	mu         sync.Mutex
	cond       sync.Cond
	head, tail *Queue // queues with work, waiting for a worker
	idle       int    // workers waiting in take
	closed     bool

	workers []worker
	done    chan struct{} // closed when every worker has returned
	running atomic.Int32
}

// worker is what Scan sees of one worker goroutine.
type worker struct {
	since    atomic.Int64  // when the running task began, unix ns; 0: idle
	label    atomic.Uint32 // the running task's label
	reported atomic.Bool   // Scan has reported the running task
}

// New starts workers goroutines. A queue holds at most depth tasks, and a
// task is refused while the queue already holds more than maxBytes bytes
// (0: no byte bound).
func New(workers, depth, maxBytes int) *Pool {
	workers = max(workers, 1)
	p := &Pool{depth: max(depth, 1), maxBytes: maxBytes, workers: make([]worker, workers), done: make(chan struct{})}
	p.cond.L = &p.mu
	p.running.Store(int32(workers))
	for i := range p.workers {
		go p.work(&p.workers[i])
	}
	return p
}

// Queue is one connection's tasks. The zero value is ready to use; a queue
// is used with one pool.
type Queue struct {
	mu    sync.Mutex
	tasks []Task // a ring: n tasks from head
	head  int
	n     int
	bytes int
	next  *Queue // in the pool's list of queues with work
	busy  atomic.Bool
}

// Busy reports whether the queue has tasks waiting or running. Safe from
// any goroutine; a connection whose queue is busy must submit its next
// task rather than run it elsewhere, or it would run out of order.
func (q *Queue) Busy() bool { return q.busy.Load() }

// Len returns the number of tasks waiting (not counting one running).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *Queue) push(t Task) {
	if q.n == len(q.tasks) {
		grown := make([]Task, max(4, 2*len(q.tasks)))
		for i := range q.n {
			grown[i] = q.tasks[(q.head+i)%len(q.tasks)]
		}
		q.tasks, q.head = grown, 0
	}
	q.tasks[(q.head+q.n)%len(q.tasks)] = t
	q.n++
	q.bytes += t.Size
}

func (q *Queue) pop() (Task, bool) {
	if q.n == 0 {
		return Task{}, false
	}
	t := q.tasks[q.head]
	q.tasks[q.head] = Task{}
	q.head = (q.head + 1) % len(q.tasks)
	q.n--
	q.bytes -= t.Size
	if q.n == 0 {
		q.head = 0
		if len(q.tasks) > 64 {
			q.tasks = nil // a burst has passed: let its ring go
		}
	}
	return t, true
}

// Submit queues t on q without blocking. It fails with ErrFull when q holds
// its depth of tasks or more than the pool's byte bound, and with ErrClosed
// after Close.
func (p *Pool) Submit(q *Queue, t Task) error { return p.submit(q, t, false) }

// Then queues t on q past the bounds: for the last task of a connection (its
// close), which must run after the tasks queued before it. If q is idle, t
// runs at once on the calling goroutine. It fails only with ErrClosed.
func (p *Pool) Then(q *Queue, t Task) error { return p.submit(q, t, true) }

func (p *Pool) submit(q *Queue, t Task, force bool) error {
	q.mu.Lock()
	if !force && (q.n >= p.depth || (p.maxBytes > 0 && q.n > 0 && q.bytes > p.maxBytes)) {
		q.mu.Unlock()
		return ErrFull
	}
	if force && !q.busy.Load() {
		q.mu.Unlock()
		t.Run()
		return nil
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.push(t)
	schedule := !q.busy.Load()
	q.busy.Store(true)
	q.mu.Unlock()
	if schedule {
		p.schedule(q)
	}
	return nil
}

// schedule puts q, which has work, at the end of the list for a worker.
func (p *Pool) schedule(q *Queue) {
	p.mu.Lock()
	q.next = nil
	if p.tail == nil {
		p.head = q
	} else {
		p.tail.next = q
	}
	p.tail = q
	if p.idle > 0 {
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// take waits for a queue with work; nil once the pool is closed and no
// queue has work.
func (p *Pool) take() *Queue {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == nil {
		if p.closed {
			return nil
		}
		p.idle++
		p.cond.Wait()
		p.idle--
	}
	q := p.head
	p.head = q.next
	if p.head == nil {
		p.tail = nil
	}
	q.next = nil
	return q
}

func (p *Pool) work(w *worker) {
	defer func() {
		if p.running.Add(-1) == 0 {
			close(p.done)
		}
	}()
	for {
		q := p.take()
		if q == nil {
			return
		}
		for i := 0; ; i++ {
			q.mu.Lock()
			if q.n == 0 {
				q.busy.Store(false)
				q.mu.Unlock()
				break
			}
			if i == batch {
				q.mu.Unlock()
				p.schedule(q) // still busy: its turn comes again
				break
			}
			t, _ := q.pop()
			q.mu.Unlock()
			w.run(t)
		}
	}
}

func (w *worker) run(t Task) {
	w.label.Store(t.Label)
	w.reported.Store(false)
	w.since.Store(time.Now().UnixNano())
	defer w.since.Store(0)
	t.Run()
}

// Scan calls report for each task that has been running for longer than
// threshold and was not reported yet, with its label and how long it has
// run. Call it from time to time (the server's ticker does).
func (p *Pool) Scan(now time.Time, threshold time.Duration, report func(label uint32, running time.Duration)) {
	ns := now.UnixNano()
	for i := range p.workers {
		w := &p.workers[i]
		since := w.since.Load()
		if since == 0 || time.Duration(ns-since) < threshold || w.reported.Load() {
			continue
		}
		if w.reported.CompareAndSwap(false, true) && w.since.Load() == since {
			report(w.label.Load(), time.Duration(ns-since))
		}
	}
}

// Close stops accepting tasks; the workers run the tasks already queued and
// return. Close waits for them until ctx ends and then returns ctx's error:
// a task that never returns keeps its worker, and only that worker, behind.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
