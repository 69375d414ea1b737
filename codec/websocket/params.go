package websocket

import (
	"net/http"
	"net/url"
	"strings"
)

// Match matches the request's path against pattern, whose segments are
// literal or {name} (one segment), the last possibly {name...} (the rest of
// the path), as in JSR-356's @ServerEndpoint("/websocket/{key}") or
// net/http's patterns: Match("/ws/{room}") on "/ws/lobby" returns
// {"room": "lobby"}, true. It returns nil, false if the path does not
// match. Segment values are unescaped.
func (r *Request) Match(pattern string) (map[string]string, bool) {
	path, pat := strings.Trim(r.Path, "/"), strings.Trim(pattern, "/")
	params := map[string]string{}
	for pat != "" {
		var seg string
		seg, pat, _ = strings.Cut(pat, "/")
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "...}") {
			params[seg[1:len(seg)-4]] = unescape(path)
			return params, true
		}
		if path == "" {
			return nil, false
		}
		var val string
		val, path, _ = strings.Cut(path, "/")
		switch {
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			params[seg[1:len(seg)-1]] = unescape(val)
		case seg != val:
			return nil, false
		}
	}
	if path != "" {
		return nil, false
	}
	return params, true
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// Cookie returns the named cookie of the request's Cookie header, or
// http.ErrNoCookie.
func (r *Request) Cookie(name string) (*http.Cookie, error) {
	cs, err := http.ParseCookie(r.HeaderValue("Cookie"))
	if err != nil {
		return nil, http.ErrNoCookie
	}
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, http.ErrNoCookie
}
