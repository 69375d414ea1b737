package tio

// Page is one page of a listing, like t-io's Page: page Number (counted
// from 1) of pages of Size items, its Items, and the Total number of items
// on all pages.
type Page[T any] struct {
	Number int
	Size   int
	Total  int
	Items  []T
}

// Pages returns the number of pages.
func (p Page[T]) Pages() int { return pages(p.Total, p.Size) }

// pages is the number of pages of size items that total items fill, without
// the overflow of (total+size-1)/size when size is near math.MaxInt.
func pages(total, size int) int {
	if size <= 0 || total <= 0 {
		return 0
	}
	return (total-1)/size + 1
}

// Paginate returns page number (from 1; less is taken as 1) of size items of
// items, which must already be in the order wanted. A size of zero or less
// gives an empty page that still reports the total. The page's Items are a
// fresh slice.
func Paginate[T any](items []T, number, size int) Page[T] {
	number = max(number, 1)
	p := Page[T]{Number: number, Size: size, Total: len(items)}
	if size <= 0 {
		return p
	}
	if number-1 >= pages(len(items), size) { // past the last page
		return p
	}
	lo := (number - 1) * size
	hi := min(lo+size, len(items))
	p.Items = append(make([]T, 0, hi-lo), items[lo:hi]...)
	return p
}

// MapPage converts the items of a page with f (t-io's page converter), to
// return views of channels rather than the channels themselves.
func MapPage[T, U any](p Page[T], f func(T) U) Page[U] {
	out := Page[U]{Number: p.Number, Size: p.Size, Total: p.Total}
	if p.Items != nil {
		out.Items = make([]U, len(p.Items))
		for i, it := range p.Items {
			out.Items[i] = f(it)
		}
	}
	return out
}
