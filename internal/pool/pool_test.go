package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOrderPerQueue(t *testing.T) {
	p := New(4, 10000, 0)
	defer p.Close(context.Background())
	const queues, each = 16, 500
	qs := make([]Queue, queues)
	got := make([][]int, queues)
	var wg sync.WaitGroup
	wg.Add(queues * each)
	for i := range each {
		for k := range qs {
			err := p.Submit(&qs[k], Task{Run: func() { got[k] = append(got[k], i); wg.Done() }})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	for k, g := range got {
		for i, v := range g {
			if v != i {
				t.Fatalf("queue %d: task %d ran as #%d", k, v, i)
			}
		}
	}
}

// A task that never returns holds its worker and its queue, nothing else:
// every other queue keeps being served even with one worker left.
func TestStuckTaskStallsOnlyItsQueue(t *testing.T) {
	p := New(2, 100, 0)
	release := make(chan struct{})
	defer func() { close(release); p.Close(context.Background()) }()
	var stuck Queue
	if err := p.Submit(&stuck, Task{Run: func() { <-release }}); err != nil {
		t.Fatal(err)
	}
	ranAfter := atomic.Bool{}
	_ = p.Submit(&stuck, Task{Run: func() { ranAfter.Store(true) }})
	qs := make([]Queue, 64)
	var wg sync.WaitGroup
	for round := range 10 {
		wg.Add(len(qs))
		for k := range qs {
			if err := p.Submit(&qs[k], Task{Run: wg.Done}); err != nil {
				t.Fatalf("round %d queue %d: %v", round, k, err)
			}
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: queues stalled behind a stuck task", round)
		}
	}
	if ranAfter.Load() {
		t.Fatal("a task ran before the task queued ahead of it returned")
	}
	if !stuck.Busy() || stuck.Len() != 1 {
		t.Fatalf("stuck queue: busy %v, %d waiting; want busy, 1", stuck.Busy(), stuck.Len())
	}
}

func TestBounds(t *testing.T) {
	p := New(1, 2, 100)
	release := make(chan struct{})
	defer func() { close(release); p.Close(context.Background()) }()
	var q Queue
	block := Task{Run: func() { <-release }}
	if err := p.Submit(&q, block); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return q.Len() == 0 }) // running, not waiting
	if err := p.Submit(&q, Task{Run: func() {}, Size: 1000}); err != nil {
		t.Fatalf("a task larger than the byte bound on an empty queue: %v", err)
	}
	if err := p.Submit(&q, Task{Run: func() {}, Size: 1}); !errors.Is(err, ErrFull) {
		t.Fatalf("past the byte bound: %v, want ErrFull", err)
	}
	var q2 Queue
	_ = p.Submit(&q2, Task{Run: func() {}})
	_ = p.Submit(&q2, Task{Run: func() {}})
	if err := p.Submit(&q2, Task{Run: func() {}}); !errors.Is(err, ErrFull) {
		t.Fatalf("past the depth: %v, want ErrFull", err)
	}
	if err := p.Then(&q2, Task{Run: func() {}}); err != nil {
		t.Fatalf("Then past the bounds: %v", err)
	}
}

func TestThenRunsAfterQueuedTasks(t *testing.T) {
	p := New(2, 10, 0)
	defer p.Close(context.Background())
	var q Queue
	ran := false
	if err := p.Then(&q, Task{Run: func() { ran = true }}); err != nil || !ran {
		t.Fatalf("Then on an idle queue: ran %v, err %v; want it run at once", ran, err)
	}
	var order []int
	done := make(chan struct{})
	gate := make(chan struct{})
	_ = p.Submit(&q, Task{Run: func() { <-gate; order = append(order, 1) }})
	_ = p.Submit(&q, Task{Run: func() { order = append(order, 2) }})
	_ = p.Then(&q, Task{Run: func() { order = append(order, 3); close(done) }})
	close(gate)
	<-done
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("order %v", order)
	}
}

func TestScanReportsLongTasksOnce(t *testing.T) {
	p := New(2, 10, 0)
	release := make(chan struct{})
	defer func() { close(release); p.Close(context.Background()) }()
	var q Queue
	_ = p.Submit(&q, Task{Run: func() { <-release }, Label: 7})
	time.Sleep(30 * time.Millisecond)
	var reports []uint32
	scan := func() {
		p.Scan(time.Now(), 20*time.Millisecond, func(label uint32, d time.Duration) {
			if d < 20*time.Millisecond {
				t.Errorf("reported after %v", d)
			}
			reports = append(reports, label)
		})
	}
	scan()
	scan()
	if len(reports) != 1 || reports[0] != 7 {
		t.Fatalf("reports %v, want [7] once", reports)
	}
	p.Scan(time.Now(), time.Hour, func(uint32, time.Duration) { t.Error("reported under the threshold") })
}

func TestCloseRunsQueuedAndHonoursDeadline(t *testing.T) {
	p := New(2, 100, 0)
	var q, stuck Queue
	var ran atomic.Int32
	for range 50 {
		_ = p.Submit(&q, Task{Run: func() { ran.Add(1) }})
	}
	block := make(chan struct{})
	defer close(block)
	_ = p.Submit(&stuck, Task{Run: func() { <-block }})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck task = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v past its deadline", d)
	}
	if ran.Load() != 50 {
		t.Fatalf("%d of 50 queued tasks ran", ran.Load())
	}
	if err := p.Submit(&q, Task{Run: func() {}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close = %v, want ErrClosed", err)
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatal("condition not met in 5 s")
}
