package imserver

import (
	"embed"
	"io/fs"
)

// The chat page: plain HTML, CSS and JavaScript, no build step, embedded in
// the binary.
//
//go:embed web
var web embed.FS

// webFS returns the page's files, rooted at web/.
func webFS() fs.FS {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // a constant path: cannot fail
	}
	return sub
}
