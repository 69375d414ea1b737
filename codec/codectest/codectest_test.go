package codectest_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/codectest"
)

// lines decodes newline-terminated lines of at most max bytes into packets
// of type 1; with the bugs set, it breaks the contract in one way.
type lines struct {
	max int
	bug string
}

func (d *lines) Decode(c codec.Conn, in []byte, p *codec.Packet) (int, bool, error) {
	i := bytes.IndexByte(in, '\n')
	if d.bug == "limit only while waiting" {
		// The limit is checked only when no newline has arrived: a long
		// line that comes in one read gets through.
		if i < 0 && len(in) > d.max {
			return 0, false, fmt.Errorf("line too long: %w", codec.ErrTooBig)
		}
	} else if i > d.max || i < 0 && len(in) > d.max {
		return 0, false, fmt.Errorf("line too long: %w", codec.ErrTooBig)
	}
	if i < 0 {
		return 0, false, nil
	}
	switch d.bug {
	case "packet without consuming":
		p.Type, p.Body = 1, in[:i]
		return 0, true, nil
	case "consumes too much":
		return len(in) + 1, false, nil
	case "scribbles":
		if len(in) > i+1 {
			in[i+1] = '!'
		}
	case "bare error":
		return 0, false, errors.New("no sentinel")
	case "ready twice":
		c.Ready()
		c.Ready()
	}
	p.Type, p.Body = 1, in[:i]
	return i + 1, true, nil
}

// recorder is a testing.TB whose Fatal records the message and ends the
// goroutine, so that a test can see codectest fail.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatal(args ...any)         { r.msg = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) { r.msg = fmt.Sprintf(f, a...); runtime.Goexit() }

// failure runs f with a recorder and returns what it failed with ("" if not).
func failure(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

// Splits passes a decoder that keeps the contract, and fails each way of
// breaking it with a message that says how.
func TestSplits(t *testing.T) {
	input := []byte("one\ntwo\nthree\n")
	for _, tc := range []struct {
		bug, input, want string
	}{
		{"", "one\ntwo\nthree\n", ""},
		{"", "one\ntwo too long for the limit\n", ""},
		{"limit only while waiting", "one\ntwo too long for the limit\n", "byte by byte"},
		{"packet without consuming", "one\n", "without consuming"},
		{"consumes too much", "one\n", "consumed 5 of 4 bytes"},
		{"scribbles", "one\ntwo\n", "modified bytes"},
		{"bare error", "one\n", "wraps no codec sentinel"},
		{"ready twice", "one\n", "Ready called 2 times"},
	} {
		var got codectest.Result
		msg := failure(t, func(tb testing.TB) {
			got = codectest.Splits(tb, func() codec.Decoder { return &lines{max: 10, bug: tc.bug} }, []byte(tc.input), []byte{2, 0, 5}, nil)
		})
		if tc.want == "" && msg != "" || !strings.Contains(msg, tc.want) {
			t.Errorf("bug %q: failed with %q, want %q", tc.bug, msg, tc.want)
		}
		if tc.bug == "" && tc.input == string(input) {
			want := []codectest.Packet{{Type: 1, Body: "one"}, {Type: 1, Body: "two"}, {Type: 1, Body: "three"}}
			if len(got.Packets) != 3 || got.Packets[0] != want[0] || got.Packets[2] != want[2] || got.Err != nil {
				t.Errorf("result %v", got)
			}
		}
		if tc.bug == "" && tc.input != string(input) && got.Err != codec.ErrTooBig {
			t.Errorf("a long line: result %v, want ErrTooBig", got)
		}
	}
}

// A Check sees the decoder after every call that did not fail.
func TestCheck(t *testing.T) {
	calls := 0
	codectest.Decode(t, &lines{max: 10}, []byte("a\nbb\n"), func() int { return 1 }, func(tb testing.TB, d codec.Decoder, buffered []byte, n int, ok bool) {
		calls++
		if n == 0 && ok || len(buffered) > 3 {
			tb.Fatalf("n %d, ok %v, buffered %q", n, ok, buffered)
		}
	})
	if calls != 5 { // reads a, \n, b, b, \n: three waits and two packets
		t.Fatalf("check called %d times", calls)
	}
}
