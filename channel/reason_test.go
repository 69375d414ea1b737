package channel_test

import (
	"testing"

	"github.com/tiogo/tio/channel"
)

// Every reason has a distinct name; the public set covers every reason the
// server can record.
func TestReasonNamesAreDistinct(t *testing.T) {
	seen := map[string]channel.Reason{}
	for r := channel.Reason(0); int(r) < channel.NumReasons; r++ {
		name := r.String()
		if name == "" || name == "unknown" {
			t.Fatalf("reason %d has no name", r)
		}
		if prev, dup := seen[name]; dup {
			t.Fatalf("reasons %d and %d share the name %q", prev, r, name)
		}
		seen[name] = r
	}
	if channel.Reason(200).String() != "unknown" {
		t.Fatal("out-of-range reason not reported as unknown")
	}
	if channel.ReasonHandshakeRefused != channel.Reason(channel.NumReasons-1) {
		t.Fatal("a reason was added internally without its public constant")
	}
}
