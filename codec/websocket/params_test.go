package websocket

import (
	"maps"
	"testing"
)

func TestRequestMatch(t *testing.T) {
	for _, c := range []struct {
		path, pattern string
		want          map[string]string
	}{
		{"/ws/lobby", "/ws/{room}", map[string]string{"room": "lobby"}},
		{"/ws/a%20b/x", "/ws/{room}/{key}", map[string]string{"room": "a b", "key": "x"}},
		{"/ws", "/ws", map[string]string{}},
		{"/files/a/b/c", "/files/{rest...}", map[string]string{"rest": "a/b/c"}},
		{"/ws/lobby/extra", "/ws/{room}", nil},
		{"/ws", "/ws/{room}", nil},
		{"/chat/lobby", "/ws/{room}", nil},
	} {
		got, ok := (&Request{Path: c.path}).Match(c.pattern)
		if ok != (c.want != nil) || !maps.Equal(got, c.want) {
			t.Errorf("Match(%q) on %q = %v, %v; want %v", c.pattern, c.path, got, ok, c.want)
		}
	}
}
