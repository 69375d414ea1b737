package cluster_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/tiogo/tio"
	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/tiotest"
)

// OnReceive sees every relayed send and close before the node delivers
// it: returning true delivers as usual, false leaves delivery to the
// function (here: through Local, to a group of its choice) or drops the
// message; a panic delivers it.
func TestOnReceive(t *testing.T) {
	ns := startNATS(t)
	a := newNode(t, testConfig(t, "a", ns.url()))
	b := newNode(t, testConfig(t, "b", ns.url()))
	var mu sync.Mutex
	var seen []string
	b.OnReceive(func(m tio.RelayMessage, local tio.Local) bool {
		mu.Lock()
		if m.Op == tio.RelaySend {
			seen = append(seen, m.Target.String()+" "+string(m.Packet.Body))
		} else {
			seen = append(seen, m.Target.String()+" closed: "+m.Text)
		}
		mu.Unlock()
		switch {
		case m.Op == tio.RelaySend && string(m.Packet.Body) == "drop":
			return false
		case m.Op == tio.RelaySend && string(m.Packet.Body) == "boom":
			panic("boom")
		case m.Op == tio.RelaySend && m.Target == tio.Group("redirect"):
			_, _ = local.Send(tio.Group("elsewhere"), &codec.Packet{Type: typeMsg, Body: []byte("redirected " + string(m.Packet.Body))})
			return false
		}
		return true
	})
	meshed(t, a, b)
	sender := dial(t, a)
	room := dial(t, b)
	room.do(typeJoin, "room")
	other := dial(t, b)
	other.do(typeJoin, "elsewhere")

	sender.do(typeSend, "group:room\ndrop")
	sender.do(typeSend, "group:room\nboom")
	room.expect("boom") // not "drop"
	sender.do(typeSend, "group:redirect\nhi")
	other.expect("redirected hi")
	sender.do(typeClose, "group:room")
	tiotest.ExpectClosed(t, room.Conn)
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	want := []string{"group:room drop", "group:room boom", "group:redirect hi", "group:room closed: "}
	if !slices.Equal(got, want) {
		t.Fatalf("OnReceive saw %q, want %q", got, want)
	}
	if st := b.Stats(); st.Received != 4 || st.Intercepted != 2 {
		t.Fatalf("received %d, intercepted %d", st.Received, st.Intercepted)
	}
}
