package tio_test

import (
	"math"
	"slices"
	"testing"

	"github.com/tiogo/tio"
)

func TestPaginate(t *testing.T) {
	items := make([]int, 10)
	for i := range items {
		items[i] = i + 1
	}
	for _, c := range []struct{ number, size, items, pages int }{
		{1, 4, 4, 3}, {2, 4, 4, 3}, {3, 4, 2, 3}, {4, 4, 0, 3}, {0, 4, 4, 3}, {1, 0, 0, 0}, {1, 100, 10, 1},
		// sizes and numbers whose products and sums overflow an int
		{1 << 30, 1 << 30, 0, 1}, {1, math.MaxInt, 10, 1}, {2, math.MaxInt, 0, 1}, {math.MaxInt, math.MaxInt, 0, 1},
	} {
		p := tio.Paginate(items, c.number, c.size)
		if len(p.Items) != c.items || p.Total != 10 || p.Pages() != c.pages {
			t.Fatalf("page %d of %d: %d items, total %d, %d pages; want %d items, %d pages",
				c.number, c.size, len(p.Items), p.Total, p.Pages(), c.items, c.pages)
		}
	}
	p := tio.Paginate(items, 3, 4)
	if p.Items[0] != 9 || p.Pages() != 3 {
		t.Fatalf("page 3: first %d, pages %d", p.Items[0], p.Pages())
	}
	m := tio.MapPage(p, func(i int) string { return string(rune('a' + i)) })
	if !slices.Equal(m.Items, []string{"j", "k"}) || m.Number != 3 || m.Total != 10 {
		t.Fatalf("MapPage %+v", m)
	}
}
